"""Per-run cgroups, on cgroup v1 or v2 (detected at start-up).

Each run gets its own cgroup under one parent (``settings.sandbox_cgroup_name``)
so that its memory and process count are limited, its CPU time and peak memory
are measured, OOM kills are counted by the kernel rather than guessed from an
exit status, and every process of the run can be killed at once, including the
ones that double-forked or called setsid. The docker backend reads and kills
a container's cgroup with the same :class:`RunCgroup` when the engine runs on
this host.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from runstream.services.errors import SandboxError

log = logging.getLogger(__name__)

# No freezer: joining a v1 freezer cgroup measured ~5 ms per run here, and
# pids.max already bounds what a fork bomb can add between two kill rounds.
V1_CONTROLLERS = ("memory", "pids", "cpuacct")
V2_CONTROLLERS = ("memory", "pids", "cpu")
KILL_ROUNDS = 20
#: Longest wait for listed processes to exit before listing the cgroup again.
EXIT_WAIT_S = 0.05
REMOVE_TIMEOUT_S = 5.0


def _write(path: Path, value: str) -> None:
    with open(path, "w", encoding="ascii") as f:
        f.write(value)


def _read(path: Path) -> str:
    with open(path, encoding="ascii") as f:
        return f.read()


def _keyed(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        with contextlib.suppress(ValueError):
            out[key] = int(value)
    return out


@dataclass
class CgroupMounts:
    """Where this process sees the cgroup hierarchies (from /proc/self/mounts)."""

    v1: dict[str, Path] = field(default_factory=dict)  # V1_CONTROLLERS -> mount point
    v2: list[Path] = field(default_factory=list)  # cgroup2 mount points, in mount order

    @classmethod
    def read(cls) -> CgroupMounts:
        found = cls()
        with open("/proc/self/mounts", encoding="utf-8") as f:
            for line in f:
                parts = line.split()
                if len(parts) < 4:
                    continue
                if parts[2] == "cgroup2":
                    found.v2.append(Path(parts[1]))
                elif parts[2] == "cgroup":
                    options = set(parts[3].split(","))
                    for c in V1_CONTROLLERS:
                        if c in options:
                            found.v1[c] = Path(parts[1])
        return found


async def _exits(pids: list[int], timeout_s: float) -> None:
    """Return once every process of ``pids`` has exited, or after ``timeout_s``.

    A pid may have been reused by an unrelated process since it was listed:
    the bound keeps that from costing more than ``timeout_s``, and the caller
    lists the cgroup again.
    """
    loop = asyncio.get_running_loop()
    fds: list[int] = []
    pending = 0
    done: asyncio.Future[None] = loop.create_future()

    def exited(fd: int) -> None:
        nonlocal pending
        loop.remove_reader(fd)
        pending -= 1
        if pending == 0 and not done.done():
            done.set_result(None)

    try:
        for pid in pids:
            try:
                fd = os.pidfd_open(pid)
            except ProcessLookupError:
                continue  # gone already
            fds.append(fd)
            pending += 1
            loop.add_reader(fd, exited, fd)
        if pending:
            await asyncio.wait({done}, timeout=timeout_s)
    finally:
        for fd in fds:
            loop.remove_reader(fd)
            os.close(fd)


def kill_rounds(list_pids: Callable[[], list[int]]) -> bool:
    """SIGKILL whatever ``list_pids`` lists, in rounds; True once it lists nothing."""
    for _ in range(KILL_ROUNDS):
        pids = list_pids()
        if not pids:
            return True
        # A process forked after the read is caught by the next round; a killed
        # process cannot fork again, so the rounds converge.
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
    return not list_pids()


class RunCgroup:
    """The cgroup (one directory per v1 controller, or one v2 directory) of one run."""

    def __init__(self, version: int, dirs: dict[str, Path]) -> None:
        self.version = version
        self.dirs = dirs  # controller -> directory ("unified" on v2)

    @property
    def join_files(self) -> list[str]:
        """Where a single-threaded process writes "0" to join the run.

        On v1, "tasks" with 0 moves only the writing thread and skips the global
        threadgroup lock, whose RCU grace period cost ~10 ms per run here.
        """
        name = "tasks" if self.version == 1 else "cgroup.procs"
        return [str(d / name) for d in self.dirs.values()]

    def _dir(self, controller: str) -> Path:
        return self.dirs["unified" if self.version == 2 else controller]

    def pids(self) -> list[int]:
        try:
            text = _read(self._dir("pids") / "cgroup.procs")
        except FileNotFoundError:
            return []
        return [int(p) for p in text.split()]

    def cpu_ns(self) -> int:
        if self.version == 1:
            return int(_read(self.dirs["cpuacct"] / "cpuacct.usage"))
        return _keyed(_read(self.dirs["unified"] / "cpu.stat")).get("usage_usec", 0) * 1000

    def memory_peak_bytes(self) -> int:
        if self.version == 1:
            return int(_read(self.dirs["memory"] / "memory.max_usage_in_bytes"))
        peak = self.dirs["unified"] / "memory.peak"  # Linux >= 5.19
        if peak.exists():
            return int(_read(peak))
        return int(_read(self.dirs["unified"] / "memory.current"))

    def oom_kills(self) -> int:
        if self.version == 1:
            return _keyed(_read(self.dirs["memory"] / "memory.oom_control")).get("oom_kill", 0)
        return _keyed(_read(self.dirs["unified"] / "memory.events")).get("oom_kill", 0)

    def set_limits(self, memory_bytes: int, pids: int) -> None:
        """Set the memory (no swap beyond it) and process limits; OSError if refused."""
        if self.version == 1:
            mem = self.dirs["memory"]
            limit, memsw = mem / "memory.limit_in_bytes", mem / "memory.memsw.limit_in_bytes"
            # memsw must stay >= memory at every step: order the writes by direction.
            order = [limit, memsw]
            if memory_bytes > int(_read(limit)):
                order.reverse()
            for path in order:
                if path.exists():
                    _write(path, str(memory_bytes))
            _write(self.dirs["pids"] / "pids.max", str(pids))
        else:
            d = self.dirs["unified"]
            _write(d / "memory.max", str(memory_bytes))
            if (d / "memory.swap.max").exists():
                _write(d / "memory.swap.max", "0")
            _write(d / "pids.max", str(pids))

    def kill(self) -> None:
        """SIGKILL every process of the run; return once none is left (bounded)."""
        if self.version == 2:
            kill_file = self.dirs["unified"] / "cgroup.kill"  # Linux >= 5.14
            if kill_file.exists():
                with contextlib.suppress(FileNotFoundError):
                    _write(kill_file, "1")
                return
        kill_rounds(self.pids)
        # Still listed: killed processes finish exiting asynchronously (an OOM
        # victim releasing memory, a task in D state); wait_empty() waits for them.

    async def wait_empty(self, timeout_s: float) -> bool:
        """Kill until no process is left; False if some survive ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        previous: list[int] = []
        delay = 0.001
        while True:
            self.kill()
            pids = self.pids()
            if not pids:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                log.warning("cgroup %s still has processes %s", self.dirs, pids)
                return False
            if pids == previous:
                # Listed again though their exits were awaited (stuck in D state,
                # or a kernel that lists them a little longer): back off.
                await asyncio.sleep(min(delay, remaining))
                delay = min(delay * 2, EXIT_WAIT_S)
            else:
                # v1 has no "cgroup emptied" event, but each process has one: its
                # pidfd. A killed bwrap's pid 1 takes ~1 ms to tear its namespaces
                # down; polling cost up to a whole poll period more.
                await _exits(pids, min(remaining, EXIT_WAIT_S))
            previous = pids

    def try_remove(self) -> bool:
        """rmdir every directory; False while the kernel still says EBUSY."""
        done = True
        for d in self.dirs.values():
            try:
                os.rmdir(d)
            except FileNotFoundError:
                pass
            except OSError as e:
                if e.errno != errno.EBUSY:
                    raise
                done = False
        return done

    async def remove(self, timeout_s: float = REMOVE_TIMEOUT_S) -> None:
        """Kill and remove; rmdir right after the last exit can be EBUSY for a while."""
        deadline = time.monotonic() + timeout_s
        delay = 0.002
        while True:
            self.kill()
            if self.try_remove():
                return
            if time.monotonic() > deadline:
                log.warning("could not remove cgroup %s (EBUSY)", self.dirs)
                return
            # No kernel event tells v1 a cgroup became removable: back off.
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)


class CgroupTree:
    """The parent cgroup of all runs of this worker."""

    def __init__(self, version: int, parents: dict[str, Path]) -> None:
        self.version = version
        self.parents = parents

    @classmethod
    def detect(cls, name: str) -> CgroupTree:
        """v2 if /sys/fs/cgroup (or the only cgroup mount) is unified, else v1 controllers."""
        v2: Path | None = None
        mounts = CgroupMounts.read()
        v1 = mounts.v1
        for point in mounts.v2:
            controllers = point / "cgroup.controllers"
            if controllers.exists() and set(V2_CONTROLLERS) <= set(_read(controllers).split()):
                v2 = point
        if all(c in v1 for c in V1_CONTROLLERS):
            return cls(1, {c: v1[c] / name for c in V1_CONTROLLERS})
        if v2 is not None:
            return cls(2, {"unified": v2 / name})
        missing = [c for c in V1_CONTROLLERS if c not in v1]
        raise SandboxError(
            "no usable cgroups: need cgroup v2 with the memory, pids and cpu controllers "
            f"or cgroup v1 with {', '.join(V1_CONTROLLERS)} (v1 is missing {', '.join(missing)}); "
            "mount them (e.g. systemd.unified_cgroup_hierarchy=1) or use the docker backend"
        )

    def child(self, name: str) -> CgroupTree:
        """The tree one level down (a worker's scope under the shared parent)."""
        return CgroupTree(self.version, {c: p / name for c, p in self.parents.items()})

    def children(self) -> list[str]:
        """Names of the sub-cgroups (worker scopes) of this tree."""
        names: set[str] = set()
        for p in self.parents.values():
            if p.is_dir():
                names.update(child.name for child in p.iterdir() if child.is_dir())
        return sorted(names)

    def remove(self) -> None:
        """rmdir the parent directories (once their runs are gone); errors are logged."""
        for d in self.parents.values():
            try:
                os.rmdir(d)
            except FileNotFoundError:
                pass
            except OSError as e:
                log.warning("cannot remove cgroup %s: %s", d, e)

    def remove_if_unused(self) -> None:
        """rmdir the parent directories if nothing uses them (another worker may)."""
        for d in self.parents.values():
            with contextlib.suppress(OSError):  # busy or not empty: still in use
                os.rmdir(d)

    def setup(self) -> None:
        """Create the parent cgroup(s) and enable the controllers runs need."""
        try:
            for d in self.parents.values():
                d.mkdir(exist_ok=True)
            if self.version == 2:
                parent = self.parents["unified"]
                wanted = " ".join("+" + c for c in V2_CONTROLLERS)
                # Every level from the one above this tree down must delegate them.
                for level in (parent.parent, parent):
                    _write(level / "cgroup.subtree_control", wanted)
            else:
                hier = self.parents["memory"] / "memory.use_hierarchy"
                if hier.exists() and _read(hier).strip() != "1":
                    with contextlib.suppress(OSError):
                        _write(hier, "1")
        except OSError as e:
            raise SandboxError(f"cannot create the parent cgroup {self.parents}: {e}") from e

    def _run_dirs(self, run: str) -> dict[str, Path]:
        return {c: p / run for c, p in self.parents.items()}

    def create(self, run: str, *, memory_bytes: int, pids: int) -> RunCgroup:
        """A new run cgroup with its limits set (before any process joins it)."""
        cg = RunCgroup(self.version, self._run_dirs(run))
        try:
            for d in cg.dirs.values():
                d.mkdir()
            cg.set_limits(memory_bytes, pids)
        except (OSError, ValueError) as e:
            cg.try_remove()
            raise SandboxError(f"cannot create run cgroup {run}: {e}") from e
        return cg

    def leftovers(self) -> list[RunCgroup]:
        """Run cgroups in this tree (of a dead worker, or still here at stop)."""
        return [RunCgroup(self.version, self._run_dirs(n)) for n in self.children()]
