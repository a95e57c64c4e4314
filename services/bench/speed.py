"""``runstream bench speed``: every figure of the speed goals, from one command.

    runstream bench speed [--url http://127.0.0.1:8080] [--duration 20] [--profile]

Against a running system (``./deploy.sh local``; needs root for the direct
sandbox, like a worker), one after the other:

1. latency, one request at a time: ``runstream bench latency`` (end to end vs. the
   same executor in this process), what the pipeline adds at p50 and p99;
2. closed loop, ``--clients`` clients, ``hello`` then ``braindrill``: the pipeline
   (``--target http``), then the same sequence run directly (``--target direct
   --slots``); the throughput ratio. During the pipeline's ``hello`` run the CPU
   of every process is sampled from ``/proc``: the per-request CPU budget (ingress,
   workers, broker, load generator, and the rest: the sandboxed programs), and with
   ``--profile`` py-spy splits the ingress's and a worker's part by category;
3. the sandbox's fixed cost (C hello, bwrap vs. bare) and the docker backend's
   javascript hello (``python -m runstream.services.bench.sandbox_overhead``).

The load generator's own CPU share is printed; ``--pin-client CPUS`` runs it under
``taskset`` so that it does not wander over the cores the system uses. Everything
is written to ``bench-results/speed-<time>/`` (``speed.md``, ``speed.json``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from runstream.services.bench import procs
from runstream.services.bench._budget import CpuWindow, budget_markdown, categorise
from runstream.services.settings import Settings

GOALS = {"added_p50_ms": 3.0, "added_p99_ms": 8.0, "ratio_hello": 0.90,
         "ratio_braindrill": 0.90, "bwrap_fixed_ms": 4.0, "docker_javascript_ms": 150.0}


@dataclass
class Child:
    """What a finished command printed, and the CPU it (and its children) used."""

    out: str
    cpu_s: float
    code: int


def _run(argv: Sequence[str], timeout_s: float) -> Child:
    # wait4 gives the child's own CPU without racing its exit for /proc.
    proc = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout_s
    chunks: list[bytes] = []
    assert proc.stdout is not None
    while True:
        chunk = proc.stdout.read1(65536)  # type: ignore[attr-defined]
        if not chunk:
            break
        chunks.append(chunk)
        if time.monotonic() > deadline:
            proc.kill()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Child(b"".join(chunks).decode(errors="replace"),
                 usage.ru_utime + usage.ru_stime, proc.returncode)


async def _closed(args: argparse.Namespace, workload: str, target: str, out: Path,
                  extra: Sequence[str] = ()) -> tuple[dict[str, Any], Child]:
    folder = out / f"{workload}-{target}"
    argv = [sys.executable, "-m", "runstream.services.cli", "bench", "run", workload,
            "--model", "closed", "--clients", str(args.clients), "--duration",
            str(args.duration), "--warmup", str(args.warmup), "--target", target,
            "--no-record", "--no-progress", "--out", str(folder),
            "--run-id", f"{out.name}-{workload}-{target}", *extra]
    if target == "http":
        argv += ["--url", args.url]
    if args.pin_client:
        argv = ["taskset", "-c", args.pin_client, *argv]
    child = await asyncio.to_thread(_run, argv, args.duration * 3 + 300)
    if child.code != 0 or not (folder / "report.json").exists():
        raise SystemExit(f"bench run {workload} --target {target} failed:\n{child.out[-3000:]}")
    return orjson.loads((folder / "report.json").read_bytes()), child


def _spies(found: dict[int, str], out: Path,
           seconds: int) -> dict[str, tuple[subprocess.Popen[bytes], Path]]:
    """py-spy on the ingress and on one worker (samples that hold the GIL: Python CPU)."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    spies = {}
    for role in ("ingress", "workers"):
        pid = min(p for p, r in found.items() if r == role)
        raw = out / f"profile-{role}.txt"
        spies[role] = (subprocess.Popen(
            [spy, "record", "-p", str(pid), "-d", str(seconds), "-r", "200", "--gil",
             "--nonblocking", "-f", "raw", "-o", str(raw)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), raw)
    return spies


async def _profiled_pipeline(args: argparse.Namespace, out: Path) -> tuple[
        dict[str, Any], CpuWindow, dict[str, Counter[str]]]:
    found = procs.processes(args.bootstrap)
    if not any(r == "ingress" for r in found.values()):
        raise SystemExit(f"no runstream ingress on {args.bootstrap} runs on this host: "
                         "start ./deploy.sh local")
    spies = _spies(found, out, int(args.duration + args.warmup)) if args.profile else {}
    before = {pid: procs.ticks(pid) for pid in found}
    busy0, t0 = procs.machine_busy_s(), time.monotonic()
    report, child = await _closed(args, "hello", "http", out)
    busy, wall = procs.machine_busy_s() - busy0, time.monotonic() - t0
    by_role: dict[str, float] = {}
    for pid, role in found.items():
        by_role[role] = by_role.get(role, 0.0) + (procs.ticks(pid) - before[pid]) / procs.TICK
    by_role["load generator"] = child.cpu_s
    profiles = {}
    for role, (proc, raw) in spies.items():
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        if raw.exists():
            profiles[role] = categorise(raw.read_text().splitlines())
    # The whole invocation's CPU and answers (the warm-up's too): both sides alike.
    total = report["requests"]["completed"]
    return report, CpuWindow(total, wall, busy, by_role), profiles


async def _budget_only(args: argparse.Namespace, out: Path) -> int:
    hello, window, profiles = await _profiled_pipeline(args, out)
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    text = "\n".join([
        f"runstream bench speed --budget-only, {time.strftime('%Y-%m-%d %H:%M')}, "
        f"{os.cpu_count()} cores, load average now {load}; hello, closed loop "
        f"{args.clients} clients: {hello['throughput_rps']:.1f} per s", "",
        budget_markdown(window, profiles)])
    print("\n" + text)
    (out / "speed.md").write_text(text + "\n", encoding="utf-8")
    (out / "speed.json").write_bytes(orjson.dumps(
        {"figures": {"hello_rps": hello["throughput_rps"],
                     "cpu_ms_per_request": {r: window.per_request_ms(r)
                                            for r in window.by_role}},
         "profiles": {k: dict(v) for k, v in profiles.items()}},
        option=orjson.OPT_INDENT_2))
    print(f"\nwritten: {out / 'speed.md'}  {out / 'speed.json'}")
    return 0


def _latency(args: argparse.Namespace) -> tuple[dict[str, float], str]:
    child = _run([sys.executable, "-m", "runstream.services.cli", "bench", "latency",
                  "--url", args.url, "--requests", str(args.requests)], 900)
    rows: dict[str, float] = {}
    for line in child.out.splitlines():
        for label, key in (("end-to-end", "e2e"), ("direct sandbox", "direct"),
                           ("pipeline overhead", "added")):
            if line.startswith(label):
                p50, _p90, p99, _mean = (float(v) for v in line.split()[-4:])
                rows[f"{key}_p50_ms"], rows[f"{key}_p99_ms"] = p50, p99
    if child.code != 0 or "added_p50_ms" not in rows:
        raise SystemExit(f"bench latency failed:\n{child.out[-3000:]}")
    return rows, child.out


def _sandbox(n: int) -> tuple[dict[str, float], str]:
    child = _run([sys.executable, "-m", "runstream.services.bench.sandbox_overhead", "-n",
                  str(n), "c", "javascript"], 900)
    table = [line for line in child.out.splitlines() if line.startswith("|")]
    figures: dict[str, float] = {}
    if table:
        head = [h.strip() for h in table[0].strip("|").split("|")]
        for line in table[2:]:
            cells = dict(zip(head, (c.strip() for c in line.strip("|").split("|")),
                             strict=False))
            for name, cell in cells.items():
                number = re.match(r"[\d.]+", cell)
                if number:
                    figures[f"{cells.get('language', '?')} {name}"] = float(number.group())
    return figures, child.out


def _row(name: str, value: float | None, goal: float, unit: str, lower: bool,
         how: str) -> tuple[str, str, str, str, str]:
    if value is None:
        return name, "not measured", f"{'≤' if lower else '≥'} {goal:g}{unit}", "?", how
    met = value <= goal if lower else value >= goal
    return (name, f"{value:.2f}{unit}", f"{'≤' if lower else '≥'} {goal:g}{unit}",
            "yes" if met else "**no**", how)


async def main(settings: Settings, argv: list[str]) -> int:
    """Measure, print and write every figure of the speed goals."""
    p = argparse.ArgumentParser(prog="runstream bench speed", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["speed"])
    p.add_argument("--url", default=f"http://{settings.ingress_host}:{settings.ingress_port}")
    p.add_argument("--requests", type=int, default=300, help="latency: requests per path")
    p.add_argument("--duration", type=float, default=20.0, help="closed loops: seconds each")
    p.add_argument("--warmup", type=float, default=3.0)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--slots", type=int, default=4, help="the direct target's parallel runs")
    p.add_argument("--sandbox-runs", type=int, default=21)
    p.add_argument("--profile", action="store_true", help="py-spy the ingress and a worker")
    p.add_argument("--pin-client", metavar="CPUS", help="taskset -c CPUS for the load generator")
    p.add_argument("--budget-only", action="store_true",
                   help="only the pipeline's hello loop and its CPU per request (about "
                        "30 s: no latency, direct, braindrill or sandbox runs)")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    args.bootstrap = settings.bootstrap_servers
    out = args.out or Path("bench-results") / time.strftime("speed-%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    if args.budget_only:
        return await _budget_only(args, out)

    latency, latency_text = _latency(args)
    print(latency_text.strip(), flush=True)
    hello, window, profiles = await _profiled_pipeline(args, out)
    hello_direct, _ = await _closed(args, "hello", "direct", out, ["--slots", str(args.slots)])
    bd, _ = await _closed(args, "braindrill", "http", out)
    bd_direct, _ = await _closed(args, "braindrill", "direct", out, ["--slots", str(args.slots)])
    sandbox, sandbox_text = _sandbox(args.sandbox_runs)
    print(sandbox_text.strip(), flush=True)

    def ratio(a: dict[str, Any], b: dict[str, Any]) -> float:
        return float(a["throughput_rps"]) / max(1e-9, float(b["throughput_rps"]))

    c_bare, c_bwrap = sandbox.get("c bare ms"), sandbox.get("c bwrap ms")
    figures = {
        **latency,
        "hello_rps": hello["throughput_rps"], "hello_direct_rps": hello_direct["throughput_rps"],
        "ratio_hello": ratio(hello, hello_direct),
        "braindrill_rps": bd["throughput_rps"],
        "braindrill_direct_rps": bd_direct["throughput_rps"],
        "ratio_braindrill": ratio(bd, bd_direct),
        "bwrap_fixed_ms": None if c_bare is None or c_bwrap is None else c_bwrap - c_bare,
        "docker_javascript_ms": sandbox.get("javascript docker ms"),
        "load_generator_share": window.share("load generator"),
        "cpu_ms_per_request": {r: window.per_request_ms(r) for r in window.by_role},
        "load_average": os.getloadavg(),
    }
    rows = [
        _row("python hello, what the pipeline adds at p50", figures["added_p50_ms"],
             GOALS["added_p50_ms"], " ms", True,
             f"{latency['e2e_p50_ms']:.1f} e2e vs {latency['direct_p50_ms']:.1f} direct"),
        _row("same at p99", figures["added_p99_ms"], GOALS["added_p99_ms"], " ms", True,
             f"{latency['e2e_p99_ms']:.1f} vs {latency['direct_p99_ms']:.1f}"),
        _row(f"throughput, closed loop {args.clients} clients, hello, pipeline / direct",
             figures["ratio_hello"], GOALS["ratio_hello"], "", False,
             f"{hello['throughput_rps']:.1f} / {hello_direct['throughput_rps']:.1f} per s"),
        _row("same, braindrill", figures["ratio_braindrill"], GOALS["ratio_braindrill"], "",
             False, f"{bd['throughput_rps']:.1f} / {bd_direct['throughput_rps']:.1f} per s"),
        _row("bwrap fixed cost per run (C hello, bwrap minus bare)", figures["bwrap_fixed_ms"],
             GOALS["bwrap_fixed_ms"], " ms", True, f"{c_bwrap} vs {c_bare} ms"),
        _row("docker backend, javascript hello", figures["docker_javascript_ms"],
             GOALS["docker_javascript_ms"], " ms", True, "warm pool + run"),
    ]
    table = ["| figure | now | goal | met | from |", "|---|---|---|---|---|"]
    table += [f"| {' | '.join(r)} |" for r in rows]
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    text = "\n".join([
        f"runstream bench speed, {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, "
        f"load average now {load}", "", *table, "",
        f"load generator: {100 * window.share('load generator'):.1f} % of the machine's busy "
        f"time during the pipeline's hello run"
        + (f" (pinned to CPUs {args.pin_client})" if args.pin_client else ""), "",
        budget_markdown(window, profiles)])
    print("\n" + text)
    (out / "speed.md").write_text(text + "\n", encoding="utf-8")
    (out / "speed.json").write_bytes(orjson.dumps(
        {"figures": figures, "goals": GOALS,
         "profiles": {k: dict(v) for k, v in profiles.items()}},
        option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
    print(f"\nwritten: {out / 'speed.md'}  {out / 'speed.json'}")
    return 0
