"""The system's processes on this host and their CPU ticks, from ``/proc``.

Used by ``runstream bench speed`` (CPU per request) and ``runstream bench idle``.
A host may run several systems (other checkouts' ``./deploy.sh local`` on other
ports): a process belongs to the measured one when its ``RUNSTREAM_BOOTSTRAP_SERVERS``
(or the default, when unset) is the bench command's own.
"""

from __future__ import annotations

import os
import re
from dataclasses import fields
from pathlib import Path

from runstream.services.settings import Settings

ROLES = {"ingress": re.compile(r"\brunstream\b.*\bingress$"),
         "workers": re.compile(r"\brunstream\b.*\bworker$"),
         "broker": re.compile(r"kafka\.Kafka\b"),
         "broker launcher": re.compile(r"\brunstream\b.*\bbroker$")}
TICK = os.sysconf("SC_CLK_TCK")
_DEFAULT_BOOTSTRAP = next(f.default for f in fields(Settings) if f.name == "bootstrap_servers")


def _bootstrap_of(pid: str) -> str | None:
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    for entry in env:
        if entry.startswith(b"RUNSTREAM_BOOTSTRAP_SERVERS="):
            return entry.partition(b"=")[2].decode(errors="replace")
    return str(_DEFAULT_BOOTSTRAP)


def processes(bootstrap: str | None = None) -> dict[int, str]:
    """pid -> role of the system's processes on this host (not this command's).

    With ``bootstrap``, only those of the system on that broker.
    """
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:
            continue
        for role, rx in ROLES.items():
            if rx.search(cmd) and (bootstrap is None or _bootstrap_of(entry.name) == bootstrap):
                found[int(entry.name)] = role
                break
    return found


def _stat_ticks(path: Path) -> int | None:
    try:
        stat = path.read_text()
    except OSError:
        return None
    fields_ = stat.rpartition(")")[2].split()
    return int(fields_[11]) + int(fields_[12])  # utime, stime


def ticks(pid: int) -> int:
    """CPU ticks (user + system) a process used so far; 0 once it is gone."""
    return _stat_ticks(Path(f"/proc/{pid}/stat")) or 0


def thread_ticks(pid: int) -> dict[str, int]:
    """``name/tid`` -> CPU ticks of each live thread of ``pid``."""
    out: dict[str, int] = {}
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return out
    for task in tasks:
        used = _stat_ticks(task / "stat")
        try:
            name = (task / "comm").read_text().strip()
        except OSError:
            continue
        if used is not None:
            out[f"{name}/{task.name}"] = used
    return out


def machine_busy_s() -> float:
    """Every core's busy seconds so far (``/proc/stat``, idle and iowait excluded)."""
    first = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(v) for v in first[:8]]
    return (sum(values) - values[3] - values[4]) / TICK
