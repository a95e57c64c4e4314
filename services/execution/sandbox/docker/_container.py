"""One execution's container as the worker drives it: its phases, limits, accounting, kill.

With the engine on this host, accounting and killing go through the
container's cgroup (see :mod:`._host`); otherwise through the API:
the stats endpoint for CPU and memory, ``State.OOMKilled`` for OOM kills and
a ``kill -9 -1`` exec as the sandbox uid for stray processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Sequence
from typing import Any

from runstream.schemas.models import Limits, PhaseResult
from runstream.services.errors import SandboxError
from runstream.services.execution.languages import Language
from runstream.services.execution.sandbox.base import LiveInput, PhaseOutput
from runstream.services.execution.sandbox.cgroup import RunCgroup
from runstream.services.execution.sandbox.docker import _host as host
from runstream.services.execution.sandbox.docker._engine import DockerEngine
from runstream.services.execution.sandbox.docker._exec import (
    PHASE_OVERHEAD,
    ExecStream,
    phase_argv,
    raw_socket,
    signal_script,
)
from runstream.services.execution.sandbox.environment import program_env
from runstream.services.execution.sandbox.supervision import (
    API_POLL_S,
    CPU_POLL_S,
    KILL_WAIT_S,
    feed_live,
    phase_result,
    watch,
)

log = logging.getLogger(__name__)

DRAIN_TIMEOUT_S = 3.0
SOCKET_MARGIN_S = 10.0
KILL_RETRY_S = 0.01  # exiting tasks have no event on cgroup v1
SIGNAL_RETRY_S = 0.05  # a signal for a program not started yet looks for it again


class ExecutionContainer:
    """Runs the phases of one execution in its container, one after the other."""

    def __init__(self, engine: DockerEngine, cid: str, tar: bytes, limits: Limits) -> None:
        self.engine = engine
        self.cid = cid
        self.tar: bytes | None = tar
        self.limits = limits
        s = engine.settings
        self.user = f"{s.sandbox_uid}:{s.sandbox_gid}"
        self.cg: RunCgroup | None = None
        self.dirty = False  # a finished phase may have left daemons behind
        self.oom_flag = False  # the API's sticky State.OOMKilled, when no cgroup is visible

    async def attach(self, init_pid: int | None = None) -> None:
        """Find the container's cgroup; ``init_pid`` (known from a pool) saves asking the engine."""
        if init_pid is None:
            info = await self.engine.call(self.engine.api.inspect_container, self.cid)
            init_pid = int(info["State"].get("Pid") or 0)
        self.cg = host.container_cgroup(init_pid, self.cid)
        if self.cg is None:
            log.debug("container %s: cgroup not visible, accounting through the API",
                      self.cid[:12])

    # -- accounting --------------------------------------------------------------

    async def _stats(self) -> tuple[int, int]:
        """(CPU ns, peak memory bytes) from the stats API."""
        st: dict[str, Any] = await self.engine.call(self.engine.api.stats, self.cid,
                                                    stream=False, one_shot=True)
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
            deadline = time.monotonic() + KILL_WAIT_S
            while not await self.engine.in_thread(host.kill_phase, self.cg):
                if time.monotonic() > deadline:
                    raise SandboxError("processes of a phase survived SIGKILL")
                await asyncio.sleep(KILL_RETRY_S)
            return
        api = self.engine.api
        exec_id = (await self.engine.call(api.exec_create, self.cid,
                                          ["/bin/sh", "-c", "kill -9 -1"], user=self.user))["Id"]
        await self.engine.call(api.exec_start, exec_id)

    async def _set_limits(self, limits: Limits, language: Language) -> None:
        pids = limits.processes + language.processes_floor + PHASE_OVERHEAD
        if self.cg is not None and host.set_limits(self.cg, limits.memory_bytes, pids):
            self.limits = limits
            return
        # Through the engine: memory only (the SDK's update has no pids limit).
        await self.engine.call(self.engine.api.update_container, self.cid,
                               mem_limit=limits.memory_bytes, memswap_limit=limits.memory_bytes)
        self.limits = limits

    # -- one phase ---------------------------------------------------------------

    async def _prepare(self, limits: Limits, language: Language) -> tuple[int, int]:
        """Clear what the last phase left, apply ``limits``: (CPU ns, OOM kills) so far."""
        if self.dirty:
            await self.kill_strays()
        if limits != self.limits:
            await self._set_limits(limits, language)
        if self.cg is not None:
            host.reset_peak(self.cg)
            return self.cg.cpu_ns(), self.cg.oom_kills()
        return (await self._stats())[0], 0

    async def signal_program(self, number: int) -> bool:
        """Signal every process of the running phase's program (not its wrapper).

        False when the program has no process yet (its files are still unpacked).
        ``SIGKILL`` goes through :meth:`kill_strays`, which needs no new process in
        the container: it works on a fork bomb too.
        """
        if number == signal.SIGKILL:
            await self.kill_strays()
            return True
        api = self.engine.api
        exec_id = (await self.engine.call(api.exec_create, self.cid, signal_script(number),
                                          user=self.user))["Id"]
        await self.engine.call(api.exec_start, exec_id)
        info = await self.engine.call(api.exec_inspect, exec_id)
        return bool(info.get("ExitCode") == 0)

    async def _feed(self, stream: ExecStream, tar: bytes, live: LiveInput,
                    reader: asyncio.Future[None]) -> None:
        """The files, then the live stdin as it arrives (until cancelled)."""
        await self.engine.in_thread(stream.send, tar)

        async def write(data: bytes) -> None:
            await self.engine.in_thread(stream.send, data)

        async def end() -> None:
            await self.engine.in_thread(stream.end_input)

        async def send_signal(number: int) -> None:
            # A signal that comes before the program runs (a client that hung up at
            # once) waits for it; the phase's end (its output closed) ends the wait.
            while not reader.done():
                if await self.signal_program(number) and number != signal.SIGKILL:
                    return
                await asyncio.wait({reader}, timeout=SIGNAL_RETRY_S)  # another process

        await feed_live(live, write=write, end=end, send_signal=send_signal)

    async def run(self, argv: Sequence[str], stdin: bytes | LiveInput, limits: Limits,
                  language: Language, output: PhaseOutput | None = None) -> PhaseResult:
        engine, api = self.engine, self.engine.api
        cpu0, oom0 = await self._prepare(limits, language)
        tar, self.tar = self.tar or b"", None
        exec_id: str = (await engine.call(
            api.exec_create, self.cid, phase_argv(argv, limits, len(tar)), stdin=True,
            user=self.user, environment=program_env(language), workdir="/box"))["Id"]
        loop = asyncio.get_running_loop()
        overflow = asyncio.Event()
        sock = raw_socket(await engine.call(api.exec_start, exec_id, socket=True))
        started = time.monotonic()
        self.dirty = True

        def on_overflow() -> None:  # called from the stream's reader thread
            loop.call_soon_threadsafe(overflow.set)

        def on_data(name: str, data: bytes) -> None:  # from the reader thread, too
            assert output is not None
            loop.call_soon_threadsafe(output, name, data)

        stream = ExecStream(sock, limits.output_bytes, on_overflow,
                            timeout_s=limits.wall_ms / 1000 + SOCKET_MARGIN_S,
                            on_data=on_data if output is not None else None)
        reader = engine.in_thread(stream.read)
        writer: asyncio.Future[None] = (
            engine.in_thread(stream.feed, tar + stdin) if isinstance(stdin, bytes)
            else asyncio.ensure_future(self._feed(stream, tar, stdin, reader)))
        exit_code: int | None = None

        async def cpu_used_ns() -> int:
            return await self._cpu_ns() - cpu0

        async def ended() -> bool:
            nonlocal exit_code
            if not reader.done():
                return False
            # The output ends when the program closes it, not when it exits:
            # ask the engine whether the exec still runs.
            info = await engine.call(api.exec_inspect, exec_id)
            if info.get("Running"):
                return False
            exit_code = int(info.get("ExitCode") or 0)
            return True

        try:
            time_limit = await watch(
                deadline=started + limits.wall_ms / 1000, cpu_cap_ns=limits.cpu_ms * 1_000_000,
                cpu_used_ns=cpu_used_ns, ended=ended, overflow=overflow, wake=(reader,),
                poll_s=CPU_POLL_S if self.cg is not None else API_POLL_S)
            wall_ms = int((time.monotonic() - started) * 1000)
            if time_limit or overflow.is_set():
                await self.kill_strays()
                exit_code = None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(reader), DRAIN_TIMEOUT_S)
            if exit_code is None and not (time_limit or overflow.is_set()):
                raise SandboxError("a phase ended without an exit status")
        finally:
            if not isinstance(stdin, bytes):
                writer.cancel()  # a live stdin ends with the phase
            stream.close()
            await asyncio.wait({writer}, timeout=DRAIN_TIMEOUT_S)
            if writer.done() and not writer.cancelled():
                writer.exception()  # retrieved: the program may close its stdin early
        if tar and not time_limit and exit_code is not None and exit_code != 0 \
                and not stream.stdout.buffer \
                and bytes(stream.stderr.buffer[:200]).lstrip().startswith(b"tar: "):
            # GNU tar's own complaint; not a program's words that merely hold "tar"
            # (a V8 out-of-memory report says "walltime since start of marking").
            raise SandboxError(f"cannot unpack the files: {bytes(stream.stderr.buffer[:500])!r}")
        return await self._result(stream, exit_code, time_limit, overflow.is_set(), wall_ms,
                                  cpu0, oom0)

    async def _result(self, stream: ExecStream, exit_code: int | None, time_limit: str | None,
                      overflow: bool, wall_ms: int, cpu0: int, oom0: int) -> PhaseResult:
        if self.cg is not None:
            cpu_ns, peak = self.cg.cpu_ns(), self.cg.memory_peak_bytes()
            oom = self.cg.oom_kills() > oom0
        else:
            cpu_ns, peak = await self._stats()
            info = await self.engine.call(self.engine.api.inspect_container, self.cid)
            flag = bool(info["State"].get("OOMKilled"))
            oom, self.oom_flag = flag and not self.oom_flag, flag
        # An exec we killed has no exit status of its own: report the kill.
        status = 128 + signal.SIGKILL if exit_code is None else exit_code
        return phase_result(stream.stdout, stream.stderr, status=status, wall_ms=wall_ms,
                            cpu_ns=max(0, cpu_ns - cpu0), peak_bytes=peak,
                            time_limit=time_limit, oom_killed=oom, overflow=overflow)
