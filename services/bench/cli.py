"""``runstream bench``: run, replay, report, compare (and the older ``latency``).

    runstream bench run braindrill --target http --duration 30
    runstream bench run braindrill --target lang --duration 70   # as braindrill's simulator
    runstream bench run hello --target http --baseline direct --rate 2 --duration 20
    runstream bench run cpu --model closed --clients 4 --requests 200 --target direct
    runstream bench replay RUN-ID [--target kafka]
    runstream bench report RUN-ID|FOLDER
    runstream bench compare A B
    runstream bench latency [--requests 300]
    runstream bench speed [--profile]     # every speed goal's figure, one command
    runstream bench idle [--seconds 30]   # CPU of an idle system, per process

A workload is a shipped name (braindrill, hello, polyglot, cpu, sleep, hostile)
or a TOML file; its [load] table gives defaults that the flags override. Each
run records its requests to the Kafka topic ``runstream.bench.<run-id>`` (see
recording.py) and writes its files to ``bench-results/<run-id>/`` (see
session.py); ``report.json``'s fields are documented in figures.py.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table
from runstream.services.bench import compare as cmp
from runstream.services.bench import session
from runstream.services.bench.schedule import ARRIVALS, MODELS, LoadModel
from runstream.services.bench.targets import TARGETS
from runstream.services.bench.workload import builtin_names, load_workload
from runstream.services.settings import Settings

SUBCOMMANDS = ("run", "replay", "report", "compare", "latency", "speed", "idle")


def _target_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", choices=TARGETS, default="http", help="system under test")
    p.add_argument("--url", help="ingress URL of the http target (default from settings)")
    p.add_argument("--slots", type=int, help="parallel runs of the direct target "
                   "(default RUNSTREAM_WORKER_CONCURRENCY)")
    p.add_argument("--out", type=Path, help="output folder (default bench-results/<run-id>/)")
    p.add_argument("--run-id", help="run id (default: time-based, or <run>-r<n> for replays)")
    p.add_argument("--no-record", action="store_true", help="do not record to Kafka")
    p.add_argument("--no-progress", action="store_true", help="no live display")
    p.add_argument("--max-in-flight", type=int, default=2000)
    p.add_argument("--drain-timeout", type=float, default=120.0,
                   help="seconds to wait for answers after the last send")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="runstream bench", description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = top.add_subparsers(dest="sub", required=True)
    r = sub.add_parser("run", help="run a workload against a target")
    r.add_argument("workload", help=f"shipped ({', '.join(builtin_names())}) or a .toml path")
    _target_flags(r)
    r.add_argument("--baseline", choices=TARGETS, help="run the same sequence against this "
                   "target too, in the same invocation, and report ratios")
    r.add_argument("--model", choices=MODELS)
    r.add_argument("--arrival", choices=ARRIVALS)
    r.add_argument("--rate", type=float, help="open loop: requests per second")
    r.add_argument("--clients", type=int, help="closed loop: concurrent clients")
    r.add_argument("--duration", type=float, help="seconds of sending (0: no time bound)")
    r.add_argument("--requests", type=int, help="at most this many requests")
    r.add_argument("--warmup", type=float, help="seconds excluded from the figures")
    r.add_argument("--seed", type=int, help="workload seed (default: the file's)")
    p = sub.add_parser("replay", help="re-issue a recorded run and check its outputs")
    p.add_argument("run", help="run id of the recorded run")
    _target_flags(p)
    rep = sub.add_parser("report", help="rebuild report.json and report.html of a run")
    rep.add_argument("run", help="run id or folder")
    c = sub.add_parser("compare", help="compare two runs figure by figure")
    c.add_argument("a")
    c.add_argument("b")
    c.add_argument("--out", type=Path, help="folder of compare.json and compare.md "
                   "(default bench-results/compare-A-vs-B/)")
    return top


def load_model(workload_load: dict[str, Any], args: argparse.Namespace, seed: int) -> LoadModel:
    """The workload's [load] defaults, overridden by the flags."""
    values: dict[str, Any] = {k: v for k, v in workload_load.items()
                              if k in LoadModel.__dataclass_fields__}
    for flag, key in (("model", "model"), ("arrival", "arrival"), ("rate", "rate"),
                      ("clients", "clients"), ("requests", "requests"), ("warmup", "warmup_s")):
        if getattr(args, flag) is not None:
            values[key] = getattr(args, flag)
    if args.duration is not None:
        values["duration_s"] = args.duration or None
    values["seed"] = seed
    return LoadModel(**values)


def _options(args: argparse.Namespace, argv: list[str]) -> session.Options:
    return session.Options(target=args.target, url=args.url, slots=args.slots,
                           baseline=getattr(args, "baseline", None), record=not args.no_record,
                           out=args.out, run_id=args.run_id, progress=not args.no_progress,
                           max_in_flight=args.max_in_flight,
                           drain_timeout_s=args.drain_timeout, argv=argv)


def summary(report: dict[str, Any], folder: Path | None = None) -> None:
    """Print the headline figures of a report."""
    console = Console()
    t = Table(title=f"{report['run_id']} ({report['target']}, {report['workload']})")
    for col in ("figure", "value"):
        t.add_column(col, justify="left" if col == "figure" else "right")
    lat, req = report["latency_ms"], report["requests"]
    t.add_row("throughput (answers/s)", f"{report['throughput_rps']:.2f}")
    t.add_row("latency p50/p90/p99/p99.9/max ms",
              " / ".join(f"{lat[q]:.0f}" for q in ("p50", "p90", "p99", "p999", "max")))
    split = report["split_ms"]
    t.add_row("mean queue / sandbox / overhead ms", " / ".join(
        f"{split[k]['mean']:.0f}" for k in ("queue", "sandbox", "overhead")))
    t.add_row("completed / errors / unexpected",
              f"{req['completed']} / {req['errors']} / {report['unexpected']['count']}")
    t.add_row("verdicts", " ".join(f"{k}={v}" for k, v in report["verdicts"].items()))
    if report["errors"]:
        t.add_row("errors", " ".join(f"{k}={v}" for k, v in report["errors"].items()))
    if "overhead_ratio" in report:
        b = report["baseline"]
        t.add_row(f"baseline {b['target']}: throughput, p50 ms",
                  f"{b['throughput_rps']:.2f}, {b['latency_ms']['p50']:.0f}")
        t.add_row("ratio target/baseline", " ".join(
            f"{k}={v}" for k, v in report["overhead_ratio"].items()))
    if "replay" in report:
        rp = report["replay"]
        t.add_row("replay: payloads match", str(rp["payloads_match"]))
        t.add_row("replay: output mismatches", f"{rp['output_mismatches']} of {rp['compared']}")
    console.print(t)
    if report.get("per_minute"):
        console.print(per_minute_table(report["per_minute"]))
    if folder is not None:
        console.print(f"reports: {folder / 'report.json'}  {folder / 'report.html'}")


def per_minute_table(rows: list[dict[str, Any]]) -> Table:
    """The per-minute figures braindrill's load simulator printed, one row per minute."""
    t = Table(title="per minute, as braindrill's simulator printed (ms)")
    for col in ("minute", "requests", "mean", "p50", "p90", "p99", "errors"):
        t.add_column(col, justify="right")
    for r in rows:
        minute = str(r["minute"]) + ("" if r["seconds"] >= 60 else f" ({r['seconds']:g} s)")
        t.add_row(minute, str(r["requests"]), str(r["mean_ms"]), str(r["p50_ms"]),
                  str(r["p90_ms"]), str(r["p99_ms"]), str(r["errors"]))
    return t


def do_compare(settings: Settings, args: argparse.Namespace) -> int:
    fa, fb = session.resolve_run(settings, args.a), session.resolve_run(settings, args.b)
    a = orjson.loads((fa / "report.json").read_bytes())
    b = orjson.loads((fb / "report.json").read_bytes())
    rows = cmp.compare(a, b)
    t = Table(title=f"A={a['run_id']} vs B={b['run_id']} (noise floor {cmp.FLOOR:.0%})")
    for col in ("figure", "A", "B", "change", "threshold", "verdict"):
        t.add_column(col, justify="left" if col in ("figure", "verdict") else "right")
    for r in rows:
        t.add_row(r.figure, cmp._num(r.a), cmp._num(r.b),
                  "" if r.change_pct is None else f"{r.change_pct:+.1f}%",
                  "" if r.threshold_pct is None else f"{r.threshold_pct:.1f}%", r.verdict)
    Console().print(t)
    out = args.out or Path(session.RESULTS_DIR) / f"compare-{a['run_id']}-vs-{b['run_id']}"
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.json").write_bytes(orjson.dumps(cmp.as_doc(a, b, rows),
                                                    option=orjson.OPT_INDENT_2))
    (out / "compare.md").write_text(cmp.markdown(a, b, rows), encoding="utf-8")
    print(f"written: {out / 'compare.json'}  {out / 'compare.md'}")
    return 0


async def main(settings: Settings, argv: list[str]) -> int:
    """Entry point of ``runstream bench ...``."""
    if argv[:1] in (["-h"], ["--help"]):
        parser().print_help()
        return 0
    if argv[:1] == ["speed"]:
        from runstream.services.bench.speed import main as speed_main

        return await speed_main(settings, argv)
    if argv[:1] == ["idle"]:
        from runstream.services.bench.idle import main as idle_main

        return await idle_main(settings, argv)
    if not argv or argv[0] not in SUBCOMMANDS or argv[0] == "latency":
        # The original command: `runstream bench [latency] [--requests N] ...`.
        from runstream.services.bench.latency import main as latency_main

        return await latency_main(settings, argv)
    args = parser().parse_args(argv)
    if args.sub == "run":
        workload = load_workload(args.workload)
        seed = workload.seed if args.seed is None else args.seed
        try:
            load = load_model(dict(workload.load), args, seed)
        except ValueError as e:
            parser().error(str(e))
        report, folder = await session.run(settings, workload, load, _options(args, argv))
        summary(report, folder)
        return 0 if report["requests"]["completed"] else 1
    if args.sub == "replay":
        report, folder = await session.replay(settings, args.run, _options(args, argv))
        summary(report, folder)
        rp = report["replay"]
        return 0 if rp["payloads_match"] and not rp["output_mismatches"] else 1
    if args.sub == "report":
        folder = session.resolve_run(settings, args.run)
        summary(session.rebuild(folder), folder)
        return 0
    return do_compare(settings, args)
