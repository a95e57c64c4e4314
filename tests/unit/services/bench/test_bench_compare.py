"""compare: verdicts per figure and the noise threshold."""

from __future__ import annotations

from typing import Any

import pytest
from runstream.services.bench.compare import FLOOR, compare, markdown, spread, verdict


def report(rps: float, p50: float, *, halves: tuple[float, float] | None = None,
           errors: int = 0, seq: str = "s") -> dict[str, Any]:
    lat = {"p50": p50, "p90": p50 * 2, "p99": p50 * 3, "p999": p50 * 4, "max": p50 * 5}
    h1, h2 = halves or (rps, rps)
    return {"run_id": "r", "target": "http", "throughput_rps": rps, "latency_ms": lat,
            "service_ms": {"p50": p50}, "requests": {"errors": errors},
            "unexpected": {"count": 0},
            "split_ms": {k: {"mean": 10.0} for k in ("queue", "sandbox", "overhead")},
            "halves": {"first": {"throughput_rps": h1, "latency_ms": lat},
                       "second": {"throughput_rps": h2, "latency_ms": lat}},
            "sequence_sha256": seq}


@pytest.mark.parametrize(("a", "b", "higher", "word"), [
    (100, 104, True, "same"),     # within the 5 % floor
    (100, 110, True, "faster"),   # more throughput
    (100, 90, True, "slower"),
    (100, 90, False, "faster"),   # less latency
    (100, 120, False, "slower"),
    (0, 0, False, "same"),
])
def test_verdict(a: float, b: float, higher: bool, word: str) -> None:
    assert verdict(a, b, FLOOR, higher)[1] == word


def test_the_runs_own_spread_widens_the_threshold() -> None:
    noisy = report(100, 50, halves=(85, 115))  # halves differ by 30 %
    assert spread(noisy, ("throughput_rps",)) == pytest.approx(0.3)
    rows = {r.figure: r for r in compare(noisy, report(120, 50))}
    assert rows["throughput_rps"].verdict == "same"  # +20 % is inside a 30 % wobble
    assert rows["throughput_rps"].threshold_pct == pytest.approx(30.0)
    rows = {r.figure: r for r in compare(report(100, 50), report(120, 50))}
    assert rows["throughput_rps"].verdict == "faster"


def test_every_figure_gets_a_verdict_and_counts_have_no_noise() -> None:
    rows = compare(report(100, 50), report(100, 40, errors=1, seq="t"))
    by = {r.figure: r.verdict for r in rows}
    assert by["latency_p50_ms"] == "faster" and by["latency_max_ms"] == "faster"
    assert by["throughput_rps"] == "same"
    assert by["errors"] == "worse"
    assert by["same_request_sequence"] == "different"
    text = markdown(report(100, 50), report(100, 40), rows)
    assert "| latency_p50_ms | 50 | 40 | -20.0 % | 5.0 % | faster |" in text
