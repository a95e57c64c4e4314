"""Kafka at the edges of an integration test: read what was produced, write a reply."""

from __future__ import annotations

import asyncio

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
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
