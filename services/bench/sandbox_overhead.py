"""Median hello-world time, bare vs. the bwrap and docker backends, per language.

``python -m runstream.services.bench.sandbox_overhead [-n N] [--shell] [--no-docker]
[language ...]`` (root). Compiled languages are compiled once; only the run is
timed. ``--shell`` adds, interleaved in the same loop, bwrap started through
the dash + setpriv chain (``RUNSTREAM_SANDBOX_LAUNCHER=shell``) besides the
native launcher, and what each costs over bare. The
docker column times a whole execution as a user sees it minus the compile: a
fresh container (from the warm pool, refilled between runs) and the run; it
is left out, with a note, where no engine answers or the image is missing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence

from runstream.services.bench.latency import HELLO
from runstream.services.errors import SandboxError
from runstream.services.execution.languages import Language, Registry, render
from runstream.services.execution.sandbox.bwrap import BwrapSandbox
from runstream.services.execution.sandbox.docker import DockerSandbox, docker_available
from runstream.services.settings import Settings


def _bare(argv: Sequence[str], cwd: str) -> float:
    t = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env={}, stdout=subprocess.DEVNULL, check=True, timeout=30)
    return (time.perf_counter() - t) * 1000


async def main(argv: Sequence[str] | None = None) -> int:
    """Print a Markdown table of medians (ms): bare, bwrap, ratio."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=30, help="runs per measurement")
    parser.add_argument("--shell", action="store_true",
                        help="also time bwrap behind the dash + setpriv chain")
    parser.add_argument("--no-docker", action="store_true", help="leave the docker column out")
    parser.add_argument("languages", nargs="*", default=["python", "javascript", "c", "java"])
    args = parser.parse_args(argv)
    settings = Settings.from_env(sandbox_cgroup_name="runstream-bench",
                                 sandbox_run_dir="/run/runstream-bench")
    sandbox = BwrapSandbox(settings)
    await sandbox.start()
    shell_sb = None
    if args.shell:
        shell_sb = BwrapSandbox(dataclasses.replace(
            settings, sandbox_launcher="shell", sandbox_cgroup_name="runstream-bench-sh",
            sandbox_run_dir="/run/runstream-bench-sh"))
        await shell_sb.start()
    registry = Registry.from_settings(settings)
    docker_note = "--no-docker" if args.no_docker else docker_available(settings)
    docker_sb = None
    if docker_note is None:
        docker_sb = DockerSandbox(settings)
        await docker_sb.start()
    if shell_sb is None:
        print("| language | bare ms | bwrap ms | ratio | docker ms |\n|---|---|---|---|---|")
    else:
        print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n"
              "| language | bare ms | bwrap ms (p90) | bwrap - bare | "
              "bwrap, shell chain ms (p90) | shell chain - bare | docker ms |\n"
              "|---|---|---|---|---|---|---|")
    try:
        for name in args.languages:
            lang = registry.resolve(name)
            limits = settings.default_limits
            clim = settings.compile_limits(limits)
            async with sandbox.workspace("bench", [(lang.entry, HELLO[name].encode())],
                                         lang) as ws:
                if lang.compile:
                    await ws.run(render(lang.compile, lang, clim), stdin=b"", limits=clim,
                                 language=lang)
                run_argv = render(lang.run, lang, limits)
                boxed, bare, shelled = [], [], []
                async with contextlib.AsyncExitStack() as stack:
                    shell_ws = None
                    if shell_sb is not None:
                        shell_ws = await stack.enter_async_context(shell_sb.workspace(
                            "bench", [(lang.entry, HELLO[name].encode())], lang))
                        if lang.compile:
                            await shell_ws.run(render(lang.compile, lang, clim), stdin=b"",
                                               limits=clim, language=lang)
                    for _ in range(args.n):  # interleaved, so load changes hit all alike
                        t = time.perf_counter()
                        r = await ws.run(run_argv, stdin=b"", limits=limits, language=lang)
                        boxed.append((time.perf_counter() - t) * 1000)
                        assert r.stdout == b"hello, world\n", r
                        # The workspace is a root-readable tmpfs: run the same files bare.
                        bare.append(_bare(run_argv, str(ws.path)))
                        if shell_ws is not None:
                            t = time.perf_counter()
                            r = await shell_ws.run(run_argv, stdin=b"", limits=limits,
                                                   language=lang)
                            shelled.append((time.perf_counter() - t) * 1000)
                            assert r.stdout == b"hello, world\n", r
            b, s = statistics.median(bare), statistics.median(boxed)
            d = "n/a"
            if docker_sb is not None:
                try:
                    d = f"{await _docker_median(docker_sb, lang, name, args.n):.1f}"
                except SandboxError as e:
                    d = "n/a"
                    print(f"docker {name}: {e}", file=sys.stderr)
            if not shelled:
                print(f"| {name} | {b:.1f} | {s:.1f} | {s / b:.2f}x | {d} |")
            else:
                h = statistics.median(shelled)
                print(f"| {name} | {b:.1f} | {s:.1f} ({_p90(boxed):.1f}) | {s - b:.1f} | "
                      f"{h:.1f} ({_p90(shelled):.1f}) | {h - b:.1f} | {d} |")
    finally:
        await sandbox.stop()
        if shell_sb is not None:
            await shell_sb.stop()
        if docker_sb is not None:
            await docker_sb.stop()
    if docker_note:
        print(f"\ndocker column skipped: {docker_note}")
    return 0


def _p90(values: Sequence[float]) -> float:
    return sorted(values)[int(0.9 * (len(values) - 1))]


async def _docker_median(sb: DockerSandbox, lang: Language, name: str, n: int) -> float:
    """Median ms of fresh-container executions of hello world, compile excluded."""
    settings = sb.settings
    limits = settings.default_limits
    times = []
    for _ in range(n):
        await sb.settle()  # steady state: pool refilled, removals done
        t = time.perf_counter()
        compile_ms = 0.0
        async with sb.workspace("bench", [(lang.entry, HELLO[name].encode())], lang) as ws:
            if lang.compile:
                c0 = time.perf_counter()
                clim = settings.compile_limits(limits)
                await ws.run(render(lang.compile, lang, clim), stdin=b"", limits=clim,
                             language=lang)
                compile_ms = (time.perf_counter() - c0) * 1000
            r = await ws.run(render(lang.run, lang, limits), stdin=b"", limits=limits,
                             language=lang)
            times.append((time.perf_counter() - t) * 1000 - compile_ms)
        assert r.stdout == b"hello, world\n", r
    return statistics.median(times)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
