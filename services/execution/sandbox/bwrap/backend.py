"""The bubblewrap sandbox backend: namespaces, a per-run cgroup, rlimits, seccomp.

Each phase runs as ``runstream-launch -> bwrap -> program`` (or ``dash ->
setpriv -> bwrap -> program`` where the native launcher is not available; see
:mod:`.command`), started by root with an empty environment, inside its own
cgroup; the workspace is a per-execution tmpfs (see :mod:`._mount`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import re
import secrets
from collections.abc import AsyncIterator, Iterable, Sequence
from pathlib import Path

from runstream.schemas.models import Limits, PhaseResult
from runstream.services.errors import SandboxError
from runstream.services.execution.compilecache import Artefact, SnapshotBounds
from runstream.services.execution.languages import Language
from runstream.services.execution.sandbox import versions
from runstream.services.execution.sandbox.base import LiveInput, PhaseOutput
from runstream.services.execution.sandbox.bwrap import (
    _launcher,
    _mount,
    _seccomp,
    _snapshot,
    command,
)
from runstream.services.execution.sandbox.bwrap._run import Launch, supervise
from runstream.services.execution.sandbox.cgroup import CgroupTree, RunCgroup
from runstream.services.execution.sandbox.scope import alive, new_scope
from runstream.services.execution.sandbox.supervision import KILL_WAIT_S
from runstream.services.settings import Settings

log = logging.getLogger(__name__)

#: Tries at creating the shared parents, which a stopping worker may remove meanwhile.
_PREPARE_ATTEMPTS = 3
# bwrap's own two processes (the outer monitor and the pid-1 reaper) count
# against pids.max besides the program's.
BWRAP_PROCESSES = 2
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


class BwrapWorkspace:
    """One execution's tmpfs, shared by its compile and run phases."""

    def __init__(self, sandbox: BwrapSandbox, path: Path) -> None:
        self._sandbox = sandbox
        self.path = path

    async def run(self, argv: Sequence[str], *, stdin: bytes | LiveInput, limits: Limits,
                  language: Language, output: PhaseOutput | None = None) -> PhaseResult:
        """Run ``argv`` in the workspace (bound at /box) under ``limits``."""
        return await self._sandbox._run(self.path, argv, stdin, limits, language, output)

    async def snapshot(self, bounds: SnapshotBounds) -> list[Artefact] | None:
        """The workspace's regular files and directories, read without following any link."""
        return _snapshot.snapshot(self.path, bounds)

    async def restore(self, artefacts: Sequence[Artefact]) -> None:
        """Write kept artefacts into the fresh tmpfs, owned by the sandbox uid."""
        s = self._sandbox.settings
        _snapshot.restore(self.path, artefacts, s.sandbox_uid, s.sandbox_gid)


class BwrapSandbox:
    """Sandbox backend on bubblewrap; needs root, cgroups and user namespaces."""

    name = "bwrap"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # Several workers may share a host: each owns a scope (cgroup subtree and run
        # folder) named after its pid and start time, and reaps only dead workers' scopes.
        self.scope = new_scope()
        self.base_dir = Path(settings.sandbox_run_dir)
        self.run_dir = self.base_dir / self.scope
        self._tree: CgroupTree | None = None
        self._base: CgroupTree | None = None
        self._seccomp = b""
        self._root_links: dict[str, str] = {}
        self._root_dirs: list[str] = []
        self._live: dict[str, RunCgroup] = {}
        self._cleanups: set[asyncio.Task[None]] = set()
        self._counter = itertools.count()
        self._prefix = f"{os.getpid()}-{secrets.token_hex(3)}"
        self.launcher_fd = -1  # the native launcher's memfd; -1: the shell chain

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        """Refuse to run on a host that cannot confine code; reap a crashed worker's runs."""
        if os.geteuid() != 0:
            raise SandboxError(
                "the bwrap backend must run as root (it mounts workspaces, creates cgroups "
                "and drops to RUNSTREAM_SANDBOX_UID); run the worker as root or use "
                "RUNSTREAM_SANDBOX_BACKEND=docker")
        if self.settings.sandbox_launcher == "native" and self.launcher_fd < 0:
            s = self.settings
            try:
                self.launcher_fd = await asyncio.to_thread(_launcher.load, s.sandbox_uid,
                                                           s.sandbox_gid)
            except SandboxError as e:
                log.warning("the native sandbox launcher is not available (%s): using dash "
                            "and setpriv, ~3 ms slower per run", e)
        tools = [command.BWRAP] if self.launcher_fd >= 0 else [
            command.BWRAP, command.SETPRIV, command.SHELL]
        for tool in tools:
            if not os.access(tool, os.X_OK):
                raise SandboxError(
                    f"{tool} is missing; install it (apt-get install bubblewrap util-linux dash)")
        try:
            self._seccomp = _seccomp.build()
        except ValueError as e:
            raise SandboxError(f"cannot build the seccomp filter: {e}") from e
        self._root_links, self._root_dirs = _root_layout()
        self._base = base = CgroupTree.detect(self.settings.sandbox_cgroup_name)
        self._tree = base.child(self.scope)
        for attempt in range(_PREPARE_ATTEMPTS):
            try:
                self._prepare(base)
                break
            except SandboxError as e:
                # The host's last other worker, stopping, may remove the shared parents
                # between our mkdir and our use of them: make them again.
                if attempt + 1 == _PREPARE_ATTEMPTS or not isinstance(
                        e.__cause__, FileNotFoundError):
                    raise
        await self._reap(base)
        log.info("bwrap sandbox ready (cgroup v%d, run dir %s, %s launcher)", self._tree.version,
                 self.run_dir, "native" if self.launcher_fd >= 0 else "shell")

    def _prepare(self, base: CgroupTree) -> None:
        """The shared parents and this worker's own cgroup and run folder."""
        assert self._tree is not None
        base.setup()
        self._tree.setup()
        try:
            for folder in (self.base_dir, self.run_dir):
                folder.mkdir(parents=True, exist_ok=True)
                # The sandbox uid's bwrap must traverse it to bind its workspace, not list it.
                os.chown(folder, 0, 0)
                os.chmod(folder, 0o711)
        except OSError as e:
            raise SandboxError(f"cannot prepare {self.run_dir}: {e}") from e

    async def _reap(self, base: CgroupTree) -> None:
        """Kill and remove what dead workers left on this host: run cgroups, workspaces."""
        stale = [name for name in base.children() if name != self.scope
                 and not alive(name)]
        runs = 0
        # Workers starting together reap the same dead scopes: what another one removed
        # first is simply gone (FileNotFoundError), not a failure.
        for name in stale:
            tree = base.child(name)
            with contextlib.suppress(FileNotFoundError):
                for cg in tree.leftovers():
                    await cg.remove()
                    runs += 1
            tree.remove()
        stale_dirs = [d for d in self.base_dir.iterdir()
                      if d.name != self.scope and not alive(d.name)]
        mounts = [m for d in stale_dirs for m in _mount.mounts_under(d)]
        for point in mounts:
            with contextlib.suppress(OSError):
                _mount.remove_workspace(point)
        for folder in stale_dirs:
            with contextlib.suppress(FileNotFoundError):
                for entry in folder.iterdir():
                    with contextlib.suppress(OSError):  # non-empty: not ours to walk
                        os.rmdir(entry)
            with contextlib.suppress(OSError):
                os.rmdir(folder)
        if runs or mounts:
            log.warning("reaped %d run cgroups and %d workspaces of dead workers", runs,
                        len(mounts))

    async def stop(self) -> None:
        """Kill every run still going, finish removing cgroups, remove this scope."""
        for cg in list(self._live.values()):
            cg.kill()
        if self._cleanups:
            await asyncio.gather(*self._cleanups, return_exceptions=True)
        if self._tree is not None:
            for cg in self._tree.leftovers():
                await cg.remove()
            self._tree.remove()
        for point in _mount.mounts_under(self.run_dir):
            with contextlib.suppress(OSError):
                _mount.remove_workspace(point)
        with contextlib.suppress(OSError):
            os.rmdir(self.run_dir)
        # The shared parents go with the last worker of the host that uses them, and
        # with them what workers killed since the last start-up left behind.
        if self._base is not None:
            with contextlib.suppress(OSError):
                await self._reap(self._base)
            self._base.remove_if_unused()
        with contextlib.suppress(OSError):
            os.rmdir(self.base_dir)
        if self.launcher_fd >= 0:
            os.close(self.launcher_fd)
            self.launcher_fd = -1

    async def detect_versions(self, registry: Iterable[Language]) -> dict[str, str | None]:
        """Each language's version, from its toolchain on this host (what bwrap binds)."""
        return await versions.detect(registry)

    # -- workspace -------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def workspace(self, execution_id: str, files: Sequence[tuple[str, bytes]],
                        language: Language) -> AsyncIterator[BwrapWorkspace]:
        """A fresh tmpfs holding ``files``; unmounted (detached) on exit."""
        s = self.settings
        path = self.run_dir / f"{_UNSAFE.sub('_', execution_id)[:64]}-{secrets.token_hex(4)}"
        try:
            os.mkdir(path, 0o700)
            _mount.mount_tmpfs(path, size_mb=s.sandbox_tmpfs_mb, uid=s.sandbox_uid,
                               gid=s.sandbox_gid)
        except OSError as e:
            with contextlib.suppress(OSError):
                os.rmdir(path)
            raise SandboxError(f"cannot create the workspace {path}: {e}") from e
        try:
            _mount.write_files(path, files, s.sandbox_uid, s.sandbox_gid)
            yield BwrapWorkspace(self, path)
        finally:
            try:
                _mount.remove_workspace(path)
            except OSError as e:
                log.error("cannot remove workspace %s: %s", path, e)

    # -- one phase -------------------------------------------------------------

    async def _run(self, workspace: Path, argv: Sequence[str], stdin: bytes | LiveInput,
                   limits: Limits, language: Language,
                   output: PhaseOutput | None = None) -> PhaseResult:
        if self._tree is None:
            raise SandboxError("BwrapSandbox.start() was not called")
        s = self.settings
        run_id = f"{self._prefix}-{next(self._counter)}"
        cg = self._tree.create(
            run_id, memory_bytes=limits.memory_bytes,
            pids=limits.processes + language.processes_floor + BWRAP_PROCESSES)
        self._live[run_id] = cg

        def build(seccomp_fd: int, status_fd: int, args_fd: int) -> tuple[list[str], bytes]:
            spec = command.RunSpec(
                argv=argv, language=language, limits=limits, workspace=str(workspace),
                cgroup_join=cg.join_files, uid=s.sandbox_uid, gid=s.sandbox_gid,
                seccomp_fd=seccomp_fd, status_fd=status_fd,
                tmp_bytes=s.sandbox_tmpfs_mb * 1024 * 1024,
                root_links=self._root_links, root_dirs=self._root_dirs,
                launcher_fd=self.launcher_fd, args_fd=args_fd)
            return command.launch_argv(spec), command.bwrap_options_data(spec)

        cancelled = False
        try:
            return await supervise(Launch(stdin=stdin, limits=limits, cgroup=cg,
                                          seccomp=self._seccomp, build_argv=build,
                                          output=output,
                                          inherit=(self.launcher_fd,)
                                          if self.launcher_fd >= 0 else ()))
        except asyncio.CancelledError:
            cancelled = True
            raise
        finally:
            self._live.pop(run_id, None)
            cg.kill()
            # rmdir right after the last exit may be EBUSY for a while: finish
            # it in the background rather than delay the result.
            if not cg.try_remove():
                task = asyncio.create_task(cg.remove())
                self._cleanups.add(task)
                task.add_done_callback(self._cleanups.discard)
                if cancelled:
                    # The caller gave up on the run (a worker's drain bound): it
                    # must find nothing of it left once the cancellation returns.
                    await asyncio.wait({task}, timeout=KILL_WAIT_S)


def _root_layout() -> tuple[dict[str, str], list[str]]:
    """Which of /bin /lib /lib64 /sbin are merged-/usr symlinks and which are directories."""
    links: dict[str, str] = {}
    dirs: list[str] = []
    for name in command.MERGED_USR:
        if os.path.islink(name):
            links[name] = os.readlink(name)
        elif os.path.isdir(name):
            dirs.append(name)
    return links, dirs
