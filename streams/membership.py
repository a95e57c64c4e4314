"""Whether this worker may still believe it is a member of its consumer group.

Kafka fences a dropped member's commits, not its fetches. A worker that cannot
reach the group coordinator (a Kafka node died and the group's coordination
moved) is dropped when its session times out, and its partitions go to
another worker; until it hears so, it can go on fetching from the partitions'
leaders, which are alive, and run what it fetches: two workers then run the
same requests at the same time (docs/guarantees.md, docs/cluster.md "Faults
on the cluster").

A member is *current* while its last confirmation (a heartbeat the coordinator
accepted, or a completed join) is younger than the session timeout less one
heartbeat interval: the coordinator counts its timeout from its own receipt of
the heartbeat, which is earlier than ours, and the interval is the margin. A
worker that is not current takes no new record and publishes no result
(:class:`runstream.streams.agent.Agent`) until it is confirmed again, or learns
which partitions it lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

from runstream.schemas.errors import RunstreamError


class MembershipWatchError(RunstreamError):
    """The Kafka client's heartbeats cannot be watched (an aiokafka we do not know)."""


class Membership:
    """The freshness of this consumer's group membership, from its heartbeats."""

    def __init__(self, session_timeout_s: float, heartbeat_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        #: Age of the last confirmation past which this member is not current.
        self.fence_after_s = session_timeout_s - heartbeat_s
        self._clock = clock
        self._last_ok = clock()
        self._changed = asyncio.Event()
        self._coordinator: Any = None

    def confirmed(self) -> None:
        """The coordinator just accepted this member (a heartbeat or a join)."""
        self._last_ok = self._clock()
        self.changed()

    def changed(self) -> None:
        """Wake whoever waits for the membership (or the assignment) to change."""
        self._changed.set()
        self._changed = asyncio.Event()

    def current(self) -> bool:
        """True while the coordinator cannot yet have dropped this member."""
        return self.age() < self.fence_after_s

    def age(self) -> float:
        """Seconds since the last confirmation."""
        return self._clock() - self._last_ok

    async def wait_change(self, timeout_s: float) -> None:
        """Return at the next confirmation or :meth:`changed`, or after ``timeout_s``."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout_s)

    def watch(self, consumer: Any, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Count every heartbeat the coordinator accepts as a confirmation.

        ``loop`` is the event loop of whoever waits for a change, when the consumer
        runs in another thread (Faust's consumer thread): a confirmation then wakes
        the waiters through that loop, never from the consumer's thread.

        aiokafka keeps its last good heartbeat in a local variable of its heartbeat
        task, so the only place to see it is the request itself:
        ``GroupCoordinator._do_heartbeat`` returns True when the coordinator
        answered without error (or is rebalancing, which keeps the member alive).
        Checked at start-up, so that an aiokafka without it fails loudly here
        rather than fencing a healthy worker five seconds later.
        """
        coordinator: Any = getattr(consumer, "_coordinator", None)
        beat = getattr(coordinator, "_do_heartbeat", None)
        if beat is None or not asyncio.iscoroutinefunction(beat):
            raise MembershipWatchError(
                "this aiokafka has no GroupCoordinator._do_heartbeat to watch; the worker "
                "cannot tell when it has been dropped from its group (pin aiokafka <0.15)")
        coordinator._do_heartbeat = self._watched(beat, loop)
        self._coordinator = coordinator

    def member_id(self) -> str:
        """The member id the group coordinator gave this consumer ("" if none yet).

        A new one after a join means the group had dropped this member.
        """
        return str(getattr(self._coordinator, "member_id", "") or "")

    def _watched(self, beat: Callable[[], Awaitable[bool]],
                 loop: asyncio.AbstractEventLoop | None) -> Callable[[], Awaitable[bool]]:
        async def heartbeat() -> bool:
            ok = await beat()
            if ok:
                if loop is None:
                    self.confirmed()
                else:
                    # A float written at once (atomic), the waiters woken in their loop.
                    self._last_ok = self._clock()
                    with contextlib.suppress(RuntimeError):  # that loop has closed
                        loop.call_soon_threadsafe(self.changed)
            return ok

        return heartbeat
