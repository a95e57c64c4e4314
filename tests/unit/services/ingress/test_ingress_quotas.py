"""Per-key quotas, pure, over a hand-driven clock: the token bucket, the in-flight count,
and what the gateway does with the caller's key (stamp, language list, concurrency)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from runstream.schemas.codec import decode_request
from runstream.schemas.errors import Forbidden, QuotaExceeded
from runstream.schemas.keys import KeyRecord, new_key
from runstream.services.ingress.key_admission import (
    admit,
    current_key,
    reset_key,
    set_key,
    slot_ttl_s,
)
from runstream.services.ingress.quotas import InFlight, RateLimits, TokenBucket
from runstream.services.settings import Settings

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def key(**quotas: object) -> KeyRecord:
    return new_key("t", now=NOW, **quotas)[0]  # type: ignore[arg-type]


def test_bucket_allows_a_burst_then_one_per_interval() -> None:
    bucket = TokenBucket(rate=2.0, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(0.5)  # the next token in 1/rate
    assert bucket.take(0.25) == pytest.approx(0.25)
    assert bucket.take(0.5) == 0.0
    assert bucket.take(0.5) == pytest.approx(0.5)
    assert bucket.remaining(100.0) == 3  # refills to the burst, never beyond


def test_rate_limits_per_key_and_unlimited_keys() -> None:
    clock = Clock()
    limits = RateLimits(clock)
    a, b, free = key(rate_per_s=1, burst=2), key(rate_per_s=1, burst=2), key(rate_per_s=0)
    assert limits.take(a) == 0 and limits.take(a) == 0
    assert limits.take(a) == pytest.approx(1.0)
    assert limits.take(b) == 0  # another key has its own bucket
    assert all(limits.take(free) == 0 for _ in range(1000))
    assert limits.remaining(free) is None and limits.remaining(a) == 0
    clock.now += 1.0
    assert limits.take(a) == 0


def test_a_changed_record_reshapes_its_bucket() -> None:
    clock = Clock()
    limits = RateLimits(clock)
    slow = key(rate_per_s=0.01, burst=1)
    assert limits.take(slow) == 0 and limits.take(slow) > 0
    faster = replace(slow, rate_per_s=5.0, burst=5)
    assert [limits.take(faster) for _ in range(5)] == [0.0] * 5


def test_full_buckets_are_forgotten() -> None:
    clock = Clock()
    limits = RateLimits(clock)
    k = key(rate_per_s=1, burst=1)
    limits.take(k)
    limits.sweep(clock.now)
    assert k.id in limits.buckets  # empty: must be kept
    clock.now += 5
    limits.sweep(clock.now)
    assert limits.buckets == {}


def test_in_flight_counts_per_key_releases_and_expires() -> None:
    clock = Clock()
    slots = InFlight(clock)
    assert slots.acquire("k", "e1", limit=2, ttl_s=10)
    assert slots.acquire("k", "e1", limit=2, ttl_s=10)  # the same execution: no second slot
    assert slots.acquire("k", "e2", limit=2, ttl_s=10)
    assert not slots.acquire("k", "e3", limit=2, ttl_s=10)
    assert slots.acquire("other", "e4", limit=1, ttl_s=10)
    slots.release("e1")
    slots.release("e1")  # a result seen twice (reply and results topic) frees one slot
    assert slots.count("k") == 1 and slots.acquire("k", "e3", limit=2, ttl_s=10)
    clock.now += 10  # results that never came: freed by their expiry
    assert slots.count("k") == 0
    assert all(slots.acquire("u", f"x{i}", limit=0, ttl_s=1) for i in range(100))  # 0: none


@pytest.fixture
def settings() -> Settings:
    return Settings.from_env({})


def test_admit_stamps_the_callers_key_over_what_the_client_sent(settings: Settings) -> None:
    req = replace(decode_request(b'{"language":"python","source":"1"}'),
                  key_id="ffffffffffffffff")
    assert admit(req, InFlight(), settings).key_id is None  # no caller: auth is off
    k = key()
    token = set_key(k)
    try:
        assert current_key() is k
        assert admit(req, InFlight(), settings).key_id == k.id
    finally:
        reset_key(token)
    assert current_key() is None


def test_admit_enforces_languages_and_concurrency(settings: Settings) -> None:
    k = key(max_concurrent=1, languages=("c",))
    slots = InFlight()
    token = set_key(k)
    try:
        with pytest.raises(Forbidden, match="python"):
            admit(decode_request(b'{"language":"python","source":"1"}'), slots, settings)
        first = decode_request(b'{"id":"one","language":"c","source":"1"}')
        admit(first, slots, settings)
        admit(first, slots, settings)  # an idempotent retry is not a second execution
        with pytest.raises(QuotaExceeded) as e:
            admit(decode_request(b'{"id":"two","language":"c","source":"1"}'), slots, settings,
                  retry_after_s=2.4)
        assert e.value.retry_after == 3 and e.value.extra["quota"] == "concurrency"
        slots.release("one")
        admit(decode_request(b'{"id":"two","language":"c","source":"1"}'), slots, settings)
    finally:
        reset_key(token)


def test_slot_expiry_follows_the_deadline_and_is_bounded(settings: Settings) -> None:
    req = decode_request(b'{"language":"python","source":"1"}')
    soon = slot_ttl_s(replace(req, deadline=NOW + timedelta(seconds=10)), settings, NOW)
    late = slot_ttl_s(replace(req, deadline=NOW + timedelta(days=3000)), settings, NOW)
    past = slot_ttl_s(replace(req, deadline=NOW - timedelta(days=1)), settings, NOW)
    run_s = (settings.compile_wall_ms + settings.max_wall_ms) / 1000 + 30
    assert soon == pytest.approx(10 + run_s)
    assert late == pytest.approx(3600 + run_s) and past == pytest.approx(run_s)
