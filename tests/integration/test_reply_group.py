"""Ingresses obtain their replies partitions by themselves (a consumer group), real Kafka.

No ingress is told its partition: identical ones share the replies topic through the
group RUNSTREAM_INGRESS_GROUP. A reply that lands on a partition another ingress
owns (a rebalance moved it after the request was produced) still reaches the caller
waiting on the first one, because every ingress follows the results topic too.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import orjson
import pytest
from runstream.schemas.codec import decode_request, request_from_doc
from runstream.services.settings import Settings
from runstream.streams.channel import RequestChannel
from runstream.streams.topics import ensure_topics

from tests.integration._kafka import produced_requests, send_json

pytestmark = pytest.mark.kafka


@pytest.fixture
def settings(fresh_settings: Settings, tmp_path: Path) -> Settings:
    # Four replies partitions for three ingresses; no per-instance partition.
    return replace(fresh_settings, index_dir=str(tmp_path / "index"), replies_partitions=4,
                   ingress_reply_partition=None)


def _gateway(settings: Settings, port: int) -> RequestChannel:
    # The port makes each one's name (index file, client ids) distinct on one host.
    return RequestChannel(replace(settings, ingress_port=port))


async def _owned_settle(gateways: list[RequestChannel], total: int) -> list[set[int]]:
    """Each gateway's partitions once together they own all ``total``, disjointly."""
    async with asyncio.timeout(30):
        while True:
            owned = [set(g.replies._owned) for g in gateways]
            if (sum(len(o) for o in owned) == total and set().union(*owned) == set(range(total))
                    and all(owned)):
                return owned
            await asyncio.sleep(0.1)


async def test_identical_ingresses_share_the_replies_partitions(settings: Settings) -> None:
    await ensure_topics(settings)
    a, b = _gateway(settings, 1001), _gateway(settings, 1002)
    await a.start()
    await b.start()
    c: RequestChannel | None = None
    try:
        owned_a, owned_b = await _owned_settle([a, b], settings.replies_partitions)
        assert a.reply_assigned() and b.reply_assigned()
        # Each names its own partition in reply_to, and a reply there reaches it.
        with a.waiters.waiting("via-a") as fa, b.waiters.waiting("via-b") as fb:
            await a.submit(request_from_doc({"id": "via-a", "language": "python", "source": ""}))
            await b.submit(request_from_doc({"id": "via-b", "language": "python", "source": ""}))
            for key, value in await produced_requests(settings, 2):
                req = decode_request(value, key=key)
                assert req.reply_to is not None and req.reply_to.partition is not None
                mine = owned_a if req.id == "via-a" else owned_b
                assert req.reply_to.partition in mine
                await send_json(settings, req.reply_to.topic, req.reply_to.partition, key,
                            {"id": req.id, "status": "ok"})
            assert orjson.loads(await a.waiters.wait(fa, 10) or b"")["id"] == "via-a"
            assert orjson.loads(await b.waiters.wait(fb, 10) or b"")["id"] == "via-b"
        # A third identical ingress joins: the partitions are shared among three.
        c = _gateway(settings, 1003)
        await c.start()
        three = await _owned_settle([a, b, c], settings.replies_partitions)
        assert all(three)
        # One leaves: the other two take its partitions back.
        await c.stop()
        c = None
        await _owned_settle([a, b], settings.replies_partitions)
    finally:
        for g in (a, b, c):
            if g is not None:
                await g.stop()


async def test_a_reply_on_another_ingress_partition_reaches_the_waiting_client(
        settings: Settings) -> None:
    await ensure_topics(settings)
    a, b = _gateway(settings, 1011), _gateway(settings, 1012)
    await a.start()
    await b.start()
    try:
        _, owned_b = await _owned_settle([a, b], settings.replies_partitions)
        with a.waiters.waiting("moved") as fut:
            await a.submit(request_from_doc({"id": "moved", "language": "python",
                                             "source": "print(1)"}))
            (key, value), = await produced_requests(settings, 1)
            assert decode_request(value, key=key).reply_to is not None
            # As a worker does when the reply partition moved to b after the produce:
            # the result on the results topic, the reply on a partition b reads.
            result = {"id": "moved", "status": "ok", "worker": "w"}
            await send_json(settings, settings.results_topic, 0, key, result)
            await send_json(settings, settings.replies_topic, min(owned_b), key, result)
            assert orjson.loads(await a.waiters.wait(fut, 15) or b"") == result
        assert not a.is_pending("moved")
        assert "moved" not in b.waiters  # b read the reply, and had nobody to give it to
    finally:
        await a.stop()
        await b.stop()
