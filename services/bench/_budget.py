"""Where runstream's own CPU goes per request: pure arithmetic on samples (no I/O).

Two inputs, both taken by ``runstream bench speed`` during one closed-loop run:

- CPU ticks of each process (``/proc/<pid>/stat`` utime + stime, before and after), and
  of the whole machine (``/proc/stat``); what no runstream process, broker or load
  generator used is the sandboxed programs' (and the kernel's) share;
- optionally py-spy's collapsed stacks (``--gil``: samples that held the GIL, a proxy
  for Python CPU) of the ingress and a worker, put in the budget's categories.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

#: Budget categories, tried in order on each frame from the innermost outwards: a
#: sample belongs to the innermost frame that matches any of them.
CATEGORIES: tuple[tuple[str, str], ...] = (
    ("sandbox: spawn (fork, exec)", r"subprocess\.py|_posixsubprocess|base_subprocess"),
    ("sandbox: set-up, stats, clean-up", r"services/execution/sandbox/"),
    ("execution, verdict", r"services/execution/"),
    ("result index (sqlite)", r"streams/results\.py|sqlite3"),
    ("validation, JSON codec", r"schemas/|jsonschema|referencing|orjson"),
    ("live events", r"streams/event|ingress/event_stream\.py"),
    ("metrics, logs", r"prometheus_client|/logging/|services/logs\.py|services/metrics\.py|"
                      r"_metrics\.py"),
    # Faust's own layers (the stream, conductor, commit loop, consumer thread, mode's
    # services); the aiokafka client they call is counted as Kafka below.
    ("Faust (stream, commits, consumer thread)", r"/faust/|/mode/|streams/faust_|streams/_eager"),
    ("Kafka: produce", r"aiokafka/producer"),
    ("Kafka: fetch, consume", r"aiokafka/consumer"),
    ("Kafka: protocol, connections", r"aiokafka/"),
    ("HTTP (uvicorn, h11, starlette, routes)", r"uvicorn|h11|starlette|services/ingress/"),
    ("request channel (produce, replies, waiters, group)",
     r"streams/(channel|requester|waiters|worker_group|correlator)\.py"),
    ("worker loop, dedupe, publish", r"streams/"),
    ("asyncio event loop", r"asyncio/|selectors\.py"),
    ("threads (executor hand-offs)", r"concurrent/futures|threading\.py"),
)
OTHER = "other"
_COMPILED = [(name, re.compile(rx)) for name, rx in CATEGORIES]


def categorise(collapsed: Iterable[str]) -> Counter[str]:
    """Samples per category from py-spy's raw (collapsed) lines: ``a;b;c 12``."""
    out: Counter[str] = Counter()
    for line in collapsed:
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        out[_category(stack.split(";"))] += int(count)
    return out


def _category(frames: list[str]) -> str:
    for frame in reversed(frames):
        for name, rx in _COMPILED:
            if rx.search(frame):
                return name
    return OTHER


@dataclass(frozen=True)
class CpuWindow:
    """CPU used during one run, in seconds, and what it served."""

    requests: int
    wall_s: float
    machine_s: float  # every core's busy time (``/proc/stat``), all processes
    by_role: Mapping[str, float]  # e.g. "ingress", "workers", "broker", "load generator"

    def per_request_ms(self, role: str) -> float:
        return 1000 * self.by_role.get(role, 0.0) / max(1, self.requests)

    @property
    def rest_s(self) -> float:
        """Busy time no listed process used: the sandboxed programs and the kernel."""
        return max(0.0, self.machine_s - sum(self.by_role.values()))

    def share(self, role: str) -> float:
        """``role``'s part of all the busy time of the machine in the window."""
        return self.by_role.get(role, 0.0) / self.machine_s if self.machine_s else 0.0


def budget_rows(window: CpuWindow,
                profiles: Mapping[str, Counter[str]] | None = None) -> list[tuple[str, str, float]]:
    """(process, part, ms of CPU per request) rows, largest parts first per process.

    A process with a profile has its CPU split by the profile's shares; the others
    (the broker, the load generator, the sandboxed programs) are one row each.
    """
    rows: list[tuple[str, str, float]] = []
    for role in window.by_role:
        ms = window.per_request_ms(role)
        profile = (profiles or {}).get(role)
        total = sum(profile.values()) if profile else 0
        if not profile or not total:
            rows.append((role, "all", ms))
            continue
        for part, n in profile.most_common():
            rows.append((role, part, ms * n / total))
    rows.append(("the rest of the machine (the sandboxed programs, the kernel)", "all",
                 1000 * window.rest_s / max(1, window.requests)))
    return rows


def budget_markdown(window: CpuWindow,
                    profiles: Mapping[str, Counter[str]] | None = None) -> str:
    """The budget as a Markdown table (parts under 0.05 ms folded into "the rest")."""
    lines = [f"CPU per request over {window.requests} requests in {window.wall_s:.1f} s "
             f"(machine busy {window.machine_s / window.wall_s:.2f} cores of the window)",
             "", "| process | part | ms CPU / request |", "|---|---|---|"]
    small: dict[str, float] = {}
    for role, part, ms in budget_rows(window, profiles):
        if part != "all" and ms < 0.05:
            small[role] = small.get(role, 0.0) + ms
            continue
        lines.append(f"| {role} | {part} | {ms:.2f} |")
    for role, ms in small.items():
        lines.append(f"| {role} | the rest | {ms:.2f} |")
    for role in window.by_role:
        lines.append(f"| **{role}, total** | | **{window.per_request_ms(role):.2f}** |")
    return "\n".join(lines)
