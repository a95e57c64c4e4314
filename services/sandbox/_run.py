"""Supervising one sandboxed process tree: pipes, limits, kill, accounting.

Everything is event-driven on the worker's loop: the exit is a pidfd, the
pipes are asyncio pipe transports, and the only timer is the CPU poll (the
kernel has no "CPU time exceeded" event for a cgroup).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import orjson
from runstream.schemas.errors import SandboxError
from runstream.schemas.models import Limits, PhaseResult
from runstream.services.sandbox._cgroup import RunCgroup

log = logging.getLogger(__name__)

CPU_POLL_S = 0.05
DRAIN_TIMEOUT_S = 2.0
EXIT_AFTER_KILL_S = 5.0
STATUS_CAP = 4096


class _Collector(asyncio.Protocol):
    """Keeps the first ``cap`` bytes of a pipe; calls ``on_overflow`` once beyond."""

    def __init__(self, cap: int, on_overflow: Callable[[], None] | None) -> None:
        self.cap = cap
        self.chunks: list[bytes] = []
        self.size = 0
        self.truncated = False
        self.on_overflow = on_overflow
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        room = self.cap - self.size
        if room > 0:
            self.chunks.append(data[:room])
            self.size += min(room, len(data))
        if len(data) > room and not self.truncated:
            self.truncated = True
            if self.on_overflow is not None:
                self.on_overflow()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def eof_received(self) -> bool | None:
        return None

    def data(self) -> bytes:
        return b"".join(self.chunks)


class _Feeder(asyncio.Protocol):
    """stdin: the program may exit or close it without reading (broken pipe is fine)."""

    def connection_lost(self, exc: Exception | None) -> None:
        pass


@dataclass
class Launch:
    """What :func:`supervise` needs to start and watch one run."""

    stdin: bytes
    limits: Limits
    cgroup: RunCgroup
    seccomp: bytes
    build_argv: Callable[[int, int], Sequence[str]]  # (seccomp fd, status fd) -> argv


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"SIG{number}"


async def supervise(launch: Launch) -> PhaseResult:
    """Run, enforce the limits, kill the whole tree, and report what happened."""
    loop = asyncio.get_running_loop()
    limits, cg = launch.limits, launch.cgroup
    overflow = loop.create_future()

    def on_overflow() -> None:
        if not overflow.done():
            overflow.set_result(None)

    seccomp_fd = os.memfd_create("runstream-seccomp", os.MFD_CLOEXEC)
    status_r, status_w = os.pipe2(os.O_CLOEXEC)
    try:
        os.write(seccomp_fd, launch.seccomp)
        os.lseek(seccomp_fd, 0, os.SEEK_SET)
        argv = launch.build_argv(seccomp_fd, status_w)
        started = time.monotonic()
        try:
            # Popen (vfork + exec, ~1 ms) rather than asyncio subprocesses: the
            # exit is watched with a pidfd below, no child-watcher thread per run.
            proc = subprocess.Popen(  # noqa: ASYNC220
                argv, env={}, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, pass_fds=(seccomp_fd, status_w), close_fds=True,
                start_new_session=True, cwd="/",
            )
        except OSError as e:
            raise SandboxError(f"cannot start the sandbox launcher: {e}") from e
    finally:
        os.close(seccomp_fd)
        os.close(status_w)
    pidfd = os.pidfd_open(proc.pid)
    exited = loop.create_future()

    def on_exit() -> None:
        if not exited.done():
            exited.set_result(None)

    loop.add_reader(pidfd, on_exit)
    assert proc.stdout and proc.stderr and proc.stdin
    transports: list[asyncio.BaseTransport] = []
    try:
        out_t, out = await loop.connect_read_pipe(
            lambda: _Collector(limits.output_bytes, on_overflow), proc.stdout)
        err_t, err = await loop.connect_read_pipe(
            lambda: _Collector(limits.output_bytes, on_overflow), proc.stderr)
        st_t, st = await loop.connect_read_pipe(
            lambda: _Collector(STATUS_CAP, None), os.fdopen(status_r, "rb", buffering=0))
        in_t, _ = await loop.connect_write_pipe(_Feeder, proc.stdin)
        transports += [out_t, err_t, st_t, in_t]
        if launch.stdin:
            in_t.write(launch.stdin)
        in_t.close()  # sends EOF once the buffer is written (or drops it on EPIPE)

        time_limit: str | None = None
        deadline = started + limits.wall_ms / 1000
        cpu_cap_ns = limits.cpu_ms * 1_000_000
        while not exited.done():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                time_limit = "wall"
                break
            await asyncio.wait((exited, overflow), timeout=min(CPU_POLL_S, remaining),
                               return_when=asyncio.FIRST_COMPLETED)
            if overflow.done():
                break
            if cg.cpu_ns() > cpu_cap_ns:
                time_limit = "cpu"
                break
        wall_ms = int((time.monotonic() - started) * 1000)
        # Whatever ended the run, nothing of it may outlive it (daemons, setsid).
        cg.kill()
        if not exited.done():
            try:
                await asyncio.wait_for(asyncio.shield(exited), EXIT_AFTER_KILL_S)
            except TimeoutError:
                proc.kill()
                raise SandboxError("the sandbox did not exit after being killed") from None
        returncode = proc.wait(timeout=1)
        if not await cg.wait_empty(EXIT_AFTER_KILL_S):
            raise SandboxError("processes of the run survived SIGKILL")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(out.closed, err.closed, st.closed), DRAIN_TIMEOUT_S)
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)
        for t in transports:
            t.close()
        if proc.returncode is None:
            proc.kill()
            proc.wait(timeout=5)

    status = _status(st.data())
    if "child-pid" not in status and time_limit is None and not overflow.done():
        raise SandboxError(
            f"the sandbox failed to start (launcher exit {returncode}): "
            f"{err.data()[-2000:].decode(errors='replace').strip()}")
    result = PhaseResult(
        stdout=out.data(), stderr=err.data(), wall_ms=wall_ms,
        cpu_ms=cg.cpu_ns() // 1_000_000, memory_kb=cg.memory_peak_bytes() // 1024,
        stdout_truncated=out.truncated, stderr_truncated=err.truncated,
        time_limit=time_limit, oom_killed=cg.oom_kills() > 0,
        output_limit_hit=overflow.done(),
    )
    _exit_status(result, returncode, status, killed=bool(time_limit) or overflow.done())
    return result


def _status(raw: bytes) -> dict[str, int]:
    """Merge bwrap's --json-status-fd documents (one JSON object per line)."""
    merged: dict[str, int] = {}
    for line in raw.splitlines():
        with contextlib.suppress(orjson.JSONDecodeError):
            doc = orjson.loads(line)
            if isinstance(doc, dict):
                merged.update({k: v for k, v in doc.items() if isinstance(v, int)})
    return merged


def _exit_status(result: PhaseResult, returncode: int, status: dict[str, int],
                 *, killed: bool) -> None:
    """Fill exit_code/signal.

    bwrap reports a program killed by signal N as exit status 128+N (it has no
    other channel), so above 128 the status is read as a signal; a program that
    really calls exit(137) is reported as SIGKILL. The runs we kill ourselves and
    the OOM kills are known exactly.
    """
    code = status.get("exit-code", returncode)
    if killed or result.oom_killed:
        result.signal = "SIGKILL"
        return
    if returncode < 0:  # bwrap itself died by a signal
        result.signal = _signal_name(-returncode)
    elif code > 128 and code - 128 < signal.NSIG:
        result.signal = _signal_name(code - 128)
    else:
        result.exit_code = code
