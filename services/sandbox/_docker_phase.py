"""The phases of one execution's container: limits, exec, accounting, kill.

With the engine on this host, accounting and killing go through the
container's cgroup (see :mod:`._docker_host`); otherwise through the API:
the stats endpoint for CPU and memory, ``State.OOMKilled`` for OOM kills and
a ``kill -9 -1`` exec as the sandbox uid for stray processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from runstream.schemas.errors import SandboxError
from runstream.schemas.models import Limits, PhaseResult
from runstream.services.languages import Language
from runstream.services.sandbox import _docker_host as host
from runstream.services.sandbox._cgroup import RunCgroup
from runstream.services.sandbox._docker_exec import (
    ExecStream,
    phase_argv,
    phase_env,
    raw_socket,
)
from runstream.services.sandbox._run import _exit_status

if TYPE_CHECKING:
    from runstream.services.sandbox.docker import DockerSandbox

log = logging.getLogger(__name__)

CPU_POLL_S = 0.05  # with the host's cgroup files: microseconds per read
API_POLL_S = 0.25  # with the stats API: tens of milliseconds per read
DRAIN_TIMEOUT_S = 3.0
KILL_WAIT_S = 5.0
SOCKET_MARGIN_S = 10.0


class Phase:
    """Runs the phases of one container in turn."""

    def __init__(self, sandbox: DockerSandbox, cid: str, tar: bytes, limits: Limits) -> None:
        self.sb = sandbox
        self.cid = cid
        self.tar: bytes | None = tar
        self.limits = limits
        self.cg: RunCgroup | None = None
        self.dirty = False  # a finished phase may have left daemons behind
        self.oom_flag = False  # the API's sticky State.OOMKilled, when no cgroup is visible

    async def attach(self) -> None:
        info = await self.sb.call(self.sb.api.inspect_container, self.cid)
        self.cg = host.container_cgroup(int(info["State"].get("Pid") or 0))
        if self.cg is None:
            log.debug("container %s: cgroup not visible, accounting through the API",
                      self.cid[:12])

    # -- accounting --------------------------------------------------------------

    async def _stats(self) -> tuple[int, int]:
        """(CPU ns, peak memory bytes) from the stats API."""
        st: dict[str, Any] = await self.sb.call(self.sb.api.stats, self.cid, stream=False,
                                                one_shot=True)
        cpu = int(st.get("cpu_stats", {}).get("cpu_usage", {}).get("total_usage", 0))
        mem = st.get("memory_stats", {})
        return cpu, int(mem.get("max_usage") or mem.get("usage") or 0)

    async def _cpu_ns(self) -> int:
        if self.cg is not None:
            return self.cg.cpu_ns()
        return (await self._stats())[0]

    # -- killing -----------------------------------------------------------------

    def kill_now(self) -> None:
        """SIGKILL the phase's processes through the cgroup, if visible (never blocks long)."""
        if self.cg is not None:
            host.kill_phase(self.cg)

    async def kill_strays(self) -> None:
        """Kill whatever earlier phases left; the container's init stays."""
        if self.cg is not None:
            loop = asyncio.get_running_loop()
            deadline = time.monotonic() + KILL_WAIT_S
            while not await loop.run_in_executor(self.sb.pool, host.kill_phase, self.cg):
                if time.monotonic() > deadline:
                    raise SandboxError("processes of a phase survived SIGKILL")
                await asyncio.sleep(0.01)  # exiting tasks have no event on cgroup v1
            return
        s = self.sb.settings
        exec_id = (await self.sb.call(
            self.sb.api.exec_create, self.cid, ["/bin/sh", "-c", "kill -9 -1"],
            user=f"{s.sandbox_uid}:{s.sandbox_gid}"))["Id"]
        await self.sb.call(self.sb.api.exec_start, exec_id)

    async def _set_limits(self, limits: Limits, language: Language) -> None:
        from runstream.services.sandbox.docker import PHASE_OVERHEAD

        pids = limits.processes + language.processes_floor + PHASE_OVERHEAD
        if self.cg is not None and host.set_limits(self.cg, limits.memory_bytes, pids):
            self.limits = limits
            return
        # Through the engine: memory only (the SDK's update has no pids limit).
        await self.sb.call(self.sb.api.update_container, self.cid,
                           mem_limit=limits.memory_bytes, memswap_limit=limits.memory_bytes)
        self.limits = limits

    # -- one phase ---------------------------------------------------------------

    async def run(self, argv: Sequence[str], stdin: bytes, limits: Limits,
                  language: Language) -> PhaseResult:
        sb, s = self.sb, self.sb.settings
        if self.dirty:
            await self.kill_strays()
        if limits != self.limits:
            await self._set_limits(limits, language)
        if self.cg is not None:
            host.reset_peak(self.cg)
            cpu0, oom0 = self.cg.cpu_ns(), self.cg.oom_kills()
        else:
            cpu0, oom0 = (await self._stats())[0], 0
        tar, self.tar = self.tar or b"", None
        exec_id: str = (await sb.call(
            sb.api.exec_create, self.cid, phase_argv(argv, limits, len(tar)), stdin=True,
            user=f"{s.sandbox_uid}:{s.sandbox_gid}", environment=phase_env(language),
            workdir="/box"))["Id"]
        loop = asyncio.get_running_loop()
        overflow = asyncio.Event()

        def on_overflow() -> None:
            loop.call_soon_threadsafe(overflow.set)

        sock = raw_socket(await sb.call(sb.api.exec_start, exec_id, socket=True))
        started = time.monotonic()
        self.dirty = True
        stream = ExecStream(sock, limits.output_bytes, on_overflow,
                            timeout_s=limits.wall_ms / 1000 + SOCKET_MARGIN_S)
        reader = loop.run_in_executor(sb.pool, stream.read)
        writer = loop.run_in_executor(sb.pool, stream.feed, tar + stdin)
        try:
            time_limit, exit_code = await self._watch(exec_id, reader, overflow, limits,
                                                      started, cpu0)
            wall_ms = int((time.monotonic() - started) * 1000)
            if time_limit or overflow.is_set():
                await self.kill_strays()
                exit_code = None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(reader), DRAIN_TIMEOUT_S)
            if exit_code is None and not (time_limit or overflow.is_set()):
                raise SandboxError("a phase ended without an exit status")
        finally:
            stream.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(writer), DRAIN_TIMEOUT_S)
        if tar and not time_limit and exit_code is not None and exit_code != 0 \
                and not stream.out and b"tar" in stream.err[:200]:
            raise SandboxError(f"cannot unpack the files: {bytes(stream.err[:500])!r}")
        return await self._result(stream, exit_code, time_limit, overflow.is_set(), wall_ms,
                                  cpu0, oom0)

    async def _watch(self, exec_id: str, reader: asyncio.Future[None],
                     overflow: asyncio.Event, limits: Limits, started: float,
                     cpu0: int) -> tuple[str | None, int | None]:
        """Wait for the exec's end or a limit: (time limit hit, exit code if it ended)."""
        sb = self.sb
        deadline = started + limits.wall_ms / 1000
        cap_ns = limits.cpu_ms * 1_000_000
        poll = CPU_POLL_S if self.cg is not None else API_POLL_S
        overflowed = asyncio.ensure_future(overflow.wait())
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return "wall", None
                waits: set[asyncio.Future[Any]] = {overflowed}
                if not reader.done():
                    waits.add(reader)
                await asyncio.wait(waits, timeout=min(poll, remaining),
                                   return_when=asyncio.FIRST_COMPLETED)
                if overflow.is_set():
                    return None, None
                if await self._cpu_ns() - cpu0 > cap_ns:
                    return "cpu", None
                if reader.done():
                    # The output ends when the program closes it, not when it
                    # exits: ask the engine whether the exec still runs.
                    info = await sb.call(sb.api.exec_inspect, exec_id)
                    if not info.get("Running"):
                        return None, int(info.get("ExitCode") or 0)
        finally:
            overflowed.cancel()

    async def _result(self, stream: ExecStream, exit_code: int | None, time_limit: str | None,
                      overflow: bool, wall_ms: int, cpu0: int, oom0: int) -> PhaseResult:
        if self.cg is not None:
            cpu_ns, peak = self.cg.cpu_ns(), self.cg.memory_peak_bytes()
            oom = self.cg.oom_kills() > oom0
        else:
            cpu_ns, peak = await self._stats()
            info = await self.sb.call(self.sb.api.inspect_container, self.cid)
            flag = bool(info["State"].get("OOMKilled"))
            oom, self.oom_flag = flag and not self.oom_flag, flag
        result = PhaseResult(
            stdout=bytes(stream.out), stderr=bytes(stream.err), wall_ms=wall_ms,
            cpu_ms=max(0, cpu_ns - cpu0) // 1_000_000, memory_kb=peak // 1024,
            stdout_truncated=stream.out_truncated, stderr_truncated=stream.err_truncated,
            time_limit=time_limit, oom_killed=oom, output_limit_hit=overflow)
        code = 137 if exit_code is None else exit_code
        _exit_status(result, code, {}, killed=bool(time_limit) or overflow)
        return result
