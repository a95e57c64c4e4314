"""Events through a real broker: the worker's publisher, the ingress's feed, the bounds."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaProducer
from runstream.schemas import events
from runstream.schemas.events import EventType
from runstream.services.execution.languages import Registry
from runstream.services.settings import Settings
from runstream.streams.copartition import partition_for
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
    assert feed.followed == {partition_for(b"x1", settings.events_partitions)}
    # Once finished, what was kept stays (until evicted): a stream that starts or
    # resumes now gets the output before the result.
    assert feed.recent.finished("x1")
    assert [s.offset for s in feed.recent.since("x1")] == [s.offset for s in got[:-1]]
    feed.unsubscribe(sub)
    feed.unsubscribe(late)
    assert feed.followed == frozenset()  # nobody watches: nothing is read


async def test_a_feed_that_starts_later_reads_back_recent_events(
        settings: Settings, publisher: EventPublisher) -> None:
    publisher.emit(events.queued("early", datetime.now(UTC), "python"))
    await publisher.stop()  # sent: stop waits for the queue to drain
    late = EventFeed(settings, name="t-late")
    await late.start()
    try:
        assert await late.caught_up_with("early", 10)
        assert late.known("early")
        assert [s.event.type for s in late.subscribe("early").take()] == [EventType.QUEUED]
    finally:
        await late.stop()


# -- only what is watched is read ---------------------------------------------------

def ids_in_two_partitions(settings: Settings) -> tuple[str, str]:
    """Two execution ids whose events go to different partitions."""
    first = f"a-{uuid.uuid4().hex[:8]}"
    at = partition_for(first.encode(), settings.events_partitions)
    for n in range(100):
        other = f"b-{n}-{uuid.uuid4().hex[:6]}"
        if partition_for(other.encode(), settings.events_partitions) != at:
            return first, other
    raise AssertionError("no id in the other partition")


async def write(producer: AIOKafkaProducer, settings: Settings, event: events.Event,
                timestamp_ms: int | None = None) -> int:
    """``event`` stored on the events topic, keyed as the publishers do; its offset."""
    meta = await producer.send_and_wait(settings.events_topic, events.encode_event(event),
                                        key=event.id.encode(), timestamp_ms=timestamp_ms)
    return int(meta.offset)


def started(exec_id: str, seq: int = 0, attempt: str = "a1") -> events.Event:
    return events.started(exec_id, attempt, seq, datetime.now(UTC), worker="w",
                          language="python", version="3")


async def test_nobody_watching_nothing_is_read_and_a_late_watcher_gets_what_was_written(
        settings: Settings, feed: EventFeed, producer: AIOKafkaProducer) -> None:
    assert feed.followed == frozenset()  # no fetch while nobody watches
    await write(producer, settings, events.queued("quiet", datetime.now(UTC), "python"))
    await write(producer, settings, started("quiet"))
    assert await feed.caught_up(10) and not feed.known("quiet")
    # A watcher comes after the events: its partition is read from before them.
    sub = feed.subscribe("quiet")
    assert feed.followed == {partition_for(b"quiet", settings.events_partitions)}
    got = await until(sub, EventType.STARTED, [])
    assert [s.event.type for s in got] == [EventType.QUEUED, EventType.STARTED]
    feed.unsubscribe(sub)
    feed.unsubscribe(sub)  # twice: once counts
    assert feed.followed == frozenset()


async def test_only_the_partitions_of_watched_ids_are_read(
        settings: Settings, feed: EventFeed, producer: AIOKafkaProducer) -> None:
    watched, other = ids_in_two_partitions(settings)
    sub = feed.subscribe(watched)
    await write(producer, settings, started(other))
    await write(producer, settings, started(watched))
    assert [s.event.id for s in await until(sub, EventType.STARTED, [])] == [watched]
    assert await feed.caught_up(10)
    assert not feed.known(other)  # its partition was not read
    # Before a 404 the route reads the id's partition up to now, watched or not.
    assert await feed.caught_up_with(other, 10)
    assert feed.known(other) and feed.recent.started(other)
    assert feed.followed == {partition_for(watched.encode(), settings.events_partitions)}
    feed.unsubscribe(sub)
    assert not await feed.caught_up_with(other, 0)  # no time to read: not caught up


async def test_a_partition_paused_is_read_on_from_where_it_was(
        settings: Settings, feed: EventFeed, producer: AIOKafkaProducer) -> None:
    sub = feed.subscribe("paused")
    await write(producer, settings, events.queued("paused", datetime.now(UTC), "python"))
    got = await until(sub, EventType.QUEUED, [])
    feed.unsubscribe(sub)
    await write(producer, settings, started("paused"))  # while nobody watches
    again = feed.subscribe("paused")
    assert [s.event.type for s in again.take()] == [EventType.QUEUED]  # kept
    got = await until(again, EventType.STARTED, [])
    assert [s.event.type for s in got] == [EventType.STARTED]  # once, after what was kept
    feed.unsubscribe(again)


async def test_a_partition_paused_beyond_the_horizon_is_read_from_the_horizon_back(
        settings: Settings, producer: AIOKafkaProducer) -> None:
    now = [time.time()]
    feed = EventFeed(settings, name=f"t-{uuid.uuid4().hex[:6]}", clock=lambda: now[0])
    await feed.start()
    try:
        sub = feed.subscribe("long")
        await write(producer, settings, events.queued("long", datetime.now(UTC), "python"))
        await until(sub, EventType.QUEUED, [])
        feed.unsubscribe(sub)
        await write(producer, settings, started("long"))  # while nobody watches
        now[0] += 3 * feed.horizon_s  # ... for longer than any execution goes on
        again = feed.subscribe("long")
        assert await feed.caught_up_with("long", 10)
        assert not feed.recent.started("long")  # older than the horizon: not read
        await write(producer, settings, started("long", attempt="a2"))  # written now
        got = await until(again, EventType.STARTED, again.take())
        assert [(s.event.type, s.event.attempt) for s in got] == [
            (EventType.QUEUED, None), (EventType.STARTED, "a2")]
        feed.unsubscribe(again)
    finally:
        await feed.stop()


async def test_a_reader_that_resumes_gets_nothing_up_to_where_it_resumes(
        settings: Settings, feed: EventFeed, producer: AIOKafkaProducer) -> None:
    seen = await write(producer, settings, events.queued("resume", datetime.now(UTC),
                                                         "python"))
    await write(producer, settings, started("resume"))
    # This ingress never read the partition: it reads it from before the resume point.
    sub = feed.subscribe("resume", after=seen)
    got = await until(sub, EventType.STARTED, sub.take())
    assert [s.event.type for s in got] == [EventType.STARTED]
    feed.unsubscribe(sub)


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
