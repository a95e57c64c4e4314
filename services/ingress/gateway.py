"""The ingress's Kafka side: produce requests, correlate results by execution id.

Each ingress instance reads only its own partition of the replies topic (no
fan-out); a :class:`~runstream.streams.results.ResultStore` follows the compacted
results topic so that any instance answers ``GET /v1/executions/{id}`` and
idempotent retries for any id within retention.

Two things are kept apart on purpose: *someone waits for an id* (a POST or a
long-polling GET: :meth:`Gateway.waiting`) and *this ingress produced an id*
(:meth:`Gateway.submit`). A GET therefore never makes a later POST of the same
id look already produced, and a reply that arrives twice (a re-run after a
worker crash) resolves nothing the second time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from runstream.schemas.codec import encode_request
from runstream.schemas.errors import BrokerUnavailable, NotReady
from runstream.schemas.events import queued as event_queued
from runstream.schemas.models import ExecutionRequest, ReplyTo
from runstream.schemas.stdin import StdinMessage, encode_stdin
from runstream.services.ingress.admission import Backlog, execution_seconds
from runstream.services.ingress.caller import admit
from runstream.services.ingress.group import WORKER_CLIENT_PREFIX, GroupWatch
from runstream.services.ingress.quotas import InFlight
from runstream.services.settings import Settings
from runstream.streams import kafka
from runstream.streams.correlator import Correlator
from runstream.streams.event_feed import EventFeed
from runstream.streams.event_publisher import EventPublisher, wants_events
from runstream.streams.kafka import SEQUENCE_LOST
from runstream.streams.producer import RenewingProducer
from runstream.streams.results import ResultStore

log = logging.getLogger(__name__)


@dataclass
class _Waiter:
    future: asyncio.Future[bytes]
    count: int = 0


@dataclass
class _Produced:
    """Ids this ingress produced and has not seen answered, forgotten after a while."""

    ttl_s: float
    at: dict[str, float] = field(default_factory=dict)
    order: deque[tuple[float, str]] = field(default_factory=deque)

    def add(self, exec_id: str) -> None:
        now = time.monotonic()
        self.at[exec_id] = now
        self.order.append((now, exec_id))
        # A result that never comes (a lost worker) must not keep its id forever.
        while self.order and self.order[0][0] < now - self.ttl_s:
            then, old = self.order.popleft()
            if self.at.get(old) == then:
                del self.at[old]

    def __contains__(self, exec_id: object) -> bool:
        return exec_id in self.at

    def discard(self, exec_id: str) -> None:
        self.at.pop(exec_id, None)


class Gateway:
    """Produces requests, follows results and the worker group; hands callers their result."""

    def __init__(self, settings: Settings, store: ResultStore | None = None) -> None:
        self.settings = settings
        # Replies partitions: the one named by the override setting, else what the
        # ingresses' consumer group gives this instance (any number of identical ones).
        fixed = settings.ingress_reply_partition
        self.name = (f"ingress-{fixed}" if fixed is not None
                     else f"ingress-{socket.gethostname()}-{settings.ingress_port}")
        self.store = store or ResultStore(settings, name=self.name)
        self.store.add_listener(self._on_result)
        # Live events (docs/events.md): every event read, for any stream here;
        # this ingress itself writes only "queued".
        self.events = EventFeed(settings, name=self.name) if settings.events_enabled else None
        self.event_writer = (EventPublisher(settings, client_id=f"runstream-{self.name}-events")
                             if settings.events_enabled else None)
        self.waiters: dict[str, _Waiter] = {}
        self.produced = _Produced(ttl_s=settings.ingress_deadline_s + settings.ingress_wait_s + 60)
        self._producing: dict[str, asyncio.Task[None]] = {}
        self.workers: dict[str, dict[str, Any]] = {}  # worker id -> its announcement
        self.backlog = Backlog(settings.ingress_max_backlog_s)
        self.inflight = InFlight()  # each API key's executions not finished yet (its quota)
        self._producer = RenewingProducer(settings, client_id=f"runstream-{self.name}")
        # Only replies to requests it produced from now on matter to it. A reply on a
        # partition that a rebalance moved to another ingress still reaches the caller
        # waiting here: every ingress also follows the results topic (_on_result).
        self.replies = Correlator(settings, settings.replies_topic, fixed,
                                  client_id=f"runstream-{self.name}-replies",
                                  group=settings.ingress_group if fixed is None else None)
        self.replies.add_listener(self._on_reply)
        self._announcements: AIOKafkaConsumer | None = None
        self._admin: AIOKafkaAdminClient | None = None
        self.watch: GroupWatch | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._release: asyncio.Future[None] | None = None
        self._idle: asyncio.Event | None = None

    # -- lifecycle -------------------------------------------------------------
    async def start(self, timeout_s: float = 30.0) -> None:
        """Connect to Kafka (retrying until ``timeout_s``) and start following."""
        s = self.settings
        self._release = asyncio.get_running_loop().create_future()
        self._idle = asyncio.Event()
        self._idle.set()
        self._announcements = kafka.consumer(s, client_id=f"runstream-{self.name}-workers",
                                             auto_offset_reset="earliest")
        self._admin = kafka.admin(s, client_id=f"runstream-{self.name}-admin")
        try:
            await self._producer.start(timeout_s)
            for client in (self._announcements, self._admin):
                await kafka.start(client, s, timeout_s=timeout_s)
            await self._assign(timeout_s)
            await self.replies.start(timeout_s)
            await self.store.start(timeout_s)
            for part in (self.events, self.event_writer):
                if part is not None:
                    await part.start(timeout_s)
        except BaseException:
            await self.stop()
            raise
        self.watch = GroupWatch(s, self._admin, self._announcements, self.workers)
        self.watch.on_poll_start.append(self.backlog.poll_started)
        self.watch.on_poll.append(lambda w: self.backlog.on_poll(w.lag, w.slots))
        self.watch.start()
        self._tasks = [asyncio.create_task(
            kafka.follow(self._announcements, lambda r: self._announce(r.key, r.value),
                         what=s.workers_topic), name="announcements")]
        await self.watch.first_poll(s.request_timeout_s * 2)
        log.info("ingress connected to %s; replies to %s[%s]", s.bootstrap_servers,
                 s.replies_topic, self.replies.partition)

    async def _assign(self, timeout_s: float) -> None:
        s = self.settings
        assert self._announcements is not None and self._admin is not None
        # Fresh topics take a moment to appear in metadata: ask again for a while.
        names = [s.requests_topic, s.replies_topic, s.results_topic, s.workers_topic]
        deadline = time.monotonic() + max(timeout_s, 10 * s.request_timeout_s)
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
        self._announcements.assign([TopicPartition(s.workers_topic, p)
                                    for p in range(parts[s.workers_topic])])

    async def stop(self) -> None:
        """Stop following, release the callers still waiting, close the clients (bounded)."""
        self.release()
        if self.watch is not None:
            await self.watch.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 5)
        # Side by side: a broker that is gone costs one close timeout, not one per client.
        await asyncio.gather(
            *(kafka.close(c, timeout_s=5) for c in (self._announcements, self._admin)),
            self._producer.stop(timeout_s=5),
            self.replies.stop(), self.store.stop(),
            *(part.stop() for part in (self.events, self.event_writer) if part is not None),
            return_exceptions=True)

    # -- waiting ---------------------------------------------------------------
    @contextlib.contextmanager
    def waiting(self, exec_id: str) -> Iterator[asyncio.Future[bytes]]:
        """Register interest in ``exec_id`` for the block: its result resolves the future.

        Register before looking the id up, so a result arriving in between is not missed.
        """
        waiter = self.waiters.get(exec_id)
        if waiter is None:
            waiter = self.waiters[exec_id] = _Waiter(asyncio.get_running_loop().create_future())
            if self._idle is not None:
                self._idle.clear()
        waiter.count += 1
        try:
            yield waiter.future
        finally:
            waiter.count -= 1
            if waiter.count == 0 and self.waiters.get(exec_id) is waiter:
                del self.waiters[exec_id]
                if not waiter.future.done():
                    waiter.future.cancel()
                if not self.waiters and self._idle is not None:
                    self._idle.set()

    async def wait(self, future: asyncio.Future[bytes], timeout_s: float) -> bytes | None:
        """The result, or None after ``timeout_s`` or once :meth:`release` was called."""
        if not future.done() and timeout_s > 0:
            waits: list[asyncio.Future[Any]] = [future]
            if self._release is not None:
                waits.append(self._release)
            await asyncio.wait(waits, timeout=timeout_s,
                               return_when=asyncio.FIRST_COMPLETED)
        if future.done() and not future.cancelled():
            return future.result()
        return None

    @property
    def stopping(self) -> asyncio.Future[None] | None:
        """Resolved once :meth:`release` was called: long waits (event streams) end."""
        return self._release

    def release(self) -> None:
        """Every wait, current and future, returns now (the ingress is stopping)."""
        if self._release is not None and not self._release.done():
            self._release.set_result(None)

    async def idle(self, timeout_s: float) -> bool:
        """Wait until nobody waits for a result; False if some still do after ``timeout_s``."""
        if self._idle is None:
            return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        return self._idle.is_set()

    # -- requests --------------------------------------------------------------
    async def submit(self, req: ExecutionRequest) -> None:
        """Produce ``req`` unless this ingress already produced it and awaits its result.

        Raises BrokerUnavailable when Kafka does not acknowledge within the bound.
        """
        if req.id in self.produced:
            return  # an idempotent retry of an id in flight joins it
        # The caller's API key (auth.py): its id stamped, its languages and concurrency
        # quota enforced (403, 429), for every route that produces.
        req = admit(req, self.inflight, self.settings, self.backlog.mean_exec_s)
        task = self._producing.get(req.id)
        if task is None:
            task = asyncio.create_task(self._produce(req))
            self._producing[req.id] = task
            task.add_done_callback(lambda _: self._producing.pop(req.id, None))
        try:
            await asyncio.shield(task)
        except BrokerUnavailable:
            self.inflight.release(req.id)  # not produced: it holds no slot
            raise

    @property
    def reply_to(self) -> ReplyTo:
        """Where workers send this ingress's replies now (a rebalance may change it)."""
        return ReplyTo(self.settings.replies_topic, self.replies.partition or 0)

    async def _produce(self, req: ExecutionRequest) -> None:
        partition = await self.replies.partition_within(self.settings.request_timeout_s)
        if partition is None:
            raise BrokerUnavailable(
                f"this ingress reads no partition of {self.settings.replies_topic} (its "
                f"group {self.settings.ingress_group!r} is rebalancing, or has more members "
                "than partitions); it is safe to retry with the same id")
        req = replace(req, reply_to=ReplyTo(self.settings.replies_topic, partition),
                      enqueued_at=datetime.now(UTC))
        if self.event_writer is not None and wants_events(self.settings, req):
            # fire-and-forget, alongside the request
            self.event_writer.emit(event_queued(req.id, req.enqueued_at or datetime.now(UTC),
                                                req.language))
        producer = self._producer.producer
        try:
            await asyncio.wait_for(
                producer.send_and_wait(self.settings.requests_topic, encode_request(req),
                                       key=req.id.encode()),
                self.settings.request_timeout_s)
        except (KafkaError, TimeoutError, OSError) as e:
            if isinstance(e, SEQUENCE_LOST):
                await self._renew(producer)
            raise BrokerUnavailable(
                f"Kafka did not accept the request within {self.settings.request_timeout_s}s "
                f"({type(e).__name__}); it is safe to retry with the same id") from e
        self.produced.add(req.id)

    async def send_stdin(self, items: list[StdinMessage]) -> None:
        """Write live stdin items of an interactive execution, in order, to the stdin topic.

        Raises BrokerUnavailable when Kafka does not take one within the bound.
        """
        topic, bound = self.settings.stdin_topic, self.settings.request_timeout_s
        for item in items:
            producer = self._producer.producer
            try:
                await asyncio.wait_for(producer.send_and_wait(
                    topic, encode_stdin(item), key=item.id.encode()), bound)
            except (KafkaError, TimeoutError, OSError) as e:
                if isinstance(e, SEQUENCE_LOST):
                    await self._renew(producer)
                raise BrokerUnavailable(f"Kafka did not take the input within {bound}s "
                                        f"({type(e).__name__})") from e

    async def _renew(self, failed: AIOKafkaProducer) -> None:
        """A new producer for one whose sequence was lost (``streams/producer.py``).

        The request that met it is answered 503 (safe to retry with the same id);
        the retry goes through the new producer.
        """
        try:
            await self._producer.renew(failed)
        except Exception as e:  # the broker still away: the next failure asks again
            log.warning("a new producer could not start (%r)", e)

    def cached(self, exec_id: str) -> bytes | None:
        return self.store.cached(exec_id)

    async def find(self, exec_id: str) -> bytes | None:
        """The stored result of ``exec_id`` within retention (reads Kafka if it must)."""
        return await self.store.get(exec_id, timeout_s=self.settings.request_timeout_s)

    def is_pending(self, exec_id: str) -> bool:
        """This ingress produced ``exec_id`` and has not seen its result yet."""
        return exec_id in self.produced or exec_id in self._producing

    def _resolve(self, exec_id: str, value: bytes) -> None:
        self.produced.discard(exec_id)
        self.inflight.release(exec_id)
        waiter = self.waiters.get(exec_id)
        if waiter is not None and not waiter.future.done():
            waiter.future.set_result(value)

    def _on_reply(self, exec_id: str, value: bytes) -> None:
        self.store.note(exec_id, value)  # a retry finds it before the results follower does
        self._resolve(exec_id, value)

    def _on_result(self, exec_id: str, value: bytes) -> None:
        seconds = execution_seconds(value)
        if seconds is not None:
            self.backlog.on_execution(seconds)
        self._resolve(exec_id, value)

    # -- workers ---------------------------------------------------------------
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
        """Versions each language is served at by the live members of the worker group."""
        live = self.watch.live_workers if self.watch is not None else set()
        versions: dict[str, set[str]] = {}
        for wid in live:
            for name, version in (self.workers[wid].get("languages") or {}).items():
                if isinstance(version, str):
                    versions.setdefault(name, set()).add(version)
        return {name: sorted(v) for name, v in versions.items()}

    # -- readiness -------------------------------------------------------------
    def reply_assigned(self) -> bool:
        return self.replies.assigned()

    def worker_count(self) -> int:
        """Members of the worker group at the last poll; NotReady if it is stale."""
        w = self.watch
        stale_s = max(5.0, self.settings.request_timeout_s * 3)
        if w is None or not w.polled_at or time.monotonic() - w.polled_at > stale_s:
            why = w.error if w is not None and w.error else "not polled yet"
            raise NotReady(f"the worker group {self.settings.worker_group!r} could not be "
                           f"described: {why}")
        return len(w.members)

    def group_status(self) -> dict[str, Any]:
        """The worker group as last polled: its state and each worker's partitions."""
        w = self.watch
        if w is None:
            return {"state": "", "partitions": {}}
        return {"state": w.state,
                "partitions": {cid.removeprefix(WORKER_CLIENT_PREFIX): parts
                               for cid, parts in sorted(w.assigned.items())}}
