"""The HDR histogram's figures against known inputs."""

from __future__ import annotations

import pytest
from runstream.services.bench.histogram import LatencyHistogram


def test_uniform_1_to_1000_ms() -> None:
    h = LatencyHistogram(float(v) for v in range(1, 1001))
    s = h.summary()
    assert s["count"] == 1000
    # 3 significant digits: within 0.1 % of the exact nearest-rank values.
    for name, exact in (("p50", 500), ("p90", 900), ("p99", 990), ("p999", 999),
                        ("max", 1000), ("min", 1)):
        assert s[name] == pytest.approx(exact, rel=1e-3), name
    assert s["mean"] == pytest.approx(500.5, rel=1e-3)


def test_a_single_outlier_shows_only_in_the_tail() -> None:
    h = LatencyHistogram([10.0] * 999 + [5000.0])
    assert h.percentile(50) == pytest.approx(10, rel=1e-3)
    assert h.percentile(99) == pytest.approx(10, rel=1e-3)
    assert h.percentile(99.9) == pytest.approx(10, rel=1e-3)
    assert h.max == pytest.approx(5000, rel=1e-3)


def test_sub_millisecond_and_clamped_values() -> None:
    h = LatencyHistogram([0.25, 0.0])
    assert h.min == pytest.approx(0.001, rel=1e-3)  # 0 is recorded as 1 µs
    assert h.max == pytest.approx(0.25, rel=1e-3)
    h.record(10 * 3600 * 1000.0)  # ten hours: clamped to the top (one hour)
    assert h.clamped == 1 and h.max == pytest.approx(3600 * 1000, rel=1e-3)


def test_empty_histogram_is_all_zero() -> None:
    assert LatencyHistogram().summary() == {"count": 0, "min": 0.0, "mean": 0.0, "p50": 0.0,
                                            "p90": 0.0, "p99": 0.0, "p999": 0.0, "max": 0.0}
    assert LatencyHistogram().curve() == []


def test_curve_is_monotonic_and_ends_at_max() -> None:
    h = LatencyHistogram(float(v) for v in range(1, 101))
    curve = h.curve()
    values = [v for _, v in curve]
    assert values == sorted(values) and curve[-1] == [100, pytest.approx(100, rel=1e-3)]
