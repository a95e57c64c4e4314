"""The benchmark's ``kafka`` target against a real broker: a request onto the requests
topic naming the run's own reply topic, its reply correlated by id (streams/requester.py)."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from runstream.services.bench.kafka_target import KafkaTarget
from runstream.services.settings import Settings
from runstream.streams.topics import ensure_topics

from tests.integration._kafka import produced_requests, send_json

pytestmark = pytest.mark.kafka


async def test_a_request_is_answered_on_the_runs_own_reply_topic(
        fresh_settings: Settings) -> None:
    await ensure_topics(fresh_settings)
    target = KafkaTarget(fresh_settings, "kt-1", timeout_s=30)
    await target.start()
    try:
        running = asyncio.create_task(target.execute(
            {"id": "kt-req", "language": "python", "source": "print(1)"}))
        (key, value), = await produced_requests(fresh_settings, 1)
        doc = orjson.loads(value)
        assert key == b"kt-req" and doc["enqueued_at"]
        assert doc["reply_to"] == {"topic": target.reply_topic, "partition": 0}
        # As a worker does: the result to the reply_to the request named.
        await send_json(fresh_settings, target.reply_topic, 0, key,
                        {"id": "kt-req", "status": "ok"})
        assert await asyncio.wait_for(running, 30) == {"id": "kt-req", "status": "ok"}
    finally:
        await target.stop()
