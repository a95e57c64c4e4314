"""The worker: sandbox, result store, producer, then the Faust app, in order.

:class:`WorkerNode` starts them, serves until asked to stop, then drains:
no new request, running executions finish for ``RUNSTREAM_WORKER_DRAIN_S``, the
rest are killed (left uncommitted, so another worker runs them), what is safe is
committed, the announcement is withdrawn and the Faust app stopped (it commits
again and leaves the group: its partitions move at once). Each closing step is
bounded; the process entry point (``services/worker.py``) adds the signals and a
watchdog.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from typing import Any

import orjson
from runstream.schemas.errors import BrokerUnavailable
from runstream.services.execution.executor import start_executor
from runstream.services.execution.languages import Registry
from runstream.services.execution.sandbox.base import Sandbox
from runstream.services.settings import Settings
from runstream.streams import faust_app
from runstream.streams.agent import Agent
from runstream.streams.copartition import co_partitions
from runstream.streams.event_publisher import EventPublisher
from runstream.streams.handling import Handler
from runstream.streams.producer import RenewingProducer
from runstream.streams.publish import Publisher
from runstream.streams.results import ResultStore
from runstream.streams.stdin_feed import StdinFeed
from runstream.streams.topics import ensure_topics, language_topic

log = logging.getLogger(__name__)

#: Time a stop may take beyond the drain bound: commits, leaving the group, closing.
CLOSE_BUDGET_S = 8.0
_COMMIT_BOUND_S = 2.0
_APP_STOP_BOUND_S = 3.0
#: Starting the app includes joining the group and the first assignment.
_START_BOUND_S = 120.0


class WorkerNode:
    """Everything one worker runs, started and stopped in order."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.producer = RenewingProducer(settings,
                                         client_id=f"runstream-worker-{settings.worker_id}")
        # The worker reads the results for re-deliveries and duplicates only; its own
        # answers it notes at once. Reading them in batches, 100 ms late at most, spares
        # a fetch and an index write per execution on every worker.
        self.store = ResultStore(settings, name=f"worker-{settings.worker_id}", lag_ms=100,
                                 moves=True)
        self.app: faust_app.WorkerApp | None = None
        self.agent: Agent | None = None
        self.sandbox: Sandbox | None = None
        self.events = (EventPublisher(settings, client_id=f"runstream-worker-{settings.worker_id}"
                                      "-events") if settings.events_enabled else None)
        #: Live stdin of interactive executions (docs/piston.md).
        self.stdin = StdinFeed(settings, name=f"worker-{settings.worker_id}")
        self.stop_requested = asyncio.Event()
        self._following: asyncio.Task[None] | None = None

    async def run(self) -> None:
        """Serve until :attr:`stop_requested` is set, then stop within the bound."""
        try:
            agent = await self._start()
            await self._serve(agent)
        finally:
            await self._close()

    async def _start(self) -> Agent:
        s = self.settings
        catalogue = Registry.from_settings(s)
        executor = await start_executor(s, catalogue)
        self.sandbox = executor.sandbox
        await ensure_topics(s)  # the language topics of a newer registry, if missing
        await self.producer.start()
        await self.store.start()
        if self.events is not None:
            await self.events.start()
        await self.stdin.start()  # before any request is taken: its input is kept
        handler = Handler(s, executor, Publisher(s, self.producer),
                          self.store, catalogue,
                          events=self.events, stdin=self.stdin)
        agent = Agent(s, handler)
        agent.on_owned = self._follow_results
        self.app = faust_app.build(
            s, agent, [s.requests_topic, *(language_topic(s, lang.name)
                                           for lang in executor.registry)])
        # Returns once the first assignment is done (Faust waits for its "recovery").
        await asyncio.wait_for(self.app.start(), _START_BOUND_S)
        self.agent = agent
        await self._announce(executor.registry)
        log.info("worker %s serves %s with the %s sandbox, %d at a time", s.worker_id,
                 ", ".join(f"{lang.name} {lang.version}" for lang in executor.registry),
                 self.sandbox.name, s.worker_concurrency)
        return agent

    async def _serve(self, agent: Agent) -> None:
        assert self.app is not None
        crashed = asyncio.create_task(self.app.wait_until_stopped(), name="faust")
        stop_task = asyncio.create_task(self.stop_requested.wait())
        await asyncio.wait({crashed, stop_task}, return_when=asyncio.FIRST_COMPLETED)
        stop_task.cancel()
        crashed.cancel()
        if self.app.crash_reason is not None:
            raise self.app.crash_reason  # Faust stopped by itself: say why
        log.info("worker %s stopping", self.settings.worker_id)
        await agent.drain(self.settings.worker_drain_s)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.app.consumer.commit(), _COMMIT_BOUND_S)

    async def _close(self) -> None:
        """Close in order, each step bounded: nothing here can hold the stop."""
        await self._withdraw()
        if self.app is not None:  # commits what is safe, leaves the group
            try:
                await asyncio.wait_for(self.app.stop(), _APP_STOP_BOUND_S)
            except Exception as e:
                log.warning("stopping the Faust app took too long or failed (%r)", e)
        if self._following is not None:
            self._following.cancel()
        await self.store.stop()
        await self.stdin.stop()
        await self.producer.stop()
        if self.events is not None:
            await self.events.stop(timeout_s=1.0)
        if self.sandbox is not None:
            await asyncio.wait_for(self.sandbox.stop(), 5.0)

    def _follow_results(self, owned: frozenset[Any]) -> None:
        """Follow the results partitions of the request partitions owned (co-partitioning).

        In the background, the latest assignment winning: a lookup of an id whose
        partition is not followed follows it first (``ResultStore.get``), so a late
        change costs a lookup some time, never a wrong "not stored".
        """
        s = self.settings
        counts = {s.requests_topic: s.requests_partitions}
        wanted: set[int] | None = set()
        for topic in {tp.topic for tp in owned}:
            source = counts.get(topic, s.language_topic_partitions)
            parts = co_partitions((tp.partition for tp in owned if tp.topic == topic),
                                  source, s.results_partitions)
            if parts is None or wanted is None:
                wanted = None
            else:
                wanted |= parts
        if self._following is not None:
            self._following.cancel()
        self._following = asyncio.create_task(self._follow(wanted), name="follow-results")

    async def _follow(self, wanted: set[int] | None) -> None:
        try:
            await self.store.follow(wanted)
        except TimeoutError:
            log.info("the results index applies the new partitions later")

    async def _announce(self, registry: Registry) -> None:
        """Tell ingresses what this worker serves (compacted topic, keyed by worker id)."""
        s = self.settings
        assert self.sandbox is not None
        doc: dict[str, Any] = {
            "worker": s.worker_id, "backend": self.sandbox.name,
            "concurrency": s.worker_concurrency,
            "languages": {lang.name: lang.version for lang in registry},
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        await self._send_announcement(orjson.dumps(doc))

    async def _withdraw(self) -> None:
        """A tombstone: this worker serves nothing any more."""
        if self.producer.current is not None:
            with contextlib.suppress(BrokerUnavailable):
                await self._send_announcement(None, timeout_s=2.0)

    async def _send_announcement(self, value: bytes | None, timeout_s: float = 30.0) -> None:
        try:
            await asyncio.wait_for(self.producer.producer.send_and_wait(
                self.settings.workers_topic, value, key=self.settings.worker_id.encode()),
                timeout_s)
        except Exception as e:
            raise BrokerUnavailable(f"could not announce the worker: {e!r}") from e
