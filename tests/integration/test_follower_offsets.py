"""A follower's questions about offsets are not queued behind the fetch the broker holds.

Kafka answers one request at a time per connection. A follower whose consumer follows a
topic's end has a fetch held by the broker for up to its wait while nothing is written;
an end-offsets request on the same connection waited for it (a client that named its
execution id waited ~300 ms for its POST's look-up, idle). Here the following consumer
holds each fetch 60 s: a look-up bounded at 5 s must still be answered.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer
from runstream.services.settings import Settings
from runstream.streams import kafka
from runstream.streams.api_keys import KeyStore
from runstream.streams.event_feed import EventFeed
from runstream.streams.follower import Follower
from runstream.streams.results import ResultStore
from runstream.streams.stdin_feed import StdinFeed
from runstream.streams.topics import ensure_topics

pytestmark = pytest.mark.kafka

HELD_MS = 60_000  # far past every bound below


class Held(Follower):
    """A follower whose consumer asks the broker to hold each empty fetch a minute."""

    def _new_consumer(self) -> AIOKafkaConsumer:
        return kafka.consumer(self.settings, client_id=self.client_id,
                              **self._consumer_options, fetch_max_wait_ms=HELD_MS)


class HeldKeys(Held, KeyStore):
    """The API keys (an ingress's)."""


class HeldResults(Held, ResultStore):
    """A results store (an ingress's; a worker's re-delivery check)."""


class HeldStdin(Held, StdinFeed):
    """Live stdin (a worker's), read from a while back."""


class HeldEvents(Held, EventFeed):
    """The events feed (an ingress's), read from a while back."""


@pytest.fixture
async def settings(fresh_settings: Settings) -> Settings:
    await ensure_topics(fresh_settings)
    return fresh_settings


async def _fetch_held(consumer: AIOKafkaConsumer | None) -> None:
    """Until the consumer has a fetch out (aiokafka's fetcher notes the node as busy)."""
    assert consumer is not None
    async with asyncio.timeout(10):
        # aiokafka has no event for "a fetch is out": look at its fetcher's state.
        while not consumer._fetcher._in_flight:  # noqa: ASYNC110
            await asyncio.sleep(0.01)


@pytest.fixture
async def keys(settings: Settings) -> AsyncIterator[HeldKeys]:
    store = HeldKeys(settings, name="held")
    await store.start(30)
    try:
        yield store
    finally:
        await store.stop()


async def test_an_unknown_key_is_looked_up_while_a_fetch_is_held(keys: HeldKeys) -> None:
    await _fetch_held(keys._consumer)
    t0 = time.monotonic()
    assert await keys.caught_up(5), "the end offsets waited behind the held fetch"
    assert await keys.lookup("0123456789abcdef", 5) is None
    print(f"look-up of an unknown key with a fetch held: {time.monotonic() - t0:.3f}s")


async def test_a_results_look_up_is_exact_while_a_fetch_is_held(settings: Settings) -> None:
    store = HeldResults(settings, name="held-results")
    await store.start(30)
    try:
        assert await store.caught_up(30)
        await _fetch_held(store._consumer)
        t0 = time.monotonic()
        # exact: BrokerUnavailable unless the index read up to the end within the bound
        assert await store.get("never-written", timeout_s=5, exact=True) is None
        print(f"exact results look-up with a fetch held: {time.monotonic() - t0:.3f}s")
    finally:
        await store.stop()


@pytest.mark.parametrize("feed", [HeldStdin, HeldEvents])
async def test_a_follower_read_from_a_while_back_starts_while_its_fetch_is_held(
        settings: Settings, feed: type[StdinFeed] | type[EventFeed]) -> None:
    # Its offsets by time were asked for after the assignment, behind the fetch that
    # the assignment started: a worker's start waited the 5 s of live stdin's hold.
    follower = feed(settings, name="held-start")
    t0 = time.monotonic()
    try:
        await asyncio.wait_for(follower.start(timeout_s=30), 10)
        print(f"{feed.__name__} started in {time.monotonic() - t0:.3f}s")
    finally:
        await follower.stop()
