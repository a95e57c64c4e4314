"""Supervising one bwrap phase: descriptors, spawn, limits, kill, result.

Everything is event-driven on the worker's loop: the exit is a pidfd, the
pipes are asyncio pipe transports, and the only timer is the CPU poll (see
:mod:`.supervision`). Whatever ends the phase, its limit, its own exit, a
failure of the sandbox or the caller cancelling it, every process of its
cgroup is killed and gone before :func:`supervise` returns or raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

import orjson
from runstream.schemas.models import Limits, PhaseResult
from runstream.services.errors import SandboxError
from runstream.services.execution.sandbox.base import LiveInput, PhaseOutput
from runstream.services.execution.sandbox.bwrap._mount import write_all
from runstream.services.execution.sandbox.cgroup import RunCgroup
from runstream.services.execution.sandbox.supervision import (
    KILL_WAIT_S,
    CappedOutput,
    feed_live,
    phase_result,
    watch,
)

log = logging.getLogger(__name__)

DRAIN_TIMEOUT_S = 2.0
STATUS_CAP = 4096
#: How often a signal for a program that is not started yet looks for it again.
SIGNAL_RETRY_S = 0.01


class _Reader(asyncio.Protocol):
    """Reads one pipe into a :class:`CappedOutput`; ``closed`` resolves at its end."""

    def __init__(self, sink: CappedOutput) -> None:
        self.sink = sink
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self.sink.keep(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def eof_received(self) -> bool | None:
        return None


class _Feeder(asyncio.Protocol):
    """stdin: the program may exit or close it without reading (broken pipe is fine).

    For a live stdin, :meth:`drained` waits while the pipe's buffer is over its
    high-water mark: what the program has not read is not piled up here.
    """

    def __init__(self) -> None:
        self.closed = False
        self._resumed: asyncio.Future[None] | None = None

    def pause_writing(self) -> None:
        self._resumed = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._resumed is not None and not self._resumed.done():
            self._resumed.set_result(None)
        self._resumed = None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.resume_writing()

    async def drained(self) -> None:
        if self._resumed is not None and not self.closed:
            await asyncio.shield(self._resumed)


@dataclass
class Launch:
    """What :func:`supervise` needs to start and watch one run."""

    stdin: bytes | LiveInput
    limits: Limits
    cgroup: RunCgroup
    seccomp: bytes
    # (seccomp fd, status fd, options fd) -> (the launcher's argv, bwrap's --args data)
    build_argv: Callable[[int, int, int], tuple[Sequence[str], bytes]]
    output: PhaseOutput | None = None  # told the output as it is read
    inherit: tuple[int, ...] = ()  # more descriptors the launcher needs (its memfd)


@dataclass
class _Running:
    """One started launcher and what the loop watches of it."""

    proc: subprocess.Popen[bytes]
    status_pipe: io.FileIO  # bwrap's --json-status-fd, read end
    started: float
    exited: asyncio.Future[None]
    pidfd: int = -1
    stdout: CappedOutput = field(default_factory=lambda: CappedOutput(0))
    stderr: CappedOutput = field(default_factory=lambda: CappedOutput(0))
    status: CappedOutput = field(default_factory=lambda: CappedOutput(STATUS_CAP))
    readers: list[_Reader] = field(default_factory=list)
    transports: list[asyncio.BaseTransport] = field(default_factory=list)
    live: asyncio.Task[None] | None = None  # feeding a live stdin


def _memfd(name: str) -> int:
    return os.memfd_create(name, os.MFD_CLOEXEC)


def _fill(fd: int, data: bytes) -> None:
    """Write ``data`` to a fresh memfd and rewind it for its reader."""
    write_all(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)


def _spawn(launch: Launch) -> tuple[subprocess.Popen[bytes], int]:
    """Start the launcher with the filter and bwrap's options in memfds and bwrap's status
    pipe: (proc, status read end). bwrap reads and closes both memfds before the program
    starts."""
    seccomp_fd = _memfd("runstream-seccomp")
    options_fd = _memfd("runstream-bwrap-args")
    status_r, status_w = os.pipe2(os.O_CLOEXEC)
    try:
        _fill(seccomp_fd, launch.seccomp)
        argv, options = launch.build_argv(seccomp_fd, status_w, options_fd)
        _fill(options_fd, options)
        # Popen (vfork + exec, ~1 ms) rather than asyncio subprocesses: the exit
        # is watched with a pidfd, no child-watcher thread per run.
        proc = subprocess.Popen(
            argv, env={}, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(seccomp_fd, status_w, options_fd, *launch.inherit),
            close_fds=True, start_new_session=True, cwd="/",
        )
    except (OSError, ValueError) as e:  # ValueError: a NUL in argv (intake refuses it)
        os.close(status_r)
        raise SandboxError(f"cannot start the sandbox launcher: {e}") from e
    finally:
        os.close(seccomp_fd)
        os.close(options_fd)
        os.close(status_w)
    return proc, status_r


async def _read_pipe(pipe: object, sink: CappedOutput) -> tuple[asyncio.BaseTransport, _Reader]:
    reader = _Reader(sink)
    transport, _ = await asyncio.get_running_loop().connect_read_pipe(lambda: reader, pipe)
    return transport, reader


async def _connect(run: _Running, launch: Launch, on_overflow: Callable[[], None]) -> None:
    """Read stdout, stderr and the status pipe on the loop; write stdin, then EOF."""
    loop = asyncio.get_running_loop()
    proc = run.proc
    assert proc.stdout and proc.stderr and proc.stdin
    cap, out = launch.limits.output_bytes, launch.output
    run.stdout, run.stderr = (
        CappedOutput(cap, on_overflow, partial(out, name) if out is not None else None)
        for name in ("stdout", "stderr"))
    for sink, pipe in ((run.stdout, proc.stdout), (run.stderr, proc.stderr),
                       (run.status, run.status_pipe)):
        transport, reader = await _read_pipe(pipe, sink)
        run.transports.append(transport)
        run.readers.append(reader)
    feeder = _Feeder()
    stdin, _ = await loop.connect_write_pipe(lambda: feeder, proc.stdin)
    run.transports.append(stdin)
    if not isinstance(launch.stdin, bytes):
        run.live = asyncio.create_task(
            _feed(launch.stdin, stdin, feeder, launch.cgroup, run.exited),
            name="bwrap-live-stdin")
        return
    if launch.stdin:
        stdin.write(launch.stdin)
    stdin.close()  # sends EOF once the buffer is written (or drops it on EPIPE)


async def _feed(live: LiveInput, stdin: asyncio.WriteTransport, feeder: _Feeder,
                cg: RunCgroup, exited: asyncio.Future[None]) -> None:
    async def write(data: bytes) -> None:
        if not feeder.closed and not stdin.is_closing():
            stdin.write(data)
            await feeder.drained()

    async def end() -> None:
        stdin.close()

    async def send_signal(number: int) -> None:
        # A signal that comes while bwrap still sets the sandbox up (a client that hung
        # up at once) waits for the program: sent to nobody, it would be lost. The
        # phase's end cancels the wait.
        while not signal_program(cg, number) and not exited.done():
            await asyncio.wait({exited}, timeout=SIGNAL_RETRY_S)  # a poll: another process

    await feed_live(live, write=write, end=end, send_signal=send_signal)


def program_pids(cg: RunCgroup) -> list[int]:
    """The processes of the program in a run's cgroup: not bwrap's own two.

    The program and its descendants live in the run's pid namespace with a pid of
    2 or more there (1 is bwrap's reaper); bwrap's outer process is not in it.
    """
    found = []
    for pid in cg.pids():
        try:
            with open(f"/proc/{pid}/status", encoding="utf-8") as f:
                ns = next((line.split()[1:] for line in f if line.startswith("NSpid:")), [])
        except OSError:
            continue  # gone meanwhile
        if len(ns) >= 2 and ns[-1].isdigit() and int(ns[-1]) >= 2:
            found.append(pid)
    return found


def signal_program(cg: RunCgroup, number: int) -> bool:
    """Send signal ``number`` to every process of the program (see :func:`program_pids`).

    False when the program has no process yet (or any more).
    """
    sent = False
    for pid in program_pids(cg):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, number)
            sent = True
    return sent


async def _kill(run: _Running, cg: RunCgroup) -> int:
    """Kill every process of the run, wait until none is left; the launcher's exit status."""
    cg.kill()
    if not run.exited.done():
        try:
            await asyncio.wait_for(asyncio.shield(run.exited), KILL_WAIT_S)
        except TimeoutError:
            run.proc.kill()
            raise SandboxError("the sandbox did not exit after being killed") from None
    returncode = run.proc.wait(timeout=1)
    if not await cg.wait_empty(KILL_WAIT_S):
        raise SandboxError("processes of the run survived SIGKILL")
    return returncode


def _close(run: _Running) -> None:
    """Release the run's descriptors; the launcher is dead (or killed here) afterwards."""
    loop = asyncio.get_running_loop()
    if run.live is not None:
        run.live.cancel()
    if run.pidfd >= 0:
        loop.remove_reader(run.pidfd)
        os.close(run.pidfd)
    for t in run.transports:
        t.close()
    run.status_pipe.close()  # in case it never reached a transport (idempotent)
    if run.proc.returncode is None:
        run.proc.kill()
        run.proc.wait(timeout=5)


def _status(raw: bytes) -> dict[str, int]:
    """Merge bwrap's --json-status-fd documents (one JSON object per line)."""
    merged: dict[str, int] = {}
    for line in raw.splitlines():
        with contextlib.suppress(orjson.JSONDecodeError):
            doc = orjson.loads(line)
            if isinstance(doc, dict):
                merged.update({k: v for k, v in doc.items() if isinstance(v, int)})
    return merged


def _result(run: _Running, cg: RunCgroup, returncode: int, time_limit: str | None,
            overflow: bool, wall_ms: int) -> PhaseResult:
    status = _status(run.status.data())
    if "child-pid" not in status and time_limit is None and not overflow:
        raise SandboxError(
            f"the sandbox failed to start (launcher exit {returncode}): "
            f"{run.stderr.data()[-2000:].decode(errors='replace').strip()}")
    # bwrap reports its program's exit in the status; its own death by a signal
    # (negative) is the launcher's.
    code = returncode if returncode < 0 else status.get("exit-code", returncode)
    return phase_result(run.stdout, run.stderr, status=code, wall_ms=wall_ms,
                        cpu_ns=cg.cpu_ns(), peak_bytes=cg.memory_peak_bytes(),
                        time_limit=time_limit, oom_killed=cg.oom_kills() > 0, overflow=overflow)


async def supervise(launch: Launch) -> PhaseResult:
    """Run, enforce the limits, kill the whole tree, and report what happened."""
    loop = asyncio.get_running_loop()
    limits, cg = launch.limits, launch.cgroup
    overflow = asyncio.Event()
    started = time.monotonic()
    proc, status_r = _spawn(launch)
    run = _Running(proc, io.FileIO(status_r, "rb"), started, loop.create_future())

    def on_exit() -> None:
        if not run.exited.done():
            run.exited.set_result(None)

    try:
        run.pidfd = os.pidfd_open(proc.pid)
        loop.add_reader(run.pidfd, on_exit)
        await _connect(run, launch, overflow.set)

        async def cpu_used_ns() -> int:
            return cg.cpu_ns()

        async def ended() -> bool:
            return run.exited.done()

        time_limit = await watch(
            deadline=run.started + limits.wall_ms / 1000, cpu_cap_ns=limits.cpu_ms * 1_000_000,
            cpu_used_ns=cpu_used_ns, ended=ended, overflow=overflow, wake=(run.exited,))
        wall_ms = int((time.monotonic() - run.started) * 1000)
    except BaseException:
        # Cancelled by the caller, or the sandbox failed: nothing of the run may outlive it.
        with contextlib.suppress(SandboxError):
            await _kill(run, cg)
        _close(run)
        raise
    try:
        # Whatever ended the run, nothing of it may outlive it (daemons, setsid).
        returncode = await _kill(run, cg)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(r.closed for r in run.readers)),
                                   DRAIN_TIMEOUT_S)
    finally:
        _close(run)
    return _result(run, cg, returncode, time_limit, overflow.is_set(), wall_ms)
