"""``runstream bench idle``: what the system costs while nobody uses it.

    runstream bench idle [--seconds 30] [--threads 4] [--out FOLDER]

Against a running system with no requests (``./deploy.sh local``: the broker, one
ingress, two workers), reads every process's CPU ticks from ``/proc`` at the start
and the end of ``--seconds`` and prints each one's CPU as a percentage of one core,
per role and in all, against the goal (≤ 3 % of one core in all), with each
process's busiest thread kinds (the broker's JVM threads, the Python processes'
helper threads). Only the processes of the system on this command's
``RUNSTREAM_BOOTSTRAP_SERVERS`` are counted. Written to
``bench-results/idle-<time>/idle.md`` and ``idle.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

import orjson
from runstream.services.bench import procs
from runstream.services.bench._idle import (
    GOAL_PERCENT,
    IdleRow,
    by_role,
    fold_threads,
    idle_markdown,
    percent_of_core,
)
from runstream.services.settings import Settings


async def measure(settings: Settings, seconds: float, top: int) -> tuple[list[IdleRow], float]:
    """Rows per process and the whole machine's busy % of one core over ``seconds``."""
    found = procs.processes(settings.bootstrap_servers)
    if not found:
        raise SystemExit(f"no runstream process on {settings.bootstrap_servers} runs on this "
                         "host: start ./deploy.sh local (or set RUNSTREAM_BOOTSTRAP_SERVERS)")
    before = {pid: procs.ticks(pid) for pid in found}
    threads_before = {pid: procs.thread_ticks(pid) for pid in found}
    busy0, t0 = procs.machine_busy_s(), time.monotonic()
    await asyncio.sleep(seconds)
    wall = time.monotonic() - t0
    busy = procs.machine_busy_s() - busy0
    after = {pid: procs.ticks(pid) for pid in found}  # one gone since counts 0
    per_pid = percent_of_core(before, after, wall, procs.TICK)
    rows = []
    for pid, pct in per_pid.items():
        per_thread = percent_of_core(threads_before[pid], procs.thread_ticks(pid), wall,
                                     procs.TICK)
        named = ((key.rpartition("/")[0], v) for key, v in per_thread.items())
        rows.append(IdleRow(found[pid], pid, pct, fold_threads(named, top)))
    rows.sort(key=lambda r: (r.role, r.pid))
    return rows, 100.0 * busy / wall


async def main(settings: Settings, argv: list[str]) -> int:
    """Measure and print the idle figure."""
    p = argparse.ArgumentParser(prog="runstream bench idle", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["idle"])
    p.add_argument("--seconds", type=float, default=30.0, help="length of the window")
    p.add_argument("--threads", type=int, default=4, help="thread kinds shown per process")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    if args.seconds <= 0:
        p.error("--seconds must be positive")
    rows, machine = await measure(settings, args.seconds, args.threads)
    text = idle_markdown(rows, args.seconds, machine)
    print(text)
    out = args.out or Path("bench-results") / time.strftime("idle-%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    (out / "idle.md").write_text(text + "\n", encoding="utf-8")
    total = sum(r.percent for r in rows)
    (out / "idle.json").write_bytes(orjson.dumps({
        "seconds": args.seconds, "machine_percent": machine, "goal_percent": GOAL_PERCENT,
        "total_percent": total, "by_role": by_role(rows),
        "processes": [{"role": r.role, "pid": r.pid, "percent": r.percent,
                       "threads": dict(r.threads)} for r in rows]},
        option=orjson.OPT_INDENT_2))
    print(f"\nwritten: {out / 'idle.md'}  {out / 'idle.json'}")
    return 0
