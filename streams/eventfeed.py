"""Following the events topic for live readers: one consumer, every partition, fan-out by id.

An :class:`EventFeed` (one per ingress) reads every event of every execution,
keeps those of executions still going (:class:`~.eventbuffer.RecentEvents`,
bounded) and hands each to the :class:`Subscription` of its id, if any. A
subscription's queue is bounded too: a reader that does not keep up is told
so (``overflowed``) and should be closed; it may resume from the last event
it got. At start-up the feed reads back the events of the last minutes (long
enough for any execution still running), so a restarted ingress serves streams
of executions that began before it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from runstream.schemas.events import InvalidEvent, decode_event
from runstream.services.logs import Throttled
from runstream.services.settings import Settings
from runstream.streams import kafka
from runstream.streams.eventbuffer import RecentEvents, Stored

log = logging.getLogger(__name__)

#: Bytes of events one subscription may have waiting beyond its backlog.
SUBSCRIBER_MAX_BYTES = 4 * 1024 * 1024


class Subscription:
    """The events of one execution for one reader, in order; bounded."""

    def __init__(self, exec_id: str, backlog: list[Stored]) -> None:
        self.exec_id = exec_id
        self._items: deque[Stored] = deque(backlog)
        self._bytes = 0
        self._waiter: asyncio.Future[None] | None = None
        self.overflowed = False

    def push(self, stored: Stored) -> None:
        if self.overflowed:
            return
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


class EventFeed:
    """Every event of the events topic, to the subscriptions of its id."""

    def __init__(self, settings: Settings, *, name: str) -> None:
        self.settings = settings
        self.name = name
        max_bytes = settings.ingress_events_buffer_mb * 1024 * 1024
        self.recent = RecentEvents(max_bytes, max(max_bytes // 4, 64 * 1024))
        self._subs: dict[str, set[Subscription]] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._tps: list[TopicPartition] = []
        self._positions: dict[TopicPartition, int] = {}
        self._progress = asyncio.Condition()
        self._warn = Throttled(log)

    # -- lifecycle -------------------------------------------------------------
    async def start(self, timeout_s: float = 30.0) -> None:
        s = self.settings
        self._consumer = kafka.consumer(s, client_id=f"runstream-{self.name}-events",
                                        auto_offset_reset="latest")
        try:
            await kafka.start(self._consumer, s, timeout_s=timeout_s)
            await self._assign(timeout_s)
        except BaseException:
            await self.stop()
            raise
        self._task = asyncio.create_task(self._follow(), name=f"events-{self.name}")

    async def _assign(self, timeout_s: float) -> None:
        # From as far back as an execution may still be going.
        assert self._consumer is not None
        s = self.settings
        self._positions = await kafka.assign_since(
            self._consumer, s.events_topic, s, s.execution_horizon_s,
            time.monotonic() + timeout_s)
        self._tps = list(self._positions)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._task, 5)
        await kafka.close(self._consumer, timeout_s=5)

    # -- readers ---------------------------------------------------------------
    def subscribe(self, exec_id: str, after: int | None = None) -> Subscription:
        """Events of ``exec_id``: those kept after offset ``after``, then each as read."""
        sub = Subscription(exec_id, self.recent.since(exec_id, after))
        self._subs.setdefault(exec_id, set()).add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.exec_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.exec_id]

    def known(self, exec_id: str) -> bool:
        """An event of ``exec_id`` was read recently."""
        return self.recent.known(exec_id)

    async def caught_up(self, timeout_s: float) -> bool:
        """Wait until every event written before this call has been read."""
        assert self._consumer is not None
        deadline = time.monotonic() + timeout_s
        try:
            ends = await asyncio.wait_for(self._consumer.end_offsets(self._tps), timeout_s)
        except (KafkaError, TimeoutError, OSError) as e:
            self._warn.warning("ends", "end offsets of %s unavailable: %r",
                               self.settings.events_topic, e)
            return False
        async with self._progress:
            try:
                await asyncio.wait_for(self._progress.wait_for(lambda: all(
                    self._positions.get(tp, 0) >= end for tp, end in ends.items())),
                    max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                return False
        return True

    # -- following -------------------------------------------------------------
    async def _follow(self) -> None:
        assert self._consumer is not None
        while True:
            try:
                batches = await self._consumer.getmany(timeout_ms=500, max_records=1000)
                for records in batches.values():
                    for record in records:
                        self._on_record(record)
                async with asyncio.timeout(self.settings.request_timeout_s * 5):
                    positions = {tp: await self._consumer.position(tp) for tp in self._tps}
                async with self._progress:
                    self._positions = positions
                    self._progress.notify_all()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # keep following through broker restarts
                self._warn.warning("read", "reading %s failed (%r); retrying",
                                   self.settings.events_topic, e)
                await asyncio.sleep(0.5)

    def _on_record(self, record: Any) -> None:
        if record.value is None:
            return
        try:
            event = decode_event(record.value)
        except InvalidEvent as e:
            self._warn.warning("invalid", "skipping a record of %s[%d]@%d: %s", record.topic,
                               record.partition, record.offset, e.message)
            return
        stored = Stored(record.offset, event, bytes(record.value))
        if self.recent.add(stored):
            for sub in self._subs.get(event.id, ()):
                sub.push(stored)
