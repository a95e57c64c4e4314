"""The ingress's Kafka side: produce requests, correlate replies by execution id.

Each ingress instance reads only its own partition of the replies topic (no
fan-out), and follows the compacted results topic so that any instance can
answer ``GET /v1/executions/{id}`` and idempotent retries of a finished id. A
reply that arrives twice (a re-run after a worker crash) resolves nothing the
second time: the client gets exactly one answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import GroupCoordinatorNotAvailableError, KafkaError
from runstream.schemas.codec import encode_request
from runstream.schemas.errors import BrokerUnavailable
from runstream.schemas.models import ExecutionRequest, ReplyTo
from runstream.services.settings import Settings

log = logging.getLogger(__name__)


class ResultCache:
    """Finished results by id, bounded in count and bytes (least recently used goes)."""

    def __init__(self, max_items: int, max_bytes: int = 256 * 1024 * 1024) -> None:
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._bytes = 0
        self.max_items = max_items
        self.max_bytes = max_bytes

    def get(self, exec_id: str) -> bytes | None:
        value = self._items.get(exec_id)
        if value is not None:
            self._items.move_to_end(exec_id)
        return value

    def put(self, exec_id: str, value: bytes) -> None:
        old = self._items.pop(exec_id, None)
        if old is not None:
            self._bytes -= len(old)
        self._items[exec_id] = value
        self._bytes += len(value)
        while self._items and (len(self._items) > self.max_items or self._bytes > self.max_bytes):
            _, dropped = self._items.popitem(last=False)
            self._bytes -= len(dropped)

    def __len__(self) -> int:
        return len(self._items)


class Gateway:
    """Produces requests and hands each HTTP caller its own result."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.reply_to = ReplyTo(settings.replies_topic, settings.ingress_reply_partition)
        self.cache = ResultCache(settings.ingress_results_cache)
        self.pending: dict[str, asyncio.Future[bytes]] = {}
        self.workers: dict[str, dict[str, Any]] = {}
        self._producer: AIOKafkaProducer | None = None
        self._replies: AIOKafkaConsumer | None = None
        self._results: AIOKafkaConsumer | None = None
        self._admin: AIOKafkaAdminClient | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._members: tuple[float, int] = (0.0, 0)

    # -- lifecycle -------------------------------------------------------------
    async def start(self, timeout_s: float = 30.0) -> None:
        """Connect to Kafka (retrying until ``timeout_s``) and start following replies."""
        s = self.settings
        timeout_ms = int(s.request_timeout_s * 1000)
        self._producer = AIOKafkaProducer(
            bootstrap_servers=s.bootstrap_servers, acks="all", enable_idempotence=True,
            linger_ms=0, max_request_size=s.message_max_bytes,
            request_timeout_ms=max(timeout_ms, 5000), client_id="runstream-ingress")
        # No group: this instance owns its reply partition by configuration, and
        # only replies to requests it produced from now on matter to it.
        self._replies = AIOKafkaConsumer(
            bootstrap_servers=s.bootstrap_servers, enable_auto_commit=False,
            fetch_max_wait_ms=100, max_partition_fetch_bytes=s.message_max_bytes,
            fetch_max_bytes=s.message_max_bytes * 2, client_id="runstream-ingress-replies")
        self._results = AIOKafkaConsumer(
            bootstrap_servers=s.bootstrap_servers, enable_auto_commit=False,
            fetch_max_wait_ms=200, max_partition_fetch_bytes=s.message_max_bytes,
            fetch_max_bytes=s.message_max_bytes * 2, auto_offset_reset="earliest",
            client_id="runstream-ingress-results")
        self._admin = AIOKafkaAdminClient(bootstrap_servers=s.bootstrap_servers,
                                          request_timeout_ms=timeout_ms)
        deadline = time.monotonic() + timeout_s
        try:
            for client in (self._producer, self._replies, self._results, self._admin):
                await _start_with_retry(client, deadline, s.bootstrap_servers)
            await self._assign()
        except BaseException:
            await self.stop()
            raise
        log.info("ingress connected to %s; owns %s[%d]", s.bootstrap_servers,
                 s.replies_topic, s.ingress_reply_partition)

    async def _assign(self) -> None:
        s = self.settings
        assert self._replies is not None and self._results is not None
        reply_tp = TopicPartition(s.replies_topic, s.ingress_reply_partition)
        self._replies.assign([reply_tp])
        await self._replies.seek_to_end(reply_tp)
        # Fresh topics take a moment to appear in metadata: ask again for a while.
        assert self._admin is not None
        names = [s.requests_topic, s.replies_topic, s.results_topic, s.workers_topic]
        deadline = time.monotonic() + 10 * s.request_timeout_s
        while True:
            described = await asyncio.wait_for(self._admin.describe_topics(names),
                                               s.request_timeout_s * 5)
            parts = {t["topic"]: len(t["partitions"]) for t in described
                     if t["error_code"] == 0}
            missing = [n for n in names if not parts.get(n)]
            if not missing:
                break
            if time.monotonic() > deadline:
                raise BrokerUnavailable(f"topics {', '.join(missing)} do not exist; "
                                        "create them with `runstream topics`")
            await asyncio.sleep(0.2)
        result_tps = [TopicPartition(s.results_topic, p) for p in range(parts[s.results_topic])]
        # The same consumer follows the workers' announcements (one compacted partition).
        self._results.assign([*result_tps, TopicPartition(s.workers_topic, 0)])
        await self._seek_lookback(result_tps)
        self._tasks = [
            asyncio.create_task(self._follow(self._replies, "replies"), name="replies"),
            asyncio.create_task(self._follow(self._results, "results"), name="results"),
        ]

    async def _seek_lookback(self, tps: list[TopicPartition]) -> None:
        """Start reading results from the look-back window, not the whole retention.

        A restarted ingress then warms its cache with the recent results (what
        clients still ask for) in seconds, however long the topic's retention.
        """
        assert self._results is not None
        since_ms = int((time.time() - self.settings.ingress_results_lookback_s) * 1000)
        found = await asyncio.wait_for(
            self._results.offsets_for_times({tp: since_ms for tp in tps}),
            self.settings.request_timeout_s * 5)
        for tp in tps:
            at = found.get(tp)
            if at is None:  # nothing that recent: only new results matter
                await self._results.seek_to_end(tp)
            else:
                self._results.seek(tp, at.offset)

    async def stop(self) -> None:
        """Stop following, fail the callers still waiting, close the clients."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for fut in self.pending.values():
            if not fut.done():
                fut.cancel()
        for client in (self._replies, self._results, self._producer, self._admin):
            if client is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(_close(client), 10)

    # -- requests --------------------------------------------------------------
    async def submit(self, req: ExecutionRequest) -> asyncio.Future[bytes]:
        """Produce ``req`` (unless it is already pending) and return its result's future.

        Raises BrokerUnavailable when Kafka does not acknowledge within the bound.
        """
        if req.id in self.pending:
            return self.pending[req.id]  # an idempotent retry of an id in flight joins it
        fut = self.watch(req.id)
        req = replace(req, reply_to=self.reply_to, enqueued_at=datetime.now(UTC))
        assert self._producer is not None
        try:
            await asyncio.wait_for(
                self._producer.send_and_wait(self.settings.requests_topic, encode_request(req),
                                             key=req.id.encode()),
                self.settings.request_timeout_s)
        except (KafkaError, TimeoutError, OSError) as e:
            fut.cancel()
            raise BrokerUnavailable(
                f"Kafka did not accept the request within {self.settings.request_timeout_s}s "
                f"({type(e).__name__}); it is safe to retry with the same id") from e
        return fut

    def watch(self, exec_id: str) -> asyncio.Future[bytes]:
        """A future resolved by the first result for ``exec_id`` that this instance sees."""
        fut = self.pending.get(exec_id)
        if fut is None:
            fut = asyncio.get_running_loop().create_future()
            self.pending[exec_id] = fut
            fut.add_done_callback(lambda _: self.pending.pop(exec_id, None))
        return fut

    def lookup(self, exec_id: str) -> bytes | None:
        return self.cache.get(exec_id)

    def is_pending(self, exec_id: str) -> bool:
        return exec_id in self.pending

    def _deliver(self, key: bytes | None, value: bytes | None) -> None:
        if key is None or value is None:
            return
        exec_id = key.decode("utf-8", "replace")
        self.cache.put(exec_id, value)
        fut = self.pending.get(exec_id)
        if fut is not None and not fut.done():
            fut.set_result(value)

    def _announce(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        try:
            doc = orjson.loads(value) if value else None
        except orjson.JSONDecodeError:
            log.warning("ignoring an undecodable worker announcement under %r", key)
            return
        if isinstance(doc, dict):
            self.workers[key.decode("utf-8", "replace")] = doc
        else:  # a tombstone: the worker left for good
            self.workers.pop(key.decode("utf-8", "replace"), None)

    def language_versions(self) -> dict[str, list[str]]:
        """Versions each language is served at, as the workers announced them."""
        versions: dict[str, set[str]] = {}
        for doc in self.workers.values():
            for name, version in (doc.get("languages") or {}).items():
                if isinstance(version, str):
                    versions.setdefault(name, set()).add(version)
        return {name: sorted(v) for name, v in versions.items()}

    async def _follow(self, consumer: AIOKafkaConsumer, what: str) -> None:
        while True:
            try:
                batches = await consumer.getmany(timeout_ms=1000, max_records=500)
            except asyncio.CancelledError:
                raise
            except Exception:  # keep following through broker restarts
                log.exception("reading %s failed; retrying", what)
                await asyncio.sleep(0.5)
                continue
            for tp, records in batches.items():
                deliver = self._announce if tp.topic == self.settings.workers_topic else (
                    self._deliver)
                for record in records:
                    deliver(record.key, record.value)

    # -- readiness -------------------------------------------------------------
    def reply_assigned(self) -> bool:
        return self._replies is not None and bool(self._replies.assignment())

    async def worker_count(self) -> int:
        """Members of the worker group (cached for a second; 0 if unknown)."""
        checked, count = self._members
        if time.monotonic() - checked < 1.0:
            return count
        assert self._admin is not None
        try:
            groups = await asyncio.wait_for(
                self._admin.describe_consumer_groups([self.settings.worker_group]),
                self.settings.request_timeout_s)
            count = sum(len(g.groups[0][5]) for g in groups if g.groups)
        except GroupCoordinatorNotAvailableError:
            count = 0  # no group has ever committed: no worker has joined yet
        except (KafkaError, TimeoutError, OSError) as e:
            raise BrokerUnavailable(f"Kafka did not answer: {type(e).__name__}") from e
        self._members = (time.monotonic(), count)
        return count


async def _start_with_retry(client: Any, deadline: float, bootstrap: str) -> None:
    while True:
        try:
            await asyncio.wait_for(client.start(), max(1.0, deadline - time.monotonic()))
            return
        except (KafkaError, OSError, TimeoutError) as e:
            if time.monotonic() >= deadline:
                raise BrokerUnavailable(f"Kafka at {bootstrap} did not answer: {e!r}") from e
            log.warning("Kafka at %s not reachable yet (%r); retrying", bootstrap, e)
            await asyncio.sleep(1.0)


async def _close(client: Any) -> None:
    if isinstance(client, AIOKafkaAdminClient):
        await client.close()
    else:
        await client.stop()
