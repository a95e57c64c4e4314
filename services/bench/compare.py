"""Compare two reports figure by figure, with a faster / slower / same verdict (pure).

The noise threshold. A figure changed only if its relative difference
``|B - A| / A`` exceeds ``max(5 %, spread)``, where ``spread`` is the larger of
the two runs' own half-to-half relative differences of that figure (each
report carries the figures of the first and second half of its measured
window; see figures.py ``halves``). Why both:

* 5 % is the floor: on this project's 2-core machine, shared with other
  processes, back-to-back runs of the same code and workload differ by a few
  per cent in throughput and median latency (CPU frequency, page cache,
  neighbours, the broker's background work). A smaller difference is not
  evidence of a change.
* ``spread`` widens the threshold for noisy runs: a run whose own two halves
  differ by 12 % cannot support a 10 % verdict. Tail figures (p99, p99.9, max)
  rest on few samples, so their spread is large and they are called "same"
  unless the change is clearly larger than the run's own wobble — which is
  what a reader should conclude from short runs.

Figures where lower is better (latencies, errors) are "faster"/"slower"
(or "better"/"worse" for counts); throughput higher is faster. Counts of errors,
unexpected outputs and replay mismatches have no noise: any increase is
"worse".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

FLOOR = 0.05
# (figure name, path in the report, higher is better, half-path or None)
TIMED: list[tuple[str, tuple[str, ...], bool, tuple[str, ...] | None]] = [
    ("throughput_rps", ("throughput_rps",), True, ("throughput_rps",)),
    *[(f"latency_{q}_ms", ("latency_ms", q), False, ("latency_ms", q))
      for q in ("p50", "p90", "p99", "p999", "max")],
    ("service_p50_ms", ("service_ms", "p50"), False, ("latency_ms", "p50")),
    ("queue_mean_ms", ("split_ms", "queue", "mean"), False, ("latency_ms", "p50")),
    ("sandbox_mean_ms", ("split_ms", "sandbox", "mean"), False, ("latency_ms", "p50")),
    ("overhead_mean_ms", ("split_ms", "overhead", "mean"), False, ("latency_ms", "p50")),
]
COUNTS: list[tuple[str, tuple[str, ...]]] = [
    ("errors", ("requests", "errors")),
    ("unexpected_outputs", ("unexpected", "count")),
    ("replay_output_mismatches", ("replay", "output_mismatches")),
]


@dataclass(frozen=True)
class Row:
    """One figure of the comparison."""

    figure: str
    a: float | None
    b: float | None
    change_pct: float | None
    threshold_pct: float | None
    verdict: str


def _get(doc: dict[str, Any], path: tuple[str, ...]) -> float | None:
    cur: Any = doc
    for key in path:
        if not isinstance(cur, dict) or key not in cur:
            return None
        cur = cur[key]
    return float(cur) if isinstance(cur, int | float) else None


def spread(doc: dict[str, Any], half_path: tuple[str, ...] | None) -> float:
    """Relative difference between the two halves of a run for one figure (0 if unknown)."""
    if half_path is None:
        return 0.0
    halves = doc.get("halves") or {}
    first = _get(halves.get("first") or {}, half_path)
    second = _get(halves.get("second") or {}, half_path)
    if first is None or second is None or first + second == 0:
        return 0.0
    return abs(first - second) / ((first + second) / 2)


def verdict(a: float, b: float, threshold: float, higher_is_better: bool) -> tuple[float, str]:
    """(relative change, verdict) of B against A."""
    if a == 0:
        return (0.0, "same") if b == 0 else (float("inf"), "faster" if (
            higher_is_better) else "slower")
    change = (b - a) / a
    if abs(change) <= threshold:
        return change, "same"
    better = change > 0 if higher_is_better else change < 0
    return change, "faster" if better else "slower"


def compare(a: dict[str, Any], b: dict[str, Any]) -> list[Row]:
    """Every figure of A and B with its verdict."""
    rows: list[Row] = []
    for name, path, higher, half in TIMED:
        va, vb = _get(a, path), _get(b, path)
        if va is None or vb is None:
            rows.append(Row(name, va, vb, None, None, "n/a"))
            continue
        threshold = max(FLOOR, spread(a, half), spread(b, half))
        change, word = verdict(va, vb, threshold, higher)
        rows.append(Row(name, va, vb, round(change * 100, 2) if change != float("inf")
                        else None, round(threshold * 100, 2), word))
    for name, path in COUNTS:
        va, vb = _get(a, path), _get(b, path)
        if va is None and vb is None:
            continue
        va, vb = va or 0.0, vb or 0.0
        word = "same" if va == vb else ("worse" if vb > va else "better")
        rows.append(Row(name, va, vb, None, 0.0, word))
    seq_a, seq_b = a.get("sequence_sha256"), b.get("sequence_sha256")
    rows.append(Row("same_request_sequence", None, None, None, None,
                    "same" if seq_a == seq_b else "different"))
    return rows


def as_doc(a: dict[str, Any], b: dict[str, Any], rows: list[Row]) -> dict[str, Any]:
    """The comparison as JSON (compare.json)."""
    return {"schema": "runstream.bench.compare.v1", "a": a.get("run_id"), "b": b.get("run_id"),
            "floor_pct": FLOOR * 100, "rows": [asdict(r) for r in rows]}


def markdown(a: dict[str, Any], b: dict[str, Any], rows: list[Row]) -> str:
    """The comparison as a Markdown table (compare.md)."""
    lines = [f"A = {a.get('run_id')} ({a.get('target')}), B = {b.get('run_id')} "
             f"({b.get('target')})", "",
             "| figure | A | B | change | threshold | verdict |", "|---|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r.figure} | {_num(r.a)} | {_num(r.b)} | "
                     f"{'' if r.change_pct is None else f'{r.change_pct:+.1f} %'} | "
                     f"{'' if r.threshold_pct is None else f'{r.threshold_pct:.1f} %'} | "
                     f"{r.verdict} |")
    return "\n".join(lines) + "\n"


def _num(v: float | None) -> str:
    return "" if v is None else f"{v:.3f}".rstrip("0").rstrip(".")
