"""Request/reply over Kafka: follow reply partitions, hand each waiter its result by id.

Used by the HTTP ingress (partitions of the replies topic) and by the benchmark's
Kafka target (a reply topic of the run's own). A reply that arrives twice (a re-run
after a worker crash) finds its future resolved already: the waiter gets exactly
one answer.

Which partitions: one named partition (``partition=N``), or, with ``group=NAME``,
whatever the consumer group of all the instances gives this one: identical
processes then share the topic's partitions with no per-instance setting. A
rebalance may move a partition while a reply to it is still due; the ingress
learns that result from the results topic as well (``runstream.results``), so
nothing waits on a partition that moved.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from runstream.services.settings import Settings
from runstream.streams import kafka
from runstream.streams.follower import STOP_S, Follower

log = logging.getLogger(__name__)

Listener = Callable[[str, bytes], None]


class Correlator(Follower):
    """Futures by execution id, resolved by the first record with that key on one partition."""

    # Only replies to come matter: nobody asks whether it caught up.
    tracks_positions = False
    fetch_wait_ms = 1000
    max_records = 500

    def __init__(self, settings: Settings, topic: str, partition: int | None, *,
                 client_id: str, from_beginning: bool = False, group: str | None = None) -> None:
        if (partition is None) == (group is None):
            raise ValueError("a Correlator follows either one partition or a group's share")
        if group is None:
            options: dict[str, Any] = {"auto_offset_reset": "earliest"}
        else:
            # Never committed: a partition's new owner starts at its end ("latest"); a
            # reply produced before that is also on the results topic.
            options = {"group_id": group, "auto_offset_reset": "latest",
                       "session_timeout_ms": int(settings.worker_session_timeout_s * 1000),
                       "heartbeat_interval_ms": int(settings.worker_heartbeat_s * 1000)}
        super().__init__(settings, topic, client_id=client_id, **options)
        if group is None:
            # One partition, start to stop. A group's share moves when an ingress comes
            # or goes, and its new owner starts at the partition's end: behind a held
            # fetch that start came late, and replies written meanwhile were skipped.
            self.fetch_hold_ms = kafka.HOLD_MS
        self.tp = TopicPartition(topic, partition if partition is not None else -1)
        self.group = group
        self.from_beginning = from_beginning
        self._owned: list[int] = [] if partition is None else [partition]
        self._has_partition = asyncio.Event()
        self.waiting: dict[str, asyncio.Future[bytes]] = {}
        self._listeners: list[Listener] = []

    async def start(self, timeout_s: float = 30.0) -> None:
        """Connect and follow the partition (from its end: only replies to come matter).

        In group mode, return once the group gave this member a partition (bounded by
        ``timeout_s``; :class:`TimeoutError` past it).
        """
        await super().start(timeout_s)

    async def _assign(self, consumer: AIOKafkaConsumer, deadline: float) -> None:
        if self.group is not None:
            consumer.subscribe([self.topic], listener=_Shares(self))
            return
        consumer.assign([self.tp])
        if not self.from_beginning:
            await asyncio.wait_for(consumer.seek_to_end(self.tp),
                                   max(1.0, deadline - time.monotonic()))
        self._has_partition.set()

    async def _ready(self, deadline: float) -> None:
        await asyncio.wait_for(self._has_partition.wait(), max(0.0, deadline - time.monotonic()))

    @property
    def partition(self) -> int | None:
        """The partition to name in ``reply_to`` now: the lowest one this member reads."""
        return self._owned[0] if self._owned else None

    async def partition_within(self, timeout_s: float) -> int | None:
        """:attr:`partition`, waiting up to ``timeout_s`` while a rebalance is under way."""
        if not self._owned:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._has_partition.wait(), timeout_s)
        return self.partition

    def _owns(self, partitions: list[int]) -> None:
        self._owned = sorted(partitions)
        if self._owned:
            self._has_partition.set()
            log.info("reading %s partitions %s (group %s)", self.topic, self._owned, self.group)
        else:
            self._has_partition.clear()

    async def stop(self, timeout_s: float = STOP_S) -> None:
        """Stop following; waiters still waiting are cancelled."""
        for fut in list(self.waiting.values()):
            if not fut.done():
                fut.cancel()
        await super().stop(timeout_s)

    def assigned(self) -> bool:
        return (self._consumer is not None and bool(self._consumer.assignment())
                and bool(self._owned))

    def expect(self, exec_id: str) -> asyncio.Future[bytes]:
        """The future of ``exec_id``'s result (one per id, shared by every waiter)."""
        fut = self.waiting.get(exec_id)
        if fut is None:
            fut = asyncio.get_running_loop().create_future()
            self.waiting[exec_id] = fut
            fut.add_done_callback(lambda _: self._drop(exec_id, fut))
        return fut

    def _drop(self, exec_id: str, fut: asyncio.Future[bytes]) -> None:
        if self.waiting.get(exec_id) is fut:
            del self.waiting[exec_id]

    def add_listener(self, fn: Listener) -> None:
        """Call ``fn(id, value)`` for every reply read."""
        self._listeners.append(fn)

    def resolve(self, exec_id: str, value: bytes) -> None:
        """Hand ``value`` to whoever waits for ``exec_id`` (a result learnt elsewhere)."""
        fut = self.waiting.get(exec_id)
        if fut is not None and not fut.done():
            fut.set_result(value)

    def _on_record(self, record: Any) -> None:
        if record.key is None or record.value is None:
            return
        exec_id = record.key.decode("utf-8", "replace")
        for fn in self._listeners:
            fn(exec_id, record.value)
        self.resolve(exec_id, record.value)


class _Shares(ConsumerRebalanceListener):  # type: ignore[misc]
    """Keeps a group-mode Correlator's list of partitions up to date."""

    def __init__(self, correlator: Correlator) -> None:
        self.correlator = correlator

    async def on_partitions_revoked(self, revoked: Any) -> None:
        self.correlator._owns([])

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self.correlator._owns([tp.partition for tp in assigned])
