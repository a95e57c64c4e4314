"""Per-key quotas: a token-bucket rate limit and a count of executions in flight.

Pure arithmetic over an injected clock (``time.monotonic`` by default): no I/O,
no Starlette, so the tests drive time by hand. Both are per ingress process; the
docs/keys.md says what that means with several instances.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from runstream.schemas.keys import KeyRecord

Clock = Callable[[], float]


class TokenBucket:
    """``burst`` tokens, refilled at ``rate`` per second; a request takes one."""

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.at = now

    def _refill(self, now: float) -> None:
        if now > self.at:
            self.tokens = min(float(self.burst), self.tokens + (now - self.at) * self.rate)
            self.at = now

    def take(self, now: float) -> float:
        """0 when a token was taken; otherwise the seconds until one will be there."""
        self._refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate

    def remaining(self, now: float) -> int:
        self._refill(now)
        return int(self.tokens)

    def full(self, now: float) -> bool:
        self._refill(now)
        return self.tokens >= self.burst


class RateLimits:
    """One token bucket per key id, shaped by the key's record (rate 0: no limit)."""

    SWEEP_EVERY = 1024  # takes between two sweeps of buckets that are full again

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self.clock = clock
        self.buckets: dict[str, TokenBucket] = {}
        self._takes = 0

    def take(self, key: KeyRecord) -> float:
        """0 if ``key`` may make one more request now, else the seconds to wait."""
        if key.rate_per_s <= 0:
            return 0.0
        now = self.clock()
        bucket = self.buckets.get(key.id)
        if bucket is None or bucket.rate != key.rate_per_s or bucket.burst != key.burst:
            # A new key, or its record changed: start from a full bucket of the new shape.
            bucket = self.buckets[key.id] = TokenBucket(key.rate_per_s, key.burst, now)
        self._takes += 1
        if self._takes % self.SWEEP_EVERY == 0:
            self.sweep(now)
        return bucket.take(now)

    def remaining(self, key: KeyRecord) -> int | None:
        """Whole requests ``key`` may still make at once; None if it has no rate limit."""
        if key.rate_per_s <= 0:
            return None
        bucket = self.buckets.get(key.id)
        return key.burst if bucket is None else bucket.remaining(self.clock())

    def sweep(self, now: float) -> None:
        """Forget buckets that refilled: a new one starts full, the same thing."""
        for key_id in [k for k, b in self.buckets.items() if b.full(now)]:
            del self.buckets[key_id]


@dataclass
class _Held:
    key_id: str
    until: float


@dataclass
class InFlight:
    """Executions each key has submitted here and not seen finish, with an expiry each.

    A slot is taken when the request is produced and given back when its result
    arrives (from any worker, on the replies or the results topic). The expiry is
    a safety net for a result that never comes: the slot is then freed anyway.
    """

    clock: Clock = time.monotonic
    held: dict[str, _Held] = field(default_factory=dict)  # execution id -> holder
    per_key: dict[str, set[str]] = field(default_factory=dict)  # key id -> execution ids

    def count(self, key_id: str) -> int:
        self._expire(key_id)
        return len(self.per_key.get(key_id, ()))

    def acquire(self, key_id: str, exec_id: str, limit: int, ttl_s: float) -> bool:
        """Take a slot of ``key_id`` for ``exec_id``; False when ``limit`` are taken.

        An execution id that already holds a slot (an idempotent retry) takes no
        second one. ``limit`` 0 means no limit (the slot is still counted).
        """
        if exec_id in self.held:
            return True
        if limit > 0 and self.count(key_id) >= limit:
            return False
        self.held[exec_id] = _Held(key_id, self.clock() + ttl_s)
        self.per_key.setdefault(key_id, set()).add(exec_id)
        return True

    def release(self, exec_id: str) -> None:
        held = self.held.pop(exec_id, None)
        if held is None:
            return
        ids = self.per_key.get(held.key_id)
        if ids is not None:
            ids.discard(exec_id)
            if not ids:
                del self.per_key[held.key_id]

    def _expire(self, key_id: str) -> None:
        now = self.clock()
        for exec_id in [e for e in self.per_key.get(key_id, ()) if self.held[e].until <= now]:
            self.release(exec_id)
