"""A worker's side of live stdin: follow the stdin topic, hand each item to its run.

Every worker follows every partition of the stdin topic with one consumer (no
group) and keeps each execution id's recent items (``streams/stdin_buffer.py``,
bounded), because the items of an interactive execution can arrive before any
worker has taken its request. When a worker runs an interactive execution it
opens a :class:`LiveStdin` on its id (the executor's
``services.execution.sandbox.base.LiveInput``): the items kept so far, then
each one as it is read. At start-up the feed reads back the items of the last
minutes (as long as an execution may still wait and run), so a worker that
starts, or replaces a dead one, has the input of executions it may be given.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Any

from aiokafka import AIOKafkaConsumer
from runstream.schemas.stdin import StdinKind, StdinMessage, decode_stdin
from runstream.services.execution.sandbox.base import Input
from runstream.services.settings import Settings
from runstream.streams import kafka
from runstream.streams.follower import Follower
from runstream.streams.stdin_buffer import StdinBuffers

log = logging.getLogger(__name__)

#: How often kept items of ids nobody runs here are checked for expiry.
EXPIRE_EVERY_S = 5.0


def as_input(msg: StdinMessage) -> Input:
    """A stdin item as the sandbox takes it; a hang-up is a kill (and the end of input)."""
    if msg.kind is StdinKind.DATA:
        return Input(data=msg.data)
    if msg.kind is StdinKind.SIGNAL:
        return Input(signal=msg.signal)
    if msg.kind is StdinKind.EOF:
        return Input(eof=True)
    return Input(signal="SIGKILL", eof=True)


class LiveStdin:
    """The live stdin of one run on this worker (implements ``LiveInput``)."""

    def __init__(self, feed: StdinFeed, exec_id: str) -> None:
        self.feed = feed
        self.exec_id = exec_id
        self._items: deque[StdinMessage] = deque()
        self._wake: asyncio.Future[None] | None = None

    def wake(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    async def get(self) -> Input:
        while not self._items:
            self._items.extend(self.feed.buffers.take(self.exec_id))
            if self._items:
                break
            self._wake = asyncio.get_running_loop().create_future()
            try:
                await self._wake
            finally:
                self._wake = None
        return as_input(self._items.popleft())


class StdinFeed(Follower):
    """Every item of the stdin topic, kept by id, handed to the runs of this worker."""

    # Nobody asks whether the feed caught up: no positions to note after each batch.
    tracks_positions = False
    fetch_wait_ms = 1000
    fetch_hold_ms = kafka.HOLD_MS  # every partition, from start to stop
    max_records = 500

    def __init__(self, settings: Settings, *, name: str) -> None:
        super().__init__(settings, settings.stdin_topic,
                         client_id=f"runstream-{name}-stdin", auto_offset_reset="latest")
        self.name = name
        self.buffers = StdinBuffers(settings.worker_stdin_buffer_mb * 1024 * 1024,
                                    settings.interactive_stdin_kb * 1024,
                                    settings.execution_horizon_s)
        self._open: dict[str, LiveStdin] = {}
        self._expired_at = time.monotonic()

    async def _assign(self, consumer: AIOKafkaConsumer, deadline: float) -> None:
        # From as far back as an execution may still be going (see the module docstring).
        s = self.settings
        await kafka.assign_since(consumer, s.stdin_topic, s, s.execution_horizon_s, deadline)

    # -- runs ------------------------------------------------------------------
    def open(self, exec_id: str) -> LiveStdin:
        """The live stdin of a run of ``exec_id`` starting here; :meth:`close` it after."""
        self.buffers.watch(exec_id, time.monotonic())
        live = self._open[exec_id] = LiveStdin(self, exec_id)
        return live

    def close(self, live: LiveStdin) -> None:
        dropped = self.buffers.dropped_of(live.exec_id)
        if dropped:
            log.warning("id=%s: %d bytes of live stdin were dropped (more than %d KiB "
                        "waiting)", live.exec_id, dropped, self.settings.interactive_stdin_kb)
        if self._open.get(live.exec_id) is live:
            del self._open[live.exec_id]
            self.buffers.unwatch(live.exec_id)

    def hung_up(self, exec_id: str) -> bool:
        """The client of ``exec_id`` is gone already (its run need not start)."""
        return self.buffers.hung_up(exec_id)

    # -- following -------------------------------------------------------------
    def _on_record(self, record: Any) -> None:
        now = time.monotonic()
        if now - self._expired_at >= EXPIRE_EVERY_S:
            self._expired_at = now
            self.buffers.expire(now)
        msg = self._decoded(record, decode_stdin)
        if msg is None:
            return
        if self.buffers.add(msg, now):
            live = self._open.get(msg.id)
            if live is not None:
                live.wake()
