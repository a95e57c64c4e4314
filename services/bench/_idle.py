"""What an idle system costs: pure arithmetic on ``/proc`` CPU ticks (no I/O).

``runstream bench idle`` reads each runstream process's ticks (``/proc/<pid>/stat``
utime + stime, and per thread from ``/proc/<pid>/task/<tid>/stat``) at the start
and the end of a window with no requests, and prints the CPU each used as a
percentage of one core. The goal (issue 22): the broker, one ingress and two
workers at most 3 % of one core in all.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import TypeVar

#: The idle goal: all of runstream's processes together, % of one core.
GOAL_PERCENT = 3.0

K = TypeVar("K", bound=Hashable)


def percent_of_core(before: Mapping[K, int], after: Mapping[K, int], seconds: float,
                    ticks_per_s: int) -> dict[K, float]:
    """Each key's CPU over the window as % of one core.

    Keys only in ``after`` (a thread started in the window) count from zero; keys
    gone by the end (a process or thread that exited) are left out: their last
    ticks are unknown. A counter that went backwards (a reused id) counts zero.
    """
    if seconds <= 0:
        raise ValueError(f"the window must last some time, not {seconds} s")
    return {key: 100.0 * max(0, end - before.get(key, 0)) / ticks_per_s / seconds
            for key, end in after.items()}


_NUMBERS = re.compile(r"\d+")


def thread_kind(name: str) -> str:
    """A thread's name without its numbers: threads of one pool fold into one row.

    ``data-plane-kafka-network-thread-1-ListenerName(PLAINTEXT)-PLAINTEXT-2`` and the
    kernel's 15-byte ``data-plane-kafk`` alike; ``GC Thread#3`` becomes ``GC Thread#N``.
    """
    return _NUMBERS.sub("N", name.strip()) or "?"


@dataclass(frozen=True)
class IdleRow:
    """One process's idle CPU, % of one core, and its busiest thread kinds."""

    role: str
    pid: int
    percent: float
    threads: tuple[tuple[str, float], ...] = ()


def fold_threads(threads: Iterable[tuple[str, float]], top: int) -> tuple[
        tuple[str, float], ...]:
    """The ``top`` thread kinds by CPU, from (thread name, % of one core) pairs."""
    kinds: dict[str, float] = {}
    for name, pct in threads:
        kind = thread_kind(name)
        kinds[kind] = kinds.get(kind, 0.0) + pct
    ranked = sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0]))
    return tuple((k, v) for k, v in ranked[:top] if v > 0)


def by_role(rows: list[IdleRow]) -> dict[str, float]:
    """% of one core per role (two workers add up), in the rows' order."""
    out: dict[str, float] = {}
    for row in rows:
        out[row.role] = out.get(row.role, 0.0) + row.percent
    return out


def idle_markdown(rows: list[IdleRow], seconds: float, machine_percent: float) -> str:
    """The idle figure as Markdown: per process, per role, in all, against the goal."""
    total = sum(r.percent for r in rows)
    met = "met" if total <= GOAL_PERCENT else "**not met**"
    lines = [f"Idle CPU over {seconds:.0f} s, % of one core (the whole machine was busy "
             f"{machine_percent:.1f} % of one core in the window, every process included)",
             "", "| process | pid | % of one core | busiest threads (% of one core) |",
             "|---|---|---|---|"]
    for r in rows:
        threads = ", ".join(f"{name} {pct:.2f}" for name, pct in r.threads)
        lines.append(f"| {r.role} | {r.pid} | {r.percent:.2f} | {threads} |")
    for role, pct in by_role(rows).items():
        lines.append(f"| **{role}, total** | | **{pct:.2f}** | |")
    lines.append(f"| **all of runstream** | | **{total:.2f}** | goal ≤ {GOAL_PERCENT:g}: {met} |")
    return "\n".join(lines)
