"""The compile cache's worth: one program run many times on different inputs, cache on vs off.

``python -m runstream.services.bench.compile_cache [-n 20] [--rounds 3] [--backend bwrap]
[language ...]`` (root for bwrap; docker needs an engine and the language's image).
Each round makes two executors on one sandbox, one with the compile cache
(``RUNSTREAM_COMPILE_CACHE_MB``, empty at the round's start) and one without, and
executes the same source ``n`` times on each with a different stdin, alternating
between them so that the machine's load hits both alike.
Times are whole executions as the worker's executor sees them (workspace,
compile or restore, run, verdict), without Kafka and HTTP. Prints a Markdown
table of the median and p90 ms per execution, and of the cache's misses alone
(the compile plus the snapshot that keeps it).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import statistics
import sys
import time
import uuid
from collections.abc import Sequence

from runstream.schemas.models import ExecutionRequest, SourceFile, Status
from runstream.services.execution.executor import Executor
from runstream.services.execution.languages import Registry
from runstream.services.execution.sandbox.factory import create_sandbox
from runstream.services.settings import Settings

#: Judge-like programs: read one number, print a function of it.
PROGRAMS = {
    "cpp": ("#include <iostream>\n#include <vector>\n#include <numeric>\n"
            "int main() { long n; std::cin >> n; std::vector<long> v(n % 1000 + 1);\n"
            "  std::iota(v.begin(), v.end(), 1);\n"
            "  std::cout << std::accumulate(v.begin(), v.end(), 0L) << '\\n'; }\n"),
    "c": ('#include <stdio.h>\nint main(void) { long n; if (scanf("%ld", &n) != 1) return 1;\n'
          '  printf("%ld\\n", n * (n + 1) / 2); }\n'),
    "java": ("import java.util.*;\npublic class Main { public static void main(String[] a) {\n"
             "  long n = new Scanner(System.in).nextLong();\n"
             "  System.out.println(n * (n + 1) / 2); } }\n"),
}


def _p90(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]


async def _timed(ex: Executor, language: str, source: str, stdin: str) -> tuple[float, str]:
    req = ExecutionRequest(id=str(uuid.uuid4()), language=language,
                           files=(SourceFile(None, source.encode()),), stdin=stdin.encode())
    t = time.perf_counter()
    result = await ex.execute(req)
    ms = (time.perf_counter() - t) * 1000
    if result.status != Status.OK:
        raise RuntimeError(f"{language}: {result.status} {result.message} {result.compile}")
    return ms, (result.compile.cache or "-") if result.compile else "-"


async def main(argv: Sequence[str] | None = None) -> int:
    """Print the table; 0 when every execution succeeded."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=20, help="executions per round and variant")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (a fresh cache each)")
    parser.add_argument("--backend", choices=("bwrap", "docker"), default="bwrap")
    parser.add_argument("languages", nargs="*", default=["cpp", "java"])
    args = parser.parse_args(argv)
    settings = Settings.from_env(sandbox_cgroup_name="runstream-bench",
                                 sandbox_run_dir="/run/runstream-bench",
                                 sandbox_backend=args.backend)
    if settings.compile_cache_mb == 0:
        settings = dataclasses.replace(settings, compile_cache_mb=64)
    sandbox = create_sandbox(settings)
    await sandbox.start()
    try:
        registry = Registry.from_settings(settings)
        registry = registry.with_versions(await sandbox.detect_versions(registry))
        print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print("| language | executions | cache off: median / p90 ms | cache on: median / p90 ms "
              "| speed-up (medians) | hits / misses | misses alone: median ms |"
              "\n|---|---|---|---|---|---|---|")
        off_settings = dataclasses.replace(settings, compile_cache_mb=0)
        for name in args.languages:
            source = PROGRAMS[name]
            on_ms: list[float] = []
            off_ms: list[float] = []
            miss_ms: list[float] = []
            hits = 0
            for _ in range(args.rounds):
                on = Executor(settings, registry, sandbox)
                off = Executor(off_settings, registry, sandbox)
                for i in range(args.n):
                    stdin = str(1000 + i)
                    ms, _ = await _timed(off, name, source, stdin)
                    off_ms.append(ms)
                    ms, seen = await _timed(on, name, source, stdin)
                    on_ms.append(ms)
                    hits += seen == "hit"
                    if seen == "miss":
                        miss_ms.append(ms)
            off_med, on_med = statistics.median(off_ms), statistics.median(on_ms)
            print(f"| {name} | {len(on_ms)} + {len(off_ms)} | {off_med:.1f} / "
                  f"{_p90(off_ms):.1f} | {on_med:.1f} / {_p90(on_ms):.1f} | "
                  f"{off_med / on_med:.1f}x | {hits} / {len(miss_ms)} | "
                  f"{statistics.median(miss_ms) if miss_ms else 0:.1f} |")
        print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        await sandbox.stop()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
