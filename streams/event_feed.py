"""Following the events topic for live readers: the partitions watched here, fan-out by id.

An :class:`EventFeed` (one per ingress) reads the partitions of the events topic that
hold an id some reader here watches (a stream, a WebSocket session, a look-up before
a 404), and only those: while nobody watches, it fetches nothing. It keeps what it
reads of executions still going (:class:`~.event_buffer.RecentEvents`, bounded) and
hands each event to the :class:`Subscription` of its id, if any. A subscription's
queue is bounded too: a reader that does not keep up is told so (``overflowed``)
and should be closed; it may resume from the last event it got.

A partition nobody watches is paused where it was read up to. When a watcher comes
it is read on from there, so a stream that starts late first gets the events written
meanwhile; but from no further back than the last minutes (how long an execution may
still be going, ``Settings.execution_horizon_s``): a partition paused longer is first
sought to its first record of those minutes. At start-up every partition is where
those minutes begin, so a restarted ingress serves streams of executions that began
before it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Collection
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from runstream.schemas.events import decode_event
from runstream.services.settings import Settings
from runstream.streams import kafka
from runstream.streams.copartition import partition_for
from runstream.streams.event_buffer import RecentEvents, Stored
from runstream.streams.follower import Follower

log = logging.getLogger(__name__)

#: Bytes of events one subscription may have waiting beyond its backlog.
SUBSCRIBER_MAX_BYTES = 4 * 1024 * 1024


class Subscription:
    """The events of one execution for one reader, in order, after ``after``; bounded."""

    def __init__(self, exec_id: str, backlog: list[Stored], after: int | None = None,
                 partition: int | None = None) -> None:
        self.exec_id = exec_id
        self.after = after
        #: The partition this reader watches (None: the feed was not started).
        self.partition = partition
        self._items: deque[Stored] = deque(backlog)
        self._bytes = 0
        self._waiter: asyncio.Future[None] | None = None
        self.overflowed = False

    def push(self, stored: Stored) -> None:
        if self.overflowed or (self.after is not None and stored.offset <= self.after):
            return  # a partition read on from before where this reader resumes
        if self._bytes + len(stored.payload) > SUBSCRIBER_MAX_BYTES:
            self.overflowed = True  # the reader is too slow: it must resume later
            self._items.clear()
            self._bytes = 0
        else:
            self._items.append(stored)
            self._bytes += len(stored.payload)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
        self._waiter = None

    def changed(self) -> asyncio.Future[None]:
        """Resolves once there is something to take (at once if there is now)."""
        fut = asyncio.get_running_loop().create_future()
        if self._items or self.overflowed:
            fut.set_result(None)
        else:
            self._waiter = fut
        return fut

    def take(self) -> list[Stored]:
        """Everything waiting, oldest first."""
        items = list(self._items)
        self._items.clear()
        self._bytes = 0
        return items


class EventFeed(Follower):
    """The events of the partitions watched here, to the subscriptions of their ids.

    ``clock`` (Unix time) says how long a partition was paused; tests pass their own.
    """

    def __init__(self, settings: Settings, *, name: str,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(settings, settings.events_topic,
                         client_id=f"runstream-{name}-events", auto_offset_reset="latest")
        self.name = name
        self.horizon_s = settings.execution_horizon_s
        self._clock = clock
        max_bytes = settings.ingress_events_buffer_mb * 1024 * 1024
        self.recent = RecentEvents(max_bytes, max(max_bytes // 4, 64 * 1024))
        self._subs: dict[str, set[Subscription]] = {}
        #: Watches (subscriptions and look-ups) by partition; a partition is read while it has one.
        self._watches: dict[int, int] = {}
        #: By partition: the records from its position on were written after this (Unix time).
        self._since: dict[int, float] = {}
        #: Partitions being sought forward before they are read again.
        self._seeking: dict[int, asyncio.Task[None]] = {}
        self._reading = asyncio.Event()  # set while some partition is read

    async def _assign(self, consumer: AIOKafkaConsumer, deadline: float) -> None:
        # From as far back as an execution may still be going, once someone watches.
        s = self.settings
        positions = await kafka.assign_since(consumer, s.events_topic, s, self.horizon_s,
                                             deadline)
        tps = list(positions)
        consumer.pause(*tps)
        self._set_positions(tps, {tp.partition: at for tp, at in positions.items()})
        self._since = dict.fromkeys((tp.partition for tp in tps),
                                    self._clock() - self.horizon_s)

    async def _closing(self) -> None:
        tasks = list(self._seeking.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=self.settings.request_timeout_s)

    @property
    def followed(self) -> frozenset[int]:
        """The partitions watched: read now, or once their seek is done."""
        return frozenset(self._watches) if self._consumer is not None else frozenset()

    # -- readers ---------------------------------------------------------------
    def subscribe(self, exec_id: str, after: int | None = None) -> Subscription:
        """Events of ``exec_id``: those kept after offset ``after``, then each as read.

        Its partition is read from now on (until :meth:`unsubscribe`), from where it
        was paused: the events written meanwhile come first.
        """
        partition = self._partition_of(exec_id)
        sub = Subscription(exec_id, self.recent.since(exec_id, after), after, partition)
        self._subs.setdefault(exec_id, set()).add(sub)
        if partition is not None:
            self._watch(partition)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.exec_id)
        if subs is None or sub not in subs:
            return
        subs.discard(sub)
        if not subs:
            del self._subs[sub.exec_id]
        if sub.partition is not None:
            self._unwatch(sub.partition)

    def known(self, exec_id: str) -> bool:
        """An event of ``exec_id`` was read recently (see :meth:`caught_up_with`)."""
        return self.recent.known(exec_id)

    async def caught_up_with(self, exec_id: str, timeout_s: float) -> bool:
        """Read every event of ``exec_id`` written before now (within ``timeout_s``).

        Its partition is read meanwhile, whether or not someone watches it. False when
        the feed is not started, or Kafka does not answer in time.
        """
        partition = self._partition_of(exec_id)
        if partition is None:
            return False
        self._watch(partition)
        try:
            return await self._caught_up_on({partition}, timeout_s)
        finally:
            self._unwatch(partition)

    async def caught_up(self, timeout_s: float,
                        partitions: Collection[int] | None = None) -> bool:
        """The partitions watched now (or ``partitions``) are read up to their ends as of now."""
        return await self._caught_up_on(
            set(self._watches) if partitions is None else set(partitions), timeout_s)

    # -- which partitions are read ---------------------------------------------
    def _partition_of(self, exec_id: str) -> int | None:
        # Events are keyed by execution id (streams/event_publisher.py).
        return partition_for(exec_id.encode(), len(self._tps)) if self._tps else None

    def _watch(self, partition: int) -> None:
        watches = self._watches.get(partition, 0)
        self._watches[partition] = watches + 1
        if watches or partition in self._seeking or self._consumer is None:
            return
        if self._since.get(partition, 0.0) >= self._clock() - self.horizon_s:
            self._resume(partition)
        else:  # paused too long: read on from the horizon back, not from where it was
            self._seeking[partition] = asyncio.create_task(
                self._seek_and_resume(partition), name=f"seek-{self.client_id}-{partition}")

    def _unwatch(self, partition: int) -> None:
        watches = self._watches[partition] - 1
        if watches:
            self._watches[partition] = watches
            return
        del self._watches[partition]
        if partition in self._seeking or self._consumer is None:
            return  # a seek under way leaves it paused
        self._consumer.pause(self._tps[partition])
        self._since[partition] = self._clock()
        if self._watches.keys() <= self._seeking.keys():
            self._reading.clear()  # none is read now

    def _resume(self, partition: int) -> None:
        assert self._consumer is not None
        self._consumer.resume(self._tps[partition])
        self._reading.set()

    async def _seek_and_resume(self, partition: int) -> None:
        assert self._consumer is not None
        consumer, tp = self._consumer, self._tps[partition]
        since = self._clock() - self.horizon_s
        bound = self.settings.request_timeout_s
        try:
            async with asyncio.timeout(bound * 2):
                at = (await kafka.offsets_since(self.offsets, [tp], since, bound))[tp]
                if at > await consumer.position(tp):
                    consumer.seek(tp, at)
            self._since[partition] = since
        except (KafkaError, TimeoutError, OSError) as e:
            # Read on from where it was: more to read, nothing skipped.
            self._warn.warning("seek", "%s: no offset of %s for %.0f s ago (%r); reading on "
                               "from where it was", self.topic, tp, self.horizon_s, e)
        finally:
            del self._seeking[partition]
            if partition in self._watches and self._consumer is not None:
                self._resume(partition)

    async def _caught_up_on(self, partitions: set[int], timeout_s: float) -> bool:
        """Wait for a seek under way, then until ``partitions`` are read up to their ends
        as of now (:meth:`Follower.caught_up`)."""
        deadline = time.monotonic() + timeout_s
        seeks = {seek for p in partitions if (seek := self._seeking.get(p)) is not None}
        if seeks:  # a partition being sought is read from the sought offset on
            _, late = await asyncio.wait(seeks, timeout=timeout_s)
            if late:
                return False
        return await super().caught_up(max(0.0, deadline - time.monotonic()), partitions)

    # -- following -------------------------------------------------------------
    async def _round(self) -> None:
        if not self._reading.is_set():
            await self._reading.wait()  # nobody watches: no fetch at all
            return
        await super()._round()

    def _on_record(self, record: Any) -> None:
        event = self._decoded(record, decode_event)
        if event is None:
            return
        stored = Stored(record.offset, event, bytes(record.value))
        if self.recent.add(stored):
            for sub in self._subs.get(event.id, ()):
                sub.push(stored)
