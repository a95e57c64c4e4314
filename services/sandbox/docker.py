"""The Docker sandbox backend: one short-lived, hardened container per execution.

An execution's container is created at its first phase (so the first phase's
limits are the container's), from the language's image, with no network, a
read-only root, no capabilities, no-new-privileges, memory = memory+swap, a
pids limit, one CPU and size-capped tmpfs for /box, /tmp and /dev/shm. Its init
is a root-owned ``sleep`` bounded by ``sandbox_docker_lifetime_s``: a container
whose worker vanished kills itself. Each phase is a ``docker exec`` as the
sandbox uid (~70 ms against ~180 ms for starting a container), with rlimits and
an in-container ``timeout -s KILL`` backstop; the files travel in the first
exec's stdin as a tar (see :mod:`._docker_exec`). Between phases the previous
phase's stray processes are killed. Every container is labelled with the
worker's scope so that a worker starting on the same host removes the
containers of dead workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeVar

import docker
import docker.errors
from runstream.schemas.errors import SandboxError
from runstream.schemas.models import Limits, PhaseResult
from runstream.services.languages import Language
from runstream.services.sandbox._docker_phase import Phase
from runstream.services.sandbox._docker_pool import WarmPool
from runstream.services.sandbox._scope import alive, new_scope
from runstream.services.settings import Settings

log = logging.getLogger(__name__)

WORKER_LABEL = "dev.runstream.worker"
HOST_LABEL = "dev.runstream.host"
T = TypeVar("T")


class DockerWorkspace:
    """One execution's container (created lazily by its first phase)."""

    def __init__(self, sandbox: DockerSandbox, tar: bytes, language: Language) -> None:
        self._sandbox = sandbox
        self.language = language
        self.tar = tar
        self.container_id: str | None = None
        self.phase: Phase | None = None
        self._lock = asyncio.Lock()

    async def run(self, argv: Sequence[str], *, stdin: bytes, limits: Limits,
                  language: Language) -> PhaseResult:
        """Run ``argv`` in /box of the execution's container under ``limits``."""
        async with self._lock:  # phases of one execution are sequential by nature
            if self.phase is None:
                pooled = self._sandbox.pool_take(language)
                if pooled is None:
                    self.container_id = await self._sandbox._create(language, limits)
                    self.phase = Phase(self._sandbox, self.container_id, self.tar, limits)
                else:
                    self.container_id = pooled
                    self.phase = Phase(self._sandbox, pooled, self.tar,
                                       self._sandbox.settings.default_limits)
                await self.phase.attach()
            return await self.phase.run(argv, stdin, limits, language)


class DockerSandbox:
    """Sandbox backend on a Docker engine (the ``docker`` SDK), hardened containers."""

    name = "docker"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.scope = new_scope()
        self.host = socket.gethostname()
        # The SDK blocks; its calls, and the exec streams' readers and writers,
        # run on a pool of their own so that they never starve (nor are starved
        # by) the loop's default executor. Each running phase holds two threads.
        self.pool = ThreadPoolExecutor(max_workers=4 * settings.worker_concurrency + 8,
                                       thread_name_prefix="runstream-docker")
        self._client: docker.DockerClient | None = None
        self._counter = itertools.count()
        self._live: set[str] = set()
        self._cleanups: set[asyncio.Task[None]] = set()
        self._pool: WarmPool | None = None

    @property
    def api(self) -> docker.APIClient:
        if self._client is None:
            raise SandboxError("DockerSandbox.start() was not called")
        return self._client.api

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """A blocking SDK call on the pool, bounded; docker errors become SandboxError."""
        loop = asyncio.get_running_loop()
        try:
            return await asyncio.wait_for(
                loop.run_in_executor(self.pool, functools.partial(fn, *args, **kwargs)),
                self.settings.sandbox_docker_timeout_s + 5)
        except TimeoutError as e:
            raise SandboxError(f"the Docker engine did not answer {fn.__name__} in time") from e
        except docker.errors.ImageNotFound as e:
            raise SandboxError(
                f"a runtime image is missing ({e.explanation}); build it with "
                ".ci/build-images.sh or services/images/<language>.Dockerfile") from e
        except docker.errors.DockerException as e:
            raise SandboxError(f"docker {fn.__name__} failed: {e}") from e

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        """Check the engine answers; remove the containers of dead workers of this host."""
        s = self.settings
        try:
            self._client = docker.DockerClient(base_url=s.sandbox_docker_url,
                                               timeout=int(s.sandbox_docker_timeout_s))
        except docker.errors.DockerException as e:
            raise SandboxError(f"cannot reach the Docker engine at {s.sandbox_docker_url}: "
                               f"{e}") from e
        await self.call(self.api.ping)
        if s.sandbox_docker_pool > 0:
            self._pool = WarmPool(self._create, self._remove, s.sandbox_docker_pool,
                                  max_age_s=s.sandbox_docker_lifetime_s / 2)
        reaped = await self._reap()
        log.info("docker sandbox ready (engine %s, scope %s, reaped %d containers)",
                 s.sandbox_docker_url, self.scope, reaped)

    async def _reap(self) -> int:
        found = await self.call(self.api.containers, all=True,
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
        if self._client is not None:
            self._client.close()
            self._client = None
        self.pool.shutdown(wait=False, cancel_futures=True)

    async def settle(self) -> None:
        """Wait for background work: pending removals and warm-pool refills (benchmarks)."""
        if self._pool is not None:
            await self._pool.settle()
        if self._cleanups:
            await asyncio.gather(*list(self._cleanups), return_exceptions=True)

    # -- workspace -------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def workspace(self, execution_id: str, files: Sequence[tuple[str, bytes]],
                        language: Language) -> AsyncIterator[DockerWorkspace]:
        """The execution's container; removed (killed first) when the context exits."""
        from runstream.services.sandbox._docker_exec import files_tar

        s = self.settings
        ws = DockerWorkspace(self, files_tar(files, s.sandbox_uid, s.sandbox_gid),
                             language)
        try:
            yield ws
        finally:
            if ws.container_id is not None:
                if ws.phase is not None:
                    ws.phase.kill_now()  # nothing of it may outlive the context
                # Removal costs ~100 ms: finish it in the background.
                task = asyncio.create_task(self._remove(ws.container_id))
                self._cleanups.add(task)
                task.add_done_callback(self._cleanups.discard)
            if self._pool is not None:
                self._pool.fill(language)

    def pool_take(self, language: Language) -> str | None:
        """A pre-started container for ``language`` if the warm pool has one."""
        return self._pool.take(language) if self._pool is not None else None

    async def _create(self, language: Language, limits: Limits | None = None) -> str:
        s = self.settings
        limits = limits or s.default_limits
        api = self.api
        mb = s.sandbox_tmpfs_mb
        box = f"size={mb}m,uid={s.sandbox_uid},gid={s.sandbox_gid},mode=0700,exec"
        host_config = api.create_host_config(
            network_mode="none",
            read_only=True,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            init=True,  # reaps the orphans of setsid daemons
            tmpfs={"/box": box, "/tmp": f"size={mb}m,mode=1777,exec"},
            shm_size=mb * 1024 * 1024,
            mem_limit=limits.memory_bytes,
            memswap_limit=limits.memory_bytes,
            pids_limit=limits.processes + language.processes_floor + PHASE_OVERHEAD,
            nano_cpus=1_000_000_000,
            runtime=s.sandbox_docker_runtime or None,
        )
        created = await self.call(
            api.create_container, language.image,
            # A root-owned idle init the sandbox uid cannot signal; bounded so that
            # a container whose worker died ends by itself.
            command=["/usr/bin/sleep", str(s.sandbox_docker_lifetime_s)],
            user="0:0", name=f"runstream-{self.scope}-{next(self._counter)}",
            hostname="runstream", working_dir="/box",
            network_disabled=True, host_config=host_config,
            labels={WORKER_LABEL: self.scope, HOST_LABEL: self.host,
                    "dev.runstream.created": datetime.now(UTC).isoformat()})
        cid: str = created["Id"]
        self._live.add(cid)
        try:
            await self.call(api.start, cid)
        except SandboxError:
            await self._remove(cid)
            raise
        return cid

    async def _remove(self, cid: str) -> None:
        try:
            await self.call(self.api.remove_container, cid, force=True)
        except SandboxError as e:
            if not isinstance(e.__cause__, docker.errors.NotFound):
                log.error("cannot remove container %s: %s", cid[:12], e)
        self._live.discard(cid)


# The phase's sh and timeout count against the pids limit besides the program.
PHASE_OVERHEAD = 2


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
