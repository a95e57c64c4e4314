"""How many started containers the docker backend keeps ready per image, from recent demand.

Little's law sizes the pool: the containers of an image that executions have
taken and whose replacements are not ready yet number, on average, the rate of
takes times the turnaround (the time an execution holds its container, since
the pool refills only once it is over, plus one container start). Keeping that
many ready means an execution seldom finds the pool empty and pays a container
start (~180 ms) on top of its run. The figure is bounded: at least ``floor``
for an image asked for within ``idle_s``, never more than ``ceiling``, and
none for an image not asked for that long, since an idle container holds
memory and the engine's attention for nothing.

Pure: the caller passes the clock's readings in (seconds, monotonic).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

WINDOW_S = 30.0  # the recent past the rate of takes is measured over
MIN_SPAN_S = 1.0  # a rate is never measured over less (a first burst is not infinite)
SMOOTHING = 0.3  # weight of a new sample in the moving averages of hold and start times
# Before any sample: a hello-world's execution and a container's start on this
# machine class (docs/speed.md).
FIRST_HOLD_S = 0.15
FIRST_START_S = 0.25


def _smooth(average: float, sample: float) -> float:
    return average + SMOOTHING * (max(0.0, sample) - average)


@dataclass
class _Demand:
    first: float
    last: float
    asks: deque[float] = field(default_factory=deque)
    hold_s: float = FIRST_HOLD_S
    start_s: float = FIRST_START_S


class PoolDemand:
    """Recent takes, hold and start times per image, and the pool size they call for."""

    def __init__(self, floor: int, ceiling: int, idle_s: float,
                 window_s: float = WINDOW_S) -> None:
        if not 0 <= floor <= ceiling:
            raise ValueError(f"pool bounds: need 0 <= floor ({floor}) <= ceiling ({ceiling})")
        if idle_s <= 0 or window_s <= 0:
            raise ValueError("pool idle time and window must be positive")
        self.floor = floor
        self.ceiling = ceiling
        self.idle_s = idle_s
        self.window_s = window_s
        self._images: dict[str, _Demand] = {}

    def asked(self, image: str, now: float) -> None:
        """An execution asked for a container of ``image`` (whether the pool had one or not)."""
        d = self._images.get(image)
        if d is None:
            d = self._images[image] = _Demand(first=now, last=now)
        d.last = now
        d.asks.append(now)
        self._expire(d, now)

    def held(self, image: str, seconds: float) -> None:
        """An execution gave back (to removal) a container it held ``seconds``."""
        d = self._images.get(image)
        if d is not None:
            d.hold_s = _smooth(d.hold_s, seconds)

    def started(self, image: str, seconds: float) -> None:
        """Starting a container of ``image`` for the pool took ``seconds``."""
        d = self._images.get(image)
        if d is not None:
            d.start_s = _smooth(d.start_s, seconds)

    def rate(self, image: str, now: float) -> float:
        """Takes per second over the recent window (0 for an image never asked for)."""
        d = self._images.get(image)
        if d is None:
            return 0.0
        self._expire(d, now)
        span = max(MIN_SPAN_S, min(self.window_s, now - d.first))
        return len(d.asks) / span

    def target(self, image: str, now: float) -> int:
        """How many ready containers of ``image`` to keep now."""
        d = self._images.get(image)
        if d is None or now - d.last > self.idle_s:
            return 0
        wanted = math.ceil(self.rate(image, now) * (d.hold_s + d.start_s) - 1e-9)
        return min(self.ceiling, max(self.floor, wanted))

    def images(self, now: float) -> list[str]:
        """The images asked for within the idle time; the others are forgotten."""
        for image in [i for i, d in self._images.items() if now - d.last > self.idle_s]:
            del self._images[image]
        return list(self._images)

    def _expire(self, d: _Demand, now: float) -> None:
        while d.asks and now - d.asks[0] > self.window_s:
            d.asks.popleft()
