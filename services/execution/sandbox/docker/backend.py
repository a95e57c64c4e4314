"""The Docker sandbox backend: one short-lived, hardened container per execution.

An execution's container is created at its first phase (so the first phase's
limits are the container's), from the language's image, with no network, a
read-only root, no capabilities, no-new-privileges, memory = memory+swap, a
pids limit, one CPU and size-capped tmpfs for /box, /tmp and /dev/shm. Its init
is a root-owned ``sleep`` bounded by ``sandbox_docker_lifetime_s``: a container
whose worker vanished kills itself. Each phase is a ``docker exec`` as the
sandbox uid (~70 ms against ~180 ms for starting a container), with rlimits and
an in-container ``timeout -s KILL`` backstop; the files travel in the first
exec's stdin as a tar (see :mod:`._exec`). Between phases the previous
phase's stray processes are killed. Every container is labelled with the
worker's scope so that a worker starting on the same host removes the
containers of dead workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
import time
from collections.abc import AsyncIterator, Coroutine, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import docker
import docker.errors
from runstream.schemas.models import Limits, PhaseResult
from runstream.services.errors import SandboxError
from runstream.services.execution.compilecache import Artefact, SnapshotBounds
from runstream.services.execution.languages import Language
from runstream.services.execution.sandbox import versions
from runstream.services.execution.sandbox.base import LiveInput, PhaseOutput
from runstream.services.execution.sandbox.docker._container import ExecutionContainer
from runstream.services.execution.sandbox.docker._demand import PoolDemand
from runstream.services.execution.sandbox.docker._engine import DockerEngine
from runstream.services.execution.sandbox.docker._exec import PHASE_OVERHEAD, files_tar
from runstream.services.execution.sandbox.docker._pool import WarmPool
from runstream.services.execution.sandbox.docker._snapshot import (
    SNAPSHOT_ARGV,
    from_tar,
    snapshot_limits,
    with_artefacts,
)
from runstream.services.execution.sandbox.environment import MASKED, program_env
from runstream.services.execution.sandbox.scope import alive, new_scope
from runstream.services.execution.sandbox.supervision import KILL_WAIT_S
from runstream.services.settings import Settings

log = logging.getLogger(__name__)

WORKER_LABEL = "dev.runstream.worker"
HOST_LABEL = "dev.runstream.host"
#: The paths Docker 20.10+ masks by default (moby's oci/defaults.go); setting
#: HostConfig.MaskedPaths replaces them, so they are listed with ours.
DOCKER_MASKED = ("/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys",
                 "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                 "/proc/sched_debug", "/proc/scsi", "/sys/firmware")


class DockerWorkspace:
    """One execution's container (created lazily by its first phase)."""

    def __init__(self, sandbox: DockerSandbox, tar: bytes, language: Language) -> None:
        self._sandbox = sandbox
        self.language = language
        self.tar = tar
        self.container_id: str | None = None
        self.container: ExecutionContainer | None = None
        self.taken_at: float | None = None  # when it got its container (the pool's demand)
        self._lock = asyncio.Lock()

    async def run(self, argv: Sequence[str], *, stdin: bytes | LiveInput, limits: Limits,
                  language: Language, output: PhaseOutput | None = None) -> PhaseResult:
        """Run ``argv`` in /box of the execution's container under ``limits``."""
        async with self._lock:  # phases of one execution are sequential by nature
            if self.container is None:
                sb = self._sandbox
                pooled = sb.pool_take(language)
                self.taken_at = time.monotonic()
                if pooled is None:
                    self.container_id = await sb.create_container(language, limits)
                    first = limits
                else:
                    self.container_id, first = pooled, sb.settings.default_limits
                self.container = ExecutionContainer(sb.engine, self.container_id, self.tar,
                                                    first)
                await self.container.attach(sb.pooled_init_pid(self.container_id))
            return await self.container.run(argv, stdin, limits, language, output)

    async def snapshot(self, bounds: SnapshotBounds) -> list[Artefact] | None:
        """The files of /box, through a ``tar -c`` phase in the container (nothing extracted)."""
        base = (self.container.limits if self.container is not None
                else self._sandbox.settings.default_limits)
        phase = await self.run(SNAPSHOT_ARGV, stdin=b"", limits=snapshot_limits(base, bounds),
                               language=self.language)
        if phase.exit_code != 0 or phase.output_limit_hit or phase.stdout_truncated:
            return None
        return from_tar(phase.stdout, bounds)

    async def restore(self, artefacts: Sequence[Artefact]) -> None:
        """Add kept artefacts to the files the first phase unpacks."""
        if self.container is not None:
            raise SandboxError("restore() after a phase ran")
        s = self._sandbox.settings
        self.tar = with_artefacts(self.tar, artefacts, s.sandbox_uid, s.sandbox_gid)


class DockerSandbox:
    """Sandbox backend on a Docker engine (the ``docker`` SDK), hardened containers."""

    name = "docker"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.scope = new_scope()
        self.host = socket.gethostname()
        self.engine = DockerEngine(settings)
        self._counter = itertools.count()
        self._live: set[str] = set()
        self._cleanups: set[asyncio.Task[None]] = set()
        self._pool: WarmPool | None = None
        self._init_pids: dict[str, int] = {}  # of the pool's containers, looked up ahead

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        """Check the engine answers; remove the containers of dead workers of this host."""
        s = self.settings
        self.engine.connect()
        await self.engine.call(self.engine.api.ping)
        if s.sandbox_docker_pool > 0:
            demand = PoolDemand(s.sandbox_docker_pool, s.sandbox_docker_pool_max,
                                idle_s=s.sandbox_docker_pool_idle_s)
            self._pool = WarmPool(self._pre_start, self._remove, demand,
                                  max_age_s=s.sandbox_docker_lifetime_s / 2)
            self._pool.start()
        reaped = await self._reap()
        log.info("docker sandbox ready (engine %s, scope %s, reaped %d containers)",
                 s.sandbox_docker_url, self.scope, reaped)

    async def _reap(self) -> int:
        found = await self.engine.call(self.engine.api.containers, all=True,
                                       filters={"label": WORKER_LABEL})
        now = time.time()
        stale = []
        for c in found:
            labels = c.get("Labels") or {}
            scope = labels.get(WORKER_LABEL, "")
            if scope == self.scope:
                continue
            # Another host's worker may be alive: judge it by age only, past
            # the lifetime its own containers give themselves.
            mine = labels.get(HOST_LABEL) == self.host
            too_old = now - c.get("Created", now) > self.settings.sandbox_docker_lifetime_s + 60
            if (mine and not alive(scope)) or too_old:
                stale.append(c["Id"])
        for cid in stale:
            await self._remove(cid)
        if stale:
            log.warning("reaped %d containers of dead workers", len(stale))
        return len(stale)

    async def stop(self) -> None:
        """Remove every container of this worker; wait for pending removals."""
        if self._pool is not None:
            await self._pool.close()
        if self._cleanups:
            await asyncio.gather(*self._cleanups, return_exceptions=True)
        for cid in list(self._live):
            await self._remove(cid)
        self.engine.close()

    async def settle(self) -> None:
        """Wait for background work: pending removals and warm-pool refills (benchmarks)."""
        if self._pool is not None:
            await self._pool.settle()
        if self._cleanups:
            await asyncio.gather(*list(self._cleanups), return_exceptions=True)

    async def detect_versions(self, registry: Iterable[Language]) -> dict[str, str | None]:
        """Each language's version, from its image (which may hold another than the host)."""
        return await versions.detect_each(registry, self._version_in_image)

    async def _version_in_image(self, language: Language) -> str | None:
        """Run the version command in a container like a program's; None if it fails."""
        api = self.engine.api
        try:
            async with asyncio.timeout(versions.TIMEOUT_S):
                cid = await self.create_container(language)
                try:
                    exec_id = (await self.engine.call(
                        api.exec_create, cid, list(language.version_cmd),
                        user=f"{self.settings.sandbox_uid}:{self.settings.sandbox_gid}",
                        environment=program_env(language), workdir="/box"))["Id"]
                    out: bytes = await self.engine.call(api.exec_start, exec_id)
                    info = await self.engine.call(api.exec_inspect, exec_id)
                finally:
                    await self._finish(self._remove(cid))
        except (SandboxError, TimeoutError) as e:
            log.warning("%s: cannot run its version command in %s: %s", language.name,
                        language.image, str(e) or "timed out")
            return None
        return versions.version_from(language, info.get("ExitCode"), out)

    # -- workspace -------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def workspace(self, execution_id: str, files: Sequence[tuple[str, bytes]],
                        language: Language) -> AsyncIterator[DockerWorkspace]:
        """The execution's container; removed (killed first) when the context exits."""
        s = self.settings
        ws = DockerWorkspace(self, files_tar(files, s.sandbox_uid, s.sandbox_gid), language)
        cancelled = False
        try:
            yield ws
        except asyncio.CancelledError:
            cancelled = True
            raise
        finally:
            if ws.container_id is not None:
                if ws.container is not None:
                    ws.container.kill_now()  # nothing of it may outlive the context
                # Removal costs ~100 ms: finish it in the background, unless the
                # caller gave up on the execution (a worker's drain bound): it
                # must then find nothing left once the cancellation returns.
                removal = self._in_background(self._remove(ws.container_id))
                if cancelled:
                    await asyncio.wait({removal}, timeout=KILL_WAIT_S)
            if self._pool is not None:
                held = None if ws.taken_at is None else time.monotonic() - ws.taken_at
                self._pool.release(language, held)

    def pool_take(self, language: Language) -> str | None:
        """A pre-started container for ``language`` if the warm pool has one."""
        return self._pool.take(language) if self._pool is not None else None

    def pooled_init_pid(self, cid: str) -> int | None:
        """The host pid of a pooled container's init, if it was looked up ahead."""
        return self._init_pids.pop(cid, None)

    async def _pre_start(self, language: Language) -> str:
        """A container for the pool, its init's pid looked up now, off any execution's path."""
        cid = await self.create_container(language)
        try:
            info = await self.engine.call(self.engine.api.inspect_container, cid)
        except BaseException:
            await self._finish(self._remove(cid))
            raise
        self._init_pids[cid] = int(info["State"].get("Pid") or 0)
        return cid

    def _in_background(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run ``work`` to its end whatever happens to the caller (``stop`` waits for it)."""
        task = asyncio.ensure_future(work)
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)
        return task

    async def _finish(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` to its end even if the caller is cancelled meanwhile.

        Returns within KILL_WAIT_S at most; the work goes on in the background
        after that.
        """
        await asyncio.wait({self._in_background(work)}, timeout=KILL_WAIT_S)

    async def create_container(self, language: Language, limits: Limits | None = None) -> str:
        """A started, hardened container of ``language``'s image whose init only sleeps."""
        s = self.settings
        limits = limits or s.default_limits
        api = self.engine.api
        mb = s.sandbox_tmpfs_mb
        box = f"size={mb}m,uid={s.sandbox_uid},gid={s.sandbox_gid},mode=0700,exec"
        host_config = api.create_host_config(
            network_mode="none",
            read_only=True,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            init=True,  # reaps the orphans of setsid daemons
            # Its own cgroup namespace: /proc/self/cgroup and /sys/fs/cgroup show "/",
            # not the host's /docker/<container id> (docs/sandbox.md "What a run can see").
            cgroupns="private",
            tmpfs={"/box": box, "/tmp": f"size={mb}m,mode=1777,exec"},
            shm_size=mb * 1024 * 1024,
            mem_limit=limits.memory_bytes,
            memswap_limit=limits.memory_bytes,
            pids_limit=limits.processes + language.processes_floor + PHASE_OVERHEAD,
            nano_cpus=1_000_000_000,
            runtime=s.sandbox_docker_runtime or None,
        )
        # Docker's own masked paths (replaced, not extended, by this field) and ours.
        host_config["MaskedPaths"] = [*DOCKER_MASKED, *MASKED]
        # The engine goes on creating and starting if we are cancelled meanwhile:
        # shielded, so that the container is known and removed all the same.
        creating = asyncio.ensure_future(self.engine.call(
            api.create_container, language.image,
            # A root-owned idle init the sandbox uid cannot signal; bounded so that
            # a container whose worker died ends by itself.
            command=["/usr/bin/sleep", str(s.sandbox_docker_lifetime_s)],
            user="0:0", name=f"runstream-{self.scope}-{next(self._counter)}",
            hostname="runstream", working_dir="/box",
            network_disabled=True, host_config=host_config,
            labels={WORKER_LABEL: self.scope, HOST_LABEL: self.host,
                    "dev.runstream.created": datetime.now(UTC).isoformat()}))
        try:
            cid: str = (await asyncio.shield(creating))["Id"]
        except asyncio.CancelledError:
            await self._finish(self._remove_once_created(creating))
            raise
        self._live.add(cid)
        try:
            await self.engine.call(api.start, cid)
        except BaseException:  # the engine failed, or we were cancelled: no leftover
            await self._finish(self._remove(cid))
            raise
        return cid

    async def _remove_once_created(self, creating: asyncio.Future[dict[str, Any]]) -> None:
        with contextlib.suppress(SandboxError):
            await self._remove((await creating)["Id"])

    async def _remove(self, cid: str) -> None:
        try:
            await self.engine.call(self.engine.api.remove_container, cid, force=True)
        except SandboxError as e:
            if not isinstance(e.__cause__, docker.errors.NotFound):
                log.error("cannot remove container %s: %s", cid[:12], e)
        self._live.discard(cid)
        self._init_pids.pop(cid, None)


def docker_available(settings: Settings) -> str | None:
    """None if the engine answers and the CI images exist, else why not (tests, diagnostics)."""
    try:
        client = docker.DockerClient(base_url=settings.sandbox_docker_url, timeout=5)
    except docker.errors.DockerException as e:
        return f"no Docker engine at {settings.sandbox_docker_url}: {e}"
    try:
        client.ping()
    except docker.errors.DockerException as e:
        return f"no Docker engine answers at {settings.sandbox_docker_url}: {e}"
    finally:
        client.close()
    return None
