"""A subscription to an execution's events, and a feed that is not started (no Kafka)."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

from runstream.schemas import events
from runstream.services.settings import Settings
from runstream.streams.event_buffer import Stored
from runstream.streams.event_feed import EventFeed, Subscription


def stored(offset: int, seq: int) -> Stored:
    event = events.started("x", "a1", seq, datetime.now(UTC), worker="w", language="python",
                           version="3")
    return Stored(offset, event, events.encode_event(event))


def test_a_reader_that_resumes_is_not_given_what_it_had_again() -> None:
    # A partition read on from before the reader's Last-Event-ID passes those events again.
    sub = Subscription("x", [], after=5)
    for offset in (4, 5, 6):
        sub.push(stored(offset, offset))
    assert [s.offset for s in sub.take()] == [6]
    fresh = Subscription("x", [])
    fresh.push(stored(0, 0))
    assert [s.offset for s in fresh.take()] == [0]


async def test_a_feed_not_started_reads_nothing_and_is_never_caught_up() -> None:
    feed = EventFeed(Settings(), name="t")
    sub = feed.subscribe("x")
    assert sub.partition is None and feed.followed == frozenset()
    assert not await feed.caught_up_with("x", 0.1)
    # What it is handed still reaches the subscription (a fake's way of feeding it).
    feed._on_record(SimpleNamespace(value=stored(3, 0).payload, offset=3, topic="e",
                                    partition=0))
    assert [s.offset for s in sub.take()] == [3]
    feed.unsubscribe(sub)
    feed.unsubscribe(sub)
