"""Latency histogram: an HDR histogram (``hdrhistogram``) in microseconds, read in milliseconds.

Values are recorded with 3 significant digits (a relative error under 0.1 %)
from 1 µs to 1 hour; larger values are clamped to the top and counted in
``clamped``. Percentiles are the HDR ones: the value at or below which the
given share of samples falls (so p100 is the maximum, within the precision).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 3600 * 1_000_000
DIGITS = 3
PERCENTILES = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p999": 99.9}
# Percentiles of the distribution plot (HDR style: 1/(1-p) on a log axis).
CURVE = (0, 10, 20, 30, 40, 50, 60, 70, 75, 80, 85, 90, 92.5, 95, 96, 97, 98, 99, 99.5,
         99.9, 99.95, 99.99, 100)


class LatencyHistogram:
    """Records latencies in ms; answers count, mean, min, max and percentiles in ms."""

    def __init__(self, values_ms: Iterable[float] = ()) -> None:
        self._h = HdrHistogram(LOWEST_US, HIGHEST_US, DIGITS)
        self.clamped = 0
        for v in values_ms:
            self.record(v)

    def record(self, value_ms: float) -> None:
        us = round(value_ms * 1000)
        if us > HIGHEST_US:
            self.clamped += 1
            us = HIGHEST_US
        self._h.record_value(max(LOWEST_US, us))

    @property
    def count(self) -> int:
        return int(self._h.get_total_count())

    def percentile(self, q: float) -> float:
        """The value (ms) at percentile ``q`` in 0..100; 0 when empty."""
        if self.count == 0:
            return 0.0
        return float(self._h.get_value_at_percentile(q)) / 1000.0

    @property
    def max(self) -> float:
        return float(self._h.get_max_value()) / 1000.0 if self.count else 0.0

    @property
    def min(self) -> float:
        return float(self._h.get_min_value()) / 1000.0 if self.count else 0.0

    @property
    def mean(self) -> float:
        return float(self._h.get_mean_value()) / 1000.0 if self.count else 0.0

    def summary(self) -> dict[str, Any]:
        """count, min, mean, p50, p90, p99, p999, max (ms, rounded to µs)."""
        out: dict[str, Any] = {"count": self.count, "min": round(self.min, 3),
                               "mean": round(self.mean, 3)}
        for name, q in PERCENTILES.items():
            out[name] = round(self.percentile(q), 3)
        out["max"] = round(self.max, 3)
        return out

    def curve(self) -> list[list[float]]:
        """[percentile, ms] pairs for the distribution plot."""
        if self.count == 0:
            return []
        return [[q, round(self.percentile(q), 3)] for q in CURVE]
