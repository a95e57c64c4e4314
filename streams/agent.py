"""The worker's consumer loop: take requests as slots free up, commit only what is safe.

This is where an offset is committed (:meth:`Agent.commit`), by one rule
(:mod:`runstream.streams.ledger`): every earlier offset of the partition has its
answer stored. The loop fetches no more records than it has free slots, and
pauses every partition while none is free, so requests wait in Kafka (where a
rebalance can give them to another worker), not in this process.

Rebalances do not wait for running executions: on revocation the agent commits
what is safe and lets runs go on. The group's assignor (:mod:`.assignor`) keeps
a partition with a run in progress where it is, so a run is never executed a
second time because a worker joined or left; a partition that does move (its
owner died) is read again from its committed offset, and its new owner checks
the result store before running what it reads (``Delivery.redelivery``). A
failover therefore pauses a partition for the session timeout, not for the
longest run.

A worker that may have been dropped from the group (no heartbeat accepted for
nearly the session timeout, :mod:`.membership`) takes no new record and holds
its finished results until the coordinator confirms it again or it learns that
its partitions moved; a result of a moved partition is dropped, because the
partition's new owner runs that request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from runstream.services.logs import Throttled
from runstream.services.settings import Settings
from runstream.streams.handling import Delivery, Handler
from runstream.streams.ledger import OffsetLedger
from runstream.streams.membership import Membership

log = logging.getLogger(__name__)

_IDLE_WAIT_S = 0.5
_CANCEL_WAIT_S = 3.0


class Agent:
    """Runs requests from the consumer's partitions through the handler, ``slots`` at a time."""

    def __init__(self, settings: Settings, consumer: AIOKafkaConsumer, handler: Handler) -> None:
        self.settings = settings
        self.consumer = consumer
        self.handler = handler
        self.slots = settings.worker_concurrency
        #: Slots not promised to a taken record; may go below zero (see :meth:`run`).
        self.free = self.slots
        self._slots = asyncio.Semaphore(self.slots)
        self.ledger: OffsetLedger[TopicPartition] = OffsetLedger()
        self.tasks: set[asyncio.Task[None]] = set()
        self.owned: set[TopicPartition] = set()
        #: Per partition, the end offset when it was assigned: records below it may
        #: have been answered by the partition's previous owner.
        self.redelivery_end: dict[TopicPartition, int] = {}
        self.stopping = False
        self.membership = Membership(settings.worker_session_timeout_s,
                                     settings.worker_heartbeat_s)
        #: When this worker stopped being sure of its membership (None: it is sure).
        self._lapsed_at: float | None = None
        #: The group member id of the last assignment ("" before the first).
        self._member_id = ""
        self._slot_freed = asyncio.Event()
        self._warn = Throttled(log)

    def listener(self) -> ConsumerRebalanceListener:
        return _Listener(self)

    def placement_state(self) -> tuple[dict[str, set[int]], dict[str, set[int]]]:
        """Per topic, the partitions owned and those with work in progress."""
        if self._member_id and self.membership.member_id() != self._member_id:
            # Rejoining after the group dropped it: what it runs may be running on
            # the partitions' new owners, which should keep them.
            return {}, {}
        owned: dict[str, set[int]] = {}
        busy: dict[str, set[int]] = {}
        for tp in self.owned:
            owned.setdefault(tp.topic, set()).add(tp.partition)
            if self.ledger.pending(tp):
                busy.setdefault(tp.topic, set()).add(tp.partition)
        return owned, busy

    # -- the loop --------------------------------------------------------------
    async def run(self) -> None:
        """Take records until :meth:`drain` is called.

        Every record ``getmany`` returns is taken: the consumer's position has moved
        past it, so a record dropped here would be committed over and lost. While
        no slot is free, every partition is paused and the loop only keeps the
        consumer's poll clock going; records that still arrive then (a rebalance
        assigns partitions unpaused) are taken and wait for a slot.
        """
        commits = asyncio.create_task(self._commit_every(), name="commits")
        try:
            while not self.stopping:
                if not self._current():
                    await self._lapsed()
                    continue
                if self.free <= 0:
                    self.consumer.pause(*self.consumer.assignment())
                    self._slot_freed.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._slot_freed.wait(), _IDLE_WAIT_S)
                    self._take_all(await self.consumer.getmany(timeout_ms=0))
                    continue
                paused = self.consumer.paused()
                if paused:
                    self.consumer.resume(*paused)
                self._take_all(await self.consumer.getmany(
                    timeout_ms=int(_IDLE_WAIT_S * 1000), max_records=self.free))
        finally:
            commits.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await commits

    async def _lapsed(self) -> None:
        """Take nothing while the membership is unsure; keep the poll clock going."""
        self.consumer.pause(*self.consumer.assignment())
        await self.membership.wait_change(_IDLE_WAIT_S)
        # Records fetched before the pause: put back, so that the position does not
        # move past them (another owner, or this one once confirmed, reads them).
        for tp, records in (await self.consumer.getmany(timeout_ms=0)).items():
            if records:
                with contextlib.suppress(Exception):  # a partition revoked meanwhile
                    self.consumer.seek(tp, records[0].offset)

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
            if not self.ledger.holds(tp, d.offset):
                return False
            if self._current():
                return True
            await self.membership.wait_change(_IDLE_WAIT_S)

    def _take_all(self, batches: dict[TopicPartition, list[Any]]) -> None:
        for tp, records in batches.items():
            for record in records:
                self._take(tp, record)

    def _take(self, tp: TopicPartition, record: Any) -> None:
        offset: int = record.offset
        if not self.ledger.take(tp, offset):
            return  # re-fetched after a rebalance; running or answered already
        delivery = Delivery(
            topic=tp.topic, partition=tp.partition, offset=offset, key=record.key,
            value=record.value, timestamp_ms=record.timestamp,
            redelivery=offset < self.redelivery_end.get(tp, 0))
        self.free -= 1
        task = asyncio.create_task(self._handle(tp, delivery), name=f"offset-{tp}-{offset}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _handle(self, tp: TopicPartition, d: Delivery) -> None:
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
                self.ledger.finish(tp, d.offset)
        except asyncio.CancelledError:
            raise  # a run killed at the drain bound stays uncommitted: another worker runs it
        except Exception:
            # The handler answers everything it can; what escapes is a bug. The offset
            # stays uncommitted so the request is not lost.
            log.exception("record %s@%d: unexpected failure; left uncommitted", tp, d.offset)
        finally:
            release()

    # -- commits ---------------------------------------------------------------
    async def _commit_every(self) -> None:
        while True:
            await asyncio.sleep(self.settings.worker_commit_interval_s)
            await self.commit()

    async def commit(self, tps: Iterable[TopicPartition] | None = None) -> None:
        """Commit the safe offsets of ``tps`` (default: all owned), bounded in time."""
        offsets = self.ledger.committable(self.owned if tps is None else tps)
        offsets = {tp: o for tp, o in offsets.items() if tp in self.owned}
        if not offsets:
            return
        try:
            await asyncio.wait_for(self.consumer.commit(offsets),
                                   self.settings.request_timeout_s * 2)
        except (KafkaError, TimeoutError, OSError) as e:
            self._warn.warning("commit", "committing %d offsets failed (%r); retried later",
                               len(offsets), e)
            return
        self.ledger.committed(offsets)

    # -- stopping --------------------------------------------------------------
    async def drain(self, bound_s: float) -> None:
        """Take nothing more, let runs finish for ``bound_s``, kill the rest, commit."""
        self.stopping = True
        with contextlib.suppress(Exception):
            self.consumer.pause(*self.consumer.assignment())
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
                await asyncio.wait(late, timeout=_CANCEL_WAIT_S)
        await self.commit()


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        # Commit what is safe; running executions go on (see the module docstring).
        await self.agent.commit(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        agent = self.agent
        assigned = set(assigned)
        previous = agent.owned
        member_id = agent.membership.member_id()
        if agent._member_id and member_id != agent._member_id:
            # Dropped from the group and joined again as a new member: what it owned
            # may have been run by another worker in between, so nothing it is still
            # running is its own to answer (confirm() says no) and every partition is
            # read again as a new one.
            log.warning("this worker was dropped from the group (member %s, now %s): "
                        "the results of its %d runs in progress will not be published",
                        agent._member_id, member_id, len(agent.tasks))
            previous = set()
            lost = agent.owned
        else:
            lost = agent.owned - assigned
        agent._member_id = member_id
        agent.membership.confirmed()  # a completed join counts as a heartbeat
        agent.ledger.forget(lost)
        for tp in lost:
            agent.redelivery_end.pop(tp, None)
        new = assigned - previous
        agent.owned = assigned
        if new:
            await self._mark_redeliveries(new)
        log.info("partitions: %d owned (%d new, %d lost)", len(assigned), len(new), len(lost))

    async def _mark_redeliveries(self, new: set[TopicPartition]) -> None:
        agent = self.agent
        try:
            ends = await asyncio.wait_for(agent.consumer.end_offsets(list(new)),
                                          agent.settings.request_timeout_s * 2)
        except (KafkaError, TimeoutError, OSError) as e:
            log.warning("end offsets of new partitions unknown (%r): every record of them "
                        "is checked against the store", e)
            ends = {tp: 2**62 for tp in new}
        agent.redelivery_end.update(ends)
