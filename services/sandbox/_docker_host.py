"""A container's cgroup as seen from the host, when the worker runs beside the engine.

Reading the cgroup files directly costs microseconds where the stats API costs
tens of milliseconds, lets the peak memory be reset between phases, counts OOM
kills per phase, and kills a phase's processes without forking inside a
container whose pids limit a fork bomb may have exhausted.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from pathlib import Path

from runstream.services.sandbox._cgroup import RunCgroup

log = logging.getLogger(__name__)

V1_CONTROLLERS = ("memory", "pids", "cpuacct")
KILL_ROUNDS = 20


def _mount_points() -> tuple[dict[str, Path], Path | None]:
    v1: dict[str, Path] = {}
    v2: Path | None = None
    with open("/proc/self/mounts", encoding="utf-8") as f:
        for line in f:
            parts = line.split()
            if len(parts) < 4:
                continue
            if parts[2] == "cgroup2":
                v2 = Path(parts[1])
            elif parts[2] == "cgroup":
                for option in parts[3].split(","):
                    if option in V1_CONTROLLERS:
                        v1[option] = Path(parts[1])
    return v1, v2


def container_cgroup(pid: int) -> RunCgroup | None:
    """The cgroup of the container whose init is host pid ``pid``; None if not visible."""
    if pid <= 0:
        return None
    try:
        text = Path(f"/proc/{pid}/cgroup").read_text(encoding="utf-8")
        v1, v2 = _mount_points()
    except OSError:
        return None  # the engine is elsewhere (remote, or another pid namespace)
    paths: dict[str, str] = {}
    for line in text.splitlines():
        _, controllers, path = line.split(":", 2)
        for c in controllers.split(",") if controllers else ["unified"]:
            paths[c] = path.lstrip("/")
    if all(c in v1 and c in paths for c in V1_CONTROLLERS):
        dirs = {c: v1[c] / paths[c] for c in V1_CONTROLLERS}
        cg = RunCgroup(1, dirs)
    elif v2 is not None and "unified" in paths:
        cg = RunCgroup(2, {"unified": v2 / paths["unified"]})
    else:
        return None
    if not all(d.is_dir() for d in cg.dirs.values()):
        return None
    return cg


def reset_peak(cg: RunCgroup) -> None:
    """Start a phase's peak-memory measure from the current usage (v1 only)."""
    if cg.version == 1:
        with contextlib.suppress(OSError):
            (cg.dirs["memory"] / "memory.max_usage_in_bytes").write_text("0")


def set_limits(cg: RunCgroup, memory_bytes: int, pids: int) -> bool:
    """Change the memory and pids limits in place; False if the kernel refused."""
    try:
        if cg.version == 1:
            mem = cg.dirs["memory"]
            memsw = mem / "memory.memsw.limit_in_bytes"
            # memsw must stay >= memory: order the writes by direction.
            current = int((mem / "memory.limit_in_bytes").read_text())
            order = [mem / "memory.limit_in_bytes", memsw]
            if memory_bytes > current:
                order.reverse()
            for path in order:
                if path.exists():
                    path.write_text(str(memory_bytes))
            (cg.dirs["pids"] / "pids.max").write_text(str(pids))
        else:
            d = cg.dirs["unified"]
            (d / "memory.max").write_text(str(memory_bytes))
            with contextlib.suppress(FileNotFoundError):
                (d / "memory.swap.max").write_text("0")
            (d / "pids.max").write_text(str(pids))
    except (OSError, ValueError) as e:
        log.warning("cannot change the limits of cgroup %s: %s", cg.dirs, e)
        return False
    return True


def _uid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Uid:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def phase_pids(cg: RunCgroup) -> list[int]:
    """The container's processes that are not its root-owned idle init."""
    return [p for p in cg.pids() if _uid(p) not in (0, None)]


def kill_phase(cg: RunCgroup) -> bool:
    """SIGKILL every process a phase left (daemons included); True once none is listed."""
    for _ in range(KILL_ROUNDS):
        pids = phase_pids(cg)
        if not pids:
            return True
        # A process forked after the read is caught by the next round; a killed
        # process cannot fork again, so the rounds converge.
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
    return not phase_pids(cg)
