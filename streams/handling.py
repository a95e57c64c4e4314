"""One request record, from bytes to a stored answer.

Every record ends in exactly one of: a result on the results topic (and the
requester's reply address), a result re-sent from the store (the id was
answered before), or a dead letter (nothing could be answered). Only then may
its offset be committed; :meth:`Handler.handle` says so by returning True.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from runstream.schemas.codec import decode_request, parse_json_object
from runstream.schemas.errors import (
    BrokerUnavailable,
    InvalidRequest,
    RunstreamError,
    UnknownLanguage,
)
from runstream.schemas.fit import fit_result
from runstream.schemas.models import ExecutionRequest, ExecutionResult, ReplyTo, Status
from runstream.services import metrics
from runstream.services.execution.executor import Executor, now
from runstream.services.execution.languages import Registry
from runstream.services.logs import Throttled, bind_execution
from runstream.services.settings import Settings
from runstream.streams.callbacks import publish_job
from runstream.streams.events import EventPublisher, wants_events
from runstream.streams.publish import PermanentPublishError, Publisher
from runstream.streams.stdinfeed import StdinFeed
from runstream.streams.topics import language_topic

log = logging.getLogger(__name__)

#: Room left in a message for the record's key, headers and batch framing.
_RECORD_OVERHEAD = 16 * 1024
#: How long a re-delivered request waits for the store to show an earlier answer.
_REDELIVERY_LOOKUP_S = 10.0
#: Ids whose reply destination a worker remembers (about 100 bytes each).
_REPLIED_KEPT = 100_000
#: What a client is told when the worker itself failed running its request.
INTERNAL_MESSAGE = ("the worker failed while running it: an error of the service, not of "
                    "the program; the worker's log has it under this execution's id")


class Answers(Protocol):
    """Results already stored, by execution id (the ResultStore)."""

    def cached(self, exec_id: str) -> bytes | None: ...

    async def get(self, exec_id: str, *, timeout_s: float,
                  exact: bool = False) -> bytes | None: ...

    def note(self, exec_id: str, value: bytes, partition: int | None = None,
             offset: int | None = None) -> None: ...


class PartitionMoved(RunstreamError):
    """A run's partition moved to another worker before its answer was published."""


@dataclass(frozen=True)
class Delivery:
    """One record of the requests topic, as the agent hands it over."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int
    #: The record was in the partition before this worker was assigned it: it may
    #: have been answered by the previous owner, whose commit did not reach it.
    redelivery: bool = False


class Handler:
    """Turns deliveries into stored answers; knows nothing of partitions or commits."""

    def __init__(self, settings: Settings, executor: Executor, publisher: Publisher,
                 answers: Answers, catalogue: Registry,
                 events: EventPublisher | None = None,
                 stdin: StdinFeed | None = None) -> None:
        self.settings = settings
        #: Live events of the executions (docs/events.md); None: off.
        self.events = events
        #: Live stdin of interactive executions (the stdin topic); None: they get none.
        self.stdin = stdin
        self.executor = executor
        #: Every language of the deployment, including those this worker does not run.
        self.catalogue = catalogue
        self.publisher = publisher
        self.answers = answers
        self.max_payload = settings.message_max_bytes - _RECORD_OVERHEAD
        #: Ids running here now, with the future of their encoded result.
        self.running: dict[str, asyncio.Future[bytes]] = {}
        #: Where this worker last sent each id's answer: a duplicate of the same
        #: request (a producer's retry) is not answered a second time.
        self._replied: OrderedDict[str, ReplyTo] = OrderedDict()
        #: Asked before an answer is published: may this worker still answer the
        #: delivery? (the agent's group membership, streams/agent.py); None: always.
        self.owns: Callable[[Delivery], Awaitable[bool]] | None = None
        self._warn = Throttled(log)

    async def handle(self, d: Delivery, release: Callable[[], None]) -> bool:
        """Answer ``d``; True when its offset may be committed. ``release`` frees its slot."""
        t0 = time.perf_counter()
        key = d.key if d.key is not None else _keyless_id(d)
        try:
            req = decode_request(d.value or b"", key=key)
            bind_execution(req.id)  # this task's log lines carry it (JSON logs)
        except InvalidRequest as e:
            release()
            if key is None:
                return await self._dead_letter(d, f"not a request, and no key or id to "
                                                  f"answer under: {e.message}")
            return await self._reject(d, key, e.message)
        forward_to = self._elsewhere(d, req)
        if forward_to is not None:
            release()
            return await self._forward(d, req.id.encode(), forward_to)
        while req.id in self.running:  # a duplicate while the first delivery runs here
            release()
            try:
                payload = await asyncio.shield(self.running[req.id])
            except PartitionMoved:
                # The first delivery's partition moved, this one is the worker's own:
                # it runs here after all (over the slot count by one, a rare case).
                continue
            await self._resend(req, payload)
            return True
        # Claimed from here on, before any await: another delivery of this id (a
        # client's retry produced twice, a re-delivery) waits for this one instead of
        # running too, also while this one still asks the store whether it was answered.
        done: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.running[req.id] = done
        try:
            stored = await self._stored(req.id, d.redelivery)
            if stored is not None:
                release()
                self._warn.warning("dup", "id=%s was answered before; the stored result is "
                                   "sent again, not re-run", req.id)
                await self._resend(req, stored)
                done.set_result(stored)
                return True
            if req.reply_to is not None:
                reason = await self.publisher.check_reply_to(req.reply_to)
                if reason is not None:
                    release()
                    refusal = self.executor.refusal(req, Status.REJECTED, reason)
                    return await self._publish(refusal, None, d, t0, done, request=req)
            if req.enqueued_at is None:  # another team's producer: the log's timestamp
                req = replace(req, enqueued_at=datetime.fromtimestamp(d.timestamp_ms / 1000,
                                                                      UTC))
            if req.interactive and self.stdin is not None and self.stdin.hung_up(req.id):
                release()  # its client is gone: nobody would type, nobody would read
                refusal = self.executor.refusal(
                    req, Status.REJECTED, "the interactive session was closed before the "
                    "program started")
                return await self._publish(refusal, req.reply_to, d, t0, done, request=req)
            return await self._execute(req, d, release, t0, done)
        finally:
            if self.running.get(req.id) is done:
                del self.running[req.id]
            if not done.done():
                done.cancel()

    def _elsewhere(self, d: Delivery, req: ExecutionRequest) -> str | None:
        """The language topic to forward to, when this worker does not run the language."""
        if d.topic != self.settings.requests_topic:
            return None  # read from a language topic: this worker runs it
        try:
            self.executor.registry.resolve(req.language)
            return None
        except UnknownLanguage:
            pass
        try:
            name = self.catalogue.resolve(req.language).name
        except UnknownLanguage:
            return None  # no worker runs it: the executor answers `rejected`
        return language_topic(self.settings, name)

    async def _forward(self, d: Delivery, key: bytes, topic: str) -> bool:
        headers = [("forwarded-by", self.settings.worker_id.encode())]
        try:
            await self.publisher.send(topic, key, d.value or b"", headers=headers,
                                      what="forwarded request")
        except PermanentPublishError as e:
            return await self._dead_letter(d, f"could not forward to {topic}: {e}")
        log.info("id=%s forwarded to %s: this worker does not run its language",
                 key.decode("utf-8", "replace"), topic)
        return True

    async def _execute(self, req: ExecutionRequest, d: Delivery, release: Callable[[], None],
                       t0: float, done: asyncio.Future[bytes]) -> bool:
        progress = (self.events.execution(req.id)
                    if self.events is not None and wants_events(self.settings, req) else None)
        live = (self.stdin.open(req.id) if req.interactive and self.stdin is not None
                else None)
        try:
            try:
                result = await self.executor.execute(req, progress, live)
            except Exception:  # a bug of ours, never the program's doing
                # The client is told that, not the exception (its text may hold host
                # paths or code); the log has the traceback under the id.
                log.exception("id=%s failed inside the worker", req.id)
                result = self.executor.refusal(req, Status.INTERNAL_ERROR, INTERNAL_MESSAGE)
            release()
            ok = await self._publish(result, req.reply_to, d, t0, done, request=req)
            if ok and progress is not None:  # only once the result is stored
                progress.finished(str(result.status))
        finally:
            if progress is not None:
                progress.close()
            if live is not None and self.stdin is not None:
                self.stdin.close(live)
        return ok

    async def _stored(self, exec_id: str, redelivery: bool) -> bytes | None:
        stored = self.answers.cached(exec_id)
        if stored is not None or not redelivery:
            return stored
        # A re-delivery after a rebalance may have been answered by the previous
        # owner a moment ago: wait until the store has read up to now. Not knowing
        # is not "not answered": a broker node down (its leaders moving) is exactly
        # when partitions move, and running then ran requests twice. Ask again.
        give_up = time.monotonic() + self.settings.worker_redelivery_check_s
        pause = 0.5
        while True:
            try:
                return await self.answers.get(exec_id, timeout_s=_REDELIVERY_LOOKUP_S,
                                              exact=True)
            except BrokerUnavailable as e:
                if time.monotonic() >= give_up:
                    self._warn.warning("store", "id=%s: the results could not be read for "
                                       "%.0fs (%s); running it", exec_id,
                                       self.settings.worker_redelivery_check_s, e.message)
                    return None
                self._warn.warning("store-wait", "id=%s: cannot tell yet whether it was "
                                   "answered (%s); asking again", exec_id, e.message)
            await asyncio.sleep(pause)
            pause = min(pause * 2, 5.0)

    async def _publish(self, result: ExecutionResult, reply_to: ReplyTo | None,
                       d: Delivery, t0: float, done: asyncio.Future[bytes] | None = None,
                       request: ExecutionRequest | None = None) -> bool:
        if self.owns is not None and not await self.owns(d):
            self._warn.warning("moved", "id=%s: partition %s[%d] moved to another worker "
                               "while it ran here; that worker answers it, this result is "
                               "dropped", result.id, d.topic, d.partition)
            if done is not None and not done.done():
                done.set_exception(PartitionMoved(result.id))
                done.exception()  # retrieved: nobody else may be waiting
            return False
        payload = fit_result(result, self.max_payload)
        key = result.id.encode()
        try:
            meta = await self.publisher.send(self.settings.results_topic, key, payload,
                                             what="result")
        except PermanentPublishError as e:
            return await self._dead_letter(d, f"the result could not be stored: {e}")
        self.answers.note(result.id, payload, meta.partition, meta.offset)
        if reply_to is not None:
            await self._reply(result.id, reply_to, payload)
        if request is not None and request.callback is not None:  # webhook: after the reply
            await publish_job(self.publisher, self.settings, request, payload)
        if done is not None and not done.done():  # duplicates waiting for this run
            done.set_result(payload)
        _log_execution(result, time.perf_counter() - t0)
        metrics.observe_result(result)  # docs/metrics.md
        return True

    async def _reply(self, exec_id: str, reply_to: ReplyTo, payload: bytes) -> None:
        try:
            await self.publisher.send(reply_to.topic, exec_id.encode(), payload,
                                      partition=reply_to.partition, what="reply")
        except PermanentPublishError as e:
            # The result is stored on the results topic; the requester can read it there.
            self._warn.warning(f"reply:{reply_to.topic}",
                               "id=%s: the reply could not be delivered: %s", exec_id, e)
            return
        self._replied[exec_id] = reply_to
        self._replied.move_to_end(exec_id)
        while len(self._replied) > _REPLIED_KEPT:
            self._replied.popitem(last=False)

    async def _resend(self, req: ExecutionRequest, payload: bytes) -> None:
        """Send an earlier answer to a duplicate's requester, unless this worker just did.

        After a crash the new owner cannot know whether the old one's reply went
        out (it is sent after the result is stored), so it sends it: a ``reply_to``
        consumer may see the same result twice, never none. The same goes for the
        webhook job (the deliverer skips an id it has delivered).
        """
        if req.callback is not None:
            await publish_job(self.publisher, self.settings, req, payload)
        if req.reply_to is None or self._replied.get(req.id) == req.reply_to:
            return
        if await self.publisher.check_reply_to(req.reply_to) is None:
            await self._reply(req.id, req.reply_to, payload)

    async def _reject(self, d: Delivery, key: bytes, message: str) -> bool:
        exec_id, reply_to = _salvage(key, d.value)
        self._warn.warning("reject", "rejected record %s[%d]@%d id=%s: %s",
                           d.topic, d.partition, d.offset, exec_id, message)
        if exec_id is None:
            return await self._dead_letter(d, f"not a request and no id to answer: {message}")
        if reply_to is not None and await self.publisher.check_reply_to(reply_to) is not None:
            reply_to = None
        result = ExecutionResult(id=exec_id, status=Status.REJECTED, message=message,
                                 worker=self.settings.worker_id, finished=now())
        return await self._publish(result, reply_to, d, time.perf_counter())

    async def _dead_letter(self, d: Delivery, reason: str) -> bool:
        """Park the record with its reason, so that the partition moves on."""
        headers = [("reason", reason.encode()), ("topic", d.topic.encode()),
                   ("partition", str(d.partition).encode()),
                   ("offset", str(d.offset).encode()),
                   ("worker", self.settings.worker_id.encode())]
        value = d.value or b""
        if len(value) > self.max_payload:
            value = value[: self.max_payload]
            headers.append(("truncated", b"1"))
        try:
            await self.publisher.send(self.settings.dead_letter_topic, d.key, value,
                                      headers=headers, what="dead letter")
        except PermanentPublishError as e:
            log.error("record %s[%d]@%d could not even be dead-lettered (%s); dropped: %s",
                      d.topic, d.partition, d.offset, e, reason)
        else:
            self._warn.warning("dead", "record %s[%d]@%d sent to %s: %s", d.topic,
                               d.partition, d.offset, self.settings.dead_letter_topic, reason)
        return True


def _keyless_id(d: Delivery) -> bytes | None:
    """An id for a record without a key: the same on every delivery of that record.

    A random id could be neither deduplicated on re-delivery nor correlated; the
    record's own position is unique and stable. An ``id`` in the body wins. None
    for a record that is not a JSON object at all: nobody could be answered.
    """
    try:
        doc = parse_json_object(d.value or b"")
    except InvalidRequest:
        return None
    exec_id = doc.get("id")
    if isinstance(exec_id, str) and exec_id:
        return exec_id.encode()
    return f"{d.topic}-{d.partition}-{d.offset}".encode()


def _salvage(key: bytes, value: bytes | None) -> tuple[str | None, ReplyTo | None]:
    """The id and reply address of an invalid record, where they can be read at all."""
    exec_id: str | None = key.decode("utf-8", "replace")[:128] or None
    try:
        doc = parse_json_object(value or b"")
    except InvalidRequest:
        return exec_id, None
    rt = doc.get("reply_to")
    if isinstance(rt, dict) and isinstance(rt.get("topic"), str):
        part = rt.get("partition")
        return exec_id, ReplyTo(rt["topic"], part if isinstance(part, int) and part >= 0
                                else None)
    return exec_id, None


def _ms(a: Any, b: Any) -> int | None:
    if a is None or b is None:
        return None
    return int((b - a).total_seconds() * 1000)


def _log_execution(result: ExecutionResult, handled_s: float) -> None:
    run = result.run or (result.tests[-1].run if result.tests else None)
    log.info(
        "execution id=%s language=%s status=%s queue_ms=%s compile_ms=%s run_ms=%s "
        "total_ms=%d", result.id, result.language, result.status,
        _ms(result.enqueued, result.started),
        result.compile.wall_ms if result.compile else None,
        run.wall_ms if run else None, int(handled_s * 1000),
    )
