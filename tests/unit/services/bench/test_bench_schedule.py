"""Open- and closed-loop timing arithmetic."""

from __future__ import annotations

import itertools
import statistics

import pytest
from runstream.services.bench.sample import Sample
from runstream.services.bench.schedule import (
    LoadModel,
    lag_ms,
    latency_ms,
    measured,
    open_loop_offsets,
    throughput,
)


def test_fixed_rate_offsets_are_exact_and_bounded_by_duration() -> None:
    offsets = open_loop_offsets(LoadModel(rate=6.25, duration_s=2.0))
    assert offsets == pytest.approx([i * 0.16 for i in range(13)])  # 0 .. 1.92


def test_fixed_rate_does_not_drift() -> None:
    offsets = open_loop_offsets(LoadModel(rate=3.0, duration_s=None, requests=30001))
    assert offsets[-1] == pytest.approx(10000.0, abs=1e-9)


def test_request_count_bounds_first() -> None:
    assert len(open_loop_offsets(LoadModel(rate=100, duration_s=60, requests=7))) == 7


def test_poisson_offsets_are_seeded_and_have_the_right_rate() -> None:
    a = open_loop_offsets(LoadModel(arrival="poisson", rate=50, duration_s=200, seed=1))
    b = open_loop_offsets(LoadModel(arrival="poisson", rate=50, duration_s=200, seed=1))
    c = open_loop_offsets(LoadModel(arrival="poisson", rate=50, duration_s=200, seed=2))
    assert a == b and a != c
    assert a == sorted(a) and a[0] == 0.0
    assert len(a) / 200 == pytest.approx(50, rel=0.05)
    gaps = [y - x for x, y in itertools.pairwise(a)]
    # Exponential gaps: mean and standard deviation both 1/rate.
    assert statistics.fmean(gaps) == pytest.approx(0.02, rel=0.05)
    assert statistics.stdev(gaps) == pytest.approx(0.02, rel=0.1)


def test_latency_counts_from_the_intended_time_coordinated_omission() -> None:
    # Intended at 1.0 s, the client only managed to send at 1.3 s, answered at 1.5 s.
    assert latency_ms(1.0, 1.5) == pytest.approx(500.0)
    assert lag_ms(1.0, 1.3) == pytest.approx(300.0)
    s = Sample(seq=0, id="x", program="p", language="python", payload_sha256="",
               intended_s=1.0, sent_s=1.3, done_s=1.5)
    assert s.latency_ms == pytest.approx(500.0) and s.service_ms == pytest.approx(200.0)


def test_warmup_and_throughput_window() -> None:
    assert not measured(0.99, 1.0) and measured(1.0, 1.0)
    # 10 answers between the end of the warm-up (2 s) and the last one (7 s): 2/s.
    assert throughput([2.5 + i * 0.5 for i in range(10)], 2.0) == pytest.approx(10 / 5.0)
    assert throughput([], 0.0) == 0.0


@pytest.mark.parametrize("kwargs", [
    {"model": "queue"}, {"rate": 0}, {"model": "closed", "clients": 0},
    {"duration_s": None, "requests": None}, {"warmup_s": -1}, {"requests": 0},
])
def test_bad_load_models_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        LoadModel(**kwargs)  # type: ignore[arg-type]
