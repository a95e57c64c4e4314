"""The execution agent: what the worker's Faust agent does with each record.

Faust (``streams/faust_app.py``) owns the consumer, the group membership and the
stream; this module owns what is ours: slots, the offset ledger, re-deliveries and
membership fencing. Each record the Faust agent yields is taken here (:meth:`Agent.take`)
and run as a task through the handler; its event is acked to Faust only when its
answer is stored. The offset Faust commits is the ledger's (``streams/faust_overrides.py``,
``Consumer._new_offset``), by one rule (:mod:`runstream.streams.ledger`): every earlier
offset of the partition has its answer stored.

The consumer fetches only while a slot is free (:meth:`Agent.fetchable`), so requests
wait in Kafka, where a rebalance can give them to another worker, not in this process.

Rebalances do not wait for running executions (``stream_wait_empty=False``): on
revocation what is safe is committed and runs go on. The group's assignor
(:mod:`.assignor`) keeps a partition with a run in progress where it is; after every
rebalance Faust seeks each partition back to its committed offset, and the ledger
skips what this worker runs or has answered already, so nothing runs twice. A
partition that does move (its owner died) is read again from its committed offset,
and its new owner checks the result store before running what it reads
(``Delivery.redelivery``).

A worker that may have been dropped from the group (no heartbeat accepted for
nearly the session timeout, :mod:`.membership`) fetches nothing new and holds its
finished results until the coordinator confirms it again or it learns that its
partitions moved; a result of a moved partition is dropped, because the
partition's new owner runs that request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterable, Awaitable, Callable
from typing import Any, Protocol

from aiokafka import TopicPartition
from runstream.services.settings import Settings
from runstream.streams.assignor import BusyStickyAssignor
from runstream.streams.committer import Committer
from runstream.streams.handling import Delivery, Handler
from runstream.streams.ledger import OffsetLedger
from runstream.streams.membership import Membership

log = logging.getLogger(__name__)

_IDLE_WAIT_S = 0.5
_CANCEL_WAIT_S = 3.0


class Event(Protocol):
    """What the agent needs of a Faust event (``faust.types.EventT``)."""

    @property
    def message(self) -> Any: ...


class Ack(Protocol):
    """Acks an event to Faust once its answer is stored (``Stream.ack``)."""

    def __call__(self, event: Event) -> Awaitable[bool]: ...


class Agent:
    """Runs records through the handler, ``slots`` at a time, and says what is safe."""

    def __init__(self, settings: Settings, handler: Handler) -> None:
        self.settings = settings
        self.handler = handler
        self.slots = settings.worker_concurrency
        #: Slots not taken by a record; may go below zero (see :meth:`take`).
        self.free = self.slots
        self._slots = asyncio.Semaphore(self.slots)
        self.ledger: OffsetLedger[TopicPartition] = OffsetLedger()
        #: Guards the ledger and :attr:`owned` against the assignor, which reads them
        #: from Faust's consumer thread while the group joins.
        self.lock = threading.Lock()
        #: What Faust's consumer may commit, by the ledger's rule, under :attr:`lock`.
        self.commits = Committer(self.ledger, self.lock)
        #: Running records, each with its event: referenced until acked.
        self.tasks: dict[asyncio.Task[None], Any] = {}
        self.owned: frozenset[TopicPartition] = frozenset()
        #: Per partition, the end offset when it was assigned: records below it may
        #: have been answered by the partition's previous owner.
        self.redelivery_end: dict[TopicPartition, int] = {}
        self.stopping = False
        self.membership = Membership(settings.worker_session_timeout_s,
                                     settings.worker_heartbeat_s)
        self.assignor = BusyStickyAssignor(self.placement_state)
        #: When this worker stopped being sure of its membership (None: it is sure).
        self._lapsed_at: float | None = None
        #: The group member id of the last assignment ("" before the first).
        self._member_id = ""
        self._slot_freed = asyncio.Event()
        #: Told the partitions owned after each rebalance (the worker follows their results).
        self.on_owned: Callable[[frozenset[TopicPartition]], None] | None = None
        handler.owns = self.confirm

    # -- what Faust's consumer asks (streams/faust_overrides.py) ---------------
    def placement_state(self) -> tuple[dict[str, set[int]], dict[str, set[int]]]:
        """Per topic, the partitions owned and those with work in progress.

        Called by the assignor in Faust's consumer thread: read under :attr:`lock`.
        """
        if self._member_id and self.membership.member_id() != self._member_id:
            # Rejoining after the group dropped it: what it runs may be running on
            # the partitions' new owners, which should keep them.
            return {}, {}
        owned: dict[str, set[int]] = {}
        busy: dict[str, set[int]] = {}
        with self.lock:
            for tp in self.owned:
                owned.setdefault(tp.topic, set()).add(tp.partition)
                if self.ledger.pending(tp):
                    busy.setdefault(tp.topic, set()).add(tp.partition)
        return owned, busy

    def fetchable(self) -> int:
        """How many records the consumer may fetch now (0: none)."""
        if self.stopping or not self._current():
            return 0
        return max(int(self.free), 0)

    async def wait_fetchable(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for a free slot (or a membership change)."""
        if self.fetchable():
            return True
        self._slot_freed.clear()
        waits = [asyncio.ensure_future(self._slot_freed.wait()),
                 asyncio.ensure_future(self.membership.wait_change(timeout_s))]
        try:
            await asyncio.wait(waits, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        return self.fetchable() > 0

    def safe_offset(self, tp: TopicPartition) -> int | None:
        """The offset that may be committed for ``tp`` (the next one to read), or None."""
        return self.commits.safe_offset(tp)

    def should_commit(self, tp: TopicPartition, offset: int) -> bool:
        """Whether ``offset`` is ahead of what the broker last accepted for ``tp``."""
        return self.commits.should_commit(tp, offset)

    def committed(self, offsets: dict[TopicPartition, int]) -> None:
        """The broker accepted ``offsets`` as committed."""
        self.commits.committed(offsets)

    def progressed(self) -> list[TopicPartition]:
        """Partitions owned whose ledger has taken something (candidates for a commit)."""
        return self.commits.progressed(self.owned)

    async def assigned(self, assigned: set[TopicPartition],
                       end_offsets: Callable[[list[TopicPartition]],
                                             Awaitable[dict[TopicPartition, int]]]) -> None:
        """A rebalance ended with ``assigned``: forget what moved, mark re-deliveries."""
        member_id = self.membership.member_id()
        previous: frozenset[TopicPartition] = self.owned
        if self._member_id and member_id != self._member_id:
            # Dropped from the group and joined again as a new member: what it owned
            # may have been run by another worker in between, so nothing it is still
            # running is its own to answer (confirm() says no) and every partition is
            # read again as a new one.
            log.warning("this worker was dropped from the group (member %s, now %s): "
                        "the results of its %d runs in progress will not be published",
                        self._member_id, member_id, len(self.tasks))
            previous = frozenset()
            lost = set(self.owned)
        else:
            lost = set(self.owned) - assigned
        self._member_id = member_id
        self.membership.confirmed()  # a completed join counts as a heartbeat
        with self.lock:
            self.ledger.forget(lost)
            self.owned = frozenset(assigned)
        for tp in lost:
            self.redelivery_end.pop(tp, None)
        new = assigned - previous
        if self.on_owned is not None:
            self.on_owned(self.owned)
        if new:
            await self._mark_redeliveries(new, end_offsets)
        log.info("partitions: %d owned (%d new, %d lost)", len(assigned), len(new), len(lost))

    async def _mark_redeliveries(
            self, new: set[TopicPartition],
            end_offsets: Callable[[list[TopicPartition]],
                                  Awaitable[dict[TopicPartition, int]]]) -> None:
        try:
            ends = await asyncio.wait_for(end_offsets(list(new)),
                                          self.settings.request_timeout_s * 2)
        except Exception as e:  # the broker away: check every record of them instead
            log.warning("end offsets of new partitions unknown (%r): every record of them "
                        "is checked against the store", e)
            ends = {tp: 2**62 for tp in new}
        self.redelivery_end.update(ends)

    # -- the Faust agent -------------------------------------------------------
    async def consume(self, events: AsyncIterable[Any], ack: Ack) -> None:
        """The body of the Faust agent: take every event the (no-ack) stream yields."""
        async for event in events:
            await self.take(event, ack)

    async def take(self, event: Event, ack: Ack) -> None:
        """Run ``event``'s record, unless the ledger has it already.

        Every record the stream yields is taken: Faust's position has moved past it,
        and only a rebalance (after which Faust seeks back to the committed offset)
        reads it again. While a worker is unsure of its membership the consumer
        fetches nothing; a record fetched just before runs like one already running
        then, its result held by :meth:`confirm`.
        """
        m = event.message
        tp = TopicPartition(m.topic, m.partition)
        offset: int = m.offset
        if self.stopping:
            # Fetched before the drain began, delivered after it: a run the drain does
            # not wait for would be killed by the stop. Left to the partition's next
            # owner: not taken, so never committed over, and never acked.
            return
        with self.lock:
            taken = tp in self.owned and self.ledger.take(tp, offset)
        if not taken:
            # Re-read after a rebalance (running or answered here already), or of a
            # partition just lost. Acking tells Faust nothing about commits (those are
            # the ledger's); it lets go of the event.
            await ack(event)
            return
        delivery = Delivery(
            topic=tp.topic, partition=tp.partition, offset=offset, key=m.key,
            value=m.value,
            timestamp_ms=round((m.timestamp or 0) * 1000),  # Faust's seconds, Kafka's ms
            redelivery=offset < self.redelivery_end.get(tp, 0))
        self.free -= 1
        task = asyncio.create_task(self._handle(tp, delivery, event, ack),
                                   name=f"offset-{tp.topic}-{tp.partition}-{offset}")
        self.tasks[task] = event
        task.add_done_callback(self._forget_task)

    def _forget_task(self, task: asyncio.Task[None]) -> None:
        self.tasks.pop(task, None)

    async def _handle(self, tp: TopicPartition, d: Delivery, event: Event, ack: Ack) -> None:
        acquired = released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self.free += 1
                if acquired:
                    self._slots.release()
                self._slot_freed.set()

        try:
            await self._slots.acquire()  # only over-admitted records wait here
            acquired = True
            if await self.handler.handle(d, release):
                with self.lock:
                    self.ledger.finish(tp, d.offset)
                # Acked only now: a run cancelled or failed is never acked.
                await ack(event)
        except asyncio.CancelledError:
            raise  # a run killed at the drain bound stays uncommitted: another worker runs it
        except Exception:
            # The handler answers everything it can; what escapes is a bug. The offset
            # stays uncommitted so the request is not lost.
            log.exception("record %s@%d: unexpected failure; left uncommitted", tp, d.offset)
        finally:
            release()

    # -- membership ------------------------------------------------------------
    def _current(self) -> bool:
        """Whether the group surely still counts this worker; logs each change."""
        if self.membership.current():
            if self._lapsed_at is not None:
                log.warning("group membership confirmed again after %.1f s: taking "
                            "requests again", time.monotonic() - self._lapsed_at)
                self._lapsed_at = None
            return True
        if self._lapsed_at is None:
            self._lapsed_at = time.monotonic()
            log.warning("no heartbeat accepted by the group coordinator for %.1f s: this "
                        "worker may have been dropped from the group, so it takes no new "
                        "request and holds its results until the coordinator answers",
                        self.membership.age())
        return False

    @property
    def lapsed(self) -> bool:
        """True while this worker is unsure whether the group still counts it."""
        return self._lapsed_at is not None

    async def confirm(self, d: Delivery) -> bool:
        """Whether the answer to delivery ``d`` may be published by this worker.

        True while the group surely still counts this worker and the record was not
        given up (its partition moved, or the worker was dropped from the group and
        joined again: another worker may have run it meanwhile). While unsure, wait
        until the coordinator answers one way or the other; the slot is free by
        then, and a stop cancels the wait (the record stays uncommitted).
        """
        tp = TopicPartition(d.topic, d.partition)
        while True:
            with self.lock:
                held = self.ledger.holds(tp, d.offset)
            if not held:
                return False
            if self._current():
                return True
            await self.membership.wait_change(_IDLE_WAIT_S)

    # -- stopping --------------------------------------------------------------
    async def drain(self, bound_s: float) -> None:
        """Take nothing more, let runs finish for ``bound_s``, kill the rest."""
        self.stopping = True
        running = set(self.tasks)
        if running:
            log.info("draining: %d executions running, waiting up to %.0f s",
                     len(running), bound_s)
            _, late = await asyncio.wait(running, timeout=bound_s)
            if late:
                log.warning("drain bound reached: killing %d executions; they stay "
                            "uncommitted and another worker runs them", len(late))
                for task in late:
                    task.cancel()
                with contextlib.suppress(Exception):
                    await asyncio.wait(late, timeout=_CANCEL_WAIT_S)

