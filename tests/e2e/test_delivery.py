"""Delivery rules that need a running system (issue 7, items 5 and 9).

- Any order and interleaving of GETs and POSTs of one id works: a GET that came first
  (and gave up) does not swallow the POST.
- A keyless Kafka message gets a deterministic id (e.g. from topic, partition, offset)
  or is rejected: a re-delivery of the same message must not be answered under a
  second id, which no client could deduplicate or correlate.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata

from tests.system import System, stop

pytestmark = [pytest.mark.kafka, pytest.mark.sandbox]


# The GET must reach the ingress first: its arrival is not observable from outside,
# so the POST follows it by this much (the scenario's order, not a synchronisation).
GET_FIRST_S = 0.5


async def test_post_while_a_get_with_wait_is_waiting_is_answered_normally(
        client: httpx.AsyncClient) -> None:
    """Issue 7 item 5: GET ?wait=3, then the POST of that id; the GET gives up first."""
    exec_id = f"get-first-{uuid.uuid4().hex[:8]}"
    early = asyncio.ensure_future(client.get(f"/v1/executions/{exec_id}", params={"wait": 3}))
    await asyncio.sleep(GET_FIRST_S)
    r = await client.post("/v1/executions", json={
        "id": exec_id, "language": "python",
        "source": "import time\ntime.sleep(4)\nprint('after get')"})
    assert r.status_code == 200, r.text
    assert r.json()["run"]["stdout"] == "after get\n"
    got = await asyncio.wait_for(early, 30)
    assert got.status_code in (200, 202, 404), got.text
    again = await client.get(f"/v1/executions/{exec_id}")
    assert again.status_code == 200 and again.json() == r.json()


async def test_gets_waiting_on_both_ingresses_and_the_post_get_the_same_answer(
        system: System) -> None:
    exec_id = f"get-during-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(timeout=60) as c:
        waiting = [asyncio.ensure_future(c.get(f"{url}/v1/executions/{exec_id}",
                                                params={"wait": 30})) for url in system.urls]
        await asyncio.sleep(GET_FIRST_S)
        post = await c.post(f"{system.url}/v1/executions", json={
            "id": exec_id, "language": "python",
            "source": "import time\ntime.sleep(1)\nprint('both')"})
        gets = await asyncio.wait_for(asyncio.gather(*waiting), 45)
    assert post.status_code == 200, post.text
    assert post.json()["run"]["stdout"] == "both\n"
    for r in gets:
        assert r.status_code == 200, r.text
        assert r.json() == post.json()


async def _create_topic(bootstrap: str, name: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    await asyncio.wait_for(admin.start(), 30)
    try:
        await asyncio.wait_for(admin.create_topics([NewTopic(name, 1, 1)]), 30)
    finally:
        await admin.close()


async def _rewind(bootstrap: str, group: str, tp: TopicPartition, offset: int,
                  timeout_s: float) -> None:
    """Commit ``offset`` for the (now empty) worker group: the message comes again."""
    deadline = time.monotonic() + timeout_s
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                                enable_auto_commit=False)
    await asyncio.wait_for(consumer.start(), 30)
    try:
        consumer.assign([tp])
        while True:  # the group may still hold a member for a moment after it stopped
            try:
                await asyncio.wait_for(consumer.commit({tp: OffsetAndMetadata(offset, "")}), 10)
                return
            except (KafkaError, TimeoutError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
    finally:
        await asyncio.wait_for(consumer.stop(), 10)


async def test_a_keyless_message_delivered_again_is_not_answered_under_a_second_id(
        system: System) -> None:
    env = system.env
    bootstrap, requests = env["RUNSTREAM_BOOTSTRAP_SERVERS"], env["RUNSTREAM_REQUESTS_TOPIC"]
    reply_topic = f"keyless-{uuid.uuid4().hex[:8]}.reply"
    await _create_topic(bootstrap, reply_topic)
    reply_tp, partition = TopicPartition(reply_topic, 0), 1
    replies: list[dict[str, Any]] = []
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                fetch_max_wait_ms=100)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await asyncio.wait_for(consumer.start(), 30)
    await asyncio.wait_for(producer.start(), 30)

    async def until(count: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while len(replies) < count and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=300)).values():
                replies.extend(orjson.loads(r.value) for r in records if r.value)

    try:
        consumer.assign([reply_tp])
        await consumer.seek_to_beginning(reply_tp)
        reply_to = {"topic": reply_topic, "partition": 0}
        # No key and no id: what another team's careless producer sends.
        sent = await producer.send_and_wait(requests, orjson.dumps({
            "language": "python", "source": "print('keyless')", "reply_to": reply_to}),
            partition=partition)
        await until(1, 30)
        assert replies, "the keyless message was not answered at all"
        # Deliver the very same message again, as after a crash before the commit:
        # stop the group, move its offset back, start it again.
        for name in system.workers:
            stop(system.worker_procs[name])
        await _rewind(bootstrap, env["RUNSTREAM_WORKER_GROUP"],
                      TopicPartition(requests, partition), sent.offset, 30)
        for name in system.workers:
            system.start_worker(name)
        await asyncio.to_thread(system.wait_ready)
        # A keyed marker behind it on the same partition: once it is answered, the
        # re-delivered message has been handled too.
        marker = f"marker-{uuid.uuid4().hex[:8]}"
        await producer.send_and_wait(requests, orjson.dumps({
            "id": marker, "language": "python", "source": "print('marker')",
            "reply_to": reply_to}), key=marker.encode(), partition=partition)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(d["id"] == marker for d in replies):
            await until(len(replies) + 1, 1)
        assert any(d["id"] == marker for d in replies), "the marker was not answered"
        await until(len(replies) + 1, 2)  # a late copy
    finally:
        await asyncio.wait_for(producer.stop(), 10)
        await asyncio.wait_for(consumer.stop(), 10)
        for name in system.workers:
            if system.worker_procs[name].poll() is not None:
                system.start_worker(name)
        await asyncio.to_thread(system.wait_ready)
    answers = [d for d in replies if d["id"] != marker]
    ids = {d["id"] for d in answers}
    assert len(ids) == 1, f"one keyless message answered under {len(ids)} ids: {sorted(ids)}"
    assert len({(d["status"], (d.get("run") or {}).get("stdout")) for d in answers}) == 1, (
        answers)
