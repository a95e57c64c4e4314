"""The request channel (the ingress's Kafka half) against a real broker: produce,
correlate, store, group, 503; and the ingress's admission fed by its group watch."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from runstream.schemas.codec import decode_request, request_from_doc
from runstream.schemas.errors import BrokerUnavailable
from runstream.services.ingress.gateway import Gateway
from runstream.services.settings import Settings
from runstream.streams import kafka
from runstream.streams.channel import RequestChannel
from runstream.streams.topics import ensure_topics

from tests.integration._kafka import LostSequence, produced_requests, send_json

pytestmark = pytest.mark.kafka


@pytest.fixture
def settings(fresh_settings: Settings, tmp_path: Path) -> Settings:
    return replace(fresh_settings, index_dir=str(tmp_path / "index"))


async def test_topics_are_created_with_partitions_and_compaction(fresh_settings: Settings) -> None:
    created = await ensure_topics(fresh_settings)
    assert set(created) >= {fresh_settings.requests_topic, fresh_settings.replies_topic,
                            fresh_settings.results_topic, fresh_settings.workers_topic}
    assert await ensure_topics(fresh_settings) == []  # idempotent
    admin = AIOKafkaAdminClient(bootstrap_servers=fresh_settings.bootstrap_servers)
    await admin.start()
    try:
        partitions: list[object] = []
        entries: dict[str, str] = {}
        async with asyncio.timeout(10):  # a new topic reaches metadata after a moment
            while not partitions:  # CI once saw none right after the creation
                meta = await admin.describe_topics([fresh_settings.requests_topic])
                partitions = meta[0]["partitions"]
                await asyncio.sleep(0.1)
            while "cleanup.policy" not in entries:
                configs = await admin.describe_configs(
                    [ConfigResource(ConfigResourceType.TOPIC, fresh_settings.results_topic)])
                entries = {e[0]: e[1] for e in configs[0].resources[0][4]}
                await asyncio.sleep(0.1)
        assert len(partitions) == 4
        assert entries["cleanup.policy"] == "compact,delete"
    finally:
        await admin.close()


async def test_request_is_keyed_by_id_and_its_reply_resolves_exactly_once(
        settings: Settings) -> None:
    await ensure_topics(settings)
    gateway = RequestChannel(replace(settings, ingress_reply_partition=1))
    await gateway.start()
    try:
        req = request_from_doc({"id": "exec-1", "language": "python", "source": "print(1)"})
        with gateway.waiters.waiting("exec-1") as fut:
            await gateway.submit(req)
            await gateway.submit(req)  # a retry of an id in flight is not produced again
            assert gateway.is_pending("exec-1")
            (key, value), = await produced_requests(settings, 1)
            assert key == b"exec-1"
            sent = decode_request(value, key=key)
            assert sent.reply_to is not None and sent.reply_to.partition == 1
            assert sent.enqueued_at is not None
            answer = {"id": "exec-1", "status": "ok"}
            await send_json(settings, settings.replies_topic, 1, key, answer)
            assert orjson.loads(await gateway.waiters.wait(fut, 10) or b"") == answer
        # A second reply for the same id (a re-run) resolves nothing and breaks nothing.
        await send_json(settings, settings.replies_topic, 1, key, answer)
        assert gateway.cached("exec-1") is not None
        assert not gateway.is_pending("exec-1") and not gateway.waiters
    finally:
        await gateway.stop()


async def test_two_ingresses_each_get_only_their_own_replies(settings: Settings) -> None:
    await ensure_topics(settings)
    a = RequestChannel(replace(settings, ingress_reply_partition=0))
    b = RequestChannel(replace(settings, ingress_reply_partition=1))
    await a.start()
    await b.start()
    try:
        with a.waiters.waiting("for-a") as fa, b.waiters.waiting("for-b") as fb:
            await a.submit(request_from_doc({"id": "for-a", "language": "python", "source": ""}))
            await b.submit(request_from_doc({"id": "for-b", "language": "python", "source": ""}))
            for key, value in await produced_requests(settings, 2):
                req = decode_request(value, key=key)
                assert req.reply_to is not None
                await send_json(settings, req.reply_to.topic, req.reply_to.partition or 0, key,
                             {"id": req.id, "status": "ok", "to": req.reply_to.partition})
            assert orjson.loads(await a.waiters.wait(fa, 10) or b"")["to"] == 0
            assert orjson.loads(await b.waiters.wait(fb, 10) or b"")["to"] == 1
        # Each read only its own partition: a's replies never reached b.
        assert b.cached("for-a") is None
        assert a.cached("for-b") is None
    finally:
        await a.stop()
        await b.stop()


async def test_results_topic_answers_get_from_any_instance(settings: Settings) -> None:
    await ensure_topics(settings)
    gateway = RequestChannel(settings)
    await gateway.start()
    try:
        with gateway.waiters.waiting("someone-elses") as seen:
            await send_json(settings, settings.results_topic, 0, b"someone-elses",
                         {"id": "someone-elses", "status": "ok"})
            assert orjson.loads(await gateway.waiters.wait(seen, 10) or b"")["status"] == "ok"
        assert gateway.cached("someone-elses") is not None
    finally:
        await gateway.stop()


async def test_unreachable_broker_fails_fast(settings: Settings) -> None:
    dead = replace(settings, bootstrap_servers="127.0.0.1:1")
    gateway = RequestChannel(dead)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    with pytest.raises(BrokerUnavailable):
        await gateway.start(timeout_s=1.0)
    assert loop.time() - t0 < 10


async def test_a_started_ingress_finds_results_older_than_itself(settings: Settings) -> None:
    """Any id within retention, however old: no look-back window any more."""
    await ensure_topics(settings)
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait(
            settings.results_topic, orjson.dumps({"id": "old-result", "status": "ok"}),
            key=b"old-result", partition=0,
            timestamp_ms=int(time.time() * 1000) - 2 * 3600 * 1000)  # before any look-back
    finally:
        await producer.stop()
    gateway = RequestChannel(settings)
    await gateway.start()
    try:
        assert orjson.loads(await gateway.find("old-result") or b"")["id"] == "old-result"
    finally:
        await gateway.stop()


@pytest.fixture
async def fake_worker(settings: Settings) -> AsyncIterator[AIOKafkaConsumer]:
    """A member of the worker group named like a worker, with its announcement."""
    await ensure_topics(settings)
    await send_json(settings, settings.workers_topic, 0, b"w1",
                 {"worker": "w1", "concurrency": 3, "languages": {"python": "3.11.2"}})
    await send_json(settings, settings.workers_topic, 0, b"dead",
                 {"worker": "dead", "concurrency": 5, "languages": {"ruby": "3.1.2"}})
    member = kafka.consumer(settings, client_id="runstream-worker-w1",
                            group_id=settings.worker_group, auto_offset_reset="earliest")
    await kafka.start(member, settings)
    joined = asyncio.Event()

    class Joined(ConsumerRebalanceListener):  # type: ignore[misc]
        async def on_partitions_revoked(self, revoked: object) -> None:
            pass

        async def on_partitions_assigned(self, assigned: object) -> None:
            joined.set()

    member.subscribe([settings.requests_topic], listener=Joined())
    try:
        getting = asyncio.create_task(member.getmany(timeout_ms=100))  # joins the group
        await asyncio.wait_for(joined.wait(), 30)
        await getting
        yield member
    finally:
        await kafka.close(member)


async def test_group_watch_sees_live_workers_slots_and_lag(
        settings: Settings, fake_worker: AIOKafkaConsumer) -> None:
    gateway = RequestChannel(settings)
    backlog = Gateway(settings, gateway).backlog  # the ingress's admission, fed by the watch
    await gateway.start()
    try:
        for n in range(7):
            await gateway.submit(request_from_doc({"id": f"lag-{n}", "language": "python",
                                                   "source": ""}))
        watch = gateway.watch
        assert watch is not None
        # Polled in the background every 0.5 s.
        assert await watch.until(lambda: watch.lag == 7 and watch.live_workers == {"w1"}, 20), (
            watch.lag, watch.members, watch.error)
        assert watch.slots == 3 and gateway.worker_count() == 1
        assert gateway.language_versions() == {"python": ["3.11.2"]}  # not the dead one's ruby
        assert backlog.lag == 7 and backlog.slots == 3
        # The group consumes and commits: its lag falls.
        got = 0
        async with asyncio.timeout(20):
            while got < 7:
                got += sum(len(r) for r in (await fake_worker.getmany(timeout_ms=500)).values())
        await fake_worker.commit()
        assert await watch.until(lambda: watch.lag == 0, 20), watch.lag
    finally:
        await gateway.stop()


async def test_a_lost_producer_sequence_is_a_503_and_the_retry_goes_through_a_new_producer(
        settings: Settings) -> None:
    """As the webhook deliverer's (test_producer_renewal.py), for requests: the current
    producer's ``send`` raises the loss once (the one injected part); the rest is real."""
    await ensure_topics(settings)
    channel = RequestChannel(replace(settings, ingress_reply_partition=0))
    await channel.start()
    try:
        broken = channel.requester.producer.producer
        lost = LostSequence(broken)
        req = request_from_doc({"id": "renew-1", "language": "python", "source": ""})
        with pytest.raises(BrokerUnavailable, match="safe to retry with the same id"):
            await channel.submit(req)
        assert not channel.is_pending("renew-1"), "a request Kafka refused is not in flight"
        assert channel.requester.producer.producer is not broken, "no new producer took over"
        await channel.submit(req)  # the client's retry, through the new producer
        assert lost.failures == 1
        (key, _), = await produced_requests(settings, 1)
        assert key == b"renew-1" and channel.is_pending("renew-1")
    finally:
        await channel.stop()
