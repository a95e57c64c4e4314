"""The ``kafka`` target: produce straight onto runstream.requests as another team would.

The run creates its own reply topic (``runstream.bench.<run-id>.replies``, one
partition), names it in each request's ``reply_to``, reads it, and correlates
replies by execution id; the topic is deleted when the run ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from runstream.services.bench.recording import topic_for
from runstream.services.bench.targets import TargetError, now_iso
from runstream.services.settings import Settings
from runstream.services.topics import TopicSpec, ensure_topics

log = logging.getLogger(__name__)


class KafkaTarget:
    """Requests onto the requests topic; replies from a topic of this run's own."""

    name = "kafka"

    def __init__(self, settings: Settings, run_id: str, *, timeout_s: float = 90.0) -> None:
        self.settings = settings
        self.reply_topic = f"{topic_for(settings, run_id)}.replies"
        self.timeout_s = timeout_s
        self._pending: dict[str, asyncio.Future[bytes]] = {}
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        s = self.settings
        await ensure_topics(s, [TopicSpec(self.reply_topic, 1, {
            "retention.ms": str(24 * 3600 * 1000), "max.message.bytes": str(s.message_max_bytes)})])
        self._producer = AIOKafkaProducer(
            bootstrap_servers=s.bootstrap_servers, acks="all", enable_idempotence=True,
            linger_ms=0, max_request_size=s.message_max_bytes, client_id="runstream-bench")
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=s.bootstrap_servers, enable_auto_commit=False,
            fetch_max_wait_ms=20, max_partition_fetch_bytes=s.message_max_bytes,
            fetch_max_bytes=s.message_max_bytes * 2, auto_offset_reset="earliest",
            client_id="runstream-bench-replies")
        await asyncio.wait_for(self._producer.start(), 30)
        await asyncio.wait_for(self._consumer.start(), 30)
        self._consumer.assign([TopicPartition(self.reply_topic, 0)])
        self._task = asyncio.create_task(self._follow(), name="bench-replies")

    async def _follow(self) -> None:
        assert self._consumer is not None
        while True:
            try:
                batches = await self._consumer.getmany(timeout_ms=500, max_records=500)
            except asyncio.CancelledError:
                raise
            except KafkaError:
                log.exception("reading %s failed; retrying", self.reply_topic)
                await asyncio.sleep(0.5)
                continue
            for records in batches.values():
                for record in records:
                    if record.key is None or record.value is None:
                        continue
                    fut = self._pending.get(record.key.decode("utf-8", "replace"))
                    if fut is not None and not fut.done():
                        fut.set_result(record.value)

    async def execute(self, payload: dict[str, Any]) -> dict[str, Any]:
        assert self._producer is not None
        exec_id = str(payload["id"])
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._pending[exec_id] = fut
        doc = {**payload, "reply_to": {"topic": self.reply_topic, "partition": 0},
               "enqueued_at": now_iso()}
        try:
            try:
                await asyncio.wait_for(self._producer.send_and_wait(
                    self.settings.requests_topic, orjson.dumps(doc), key=exec_id.encode()),
                    self.settings.request_timeout_s * 5)
            except (KafkaError, TimeoutError) as e:
                raise TargetError(f"produce: {type(e).__name__}") from e
            try:
                raw = await asyncio.wait_for(fut, self.timeout_s)
            except TimeoutError as e:
                raise TargetError("timeout") from e
        finally:
            self._pending.pop(exec_id, None)
        result: dict[str, Any] = orjson.loads(raw)
        return result

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        for client in (self._consumer, self._producer):
            if client is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(client.stop(), 10)
        admin = AIOKafkaAdminClient(bootstrap_servers=self.settings.bootstrap_servers)
        try:
            await asyncio.wait_for(admin.start(), 10)
            await asyncio.wait_for(admin.delete_topics([self.reply_topic]), 10)
        except (KafkaError, TimeoutError, OSError) as e:
            log.warning("could not delete %s: %r", self.reply_topic, e)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(admin.close(), 10)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "bootstrap": self.settings.bootstrap_servers,
                "requests_topic": self.settings.requests_topic, "reply_topic": self.reply_topic}
