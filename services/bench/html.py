"""The self-contained HTML report of a run (inline CSS and SVG; no network resources)."""

from __future__ import annotations

import math
from html import escape
from typing import Any

import orjson
from runstream.services.bench._svg import bar_chart, line_chart

CSS = """body{font-family:sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;
text-align:right}th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}
.bad{color:#b00;font-weight:bold}.ok{color:#070}svg{margin:.5em 1em .5em 0}pre{background:#f7f7f7;
padding:1em;overflow:auto;font-size:11px}"""
QS = ("p50", "p90", "p99", "p999", "max")


def _pct_x(q: float) -> float:
    """Percentile to the HDR plot's axis: log10 of 1 / (1 - q)."""
    return math.log10(1.0 / max(1e-5, 1.0 - q / 100.0))


def _table(head: list[str], rows: list[list[Any]]) -> str:
    out = ["<table><tr>" + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr>"]
    for row in rows:
        out.append("<tr>" + "".join(f"<td>{escape(_fmt(c))}</td>" for c in row) + "</tr>")
    return "".join(out) + "</table>"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.3f}".rstrip("0").rstrip(".")
    return str(v)


def _latency_rows(doc: dict[str, Any], label: str) -> list[list[Any]]:
    rows = []
    for key, name in (("latency_ms", "latency (from intended send)"),
                      ("service_ms", "service time (from actual send)"),
                      ("lag_ms", "client send lag")):
        block = doc.get(key) or {}
        rows.append([f"{label} {name}", block.get("count", 0), block.get("mean", 0.0),
                     *[block.get(q, 0.0) for q in QS]])
    return rows


def render(report: dict[str, Any]) -> str:
    """The report document as one HTML page."""
    r = report
    req = r["requests"]
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>runstream bench "
             f"{escape(str(r['run_id']))}</title><style>{CSS}</style></head><body>",
             f"<h1>runstream bench — {escape(str(r['run_id']))}</h1>",
             f"<p>target <b>{escape(str(r['target']))}</b>, workload "
             f"<b>{escape(str(r['workload']))}</b>, load {escape(orjson.dumps(r['load']).decode())}"
             + (f", replay of <b>{escape(str(r['replay_of']))}</b>" if r.get("replay_of") else "")
             + "</p>",
             "<h2>Summary</h2>",
             _table(["figure", "value"], [
                 ["throughput (answers/s)", r["throughput_rps"]],
                 ["measured window (s)", r["window_s"]],
                 ["requests planned / warm-up / measured", f"{req['planned']} / {req['warmup']} /"
                  f" {req['measured']}"],
                 ["completed / errors", f"{req['completed']} / {req['errors']}"],
                 ["unexpected outputs", r["unexpected"]["count"]],
                 ["request sequence sha256", r["sequence_sha256"][:16] + "…"]]),
             "<h2>Latency (ms)</h2>",
             _table(["what", "count", "mean", *QS], _latency_rows(r, r["target"]) + (
                 _latency_rows(r["baseline"], f"baseline {r['baseline']['target']}")
                 if "baseline" in r else []))]
    split = r["split_ms"]
    parts.append("<h2>Where the time goes (ms)</h2>" + _table(
        ["part", "mean", "p50", "p99", "share of mean"],
        [[k, split[k]["mean"], split[k]["p50"], split[k]["p99"], split["mean_share"][k]]
         for k in ("queue", "sandbox", "overhead")]))
    if "overhead_ratio" in r:
        parts.append("<h2>Pipeline vs baseline (same run)</h2>" + _table(
            ["ratio target/baseline", "value"],
            [[k, v if v is not None else "n/a"] for k, v in r["overhead_ratio"].items()]))
    parts.append("<h2>Verdicts and errors</h2>" + _table(
        ["verdict or error", "count"],
        [[k, v] for k, v in r["verdicts"].items()] + [[f"error: {k}", v]
                                                      for k, v in r["errors"].items()]))
    if r["unexpected"]["examples"]:
        parts.append("<p class='bad'>Unexpected outputs:</p>" + _table(
            ["id", "program", "why"],
            [[e["id"], e["program"], e["why"]] for e in r["unexpected"]["examples"]]))
    if "replay" in r:
        rp = r["replay"]
        cls = "ok" if rp["payloads_match"] and not rp["output_mismatches"] else "bad"
        parts.append(f"<h2>Replay check</h2><p class='{cls}'>payloads match: "
                     f"{rp['payloads_match']}; output mismatches: {rp['output_mismatches']}</p>")
        if rp.get("mismatch_examples"):
            parts.append(_table(["id", "program", "why"], [[e["id"], e["program"], e["why"]]
                                                            for e in rp["mismatch_examples"]]))
    parts.append("<h2>Plots</h2>")
    parts.append(_plots(r))
    parts.append("<h2>Manifest</h2><pre>" + escape(orjson.dumps(
        r.get("manifest", {}), option=orjson.OPT_INDENT_2).decode()) + "</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _plots(r: dict[str, Any]) -> str:
    ticks = [(q, label) for q, label in ((0, "0%"), (90, "90%"), (99, "99%"), (99.9, "99.9%"),
                                         (99.99, "99.99%"))]
    curves = [(str(r["target"]), [(q, v) for q, v in r["distribution"]])]
    if "baseline" in r:
        curves.append((f"baseline {r['baseline']['target']}",
                       [(q, v) for q, v in r["baseline"]["distribution"]]))
    out = [line_chart("Latency distribution", curves, "percentile", "ms", x_map=_pct_x,
                      x_ticks=ticks)]
    tl = r["timeline"]
    out.append(line_chart("Throughput over time",
                          [("answers/s", [(row["t_s"], row["completed"]) for row in tl]),
                           ("errors/s", [(row["t_s"], row["errors"]) for row in tl])],
                          "seconds since start", "per second"))
    out.append(line_chart("Latency over time",
                          [("p50", [(row["t_s"], row["p50_ms"]) for row in tl]),
                           ("p99", [(row["t_s"], row["p99_ms"]) for row in tl])],
                          "seconds since start", "ms"))
    langs = r["per_language"]
    names = list(langs)
    out.append(bar_chart("Latency per language", names,
                         [(q, [langs[n]["latency_ms"][q] for n in names]) for q in
                          ("p50", "p99")], "ms"))
    progs = r["per_program"]
    pnames = list(progs)
    out.append(bar_chart("Latency per program", pnames,
                         [(q, [progs[n]["latency_ms"][q] for n in pnames]) for q in
                          ("p50", "p99")], "ms"))
    return "\n".join(out)
