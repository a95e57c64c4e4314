"""Webhooks on Kafka: the jobs topic, the deliveries log, and the deliverers' consumer group.

A worker that stores the result of a request with a ``callback`` also writes a
job (:func:`publish_job`) to the callbacks topic, keyed by id, before the
request's offset is committed: a crash in between re-reads the request, finds
its result stored and writes the job again. No job is therefore lost; one may
be written twice, and the deliverer skips an id whose delivery is finished.

:class:`JobConsumer` is one member of the deliverers' group. Each job is its
own task (sending, or waiting to retry), so one slow or failing URL never holds
up the others; offsets are committed by the rule of :mod:`.ledger`: only below
the lowest job of the partition not finished yet. A job a stopped or killed
deliverer did not finish is read again by the partition's next owner, which
continues from the attempts recorded in the deliveries log (:func:`delivery_log`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from runstream.schemas.models import ExecutionRequest
from runstream.schemas.webhooks import encode_job
from runstream.services.settings import Settings
from runstream.streams.committer import Committer
from runstream.streams.follower import Follower
from runstream.streams.ledger import OffsetLedger
from runstream.streams.publish import PermanentPublishError, Publisher
from runstream.streams.results import ResultStore

log = logging.getLogger(__name__)

#: How one job is handled; it returns when the job needs nothing more.
Deliver = Callable[[bytes | None, bytes | None], Awaitable[None]]

_IDLE_WAIT_S = 0.5
_COMMIT_EVERY_S = 1.0


async def publish_job(publisher: Publisher, settings: Settings, req: ExecutionRequest,
                      result: bytes) -> None:
    """Write the webhook job of ``req`` (which has a callback) and its stored ``result``.

    Retried like the result itself; a job the broker refuses outright is logged:
    the result stays readable by GET.
    """
    assert req.callback is not None
    # key_id: the caller's API key (when keys are on), whose own secret signs the webhook.
    job = encode_job(req.id, req.callback, result, key_id=req.key_id,
                     created=datetime.now(UTC))
    try:
        await publisher.send(settings.callbacks_topic, req.id.encode(), job, what="webhook job")
    except PermanentPublishError as e:
        log.error("id=%s: the webhook job could not be written, no callback will be made: %s",
                  req.id, e)


def delivery_log(settings: Settings, *, name: str) -> ResultStore:
    """The deliveries topic, followed and indexed by id like the results are.

    The same store as the results' (bounded memory, an on-disk index, exact
    lookups that wait until it has read up to the topic's end), on the other topic.
    """
    return ResultStore(replace(settings, results_topic=settings.deliveries_topic),
                       name=f"{name}-deliveries")


class JobConsumer(Follower):
    """One member of the deliverers' group: jobs in, ``deliver`` per job, safe commits."""

    # Commits are the ledger's (Committer), not "caught up" questions.
    tracks_positions = False

    def __init__(self, settings: Settings, deliver: Deliver, *, client_id: str) -> None:
        s = settings
        super().__init__(
            s, s.callbacks_topic, client_id=client_id, group_id=s.callback_group,
            auto_offset_reset="earliest",
            session_timeout_ms=int(s.worker_session_timeout_s * 1000),
            heartbeat_interval_ms=int(s.worker_heartbeat_s * 1000),
            rebalance_timeout_ms=int(max(s.worker_session_timeout_s, 10.0) * 1000))
        self.deliver = deliver
        self.ledger: OffsetLedger[TopicPartition] = OffsetLedger()
        self.commits = Committer(self.ledger)
        self.owned: set[TopicPartition] = set()
        self.jobs: dict[tuple[TopicPartition, int], asyncio.Task[None]] = {}
        self._room = asyncio.Event()
        self._commit_at = 0.0

    @property
    def consumer(self) -> AIOKafkaConsumer | None:
        """The group member's consumer (None before start and after stop)."""
        return self._consumer

    async def _assign(self, consumer: AIOKafkaConsumer, deadline: float) -> None:
        consumer.subscribe([self.topic], listener=_Listener(self))

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Stop taking jobs, drop the ones in hand (the next owner resumes them), commit, leave.

        A job stopped between sending and recording is sent again by the next
        owner: at least once, never lost.
        """
        await super().stop(timeout_s)

    async def _closing(self) -> None:
        await self._cancel(list(self.jobs))
        await self.commit()

    def pending(self) -> int:
        return len(self.jobs)

    async def _round(self) -> None:
        assert self.consumer is not None
        room = self.settings.callback_max_pending - len(self.jobs)
        if room <= 0:
            self.consumer.pause(*self.consumer.assignment())
            self._room.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._room.wait(), _IDLE_WAIT_S)
            batches = await self.consumer.getmany(timeout_ms=0)
        else:
            if self.consumer.paused():
                self.consumer.resume(*self.consumer.paused())
            batches = await self.consumer.getmany(timeout_ms=int(_IDLE_WAIT_S * 1000),
                                                  max_records=room)
        for tp, records in batches.items():
            for record in records:
                self._take(tp, record)
        now = asyncio.get_running_loop().time()
        if now >= self._commit_at:
            self._commit_at = now + _COMMIT_EVERY_S
            await self.commit()

    def _take(self, tp: TopicPartition, record: Any) -> None:
        if tp not in self.owned or not self.ledger.take(tp, record.offset):
            return  # read again after a rebalance: in hand or finished here
        task = asyncio.create_task(self._job(tp, record.offset, record.key, record.value),
                                   name=f"webhook-{tp.topic}-{tp.partition}@{record.offset}")
        self.jobs[(tp, record.offset)] = task

    async def _job(self, tp: TopicPartition, offset: int, key: bytes | None,
                   value: bytes | None) -> None:
        try:
            await self.deliver(key, value)
        except asyncio.CancelledError:
            raise  # revoked or stopping: left uncommitted, the next owner resumes it
        except Exception:
            # deliver() records every outcome it can; what escapes is a bug. The job is
            # not retried forever in a loop: it is left to the next start of a deliverer.
            log.exception("webhook job %s@%d failed unexpectedly; left uncommitted", tp, offset)
            return
        finally:
            if self.jobs.get((tp, offset)) is asyncio.current_task():
                del self.jobs[(tp, offset)]
            self._room.set()
        self.ledger.finish(tp, offset)

    async def commit(self) -> None:
        """Commit, per owned partition, up to its lowest unfinished job (bounded in time)."""
        assert self.consumer is not None
        try:
            await self.commits.commit(self.consumer.commit, self.owned,
                                      self.settings.request_timeout_s * 2)
        except (KafkaError, TimeoutError, OSError) as e:
            self._warn.warning("commit", "committing webhook jobs failed (%r); retried", e)

    async def _cancel(self, keys: list[tuple[TopicPartition, int]]) -> None:
        tasks = [t for k in keys if (t := self.jobs.get(k)) is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: JobConsumer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        # Jobs of a partition that may move are dropped here, not raced by two owners:
        # the next owner resumes them from the attempts already recorded.
        owner = self.owner
        await owner.commit()
        await owner._cancel([k for k in owner.jobs if k[0] in revoked])

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        owner = self.owner
        owner.ledger.forget(set(owner.ledger.partitions()) - set(assigned))
        # A partition kept across the rebalance is fetched again from its commit: its
        # jobs in hand were cancelled on revocation, so they are taken afresh.
        owner.ledger.forget(assigned)
        owner.owned = set(assigned)
        log.info("webhook jobs: %d partitions owned", len(assigned))
