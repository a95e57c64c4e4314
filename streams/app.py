"""The Faust worker app: the requests topic, the execution agent, result publishing.

Tuning (measured on a 2-core machine with a local KRaft broker; see README):

- ``fetch_max_wait_ms`` (Faust hard-codes 1500): ``RUNSTREAM_WORKER_FETCH_MAX_WAIT_MS``,
  default 20. With ``fetch.min.bytes=1`` the broker answers a fetch as soon as a
  record arrives, so the wait only bounds how long an *empty* fetch is held; a
  short wait keeps partition (re)assignment and pause/resume snappy at the cost of
  ~50 empty fetches per second per worker, which a broker does not notice.
- ``broker_session_timeout`` 6 s and ``broker_heartbeat_interval`` 1 s (Faust's
  defaults: 60 s and 3 s): a worker that dies mid-run loses its partitions after
  at most 6 s instead of a minute, so its request is re-run by a survivor quickly.
- ``broker_commit_interval`` 0.5 s (default 2.8 s): fewer re-runs after a crash.
- ``stream_buffer_maxsize`` small: a worker should not hoard requests it cannot
  start soon; they stay in Kafka where a rebalance can hand them to another worker.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from aiokafka.errors import KafkaError
from runstream.schemas.codec import encode_result, parse_json_object, request_from_doc
from runstream.schemas.errors import BrokerUnavailable, InvalidRequest
from runstream.schemas.models import ExecutionRequest, ExecutionResult, ReplyTo, Status
from runstream.services.execution import Executor, now
from runstream.services.settings import Settings
from runstream.streams._transport import TunedApp

log = logging.getLogger(__name__)

# Publishing a result: each attempt bounded, retried through a broker restart.
PUBLISH_TIMEOUT_S = 30.0
PUBLISH_ATTEMPTS = 10


def _broker_url(bootstrap: str) -> str:
    return ";".join(f"kafka://{h.strip()}" for h in bootstrap.split(",") if h.strip())


class Worker:
    """The execution agent and what it needs to publish results."""

    def __init__(self, settings: Settings, executor: Executor) -> None:
        self.settings = settings
        self.executor = executor
        # Ids being run now: a duplicate can reach a second slot of this worker at once.
        self.in_flight: set[str] = set()
        self.app = TunedApp(
            settings.worker_group,
            broker=_broker_url(settings.bootstrap_servers),
            fetch_max_wait_ms=settings.worker_fetch_max_wait_ms,
            value_serializer="raw",
            key_serializer="raw",
            datadir=settings.worker_data_dir,
            web_enabled=False,
            topic_disable_leader=True,
            # Faust creates the changelog of its table; our own topics exist already.
            topic_allow_declare=True,
            table_standby_replicas=0,
            store="memory://",
            broker_session_timeout=settings.worker_session_timeout_s,
            broker_heartbeat_interval=settings.worker_heartbeat_s,
            broker_commit_interval=settings.worker_commit_interval_s,
            broker_request_timeout=max(30.0, settings.worker_session_timeout_s * 2),
            broker_max_poll_interval=600.0,
            consumer_auto_offset_reset="earliest",
            consumer_max_fetch_size=settings.message_max_bytes,
            producer_max_request_size=settings.message_max_bytes,
            producer_linger=0.0,
            stream_buffer_maxsize=max(4, settings.worker_concurrency * 2),
            broker_client_id=f"runstream-worker-{settings.worker_id}",
        )
        topic = self.app.topic(settings.requests_topic, key_type=bytes, value_type=bytes)
        # Ids answered lately, partitioned like the requests: when a partition moves
        # (a worker died after answering but before its offset was committed), the
        # new owner recovers this table first and does not answer a second time.
        # Re-deliveries come right after a rebalance, so an hour of ids is plenty
        # and keeps the recovery of a partition short.
        self.answered = self.app.Table(
            "answered", key_type=bytes, value_type=bytes,
            partitions=settings.requests_partitions,
            extra_topic_configs={"cleanup.policy": "compact,delete",
                                 "retention.ms": str(3600 * 1000)})
        self.app.agent(topic, name="runstream.execute",
                       concurrency=settings.worker_concurrency)(self._agent)

    async def _agent(self, stream: Any) -> None:
        async for event in stream.events():
            await self.handle(event.key, event.value, event.message.timestamp)

    async def handle(self, key: bytes | None, value: bytes | None, timestamp: float) -> None:
        """Run one message; never raises, so a bad message cannot stop the agent."""
        t0 = time.perf_counter()
        req: ExecutionRequest | None = None
        running = False
        try:
            try:
                doc = parse_json_object(value or b"")
                req = request_from_doc(doc, key=key)
            except InvalidRequest as e:
                await self._reject(key, value, e)
                return
            if req.id in self.in_flight or self.answered.get(req.id.encode()) is not None:
                log.warning("id=%s delivered again while or after it ran; not re-run", req.id)
                return
            self.in_flight.add(req.id)
            running = True
            if req.enqueued_at is None:  # produced by another team: the log's timestamp
                req = replace(req, enqueued_at=datetime.fromtimestamp(timestamp, UTC))
            result = await self.executor.execute(req)
            await self.publish(result, req.reply_to)
            # After publishing: a crash in between answers twice rather than never.
            self.answered[req.id.encode()] = str(result.status).encode()
            _log_execution(result, time.perf_counter() - t0)
        except Exception:  # the agent must survive anything
            log.exception("id=%s failed inside the worker", req.id if req else key)
            if req is not None:
                failed = self.executor.refusal(req, Status.INTERNAL_ERROR,
                                               "the worker failed while running it")
                try:
                    await self.publish(failed, req.reply_to)
                except Exception:
                    log.exception("id=%s: could not publish the internal_error", req.id)
        finally:
            if running and req is not None:
                self.in_flight.discard(req.id)

    async def _reject(self, key: bytes | None, value: bytes | None, error: InvalidRequest) -> None:
        exec_id, reply_to = _salvage(key, value)
        log.warning("rejected message id=%s: %s", exec_id, error.message)
        if exec_id is None:
            return  # nobody to answer: logged above
        result = ExecutionResult(id=exec_id, status=Status.REJECTED, message=error.message,
                                 worker=self.settings.worker_id, finished=now())
        await self.publish(result, reply_to)

    async def publish(self, result: ExecutionResult, reply_to: ReplyTo | None) -> None:
        """Result to the compacted results topic and to the requester's reply partition.

        Each attempt is bounded; a broker that is away (a restart) is waited for, a
        bounded number of times, because the request's offset must not be committed
        before its result is stored: giving up early would lose the answer.
        """
        payload = encode_result(result)
        key = result.id.encode()
        targets: list[tuple[str, int | None]] = [(self.settings.results_topic, None)]
        if reply_to is not None:
            targets.append((reply_to.topic, reply_to.partition))
        for attempt in range(1, PUBLISH_ATTEMPTS + 1):
            try:
                await asyncio.wait_for(self._send_all(targets, key, payload),
                                       PUBLISH_TIMEOUT_S)
                return
            except (TimeoutError, KafkaError) as e:
                log.warning("id=%s: publishing the result failed (attempt %d/%d): %r",
                            result.id, attempt, PUBLISH_ATTEMPTS, e)
        raise BrokerUnavailable(f"id={result.id}: the result could not be published")

    async def _send_all(self, targets: list[tuple[str, int | None]], key: bytes,
                        payload: bytes) -> None:
        producer = self.app.producer
        futures = [await producer.send(topic, key, payload, partition, None, None)
                   for topic, partition in targets]
        await asyncio.gather(*futures)


def _salvage(key: bytes | None, value: bytes | None) -> tuple[str | None, ReplyTo | None]:
    """The id and reply address of an invalid message, where they can be read at all."""
    exec_id = key.decode("utf-8", "replace") if key else None
    reply: ReplyTo | None = None
    try:
        doc = parse_json_object(value or b"")
    except InvalidRequest:
        return exec_id, None
    if exec_id is None and isinstance(doc.get("id"), str) and len(doc["id"]) <= 128:
        exec_id = doc["id"]
    rt = doc.get("reply_to")
    if isinstance(rt, dict) and isinstance(rt.get("topic"), str):
        part = rt.get("partition")
        reply = ReplyTo(rt["topic"], part if isinstance(part, int) and part >= 0 else None)
    return exec_id, reply


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
