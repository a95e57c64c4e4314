"""Events through a real broker: the worker's publisher, the ingress's feed, the bounds."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from runstream.schemas import events
from runstream.schemas.events import EventType
from runstream.services.execution.languages import Registry
from runstream.services.settings import Settings
from runstream.streams.event_buffer import Stored
from runstream.streams.event_feed import EventFeed, Subscription
from runstream.streams.event_publisher import EventPublisher
from runstream.streams.topics import ensure_topics, topic_specs

pytestmark = pytest.mark.kafka

PYTHON = Registry.load().resolve("python")


@pytest.fixture
async def settings(fresh_settings: Settings) -> Settings:
    s = replace(fresh_settings, events_topic=f"t{uuid.uuid4().hex[:8]}.events",
                events_partitions=2)
    await ensure_topics(s, [t for t in topic_specs(s) if t.name == s.events_topic])
    return s


@pytest.fixture
async def feed(settings: Settings) -> AsyncIterator[EventFeed]:
    f = EventFeed(settings, name=f"t-{uuid.uuid4().hex[:6]}")
    await f.start()
    try:
        yield f
    finally:
        await f.stop()


@pytest.fixture
async def publisher(settings: Settings) -> AsyncIterator[EventPublisher]:
    p = EventPublisher(settings, client_id="t-events")
    await p.start()
    try:
        yield p
    finally:
        await p.stop()


async def until(sub: Subscription, kind: EventType, got: list[Stored]) -> list[Stored]:
    """Take from ``sub`` until an event of ``kind`` arrives (bounded)."""
    async with asyncio.timeout(20):
        while not any(s.event.type is kind for s in got):
            await sub.changed()
            got += sub.take()
    return got


async def test_an_executions_events_reach_a_reader_in_order(
        settings: Settings, feed: EventFeed, publisher: EventPublisher) -> None:
    progress = publisher.execution("x1")
    sub = feed.subscribe("x1")
    progress.started(PYTHON, settings.default_limits)
    sink = progress.output("run", None)
    sink("stdout", b"hel")
    sink("stdout", b"lo\n")
    # Nothing flushes it: the chunk goes when its oldest byte has waited its interval.
    got = await until(sub, EventType.STDOUT, [])
    assert [s.event.type for s in got] == [EventType.STARTED, EventType.STDOUT]
    assert events.output_bytes(got[1].event) == b"hello\n"
    # A reader that starts late (or resumes after the first event) gets what it missed.
    late = feed.subscribe("x1", after=got[0].offset)
    assert [s.offset for s in late.take()] == [got[1].offset]
    sink("stderr", b"oops")
    progress.phase_ended("run", None, None)
    progress.finished("runtime_error")
    got = await until(sub, EventType.FINISHED, got)
    kinds = [s.event.type for s in got]
    assert kinds == [EventType.STARTED, EventType.STDOUT, EventType.STDERR, EventType.FINISHED]
    assert [s.event.seq for s in got] == [0, 1, 2, 3]
    assert len({s.event.attempt for s in got}) == 1
    assert [s.offset for s in got] == sorted(s.offset for s in got)
    assert got[-1].event.details["status"] == "runtime_error"
    # Once finished, what was kept stays (until evicted): a stream that starts or
    # resumes now gets the output before the result.
    assert feed.recent.finished("x1")
    assert [s.offset for s in feed.recent.since("x1")] == [s.offset for s in got[:-1]]
    feed.unsubscribe(sub)
    feed.unsubscribe(late)


async def test_a_feed_that_starts_later_reads_back_recent_events(
        settings: Settings, publisher: EventPublisher) -> None:
    publisher.emit(events.queued("early", datetime.now(UTC), "python"))
    await publisher.stop()  # sent: stop waits for the queue to drain
    late = EventFeed(settings, name="t-late")
    await late.start()
    try:
        assert await late.caught_up(10)
        assert late.known("early")
        assert [s.event.type for s in late.subscribe("early").take()] == [EventType.QUEUED]
    finally:
        await late.stop()


async def test_emitting_never_waits_for_kafka_and_the_queue_is_bounded(
        settings: Settings) -> None:
    # A real fault: the events topic does not exist (the broker creates none by itself),
    # so every send waits for metadata that never comes.
    broken = replace(settings, events_topic=f"missing-{uuid.uuid4().hex[:8]}",
                     events_queue_kb=64, request_timeout_s=0.5)
    pub = EventPublisher(broken, client_id="t-events-broken")
    await pub.start()
    try:
        chunk = b"x" * 1000
        for seq in range(1000):  # ~1 MB of output events, emitted without yielding once
            pub.emit(events.output("flood", "a1", seq, datetime.now(UTC), stream="stdout",
                                   phase="run", test=None, data=chunk, position=seq * 1000))
        assert pub._bytes <= pub.max_bytes
        assert pub.dropped >= 900
        # control events still get in past the byte bound
        dropped = pub.dropped
        pub.emit(events.finished("flood", "a1", 1000, datetime.now(UTC), "ok"))
        assert pub.dropped == dropped
    finally:
        await asyncio.wait_for(pub.stop(timeout_s=1.0), 15)
