"""Load models and their timing arithmetic (pure).

Open loop: requests are *intended* to start at fixed offsets from the start of
the run, whatever happens to earlier ones: a fixed rate (offset ``i / rate``)
or a Poisson process (exponential gaps of mean ``1 / rate``, from a seeded
generator so that the same seed gives the same arrivals). Latency is measured
from the intended send time, not from when the client managed to send: a
client that falls behind (a stalled event loop, no free connection) would
otherwise hide exactly the waits a real user sees — coordinated omission.

Closed loop: ``clients`` concurrent clients each send the next request as soon
as their previous one is answered; the intended send time is the actual one.

Either model is bounded by a duration, a request count, or both (whichever
comes first); requests intended before ``warmup_s`` are excluded from figures.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

MODELS = ("open", "closed")
ARRIVALS = ("fixed", "poisson")
# A hard ceiling on any run, whatever the flags: every loop is bounded.
MAX_REQUESTS = 1_000_000


@dataclass(frozen=True)
class LoadModel:
    """How requests are issued: the model, its rate or clients, its bounds and warm-up."""

    model: str = "open"
    arrival: str = "fixed"
    rate: float = 5.0
    clients: int = 4
    duration_s: float | None = 30.0
    requests: int | None = None
    warmup_s: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}")
        if self.arrival not in ARRIVALS:
            raise ValueError(f"arrival must be one of {ARRIVALS}")
        if self.model == "open" and not self.rate > 0:
            raise ValueError("an open loop needs a positive rate")
        if self.model == "closed" and self.clients < 1:
            raise ValueError("a closed loop needs at least one client")
        if self.duration_s is None and self.requests is None:
            raise ValueError("give a duration, a request count, or both")
        if self.duration_s is not None and self.duration_s <= 0:
            raise ValueError("duration must be positive")
        if self.requests is not None and not 0 < self.requests <= MAX_REQUESTS:
            raise ValueError(f"requests must be within 1..{MAX_REQUESTS}")
        if self.warmup_s < 0:
            raise ValueError("warm-up must not be negative")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def request_bound(self) -> int:
        """Most requests this model may issue."""
        return self.requests if self.requests is not None else MAX_REQUESTS

    def within(self, seq: int, offset_s: float) -> bool:
        """Whether request ``seq`` intended at ``offset_s`` belongs to the run."""
        if seq >= self.request_bound:
            return False
        return self.duration_s is None or offset_s < self.duration_s


def fixed_offsets(rate: float) -> Iterator[float]:
    """Intended send offsets (s) at a fixed rate: 0, 1/rate, 2/rate, ..."""
    gap = 1.0 / rate
    i = 0
    while True:
        yield i * gap  # multiplied, not accumulated: no drift over long runs
        i += 1


def poisson_offsets(rate: float, seed: int) -> Iterator[float]:
    """Intended send offsets (s) of a Poisson process of ``rate``, starting at 0."""
    rng = random.Random(f"arrivals:{seed}")
    t = 0.0
    while True:
        yield t
        # Inverse CDF of the exponential; 1 - random() is in (0, 1], so log is finite.
        t += -math.log(1.0 - rng.random()) / rate


def open_loop_offsets(load: LoadModel) -> list[float]:
    """Every intended offset of an open-loop run, within its bounds."""
    source = (fixed_offsets(load.rate) if load.arrival == "fixed"
              else poisson_offsets(load.rate, load.seed))
    out: list[float] = []
    for seq, offset in enumerate(source):
        if not load.within(seq, offset):
            break
        out.append(offset)
    return out


def latency_ms(intended_s: float, done_s: float) -> float:
    """Latency as the user sees it: from the intended send time to the answer."""
    return max(0.0, (done_s - intended_s) * 1000.0)


def lag_ms(intended_s: float, sent_s: float) -> float:
    """How late the client actually sent (included in latency, reported on its own)."""
    return max(0.0, (sent_s - intended_s) * 1000.0)


def measured(intended_s: float, warmup_s: float) -> bool:
    """Whether a request counts in the figures (intended after the warm-up)."""
    return intended_s >= warmup_s


def throughput(done_offsets_s: list[float], window_start_s: float) -> float:
    """Completions per second from ``window_start_s`` to the last completion."""
    if not done_offsets_s:
        return 0.0
    span = max(done_offsets_s) - window_start_s
    if span <= 0:
        return 0.0
    return len(done_offsets_s) / span
