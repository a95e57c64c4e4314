"""The worker group watch polls at the busy pace only while requests come.

Each poll is six requests to the broker; polled every 0.5 s, an idle ingress's watch was a
third of an idle system's requests. The polls here are counted, not timed: an idle pace
of a minute shows that what starts the next poll is the request, not the clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import cast

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from runstream.services.settings import Settings
from runstream.streams.worker_group import GroupWatch

SETTINGS = Settings.from_env({})


class CountedWatch(GroupWatch):
    """A watch whose poll asks nothing of Kafka and counts itself."""

    IDLE_POLL_S = 60.0  # never reached in these tests

    def __init__(self) -> None:
        super().__init__(SETTINGS, {})
        self.polls = 0
        self.polled = asyncio.Condition()

    async def poll(self) -> None:
        async with self.polled:
            self.polls += 1
            self.polled.notify_all()

    async def until_polls(self, n: int) -> None:
        async with self.polled:
            await asyncio.wait_for(self.polled.wait_for(lambda: self.polls >= n), 5)


@pytest.fixture
async def watch() -> AsyncIterator[CountedWatch]:
    w = CountedWatch()
    w.start(cast(AIOKafkaAdminClient, None), cast(AIOKafkaConsumer, None))
    try:
        await w.until_polls(1)
        yield w
    finally:
        await w.stop()


async def test_an_idle_watch_waits_the_idle_pace(watch: CountedWatch) -> None:
    assert not watch.busy() and watch.pace() == CountedWatch.IDLE_POLL_S
    assert GroupWatch.IDLE_POLL_S > GroupWatch.POLL_S


async def test_a_request_makes_an_idle_watch_poll_at_once_and_then_at_the_busy_pace(
        watch: CountedWatch) -> None:
    watch.active()
    assert watch.busy() and watch.pace() == GroupWatch.POLL_S
    await watch.until_polls(2)  # at once, not after the idle minute
    await watch.until_polls(3)  # and again POLL_S later: still busy
    watch._active_at = -watch.ACTIVE_S  # the last request long ago
    assert not watch.busy()


async def test_a_waiter_or_a_backlog_keeps_the_busy_pace(watch: CountedWatch) -> None:
    assert await watch.until(lambda: watch.polls >= 3, 5)  # two more polls while it waits
    assert not watch.busy()
    watch.lag = 4  # requests queued: admission needs a fresh measurement
    assert watch.busy() and watch.pace() == GroupWatch.POLL_S
