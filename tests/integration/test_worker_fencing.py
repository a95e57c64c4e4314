"""A worker cut off from its group coordinator runs nothing twice (real Kafka, real agents).

The fault: worker A's connection to the group coordinator fails while its fetches
from the partition leader go on. On a replicated Kafka that is what a dead
coordinator node does (the cluster chaos run, docs/cluster.md "Faults on the cluster"); one
broker is coordinator and leader at once, so here the coordination requests are
failed in A's client (``_CutOff``): a fault that cannot be produced for real on a
single node, injected one layer under aiokafka's group coordinator. Everything else
is real: two Faust worker apps (``streams.faust_app``) in one group with the worker's
assignor and agents, the broker's session timeout, eviction and rebalance.

The handler is a stand-in that "runs" each request for a few seconds and then
publishes it, if the agent confirms it still may, into a shared in-memory store
(which is what the worker's result store is for a re-delivery check).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.client import ConnectionGroup
from aiokafka.errors import KafkaConnectionError
from runstream.services.settings import Settings
from runstream.streams import faust_app
from runstream.streams.agent import Agent
from runstream.streams.handling import Delivery
from runstream.streams.topics import ensure_topics

from tests.integration._kafka import until

pytestmark = pytest.mark.kafka

RUN_S = 8.0  # longer than the session timeout: A still runs when B takes its partitions


class _CutOff:
    """A's Kafka client as its group coordinator sees it: coordination requests fail."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.cut = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    async def send(self, node_id: int, request: Any, *, group: Any = ConnectionGroup.DEFAULT,
                   **kw: Any) -> Any:
        if self.cut and group == ConnectionGroup.COORDINATION:
            raise KafkaConnectionError("injected: the group coordinator is unreachable")
        return await self._client.send(node_id, request, group=group, **kw)


@dataclass
class Store:
    """Published answers (id -> worker), and every run started (worker, id)."""

    published: dict[bytes, list[str]] = field(default_factory=dict)
    runs: list[tuple[str, bytes]] = field(default_factory=list)
    dropped: list[tuple[str, bytes]] = field(default_factory=list)


class _Handler:
    def __init__(self, name: str, store: Store) -> None:
        self.name = name
        self.store = store
        self.owns: Callable[[Delivery], Any] | None = None

    async def handle(self, d: Delivery, release: Callable[[], None]) -> bool:
        assert d.key is not None and self.owns is not None
        if d.redelivery and d.key in self.store.published:
            release()
            return True  # answered by the previous owner: sent again, not re-run
        self.store.runs.append((self.name, d.key))
        await asyncio.sleep(RUN_S)  # the workload itself, not a synchronisation
        release()
        if not await self.owns(d):
            self.store.dropped.append((self.name, d.key))
            return False
        self.store.published.setdefault(d.key, []).append(self.name)
        return True


@dataclass
class _Worker:
    name: str
    app: faust_app.WorkerApp
    agent: Agent

    @property
    def consumer(self) -> AIOKafkaConsumer:
        """The aiokafka consumer in the app's consumer thread."""
        return self.app.consumer._thread._consumer  # type: ignore[attr-defined,no-any-return]


async def _worker(settings: Settings, name: str, store: Store) -> _Worker:
    handler = _Handler(name, store)
    agent = Agent(replace(settings, worker_id=f"fence-{name}"), handler)  # type: ignore[arg-type]
    app = faust_app.build(replace(settings, worker_id=f"fence-{name}"), agent,
                          [settings.requests_topic])
    await asyncio.wait_for(app.start(), 60)
    return _Worker(name, app, agent)


async def test_a_worker_cut_off_from_the_coordinator_publishes_nothing_run_elsewhere(
        fresh_settings: Settings) -> None:
    settings = replace(fresh_settings, worker_session_timeout_s=3.0, worker_heartbeat_s=1.0,
                       worker_concurrency=2, worker_commit_interval_s=0.5)
    await ensure_topics(settings)
    partitions = settings.requests_partitions
    store = Store()
    a = await _worker(settings, "a", store)
    b = await _worker(settings, "b", store)
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers)
    await producer.start()
    try:
        await until(lambda: len(a.agent.owned) + len(b.agent.owned) == partitions
                     and bool(a.agent.owned) and bool(b.agent.owned), 30, "a settled group")
        cut = _CutOff(a.consumer._coordinator._client)
        a.consumer._coordinator._client = cut
        # One request on each of A's partitions: A runs them, B is idle.
        keys = []
        for p in sorted(tp.partition for tp in a.agent.owned):
            keys.append(f"r{p}".encode())
            await producer.send_and_wait(settings.requests_topic, b"{}", key=keys[-1],
                                         partition=p)
        await until(lambda: sum(w == "a" for w, _ in store.runs) >= min(len(keys), 2), 30,
                     "A running its requests")
        cut.cut = True
        # The broker drops A after the session timeout, and B takes every partition and
        # runs A's requests again (they are not answered yet).
        await until(lambda: len(b.agent.owned) == partitions, 30,
                     "the group dropped A and gave B every partition")
        assert a.agent._lapsed_at is not None, "A never noticed that it may have been dropped"
        cut.cut = False  # A reaches the coordinator again, learns it was dropped, rejoins
        await until(lambda: set(store.published) >= set(keys), 60, "every request answered")
        await until(lambda: not a.agent.tasks and not b.agent.tasks, 60, "every run over")
        twice = {k: v for k, v in store.published.items() if len(v) > 1}
        assert not twice, f"answered twice: {twice}"
        # A ran them first, and dropped its results: B, their owner by then, answered.
        a_ran = [k for w, k in store.runs if w == "a"]
        assert a_ran and all((("a", k) in store.dropped) for k in a_ran), store
        assert all(store.published[k] == ["b"] for k in a_ran), store.published
    finally:
        await producer.stop()
        for w in (a, b):
            w.agent.stopping = True
            for t in list(w.agent.tasks):
                t.cancel()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(w.app.stop(), 10)
