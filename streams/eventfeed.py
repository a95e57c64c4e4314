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
import logging
from collections import deque
from typing import Any

from aiokafka import AIOKafkaConsumer
from runstream.schemas.events import decode_event
from runstream.services.settings import Settings
from runstream.streams import kafka
from runstream.streams.eventbuffer import RecentEvents, Stored
from runstream.streams.follower import Follower

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


class EventFeed(Follower):
    """Every event of the events topic, to the subscriptions of its id."""

    def __init__(self, settings: Settings, *, name: str) -> None:
        super().__init__(settings, settings.events_topic,
                         client_id=f"runstream-{name}-events", auto_offset_reset="latest")
        self.name = name
        max_bytes = settings.ingress_events_buffer_mb * 1024 * 1024
        self.recent = RecentEvents(max_bytes, max(max_bytes // 4, 64 * 1024))
        self._subs: dict[str, set[Subscription]] = {}

    async def _assign(self, consumer: AIOKafkaConsumer, deadline: float) -> None:
        # From as far back as an execution may still be going.
        s = self.settings
        positions = await kafka.assign_since(consumer, s.events_topic, s,
                                             s.execution_horizon_s, deadline)
        self._set_positions(list(positions),
                            {tp.partition: at for tp, at in positions.items()})

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

    # -- following -------------------------------------------------------------
    def _on_record(self, record: Any) -> None:
        event = self._decoded(record, decode_event)
        if event is None:
            return
        stored = Stored(record.offset, event, bytes(record.value))
        if self.recent.add(stored):
            for sub in self._subs.get(event.id, ()):
                sub.push(stored)
