"""A producer whose sequence was lost is replaced, for the webhook deliverer too (real Kafka).

The fault, ``OutOfOrderSequenceNumber`` from the broker, was seen once in the chaos
suite after a broker restart and cannot be produced on demand: here the current
producer's ``send`` raises it once (the one injected part, and the test says so).
Everything else is real: the deliverer, its publisher, the broker, the new producer
and the record it writes. Before ``streams/producer.py`` the deliverer's publisher had
no renewal, so it retried the broken producer for ever and this test timed out.
"""

from __future__ import annotations

import asyncio

import pytest
from runstream.services.ingress.webhooks import Webhooks
from runstream.services.settings import Settings
from runstream.streams.topics import ensure_topics

from tests.integration._kafka import LostSequence

pytestmark = pytest.mark.kafka


async def test_the_webhook_deliverer_renews_a_producer_whose_sequence_was_lost(
        fresh_settings: Settings) -> None:
    await ensure_topics(fresh_settings)
    webhooks = Webhooks(fresh_settings, name="renewal-test", deliver=True)
    await webhooks.start(timeout_s=30)
    try:
        deliverer = webhooks.deliverer
        assert deliverer is not None
        broken = deliverer.producer.producer
        lost = LostSequence(broken)
        doc = {"id": "renewed-1", "state": "pending", "attempts": []}
        await asyncio.wait_for(deliverer._record(doc), 30)
        assert lost.failures == 1, "the broken producer was tried again after the loss"
        assert deliverer.producer.producer is not broken, "no new producer took over"
        stored = await asyncio.wait_for(deliverer._recorded("renewed-1"), 30)
        assert stored is not None and stored["id"] == "renewed-1"
        lost.restore()
    finally:
        await webhooks.stop()
