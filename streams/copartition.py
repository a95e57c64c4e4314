"""Co-partitioning: which partitions of the results topic hold the results of which requests.

Requests and results are both keyed by execution id and both written with Kafka's
default partitioner (murmur2 of the key, modulo the partition count). With equal
partition counts, the result of a request read from partition p of the requests
topic is therefore in partition p of the results topic: a worker that owns request
partitions P need only follow results partitions P (Faust calls this
co-partitioning). When one count is a multiple of the other the match still holds
modulo the smaller one (``h % 12 == r`` implies ``h % 2 == r % 2``): the language
topics' 2 partitions map to the even and the odd results partitions. Otherwise there
is no such match: follow every partition, or look an id's partition up with
:func:`partition_for`.
"""

from __future__ import annotations

from collections.abc import Iterable

from aiokafka.partitioner import murmur2


def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (Java's and aiokafka's) gives ``key``."""
    if partitions < 1:
        raise ValueError(f"a topic has at least one partition, not {partitions}")
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


def co_partitions(owned: Iterable[int], source_partitions: int,
                  results_partitions: int) -> frozenset[int] | None:
    """The results partitions that hold the results of ``owned`` source partitions.

    None (follow every partition) when neither count is a multiple of the other: then
    a source partition's ids are spread over every results partition.
    """
    owned = frozenset(owned)
    if results_partitions % source_partitions == 0:
        return frozenset(r for r in range(results_partitions) if r % source_partitions in owned)
    if source_partitions % results_partitions == 0:
        return frozenset(p % results_partitions for p in owned)
    return None
