"""What judging adds per test: plain tests vs. each kind of judge, on one backend.

``python -m runstream.services.bench.judging_cost [-n N] [--tests T] [--backend bwrap|docker]``
(root for bwrap). Each round runs, interleaved, the same Python program on T
tests judged five ways: the default comparison (``lines``), the ``floats``
standard checker, a checker program in Python and one in C (compiled once,
then from the compile cache), and a Python interactor (one exchange per test,
then 200, for the relay's cost per exchange); the whole execution
is timed as the worker runs it (without Kafka). Prints a Markdown table of
medians: per execution, per test, and per test over the plain tests.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from collections.abc import Sequence
from typing import Any

from runstream.schemas.codec import request_from_doc
from runstream.services.execution.executor import start_executor
from runstream.services.settings import Settings

PROGRAM = "n = int(input())\nprint(n, n + 1)\n"
CHECKER_PY = ("import sys\nn = int(open(sys.argv[1]).read())\n"
              "a, b = map(int, open(sys.argv[2]).read().split())\n"
              "sys.exit(0 if a + b == 2 * n + 1 else 1)\n")
CHECKER_C = ("#include <stdio.h>\nint main(int c, char **v) { long n, a, b;\n"
             "FILE *i = fopen(v[1], \"r\"), *o = fopen(v[2], \"r\");\n"
             "if (!i || !o || fscanf(i, \"%ld\", &n) != 1) return 3;\n"
             "if (fscanf(o, \"%ld %ld\", &a, &b) != 2) return 2;\n"
             "return a + b == 2 * n + 1 ? 0 : 1; }\n")
# The interactor sends n, the program answers "n n+1" as above.
INTERACTOR = ("import sys\nn = int(open(sys.argv[1]).read())\nprint(n, flush=True)\n"
              "a, b = map(int, input().split())\nsys.exit(0 if a + b == 2 * n + 1 else 1)\n")
#: Exchanges of the chatty interaction: its cost over the one-exchange one is the relay's.
EXCHANGES = 200
CHATTY_PROGRAM = "while True:\n    n = int(input())\n    print(n, n + 1, flush=True)\n"
CHATTY_INTERACTOR = (
    f"import sys\nfor n in range({EXCHANGES}):\n    print(n, flush=True)\n"
    "    a, b = map(int, input().split())\n    if a + b != 2 * n + 1:\n        sys.exit(1)\n")


def requests(tests: int) -> dict[str, dict[str, Any]]:
    """The ways of judging the same program on ``tests`` tests (request documents)."""
    plain = [{"stdin": str(n), "expected_output": f"{n} {n + 1}"} for n in range(tests)]
    bare = [{"stdin": str(n)} for n in range(tests)]
    base = {"language": "python", "source": PROGRAM}
    return {
        "lines (plain tests)": {**base, "tests": plain},
        "floats checker": {**base, "tests": plain, "checker": {"kind": "floats",
                                                               "abs_error": 1e-6}},
        "checker program (python)": {**base, "tests": bare, "checker": {
            "language": "python", "source": CHECKER_PY}},
        "checker program (c)": {**base, "tests": bare, "checker": {
            "language": "c", "source": CHECKER_C}},
        "interactor (python)": {**base, "tests": bare, "interactor": {
            "language": "python", "source": INTERACTOR}},
        f"interactor (python), {EXCHANGES} exchanges": {
            "language": "python", "source": CHATTY_PROGRAM, "tests": bare, "interactor": {
                "language": "python", "source": CHATTY_INTERACTOR}},
    }


async def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=10, help="rounds")
    parser.add_argument("--tests", type=int, default=8, help="tests per execution")
    parser.add_argument("--backend", choices=("bwrap", "docker"), default="bwrap")
    args = parser.parse_args(argv)
    settings = Settings.from_env(sandbox_backend=args.backend, languages="python,c",
                                 sandbox_cgroup_name="runstream-bench-judging",
                                 sandbox_run_dir="/run/runstream-bench-judging")
    executor = await start_executor(settings)
    docs = requests(args.tests)
    times: dict[str, list[float]] = {name: [] for name in docs}
    try:
        for round_ in range(args.n + 1):  # round 0 warms up (compiles, pools)
            for name, doc in docs.items():
                req = request_from_doc({**doc, "id": f"judging-{uuid.uuid4().hex[:12]}"})
                began = time.perf_counter()
                result = await executor.execute(req)
                took = (time.perf_counter() - began) * 1000
                chatty = name.endswith("exchanges")
                # The chatty program ends on the closed pipe (EOFError): its verdict is
                # runtime_error, the interactor's accepted every exchange.
                if result.status != ("runtime_error" if chatty else "ok") or any(
                        t.judge is not None and t.judge.exit_code not in (0, None)
                        for t in result.tests):
                    print(f"{name}: {result.status} {result.message}", file=sys.stderr)
                    return 1
                if round_:
                    times[name].append(took)
    finally:
        await executor.sandbox.stop()
    plain = statistics.median(times["lines (plain tests)"]) / args.tests
    print(f"backend {args.backend}, {args.tests} tests per execution, median of {args.n}\n")
    print("| judged by | ms per execution | ms per test | added per test |")
    print("|---|---:|---:|---:|")
    for name, found in times.items():
        median = statistics.median(found)
        print(f"| {name} | {median:.0f} | {median / args.tests:.1f} | "
              f"{median / args.tests - plain:+.1f} |")
    one = statistics.median(times["interactor (python)"])
    many = statistics.median(times[f"interactor (python), {EXCHANGES} exchanges"])
    print(f"\none exchange through the relay (program -> interactor -> program): "
          f"{(many - one) / args.tests / (EXCHANGES - 1):.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
