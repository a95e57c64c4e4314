"""The Faust worker app against a real broker: our assignor, and flow control that loses nothing.

Two ``streams.faust_app.WorkerApp`` in one group, each with one slot, read a topic
of requests while the second joins half-way (a rebalance in the middle of the
work). The handler is a stand-in that "runs" each request for a moment and stores
its answer in memory (the worker's result store, for the re-delivery check), so
that the test is about Faust, the ledger and the group, not the sandbox.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from runstream.services.settings import Settings
from runstream.streams import faust_app, kafka
from runstream.streams.agent import Agent
from runstream.streams.handling import Delivery
from runstream.streams.topics import ensure_topics

from tests.integration._kafka import until

pytestmark = pytest.mark.kafka

RECORDS = 40
RUN_S = 0.05  # the workload of each stand-in run, not a synchronisation


class _Handler:
    def __init__(self, name: str, answers: dict[bytes, list[str]]) -> None:
        self.name = name
        self.answers = answers
        self.owns: Callable[[Delivery], Any] | None = None
        self.running = 0
        self.most = 0

    async def handle(self, d: Delivery, release: Callable[[], None]) -> bool:
        assert d.key is not None and self.owns is not None
        if d.key in self.answers:  # answered before a rebalance moved its partition
            release()
            return True
        self.running += 1
        self.most = max(self.most, self.running)
        await asyncio.sleep(RUN_S)
        self.running -= 1
        release()
        if not await self.owns(d):
            return False
        self.answers.setdefault(d.key, []).append(self.name)
        return True


async def _start(settings: Settings, name: str,
                 answers: dict[bytes, list[str]]) -> tuple[faust_app.WorkerApp, _Handler]:
    ws = replace(settings, worker_id=f"faust-{name}")
    handler = _Handler(name, answers)
    app = faust_app.build(ws, Agent(ws, handler), [settings.requests_topic])  # type: ignore[arg-type]
    await asyncio.wait_for(app.start(), 60)
    return app, handler


async def test_every_record_answered_once_through_a_rebalance_with_our_assignor(
        fresh_settings: Settings) -> None:
    settings = replace(fresh_settings, worker_concurrency=1, worker_commit_interval_s=0.5,
                       worker_session_timeout_s=6.0, worker_heartbeat_s=1.0)
    await ensure_topics(settings)
    answers: dict[bytes, list[str]] = {}
    apps: list[faust_app.WorkerApp] = []
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers)
    await producer.start()
    try:
        a, ha = await _start(settings, "a", answers)
        apps.append(a)
        await until(lambda: len(a.executions.owned) == settings.requests_partitions, 120,
                    "A owning every partition")
        keys = [f"k{i}".encode() for i in range(RECORDS)]
        for key in keys[: RECORDS // 2]:
            await producer.send_and_wait(settings.requests_topic, b"{}", key=key)
        await until(lambda: len(answers) >= RECORDS // 4, 120, "A answering")
        b, hb = await _start(settings, "b", answers)  # a rebalance in the middle of the work
        apps.append(b)
        for key in keys[RECORDS // 2:]:
            await producer.send_and_wait(settings.requests_topic, b"{}", key=key)
        await until(lambda: set(answers) == set(keys), 90, "every record answered")
        twice = {k: v for k, v in answers.items() if len(v) > 1}
        assert not twice, f"answered twice: {twice}"
        assert ha.most == 1 and hb.most == 1, "a worker ran more records than its slots"
        # Everything is committed in the end: no offset was skipped or left behind.
        partitions = [TopicPartition(settings.requests_topic, p)
                      for p in range(settings.requests_partitions)]
        ends = await _end_offsets(settings, partitions)

        async def committed() -> dict[TopicPartition, int]:
            return await _committed(settings, partitions)

        for app in apps:
            await asyncio.wait_for(app.consumer.commit(), 10)
        got = await committed()
        assert {tp: got.get(tp, 0) for tp in partitions} == ends
        assert await _protocol(settings) == "runstream-busy-sticky"
    finally:
        await producer.stop()
        for app in apps:
            app.executions.stopping = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(app.stop(), 10)


async def _end_offsets(settings: Settings, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
    consumer = kafka.consumer(settings, client_id="faust-test-ends")
    await kafka.start(consumer, settings)
    try:
        return dict(await consumer.end_offsets(tps))
    finally:
        await kafka.close(consumer)


async def _committed(settings: Settings, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(settings.worker_group, partitions=tps)
        return {tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}
    finally:
        await admin.close()


async def _protocol(settings: Settings) -> str:
    """The assignment protocol the broker recorded for the worker group."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        described = await admin.describe_consumer_groups([settings.worker_group])
        # DescribeGroupsResponse: groups = [(error, group, state, protocol_type, protocol, …)]
        group = described[0].groups[0]
        return str(group[4])
    finally:
        await admin.close()
