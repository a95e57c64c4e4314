"""A container's cgroup as seen from the host, when the worker runs beside the engine.

Reading the cgroup files directly costs microseconds where the stats API costs
tens of milliseconds, lets the peak memory be reset between phases, counts OOM
kills per phase, and kills a phase's processes without forking inside a
container whose pids limit a fork bomb may have exhausted.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from runstream.services.execution.sandbox.cgroup import (
    V1_CONTROLLERS,
    CgroupMounts,
    RunCgroup,
    kill_rounds,
)

log = logging.getLogger(__name__)


def container_cgroup(pid: int, cid: str) -> RunCgroup | None:
    """The cgroup of container ``cid`` whose init is host pid ``pid``; None if not visible.

    A cgroup whose path does not name the container is not its own (the pid was
    reused after the container's end): None, and accounting goes through the API.
    """
    if pid <= 0:
        return None
    try:
        text = Path(f"/proc/{pid}/cgroup").read_text(encoding="utf-8")
        mounts = CgroupMounts.read()
    except OSError:
        return None  # the engine is elsewhere (remote, or another pid namespace)
    paths: dict[str, str] = {}
    for line in text.splitlines():
        _, controllers, path = line.split(":", 2)
        if cid not in path:
            continue
        for c in controllers.split(",") if controllers else ["unified"]:
            paths[c] = path.lstrip("/")
    v1 = mounts.v1
    if all(c in v1 and c in paths for c in V1_CONTROLLERS):
        cg = RunCgroup(1, {c: v1[c] / paths[c] for c in V1_CONTROLLERS})
    elif mounts.v2 and "unified" in paths:
        cg = RunCgroup(2, {"unified": mounts.v2[-1] / paths["unified"]})
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
        cg.set_limits(memory_bytes, pids)
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
    return kill_rounds(lambda: phase_pids(cg))
