"""The request channel: requests out to the worker group, their results back by id.

What a front end (the HTTP ingress) needs of Kafka, in one place: produce a
request through a renewing producer (``streams/requester.py``), correlate the
replies on this instance's partitions of the replies topic (no fan-out), find
any stored result (a :class:`~runstream.streams.results.ResultStore` follows the
compacted results topic, so that any instance answers for any id within
retention), follow the live events and the worker group (``streams/worker_group.py``).

*Someone waits for an id* (:meth:`RequestChannel.waiting`, ``streams/waiters.py``)
and *this instance produced an id* (:meth:`RequestChannel.submit`) are kept apart:
a lookup never makes a later submit of the same id look already produced.
Admission (quotas, backlog) is the front end's: it is told when an id is answered
(:meth:`RequestChannel.on_answer`) and of every result (:meth:`RequestChannel.on_result`).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from runstream.schemas.codec import encode_request
from runstream.schemas.errors import BrokerUnavailable
from runstream.schemas.events import encode_event
from runstream.schemas.events import queued as event_queued
from runstream.schemas.models import ExecutionRequest, ReplyTo
from runstream.schemas.stdin import StdinMessage, encode_stdin
from runstream.services.settings import Settings
from runstream.streams.correlator import Correlator
from runstream.streams.event_feed import EventFeed
from runstream.streams.event_publisher import wants_events
from runstream.streams.requester import Requester
from runstream.streams.results import Listener, ResultStore
from runstream.streams.waiters import Waiters
from runstream.streams.worker_group import GroupWatch, WorkerGroup

log = logging.getLogger(__name__)

#: How late an ingress may read the results topic (see RequestChannel.store).
RESULTS_LAG_MS = 100


@dataclass
class _Produced:
    """Ids this instance produced and has not seen answered, forgotten after a while."""

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


class RequestChannel:
    """Produces requests, follows results and the worker group; hands waiters their result."""

    def __init__(self, settings: Settings, store: ResultStore | None = None) -> None:
        self.settings = settings
        # Replies partitions: the one named by the override setting, else what the
        # ingresses' consumer group gives this instance (any number of identical ones).
        fixed = settings.ingress_reply_partition
        self.name = (f"ingress-{fixed}" if fixed is not None
                     else f"ingress-{socket.gethostname()}-{settings.ingress_port}")
        # Callers hear of their results through the replies; the results are read for
        # look-ups (which read up to the end first) and a reply that went elsewhere, so
        # they are read in batches up to 100 ms late: a fetch and an index write every
        # 100 ms under load, not one per execution.
        self.store = store or ResultStore(settings, name=self.name, lag_ms=RESULTS_LAG_MS)
        self.store.add_listener(self._on_result)
        # Live events (docs/events.md): every event read, for any stream here;
        # this instance itself writes only "queued" (with the request: _produce).
        self.events = EventFeed(settings, name=self.name) if settings.events_enabled else None
        self.waiters = Waiters()
        self._produced = _Produced(
            ttl_s=settings.ingress_deadline_s + settings.ingress_wait_s + 60)
        self._producing: dict[str, asyncio.Task[None]] = {}
        self._answered: list[Callable[[str], None]] = []
        # Only replies to requests it produced from now on matter to it. A reply on a
        # partition that a rebalance moved to another instance still reaches the caller
        # waiting here: every instance also follows the results topic (_on_result).
        self.replies = Correlator(settings, settings.replies_topic, fixed,
                                  client_id=f"runstream-{self.name}-replies",
                                  group=settings.ingress_group if fixed is None else None)
        self.replies.add_listener(self._on_reply)
        #: Sends requests and stdin (renewing a producer whose sequence was lost).
        self.requester = Requester(settings, self.replies, client_id=f"runstream-{self.name}")
        self.group = WorkerGroup(settings, client_id=f"runstream-{self.name}")

    @property
    def watch(self) -> GroupWatch:
        """The worker group as last polled."""
        return self.group.watch

    @property
    def workers(self) -> dict[str, dict[str, Any]]:
        """Each worker's announcement, by worker id."""
        return self.group.workers

    # -- lifecycle -------------------------------------------------------------
    async def start(self, timeout_s: float = 30.0) -> None:
        """Connect to Kafka (retrying until ``timeout_s``) and start following."""
        s = self.settings
        self.waiters.open()
        try:
            await self.requester.connect(timeout_s)
            await self.group.connect([s.requests_topic, s.replies_topic, s.results_topic,
                                      s.workers_topic], timeout_s)
            await self.replies.start(timeout_s)
            await self.store.start(timeout_s)
            if self.events is not None:
                await self.events.start(timeout_s)
        except BaseException:
            await self.stop()
            raise
        await self.group.follow()
        log.info("ingress connected to %s; replies to %s[%s]", s.bootstrap_servers,
                 s.replies_topic, self.replies.partition)

    async def stop(self) -> None:
        """Stop following, release the callers still waiting, close the clients (bounded).

        Callers wait through :attr:`waiters` (``streams/waiters.py``).
        """
        self.waiters.release()
        # Side by side: a broker that is gone costs one close timeout, not one per client.
        await asyncio.gather(
            self.group.stop(), self.requester.stop(timeout_s=5), self.store.stop(),
            *([self.events.stop()] if self.events is not None else []),
            return_exceptions=True)

    # -- requests --------------------------------------------------------------
    def produced(self, exec_id: str) -> bool:
        """This instance produced ``exec_id`` and awaits its result."""
        return exec_id in self._produced

    async def submit(self, req: ExecutionRequest) -> None:
        """Produce ``req`` unless this instance already produced it and awaits its result.

        Concurrent submits of one id share one produce. Raises BrokerUnavailable when
        Kafka does not acknowledge within the bound.
        """
        if req.id in self._produced:
            return  # an idempotent retry of an id in flight joins it
        task = self._producing.get(req.id)
        if task is None:
            task = asyncio.create_task(self._produce(req))
            self._producing[req.id] = task
            task.add_done_callback(lambda _: self._producing.pop(req.id, None))
        await asyncio.shield(task)

    @property
    def reply_to(self) -> ReplyTo:
        """Where workers send this instance's replies now (a rebalance may change it)."""
        return ReplyTo(self.settings.replies_topic, self.replies.partition or 0)

    async def _produce(self, req: ExecutionRequest) -> None:
        s = self.settings
        partition = await self.replies.partition_within(s.request_timeout_s)
        if partition is None:
            raise BrokerUnavailable(
                f"this ingress reads no partition of {s.replies_topic} (its "
                f"group {s.ingress_group!r} is rebalancing, or has more members "
                "than partitions); it is safe to retry with the same id")
        req = replace(req, reply_to=ReplyTo(s.replies_topic, partition),
                      enqueued_at=datetime.now(UTC))
        request = self.requester.send(
            s.requests_topic, req.id, encode_request(req),
            refused="Kafka did not accept the request within {bound}s ({error}); "
                    "it is safe to retry with the same id")
        if self.events is not None and wants_events(s, req):
            # Its "queued" event goes out with it (one produce request) and is stored
            # before the client hears of the run: a client that asks another ingress
            # for the events at once must not get 404 for a run that ingress has not
            # read yet (written in the background, it could arrive after that question).
            queued = event_queued(req.id, req.enqueued_at or datetime.now(UTC), req.language)
            sent, event = await asyncio.gather(request, self.requester.send(
                s.events_topic, req.id, encode_event(queued), refused="{error}"),
                return_exceptions=True)
            if isinstance(sent, BaseException):
                raise sent
            if isinstance(event, Exception):  # the run goes on: only its stream is poorer
                log.warning("id=%s: the queued event was not stored: %s", req.id, event)
        else:
            await request
        self._produced.add(req.id)

    async def send_stdin(self, items: list[StdinMessage]) -> None:
        """Write live stdin items of an interactive execution, in order, to the stdin topic.

        Raises BrokerUnavailable when Kafka does not take one within the bound.
        """
        for item in items:
            await self.requester.send(self.settings.stdin_topic, item.id, encode_stdin(item),
                                       refused="Kafka did not take the input within "
                                               "{bound}s ({error})")

    # -- results ---------------------------------------------------------------
    def cached(self, exec_id: str) -> bytes | None:
        """The result of ``exec_id`` if it is in memory (no Kafka read)."""
        return self.store.cached(exec_id)

    async def find(self, exec_id: str) -> bytes | None:
        """The stored result of ``exec_id`` within retention (reads Kafka if it must)."""
        return await self.store.get(exec_id, timeout_s=self.settings.request_timeout_s)

    def is_pending(self, exec_id: str) -> bool:
        """This instance produced ``exec_id`` and has not seen its result yet."""
        return exec_id in self._produced or exec_id in self._producing

    def on_answer(self, fn: Callable[[str], None]) -> None:
        """Call ``fn(id)`` when an id is answered (a reply or a result), before its waiters."""
        self._answered.append(fn)

    def on_result(self, fn: Listener) -> None:
        """Call ``fn(id, value)`` for every result read from the results topic."""
        self.store.add_listener(fn)

    def _resolve(self, exec_id: str, value: bytes) -> None:
        self._produced.discard(exec_id)
        for fn in self._answered:
            fn(exec_id)
        self.waiters.resolve(exec_id, value)

    def _on_reply(self, exec_id: str, value: bytes) -> None:
        self.store.note(exec_id, value)  # a retry finds it before the results follower does
        self._resolve(exec_id, value)

    def _on_result(self, exec_id: str, value: bytes) -> None:
        self._resolve(exec_id, value)

    # -- the worker group (streams/worker_group.py) ------------------------------
    def language_versions(self) -> dict[str, list[str]]:
        """Versions each language is served at by the live members of the worker group."""
        return self.group.language_versions()

    def reply_assigned(self) -> bool:
        """This instance reads a partition of the replies topic."""
        return self.replies.assigned()

    def worker_count(self) -> int:
        """Members of the worker group at the last poll; NotReady if it is stale."""
        return self.group.worker_count()

    def group_status(self) -> dict[str, Any]:
        """The worker group as last polled: its state and each worker's partitions."""
        return self.group.status()
