"""Median hello-world time, bare vs. the bwrap backend, per language.

``python -m runstream.services.bench.sandbox_overhead [-n N] [language ...]``
(root). Compiled languages are compiled once; only the run is timed.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence

from runstream.services.languages import Registry, render
from runstream.services.sandbox.bwrap import BwrapSandbox
from runstream.services.settings import Settings

HELLO = {
    "python": "print('hello')\n",
    "javascript": "console.log('hello')\n",
    "c": "#include <stdio.h>\nint main(){puts(\"hello\");return 0;}\n",
    "java": "public class Main { public static void main(String[] a) {"
            " System.out.println(\"hello\"); } }\n",
}


def _bare(argv: Sequence[str], cwd: str) -> float:
    t = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env={}, stdout=subprocess.DEVNULL, check=True, timeout=30)
    return (time.perf_counter() - t) * 1000


async def main(argv: Sequence[str] | None = None) -> int:
    """Print a Markdown table of medians (ms): bare, bwrap, ratio."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=30, help="runs per measurement")
    parser.add_argument("languages", nargs="*", default=list(HELLO))
    args = parser.parse_args(argv)
    settings = Settings.from_env(sandbox_cgroup_name="runstream-bench",
                                 sandbox_run_dir="/run/runstream-bench")
    sandbox = BwrapSandbox(settings)
    await sandbox.start()
    registry = Registry.load(settings.languages_file or None)
    print("| language | bare ms | bwrap ms | ratio |\n|---|---|---|---|")
    try:
        for name in args.languages:
            lang = registry.resolve(name)
            limits = settings.default_limits
            async with sandbox.workspace("bench", [(lang.entry, HELLO[name].encode())],
                                         lang) as ws:
                if lang.compile:
                    clim = settings.compile_limits(limits)
                    await ws.run(render(lang.compile, lang, clim), stdin=b"", limits=clim,
                                 language=lang)
                run_argv = render(lang.run, lang, limits)
                boxed, bare = [], []
                for _ in range(args.n):  # interleaved, so load changes hit both alike
                    t = time.perf_counter()
                    r = await ws.run(run_argv, stdin=b"", limits=limits, language=lang)
                    boxed.append((time.perf_counter() - t) * 1000)
                    assert r.stdout == b"hello\n", r
                    # The workspace is a root-readable tmpfs: run the same files bare.
                    bare.append(_bare(run_argv, str(ws.path)))
            b, s = statistics.median(bare), statistics.median(boxed)
            print(f"| {name} | {b:.1f} | {s:.1f} | {s / b:.2f}x |")
    finally:
        await sandbox.stop()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
