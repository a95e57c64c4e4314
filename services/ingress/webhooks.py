"""Webhooks: the deliverer (a member of the deliverers' group) and the deliveries endpoint.

Every ingress follows the deliveries log, so ``GET /v1/executions/{id}/deliveries``
answers on any of them; with ``RUNSTREAM_CALLBACK_DELIVER`` on (the default) it
is also a deliverer. Deliverers live in the ingress because it is the process a
deployment already runs, keeps running and scales with the traffic, and because
the Judge0 body renderer is part of the ingress; a deployment that wants them
apart turns the setting off on the ingresses and runs ``runstream callbacks``.

One job, as :meth:`Deliverer.deliver` handles it: read what the deliveries log
already says of the id (a restart resumes, a finished one is skipped), render
the body once, then attempt, record, wait (exponential backoff with jitter) and
attempt again, until a 2xx, a permanent refusal, or the attempts or age bound.
Every attempt is recorded (status code, error, duration, who sent it) before the
next one, and the job's offset is committed only once it is finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from runstream.schemas.errors import BrokerUnavailable, MalformedPayload, NotFound
from runstream.schemas.models import Callback
from runstream.schemas.webhooks import (
    ATTEMPT_HEADER,
    DELIVERED,
    DELIVERY_HEADER,
    FAILED,
    ID_HEADER,
    PENDING,
    SIGNATURE_HEADER,
    attempt_doc,
    decode_job,
    is_final,
    new_delivery,
    parse_time,
    signature,
)
from runstream.services.ingress._webhook_http import Outcome, Sender
from runstream.services.ingress.problems import JSON
from runstream.services.ingress.webhook_bodies import KeySecrets, RenderError, Secrets, render
from runstream.services.logs import Throttled
from runstream.services.settings import Settings
from runstream.streams.callbacks import JobConsumer, delivery_log
from runstream.streams.keys import KeyStore
from runstream.streams.producer import RenewingProducer
from runstream.streams.publish import PermanentPublishError, Publisher
from runstream.streams.results import ResultStore
from runstream.streams.webhook_policy import RetryPolicy
from starlette.requests import Request
from starlette.responses import Response

log = logging.getLogger(__name__)

USER_AGENT = "runstream-webhooks/1"


class Deliverer:
    """Sends webhook jobs, signed, with retries; records every attempt."""

    def __init__(self, settings: Settings, deliveries: ResultStore, secrets: Secrets, *,
                 name: str) -> None:
        self.settings = settings
        self.deliveries = deliveries
        self.secrets = secrets
        self.name = name
        self.policy = RetryPolicy.from_settings(settings)
        self.jobs = JobConsumer(settings, self.deliver, client_id=f"runstream-{name}-webhooks")
        self.sender: Sender | None = None
        self.producer = RenewingProducer(settings, client_id=f"runstream-{name}-deliveries")
        self.publisher: Publisher | None = None
        self._slots = asyncio.Semaphore(settings.callback_concurrency)
        self._ids: dict[str, asyncio.Lock] = {}
        self._warn = Throttled(log)

    async def start(self, timeout_s: float = 30.0) -> None:
        s = self.settings
        self.sender = Sender(allow_private=s.callback_allow_private,
                             timeout_s=s.callback_timeout_s, connections=s.callback_concurrency)
        # With renewal: a lost producer sequence would otherwise fail every later
        # delivery record for ever (the worker and the ingress renew theirs too).
        await self.producer.start(timeout_s)
        self.publisher = Publisher(s, self.producer)
        await self.jobs.start(timeout_s)
        if not s.callback_secret:
            log.warning("RUNSTREAM_CALLBACK_SECRET is empty: webhooks of requests without "
                        "an API key of their own are sent unsigned")

    async def stop(self) -> None:
        """Leave the group (jobs in hand go to the next owner), then close; bounded."""
        await self.jobs.stop(timeout_s=3.0)
        await asyncio.gather(self.producer.stop(timeout_s=3.0),
                             self.sender.close() if self.sender is not None else asyncio.sleep(0))

    # -- one job -------------------------------------------------------------------
    async def deliver(self, key: bytes | None, value: bytes | None) -> None:
        try:
            exec_id, cb, key_id, created, result = decode_job(value or b"")
        except MalformedPayload as e:
            self._warn.warning("job", "skipping a webhook job under %r: %s", key, e.message)
            return
        # A job written twice (a worker's retry) is delivered once: one at a time per id,
        # and the second finds the first's record final.
        lock = self._ids.setdefault(exec_id, asyncio.Lock())
        try:
            async with lock:
                await self._deliver(exec_id, cb, key_id, created, result)
        finally:
            if not lock.locked() and self._ids.get(exec_id) is lock:
                del self._ids[exec_id]

    async def _deliver(self, exec_id: str, cb: Callback, key_id: str | None,
                       created: datetime, result: dict[str, Any]) -> None:
        doc = await self._recorded(exec_id)
        if doc is not None and is_final(doc):
            return
        if doc is None:
            doc = new_delivery(exec_id, cb)
            await self._record(doc)
        try:
            body = render(cb.format, result)
        except RenderError as e:
            log.warning("id=%s: webhook not sent: %s", exec_id, e.message)
            await self._finish(doc, FAILED, e.message)
            return
        while True:
            due = doc.get("next_attempt_at")
            if due is not None:
                wait_s = (parse_time(due) - datetime.now(UTC)).total_seconds()
                if wait_s > 0:
                    await asyncio.sleep(wait_s)
            elif (datetime.now(UTC) - created).total_seconds() > self.policy.max_age_s:
                await self._finish(doc, FAILED, f"older than {self.policy.max_age_s:g}s "
                                   "before its first attempt")
                return
            number = len(doc["attempts"]) + 1
            at = datetime.now(UTC)
            delivery_id = uuid.uuid4().hex
            async with self._slots:
                outcome = await self._attempt(exec_id, cb, key_id, body, number, delivery_id)
            doc["attempts"].append(attempt_doc(
                number=number, delivery=delivery_id, at=at, by=self.name,
                status_code=outcome.status_code, error=outcome.error,
                duration_ms=outcome.duration_ms))
            if outcome.ok:
                await self._finish(doc, DELIVERED, None)
                return
            if outcome.permanent:
                await self._finish(doc, FAILED, outcome.error)
                return
            after, reason = self.policy.next_attempt(number, created, datetime.now(UTC),
                                                     random.random())
            if after is None:
                await self._finish(doc, FAILED, reason)
                return
            doc["next_attempt_at"] = after.isoformat(timespec="milliseconds").replace(
                "+00:00", "Z")
            await self._record(doc)

    async def _attempt(self, exec_id: str, cb: Callback, key_id: str | None, body: bytes,
                       number: int, delivery_id: str) -> Outcome:
        assert self.sender is not None
        headers = [("Content-Type", "application/json"), ("User-Agent", USER_AGENT),
                   (ID_HEADER, exec_id), (DELIVERY_HEADER, delivery_id),
                   (ATTEMPT_HEADER, str(number))]
        secret = self.secrets.secret_for(key_id)
        if secret:
            headers.append((SIGNATURE_HEADER, signature(secret, body, int(time.time()))))
        outcome = await self.sender.send(cb.method, cb.url, body, headers)
        log.info("webhook id=%s attempt=%d %s %s -> %s (%d ms)", exec_id, number, cb.method,
                 cb.url, outcome.status_code or outcome.error, outcome.duration_ms)
        return outcome

    async def _finish(self, doc: dict[str, Any], state: str, reason: str | None) -> None:
        doc.update(state=state, reason=reason, next_attempt_at=None)
        await self._record(doc)

    async def _recorded(self, exec_id: str) -> dict[str, Any] | None:
        """What the deliveries log says of ``exec_id``, read up to its end (retried)."""
        while True:
            try:
                raw = await self.deliveries.get(exec_id,
                                                timeout_s=self.settings.request_timeout_s * 5)
            except BrokerUnavailable as e:
                self._warn.warning("log", "the deliveries log could not be read (%s); "
                                   "retrying", e.message)
                await asyncio.sleep(1.0)
                continue
            if raw is None:
                return None
            try:
                doc: dict[str, Any] = orjson.loads(raw)
            except orjson.JSONDecodeError:
                return None
            return doc

    async def _record(self, doc: dict[str, Any]) -> None:
        """Store ``doc`` on the deliveries log (retried until stored, or the job is dropped)."""
        assert self.publisher is not None
        payload = orjson.dumps(doc)
        try:
            meta = await self.publisher.send(self.settings.deliveries_topic,
                                             doc["id"].encode(), payload, what="delivery")
        except PermanentPublishError as e:
            log.error("id=%s: the delivery record could not be stored: %s", doc["id"], e)
            return
        self.deliveries.note(doc["id"], payload, meta.partition, meta.offset)


class Webhooks:
    """The deliveries log of this ingress, its deliverer (when on) and the endpoint."""

    def __init__(self, settings: Settings, *, name: str, keys: KeySecrets | None = None,
                 deliver: bool | None = None) -> None:
        self.settings = settings
        self.deliveries = delivery_log(settings, name=name)
        deliver = settings.callback_deliver if deliver is None else deliver
        self.deliverer = (Deliverer(settings, self.deliveries, Secrets(settings, keys),
                                    name=name) if deliver else None)

    async def start(self, timeout_s: float = 30.0) -> None:
        await self.deliveries.start(timeout_s)
        if self.deliverer is not None:
            try:
                await self.deliverer.start(timeout_s)
            except BaseException:
                await self.stop()
                raise

    async def stop(self) -> None:
        """Bounded: a deliverer drops what it holds (resumed elsewhere) and leaves its group.

        Side by side: a broker that is gone costs about 15 s here, within the
        gateway's own close (docs/stopping.md).
        """
        await asyncio.gather(
            self.deliverer.stop() if self.deliverer is not None else asyncio.sleep(0),
            self.deliveries.stop())

    async def deliveries_of(self, request: Request) -> Response:
        """``GET /v1/executions/{id}/deliveries``: the webhook's state and every attempt."""
        exec_id = request.path_params["id"]
        raw = await self.deliveries.get(exec_id, timeout_s=self.settings.request_timeout_s)
        if raw is None:
            raise NotFound(f"no webhook deliveries for execution {exec_id!r} (no callback, "
                           "not finished yet, or older than the retention)")
        return Response(raw, media_type=JSON, headers={"Cache-Control": "no-store"})


async def run_deliverer(settings: Settings, stop: asyncio.Event) -> None:
    """``runstream callbacks``: a deliverer without HTTP, until ``stop`` is set."""
    name = f"callbacks-{settings.worker_id}"
    keys = KeyStore(settings, name=name) if settings.auth_required else None
    hooks = Webhooks(settings, name=name, deliver=True,
                     keys=keys.webhook_secret if keys is not None else None)
    try:
        if keys is not None:
            await keys.start()
        await hooks.start()
        log.info("webhook deliverer %s serving group %s", settings.worker_id,
                 settings.callback_group)
        await stop.wait()
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(hooks.stop(), 15.0)
        if keys is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(keys.stop(), 5.0)


__all__ = ["DELIVERED", "FAILED", "PENDING", "Deliverer", "Webhooks", "run_deliverer"]
