"""Co-partitioning of requests and results: Kafka's default partitioner, and its limits."""

from __future__ import annotations

import pytest
from runstream.streams.copartition import co_partitions, partition_for

# Kafka's own vectors for Utils.murmur2 (clients' UtilsTest), as signed 32-bit values.
JAVA_MURMUR2 = {b"21": -973932308, b"foobar": -790332482,
                b"a-little-bit-long-string": -985981536,
                b"a-little-bit-longer-string": -1486304829,
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
                b"abc": 479470107}


@pytest.mark.parametrize("key", list(JAVA_MURMUR2))
@pytest.mark.parametrize("partitions", [1, 2, 12, 13])
def test_an_id_lands_where_javas_default_partitioner_puts_it(key: bytes,
                                                             partitions: int) -> None:
    # Java: Utils.toPositive(Utils.murmur2(key)) % numPartitions
    assert partition_for(key, partitions) == (JAVA_MURMUR2[key] & 0x7FFFFFFF) % partitions


def test_a_topic_without_partitions_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        partition_for(b"x", 0)


def test_equal_counts_match_partition_for_partition() -> None:
    assert co_partitions([0, 5, 11], 12, 12) == frozenset({0, 5, 11})
    assert co_partitions([], 12, 12) == frozenset()


IDS = [f"id-{n}".encode() for n in range(2000)]


@pytest.mark.parametrize(("source", "results"), [(12, 12), (2, 12), (3, 12), (24, 12), (5, 12)])
def test_the_results_of_a_source_partition_are_in_its_co_partitions(source: int,
                                                                    results: int) -> None:
    for owned in range(source):
        where = {partition_for(i, results) for i in IDS if partition_for(i, source) == owned}
        co = co_partitions([owned], source, results)
        if co is None:  # no multiple: its ids spread over every results partition
            assert results % source and source % results and where == set(range(results))
        else:
            assert where <= co


def test_a_language_topics_partitions_are_the_even_and_the_odd_results_partitions() -> None:
    assert co_partitions([0], 2, 12) == frozenset({0, 2, 4, 6, 8, 10})
    assert co_partitions([0, 1], 2, 12) == frozenset(range(12))
    assert co_partitions([1, 13], 24, 12) == frozenset({1})
