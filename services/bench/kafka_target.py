"""The ``kafka`` target: produce straight onto runstream.requests as another team would.

The run creates its own reply topic (``runstream.bench.<run-id>.replies``, one
partition), names it in each request's ``reply_to``, reads it, and correlates
replies by execution id (``streams/requester.py``, the request channel's producing
and correlating half); the topic is deleted when the run ends.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
from aiokafka.errors import KafkaError
from runstream.schemas.errors import BrokerUnavailable
from runstream.services.bench.recording import topic_for
from runstream.services.bench.target import TargetError, now_iso
from runstream.services.settings import Settings
from runstream.streams import kafka
from runstream.streams.correlator import Correlator
from runstream.streams.requester import Requester
from runstream.streams.topics import TopicSpec, ensure_topics

log = logging.getLogger(__name__)


class KafkaTarget:
    """Requests onto the requests topic; replies from a topic of this run's own."""

    name = "kafka"

    def __init__(self, settings: Settings, run_id: str, *, timeout_s: float = 90.0) -> None:
        self.settings = settings
        self.reply_topic = f"{topic_for(settings, run_id)}.replies"
        self.timeout_s = timeout_s
        self._requests = Requester(
            settings, Correlator(settings, self.reply_topic, 0,
                                 client_id="runstream-bench-replies", from_beginning=True),
            client_id="runstream-bench")

    async def start(self) -> None:
        s = self.settings
        await ensure_topics(s, [TopicSpec(self.reply_topic, 1, {
            "retention.ms": str(24 * 3600 * 1000), "max.message.bytes": str(s.message_max_bytes)})])
        await self._requests.start()

    async def execute(self, payload: dict[str, Any]) -> dict[str, Any]:
        exec_id = str(payload["id"])
        fut = self._requests.expect(exec_id)
        doc = {**payload, "reply_to": {"topic": self.reply_topic, "partition": 0},
               "enqueued_at": now_iso()}
        try:
            await self._requests.send(self.settings.requests_topic, exec_id, orjson.dumps(doc),
                                      refused="{error}",
                                      timeout_s=self.settings.request_timeout_s * 5)
        except BrokerUnavailable as e:
            fut.cancel()
            raise TargetError(f"produce: {e.message}") from e
        try:
            raw = await asyncio.wait_for(fut, self.timeout_s)
        except TimeoutError as e:
            raise TargetError("timeout") from e
        result: dict[str, Any] = orjson.loads(raw)
        return result

    async def stop(self) -> None:
        await self._requests.stop()
        admin = kafka.admin(self.settings, client_id="runstream-bench", timeout_s=10)
        try:
            await asyncio.wait_for(admin.start(), 10)
            await asyncio.wait_for(admin.delete_topics([self.reply_topic]), 10)
        except (KafkaError, TimeoutError, OSError) as e:
            log.warning("could not delete %s: %r", self.reply_topic, e)
        finally:
            await kafka.close(admin)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "bootstrap": self.settings.bootstrap_servers,
                "requests_topic": self.settings.requests_topic, "reply_topic": self.reply_topic}
