"""The figures of a run, as the stable JSON document ``report.json`` (pure).

Schema ``runstream.bench.report.v1``; times in milliseconds unless the name
says ``_s``; every latency block is ``{count, min, mean, p50, p90, p99, p999,
max}`` from an HDR histogram (see histogram.py). Fields:

* ``schema``, ``run_id``, ``target``, ``workload``, ``load`` (the load model),
  ``replay_of`` (run id, or null), ``manifest`` (copy of manifest.json).
* ``requests``: ``planned`` (issued), ``measured`` (after warm-up), ``completed``
  (measured, answered), ``errors`` (measured, no answer), ``warmup``.
* ``window_s``: from the end of the warm-up to the last measured answer.
* ``throughput_rps``: measured answers / ``window_s``.
* ``latency_ms``: from each request's *intended* send time to its answer.
* ``service_ms``: from the actual send to the answer.
* ``lag_ms``: how late the client sent (latency minus service time).
* ``split_ms``: ``queue``, ``sandbox``, ``overhead`` blocks (see sample.py) and
  ``mean_share`` (each one's share of their summed means, 0..1).
* ``verdicts``: result status -> count. ``errors``: error kind -> count.
* ``unexpected``: ``count`` of answers that broke the workload's expect_* and
  up to 20 ``examples`` ({id, program, why}).
* ``per_language`` / ``per_program``: name -> {count, throughput_rps, latency_ms}.
* ``timeline``: one row per second of the run: ``t_s``, ``completed``, ``errors``,
  ``p50_ms``, ``p99_ms`` (latency of the answers of that second).
* ``distribution``: ``[[percentile, ms], ...]`` of latency (plot).
* ``halves``: ``first`` and ``second`` half of the measured window, each with
  ``throughput_rps`` and ``latency_ms`` (the run-to-run spread estimate of compare).
* ``sequence_sha256``: digest of the ordered payload hashes (see workload.py).
* ``per_minute``: what braindrill's load simulator printed every minute, one row per
  minute of the run (warm-up included, as the simulator has none): ``minute`` (1..),
  ``seconds`` (60, or fewer for the last, partial minute), ``requests`` (answered in
  that minute), ``mean_ms`` (integer, as the simulator's), ``p50_ms``, ``p90_ms``,
  ``p99_ms`` (the simulator's nearest rank: sorted[ceil(n*p/100)-1]), ``errors``.
  Latency is from the intended send time (equal to the simulator's send time
  unless the client lagged, see ``lag_ms``).
* ``baseline``, ``overhead_ratio``: present when a baseline target ran the same
  sequence in the same invocation (figures of the same shape; ratios
  target/baseline of throughput and latency p50/p99).
* ``replay``: present for replays: ``payloads_match`` (same hashes, same order),
  ``output_mismatches`` (count) and up to 20 ``mismatch_examples``.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

from runstream.services.bench.histogram import LatencyHistogram
from runstream.services.bench.sample import Sample
from runstream.services.bench.schedule import throughput
from runstream.services.bench.workload import sequence_hash

SCHEMA = "runstream.bench.report.v1"
MAX_EXAMPLES = 20


def _block(values: Iterable[float | None]) -> dict[str, Any]:
    return LatencyHistogram(v for v in values if v is not None).summary()


def summarise(samples: list[Sample], warmup_s: float) -> dict[str, Any]:
    """The figures of one target's samples (the part shared by run and baseline)."""
    measured = [s for s in samples if not s.warmup]
    done = [s for s in measured if s.completed]
    done_at = [s.done_s for s in done if s.done_s is not None]
    window = (max(done_at) - warmup_s) if done_at else 0.0
    split = {
        "queue": _block(s.queue_ms for s in done),
        "sandbox": _block(s.sandbox_ms for s in done),
        "overhead": _block(s.overhead_ms for s in done),
    }
    total = sum(split[k]["mean"] for k in ("queue", "sandbox", "overhead"))
    split["mean_share"] = {k: round(split[k]["mean"] / total, 4) if total else 0.0
                           for k in ("queue", "sandbox", "overhead")}
    hist = LatencyHistogram(s.latency_ms for s in done if s.latency_ms is not None)
    unexpected = [s for s in done if s.unexpected]
    return {
        "requests": {"planned": len(samples), "warmup": len(samples) - len(measured),
                     "measured": len(measured), "completed": len(done),
                     "errors": len(measured) - len(done)},
        "window_s": round(max(window, 0.0), 3),
        "throughput_rps": round(throughput(done_at, warmup_s), 3),
        "latency_ms": hist.summary(),
        "service_ms": _block(s.service_ms for s in done),
        "lag_ms": _block(s.lag_ms for s in done),
        "split_ms": split,
        "verdicts": dict(sorted(Counter(str(s.status) for s in done).items())),
        "errors": dict(sorted(Counter(s.error or "no answer" for s in measured
                                      if not s.completed).items())),
        "unexpected": {"count": len(unexpected), "examples": [
            {"id": s.id, "program": s.program, "why": s.unexpected}
            for s in unexpected[:MAX_EXAMPLES]]},
        "per_language": _grouped(done, lambda s: s.language, warmup_s),
        "per_program": _grouped(done, lambda s: s.program, warmup_s),
        "timeline": timeline(samples),
        "distribution": hist.curve(),
        "halves": halves(done, warmup_s),
        "sequence_sha256": sequence_hash([s.payload_sha256 for s in
                                          sorted(samples, key=lambda s: s.seq)]),
    }


def _grouped(done: list[Sample], key: Any, warmup_s: float) -> dict[str, Any]:
    groups: dict[str, list[Sample]] = defaultdict(list)
    for s in done:
        groups[key(s)].append(s)
    return {name: {"count": len(group),
                   "throughput_rps": round(throughput([s.done_s or 0.0 for s in group],
                                                      warmup_s), 3),
                   "latency_ms": _block(s.latency_ms for s in group)}
            for name, group in sorted(groups.items())}


def timeline(samples: list[Sample]) -> list[dict[str, Any]]:
    """Per second of the run (warm-up included, flagged by time): answers and latency."""
    by_second: dict[int, list[Sample]] = defaultdict(list)
    for s in samples:
        if s.done_s is not None:
            by_second[int(s.done_s)].append(s)
    rows = []
    for second in range(0, (max(by_second) + 1) if by_second else 0):
        group = by_second.get(second, [])
        ok = [s.latency_ms for s in group if s.completed and s.latency_ms is not None]
        hist = LatencyHistogram(ok)
        rows.append({"t_s": second, "completed": len(ok), "errors": len(group) - len(ok),
                     "p50_ms": round(hist.percentile(50), 3),
                     "p99_ms": round(hist.percentile(99), 3)})
    return rows


def simulator_percentile(data: list[float], p: float) -> int:
    """braindrill's simulator's percentile: sorted[ceil(n * p / 100) - 1], 0 if empty."""
    if not data:
        return 0
    ordered = sorted(data)
    return round(ordered[max(0, math.ceil(len(ordered) * p / 100.0) - 1)])


def per_minute(samples: list[Sample]) -> list[dict[str, Any]]:
    """Per minute of the run: what braindrill's simulator printed (see the docstring)."""
    minutes: dict[int, list[Sample]] = defaultdict(list)
    for s in samples:
        at = s.done_s if s.done_s is not None else s.sent_s
        minutes[int(at // 60)].append(s)
    end = max((s.done_s or s.sent_s for s in samples), default=0.0)
    rows = []
    for minute in range(0, (max(minutes) + 1) if minutes else 0):
        group = minutes.get(minute, [])
        # Whole milliseconds per answer, as the simulator measured them.
        ms = [float(round(s.latency_ms)) for s in group
              if s.completed and s.latency_ms is not None]
        rows.append({"minute": minute + 1, "seconds": round(min(60.0, end - minute * 60), 1),
                     "requests": len(ms), "mean_ms": int(sum(ms) // len(ms)) if ms else 0,
                     "p50_ms": simulator_percentile(ms, 50),
                     "p90_ms": simulator_percentile(ms, 90),
                     "p99_ms": simulator_percentile(ms, 99),
                     "errors": len(group) - len(ms)})
    return rows


def halves(done: list[Sample], warmup_s: float) -> dict[str, Any]:
    """Throughput and latency of the first and second half of the measured window."""
    if not done:
        return {}
    end = max(s.done_s or 0.0 for s in done)
    middle = warmup_s + (end - warmup_s) / 2
    span = max(1e-9, middle - warmup_s)
    out = {}
    for name, part in (("first", [s for s in done if (s.done_s or 0.0) < middle]),
                       ("second", [s for s in done if (s.done_s or 0.0) >= middle])):
        out[name] = {"throughput_rps": round(len(part) / span, 3),
                     "latency_ms": _block(s.latency_ms for s in part)}
    return out


def build_report(samples: list[Sample], *, manifest: dict[str, Any],
                 baseline: list[Sample] | None = None,
                 replay: dict[str, Any] | None = None) -> dict[str, Any]:
    """The whole report document of a run."""
    load = manifest.get("load", {})
    warmup_s = float(load.get("warmup_s", 0.0))
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "run_id": manifest.get("run_id"),
        "target": manifest.get("target"),
        "workload": manifest.get("workload", {}).get("name"),
        "load": load,
        "replay_of": manifest.get("replay_of"),
        **summarise(samples, warmup_s),
    }
    doc["per_minute"] = per_minute(samples)
    if baseline is not None:
        base = summarise(baseline, warmup_s)
        doc["baseline"] = {"target": manifest.get("baseline"), **base}
        doc["overhead_ratio"] = overhead_ratio(doc, base)
    if replay is not None:
        doc["replay"] = replay
    doc["manifest"] = manifest
    return doc


def overhead_ratio(run: dict[str, Any], base: dict[str, Any]) -> dict[str, float | None]:
    """target / baseline of throughput and of latency p50 and p99."""
    def ratio(a: float, b: float) -> float | None:
        return round(a / b, 3) if b else None

    return {
        "throughput": ratio(run["throughput_rps"], base["throughput_rps"]),
        "latency_p50": ratio(run["latency_ms"]["p50"], base["latency_ms"]["p50"]),
        "latency_p99": ratio(run["latency_ms"]["p99"], base["latency_ms"]["p99"]),
    }
