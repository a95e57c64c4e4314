"""Kafka at the edges of an integration test: read what was produced, write a reply,
await a group's state."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import OutOfOrderSequenceNumber
from runstream.services.settings import Settings


async def produced_requests(settings: Settings, count: int) -> list[tuple[bytes, bytes]]:
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


async def send_json(settings: Settings, topic: str, partition: int, key: bytes, doc: dict) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait(topic, orjson.dumps(doc), key=key, partition=partition)
    finally:
        await producer.stop()


async def until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll ``check`` until true, or fail saying ``what`` did not happen in time.

    For a consumer group's state, which has no event to await.
    """
    try:
        async with asyncio.timeout(timeout_s):
            while not check():  # noqa: ASYNC110 -- group state has no event to await
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise AssertionError(f"not within {timeout_s:.0f} s: {what}") from None


class LostSequence:
    """``producer.send`` raises the loss of its sequence, counted, until :meth:`restore`.

    The fault (``OutOfOrderSequenceNumber`` from the broker, seen once in the chaos
    suite after a broker restart) cannot be produced on demand: this is the one
    injected part of the renewal tests.
    """

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer
        self.failures = 0
        self._real = producer.send
        producer.send = self._lost

    async def _lost(self, *args: Any, **kwargs: Any) -> Any:
        self.failures += 1
        raise OutOfOrderSequenceNumber("injected: the broker lost this producer's sequence")

    def restore(self) -> None:
        self.producer.send = self._real
