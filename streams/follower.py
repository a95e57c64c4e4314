"""A follower: one consumer of its own that reads a topic in the background.

Every class of runstream that follows a topic outside the worker's Faust stream
(the events, stdin, keys and results followers, the reply correlator, the webhook
jobs' group member) has the same life cycle, written here once:

- :meth:`Follower.start`: build and start the consumer, assign (or subscribe), begin
  following, then wait for whatever the subclass needs before it is ready; a failure
  anywhere stops what was started;
- following: fetch a batch, hand its records on, count the round (when the subclass
  asks :meth:`caught_up` questions); a read error (a broker restarting) is retried
  every half second and logged at most every ten seconds;
- :meth:`Follower.caught_up`: snapshot the end offsets and wait until the positions
  read reach them (read from the consumer when asked, not after every round: a
  follower of the events topic goes round for every event);
- :meth:`Follower.stop`: cancel the following and close the consumer.

Offsets are asked for through a second consumer that never fetches
(:attr:`Follower.offsets`): Kafka answers one request at a time per connection, so
behind a fetch that the broker holds while nothing is written (up to
:data:`.kafka.FOLLOW_MAX_WAIT_MS`) an end-offsets request waited up to that long. A
client that named its execution id waited ~300 ms for its POST's look-up, idle, where
the look-up takes 1 ms.

Every network await is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Collection
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from runstream.schemas.errors import RunstreamError
from runstream.services.logs import Throttled
from runstream.services.settings import Settings
from runstream.streams import kafka

log = logging.getLogger(__name__)

T = TypeVar("T")

#: How long stopping waits for the following task, and for the consumer to close.
STOP_S = 5.0
#: Pause after a failed read before the next one.
RETRY_S = 0.5


class Follower:
    """Base of a class that follows ``topic`` with one consumer of its own.

    A subclass says which partitions it reads (:meth:`_assign`), what a record does
    (:meth:`_on_record`, or a whole round: :meth:`_round`), and optionally what
    :meth:`start` waits for once following (:meth:`_ready`). ``consumer_options`` go
    to :func:`.kafka.consumer` (a group, an offset reset policy, ...).
    """

    #: How long a fetch waits for records before the loop goes round again.
    fetch_wait_ms = 500
    #: How long the broker may hold an empty fetch (:data:`.kafka.HOLD_MS` for a
    #: follower whose partitions do not change while it runs).
    fetch_hold_ms = kafka.FOLLOW_MAX_WAIT_MS
    #: Records one round reads at most.
    max_records = 1000
    #: Count the rounds, so that :meth:`caught_up` can wait for the next one.
    tracks_positions = True
    #: Where :meth:`caught_up` takes the positions read from: the consumer, when it
    #: asks (a record handed on synchronously after its fetch is read once the
    #: consumer's position passed it), or, when False, what the subclass notes with
    #: :meth:`_advance` (a round that awaits between reading and handing on).
    positions_from_consumer = True

    def __init__(self, settings: Settings, topic: str, *, client_id: str,
                 **consumer_options: Any) -> None:
        self.settings = settings
        self.topic = topic
        self.client_id = client_id
        self._consumer_options = consumer_options
        self._consumer: AIOKafkaConsumer | None = None
        self._offsets: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        #: The partitions read now.
        self._tps: list[TopicPartition] = []
        #: Next offset to read, per partition (noted by the subclass: see
        #: :attr:`positions_from_consumer`).
        self._positions: dict[int, int] = {}
        self._rounds = 0
        self._progress = asyncio.Condition()
        self._ends = kafka.EndOffsets()  # shared snapshots of the topic's end offsets
        # Under the subclass's own logger: its messages name the module they come from.
        self._warn = Throttled(logging.getLogger(type(self).__module__))

    # -- life cycle ------------------------------------------------------------
    async def start(self, timeout_s: float = 30.0) -> None:
        """Connect, assign, follow, and wait until ready; bounded by ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        self._consumer = self._new_consumer()
        self._offsets = self._new_offsets_client()
        try:
            for client in (self._consumer, self._offsets):
                await kafka.start(client, self.settings, timeout_s=timeout_s)
            # Its first question about the topic would wait for the topic's metadata.
            await kafka.partitions_of(self._offsets, self.topic, self.settings, deadline)
            await self._assign(self._consumer, deadline)
            self._task = asyncio.create_task(self._follow(), name=f"follow-{self.client_id}")
            await self._ready(deadline)
        except BaseException:
            await self.stop()
            raise

    async def stop(self, timeout_s: float = STOP_S) -> None:
        """Stop following and close the consumer (within ``timeout_s``); bounded."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._task, STOP_S)
            self._task = None
        if self._consumer is not None:
            await self._closing()
        # Side by side: a broker that is gone costs one close timeout, not two.
        await asyncio.gather(*(kafka.close(c, timeout_s=timeout_s)
                               for c in (self._consumer, self._offsets)))
        self._consumer = self._offsets = None

    def _new_consumer(self) -> AIOKafkaConsumer:
        """The consumer to follow with (not started yet)."""
        return kafka.consumer(self.settings, client_id=self.client_id,
                              **({"fetch_max_wait_ms": self.fetch_hold_ms}
                                 | self._consumer_options))

    def _new_offsets_client(self) -> AIOKafkaConsumer:
        """The consumer that asks for offsets: never assigned, so it never fetches."""
        same = {k: v for k, v in self._consumer_options.items() if k == "isolation_level"}
        return kafka.consumer(self.settings, client_id=f"{self.client_id}-offsets", **same)

    @property
    def offsets(self) -> AIOKafkaConsumer:
        """The client to ask the broker for offsets with (ends, beginnings, by time).

        Not the following consumer: the broker answers a connection's requests in
        order, and that consumer's connection may hold a fetch waiting for records.
        """
        assert self._offsets is not None, "start() first"
        return self._offsets

    async def _assign(self, consumer: AIOKafkaConsumer, deadline: float) -> None:
        """Assign the partitions to read (or subscribe), each at its first position."""
        raise NotImplementedError

    async def _ready(self, deadline: float) -> None:
        """What :meth:`start` waits for once following (nothing by default)."""

    async def _closing(self) -> None:
        """What :meth:`stop` does once following stopped, before the consumer closes."""

    # -- positions -------------------------------------------------------------
    def _set_positions(self, tps: list[TopicPartition], positions: dict[int, int]) -> None:
        """The partitions read and where each starts (a new assignment)."""
        self._tps = tps
        self._positions = positions

    async def _advance(self, positions: dict[int, int] | None = None) -> None:
        """A round ended (with the positions read now, if noted); wakes :meth:`caught_up`."""
        async with self._progress:
            if positions is not None:
                self._positions = positions
            self._rounds += 1
            self._progress.notify_all()

    def _hurry(self) -> None:
        """Someone waits for the next round: a follower that paces its reads reads now."""

    async def _read_positions(self, partitions: Collection[int] | None = None
                              ) -> dict[int, int]:
        """The consumer's position in every partition read, or in ``partitions`` of them
        (no request to the broker)."""
        assert self._consumer is not None
        async with asyncio.timeout(self.settings.request_timeout_s * 5):
            return {tp.partition: await self._consumer.position(tp) for tp in self._tps
                    if partitions is None or tp.partition in partitions}

    async def caught_up(self, timeout_s: float,
                        partitions: Collection[int] | None = None) -> bool:
        """Snapshot the end offsets now and wait until the positions read reach them.

        Only those of ``partitions`` when given. False if the end offsets cannot be read
        or the positions do not reach them within ``timeout_s``. A partition no longer
        read (a new assignment since the snapshot) is not waited for.
        """
        if self._consumer is None or self._offsets is None:
            return False
        deadline = time.monotonic() + timeout_s
        try:
            ends = await self._ends.fetch(self._offsets, self._tps, timeout_s)
        except (KafkaError, TimeoutError, OSError) as e:
            self._warn.warning("ends", "end offsets of %s unavailable: %r", self.topic, e)
            return False
        if partitions is not None:
            ends = {p: end for p, end in ends.items() if p in partitions}
        while True:
            rounds = self._rounds
            positions = self._positions
            if self.positions_from_consumer:
                if self._consumer is None:
                    return False  # stopped meanwhile
                try:  # within what is left of the caller's bound
                    async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                        positions = await self._read_positions(partitions)
                except (KafkaError, TimeoutError, OSError):
                    return False  # unassigned meanwhile, or out of time
            if all(positions.get(p, end) >= end for p, end in ends.items()):
                return True
            self._hurry()
            async with self._progress:
                try:
                    await asyncio.wait_for(
                        self._progress.wait_for(lambda: self._rounds != rounds),  # noqa: B023
                        max(0.0, deadline - time.monotonic()))
                except TimeoutError:
                    return False

    # -- following -------------------------------------------------------------
    async def _follow(self) -> None:
        while True:
            try:
                await self._round()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # keep following through broker restarts
                self._warn.warning("read", "reading %s failed (%r); retrying", self.topic, e)
                await asyncio.sleep(RETRY_S)

    async def _round(self) -> None:
        """Read one batch, hand each record to :meth:`_on_record`, note the positions."""
        assert self._consumer is not None
        batches = await self._consumer.getmany(timeout_ms=self.fetch_wait_ms,
                                               max_records=self.max_records)
        for records in batches.values():
            for record in records:
                self._on_record(record)
        if self.tracks_positions:
            await self._advance()

    def _on_record(self, record: Any) -> None:
        """What one record read does."""
        raise NotImplementedError

    def _decoded(self, record: Any, decode: Callable[[bytes], T]) -> T | None:
        """``record``'s value decoded; None for a tombstone or a value ``decode`` refuses.

        A refused value (a RunstreamError) is skipped: one bad record must not stop the
        follower; it is logged, at most every ten seconds.
        """
        if record.value is None:
            return None
        try:
            return decode(record.value)
        except RunstreamError as e:
            self._warn.warning("invalid", "skipping a record of %s[%d]@%d: %s", record.topic,
                               record.partition, record.offset, e.message)
            return None
