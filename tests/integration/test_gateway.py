"""The ingress's Kafka side against a real broker: produce, correlate, cache, 503."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from runstream.schemas.codec import decode_request, request_from_doc
from runstream.schemas.errors import BrokerUnavailable
from runstream.services.ingress.gateway import Gateway
from runstream.services.settings import Settings
from runstream.services.topics import ensure_topics

pytestmark = pytest.mark.kafka


async def _requests(settings: Settings, count: int) -> list[tuple[bytes, bytes]]:
    consumer = AIOKafkaConsumer(settings.requests_topic,
                                bootstrap_servers=settings.bootstrap_servers,
                                auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    got: list[tuple[bytes, bytes]] = []
    try:
        async with asyncio.timeout(20):
            while len(got) < count:
                msg = await consumer.getone()
                got.append((msg.key, msg.value))
    finally:
        await consumer.stop()
    return got


async def _reply(settings: Settings, topic: str, partition: int, key: bytes, doc: dict) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait(topic, orjson.dumps(doc), key=key, partition=partition)
    finally:
        await producer.stop()


async def test_topics_are_created_with_partitions_and_compaction(fresh_settings: Settings) -> None:
    created = await ensure_topics(fresh_settings)
    assert sorted(created) == sorted([fresh_settings.requests_topic, fresh_settings.replies_topic,
                                      fresh_settings.results_topic,
                                      fresh_settings.workers_topic])
    assert await ensure_topics(fresh_settings) == []  # idempotent
    admin = AIOKafkaAdminClient(bootstrap_servers=fresh_settings.bootstrap_servers)
    await admin.start()
    try:
        meta = await admin.describe_topics([fresh_settings.requests_topic])
        assert len(meta[0]["partitions"]) == 4
        entries: dict[str, str] = {}
        async with asyncio.timeout(10):  # a new topic reaches metadata after a moment
            while "cleanup.policy" not in entries:
                configs = await admin.describe_configs(
                    [ConfigResource(ConfigResourceType.TOPIC, fresh_settings.results_topic)])
                entries = {e[0]: e[1] for e in configs[0].resources[0][4]}
                await asyncio.sleep(0.1)
        assert entries["cleanup.policy"] == "compact,delete"
    finally:
        await admin.close()


async def test_request_is_keyed_by_id_and_its_reply_resolves_exactly_once(
        fresh_settings: Settings) -> None:
    await ensure_topics(fresh_settings)
    gateway = Gateway(replace(fresh_settings, ingress_reply_partition=1))
    await gateway.start()
    try:
        req = request_from_doc({"id": "exec-1", "language": "python", "source": "print(1)"})
        fut = await gateway.submit(req)
        (key, value), = await _requests(fresh_settings, 1)
        assert key == b"exec-1"
        sent = decode_request(value, key=key)
        assert sent.reply_to is not None and sent.reply_to.partition == 1
        assert sent.enqueued_at is not None
        answer = {"id": "exec-1", "status": "ok"}
        await _reply(fresh_settings, fresh_settings.replies_topic, 1, key, answer)
        assert orjson.loads(await asyncio.wait_for(fut, 10)) == answer
        # A second reply for the same id (a re-run) resolves nothing and breaks nothing.
        await _reply(fresh_settings, fresh_settings.replies_topic, 1, key, answer)
        assert gateway.lookup("exec-1") is not None
        assert not gateway.is_pending("exec-1")
    finally:
        await gateway.stop()


async def test_two_ingresses_each_get_only_their_own_replies(fresh_settings: Settings) -> None:
    await ensure_topics(fresh_settings)
    a = Gateway(replace(fresh_settings, ingress_reply_partition=0))
    b = Gateway(replace(fresh_settings, ingress_reply_partition=1))
    await a.start()
    await b.start()
    try:
        fa = await a.submit(request_from_doc({"id": "for-a", "language": "python", "source": ""}))
        fb = await b.submit(request_from_doc({"id": "for-b", "language": "python", "source": ""}))
        for key, value in await _requests(fresh_settings, 2):
            req = decode_request(value, key=key)
            assert req.reply_to is not None
            await _reply(fresh_settings, req.reply_to.topic, req.reply_to.partition or 0, key,
                         {"id": req.id, "status": "ok", "to": req.reply_to.partition})
        assert orjson.loads(await asyncio.wait_for(fa, 10))["to"] == 0
        assert orjson.loads(await asyncio.wait_for(fb, 10))["to"] == 1
        # Each read only its own partition: a's replies never reached b's cache.
        assert b.lookup("for-a") is None or b.cache is not a.cache
        assert a.lookup("for-b") is None
    finally:
        await a.stop()
        await b.stop()


async def test_results_topic_answers_get_from_any_instance(fresh_settings: Settings) -> None:
    await ensure_topics(fresh_settings)
    gateway = Gateway(fresh_settings)
    await gateway.start()
    try:
        seen = gateway.watch("someone-elses")
        await _reply(fresh_settings, fresh_settings.results_topic, 0, b"someone-elses",
                     {"id": "someone-elses", "status": "ok"})
        assert orjson.loads(await asyncio.wait_for(seen, 10))["status"] == "ok"
        assert gateway.lookup("someone-elses") is not None
    finally:
        await gateway.stop()


async def test_unreachable_broker_fails_fast(fresh_settings: Settings) -> None:
    dead = replace(fresh_settings, bootstrap_servers="127.0.0.1:1")
    gateway = Gateway(dead)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    with pytest.raises(BrokerUnavailable):
        await gateway.start(timeout_s=1.0)
    assert loop.time() - t0 < 10


async def test_a_started_ingress_reads_recent_results_only(fresh_settings: Settings) -> None:
    """Results within the look-back window are served after a restart; older are skipped."""
    await ensure_topics(fresh_settings)
    producer = AIOKafkaProducer(bootstrap_servers=fresh_settings.bootstrap_servers)
    await producer.start()
    try:
        now_ms = int(time.time() * 1000)
        for exec_id, age_ms in (("old-result", 2 * 3600 * 1000), ("recent-result", 60 * 1000)):
            await producer.send_and_wait(
                fresh_settings.results_topic, orjson.dumps({"id": exec_id, "status": "ok"}),
                key=exec_id.encode(), partition=0, timestamp_ms=now_ms - age_ms)
    finally:
        await producer.stop()
    gateway = Gateway(replace(fresh_settings, ingress_results_lookback_s=3600))
    await gateway.start()
    try:
        recent = gateway.watch("recent-result")  # registered before the follower reads
        assert orjson.loads(await asyncio.wait_for(recent, 10))["id"] == "recent-result"
        assert gateway.lookup("old-result") is None
    finally:
        await gateway.stop()
