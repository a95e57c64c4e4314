"""Watching one sandboxed phase against its limits, and saying how it ended (both backends).

A backend starts the phase its own way, captures its output into two
:class:`CappedOutput`, and hands :func:`watch` the ways to ask whether it ended
and how much CPU it used. ``watch`` returns when the phase ended, went over its
output cap, or hit its wall or CPU limit; the backend then kills what is left
and builds the result with :func:`phase_result`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import signal
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from runstream.schemas.models import PhaseResult
from runstream.services.execution.sandbox.base import LiveInput

log = logging.getLogger(__name__)

# The kernel has no "CPU time exceeded" event for a cgroup: poll it. With the
# cgroup's files a read costs microseconds; through the Docker stats API tens of
# milliseconds, hence the slower API poll.
CPU_POLL_S = 0.05
API_POLL_S = 0.25
# How long the processes of a killed phase may take to be gone.
KILL_WAIT_S = 5.0
WALL = "wall"
CPU = "cpu"


#: Told each piece of output a phase keeps, as it arrives (live streaming). It must
#: not block; the backend calls it on the event loop's thread.
OutputSink = Callable[[bytes], None]


class CappedOutput:
    """The first ``cap`` bytes of one output stream; ``on_overflow`` runs once beyond.

    ``on_data``, if given, is told every piece that is kept (nothing past the
    cap); a sink that fails is logged and dropped, never the run.
    """

    def __init__(self, cap: int, on_overflow: Callable[[], None] | None = None,
                 on_data: OutputSink | None = None) -> None:
        self.cap = cap
        self.buffer = bytearray()
        self.truncated = False
        self.on_overflow = on_overflow
        self.on_data = on_data

    def keep(self, data: bytes) -> None:
        room = self.cap - len(self.buffer)
        if room > 0:
            kept = data[:room]
            self.buffer += kept
            if self.on_data is not None and kept:
                self._tell(kept)
        if len(data) > room and not self.truncated:
            self.truncated = True
            if self.on_overflow is not None:
                self.on_overflow()

    def _tell(self, kept: bytes) -> None:
        assert self.on_data is not None
        try:
            self.on_data(kept)
        except Exception:  # streaming is a courtesy; the run and its result come first
            log.exception("an output sink failed; live output of this phase stops")
            self.on_data = None

    def data(self) -> bytes:
        return bytes(self.buffer)


async def watch(*, deadline: float, cpu_cap_ns: int, cpu_used_ns: Callable[[], Awaitable[int]],
                ended: Callable[[], Awaitable[bool]], overflow: asyncio.Event,
                wake: Iterable[asyncio.Future[Any]] = (),
                poll_s: float = CPU_POLL_S) -> str | None:
    """Wait until the phase ends or a limit is hit: :data:`WALL`, :data:`CPU` or None.

    None means the phase ended by itself, or ``overflow`` is set (its output
    went over the cap). ``deadline`` is on the :func:`time.monotonic` clock;
    ``wake`` are futures whose completion is worth a look before the next poll
    (the exit, the end of the output).
    """
    overflowed = asyncio.ensure_future(overflow.wait())
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return WALL
            waits: set[asyncio.Future[Any]] = {f for f in wake if not f.done()}
            waits.add(overflowed)
            await asyncio.wait(waits, timeout=min(poll_s, remaining),
                               return_when=asyncio.FIRST_COMPLETED)
            if overflow.is_set():
                return None
            if await cpu_used_ns() > cpu_cap_ns:
                return CPU
            if await ended():
                return None
    finally:
        overflowed.cancel()


#: Live stdin a phase holds that its program has not read yet; more is dropped.
MAX_PENDING_INPUT = 4 * 1024 * 1024
_REALTIME = re.compile(r"SIGRT(MIN|MAX)(?:([+-])(\d{1,2}))?")


def signal_number(name: str) -> int | None:
    """The number of a signal name (``SIGINT``, ``SIGRTMIN+3``), None if there is none."""
    match = _REALTIME.fullmatch(name)
    if match is not None:
        base = signal.SIGRTMIN if match.group(1) == "MIN" else signal.SIGRTMAX
        offset = int(match.group(3) or 0) * (-1 if match.group(2) == "-" else 1)
        number = int(base) + offset
        return number if signal.SIGRTMIN <= number <= signal.SIGRTMAX else None
    try:
        return int(signal.Signals[name])
    except KeyError:
        return None


async def feed_live(live: LiveInput, *, write: Callable[[bytes], Awaitable[None]],
                    end: Callable[[], Awaitable[None]],
                    send_signal: Callable[[int], Awaitable[None]]) -> None:
    """Hand a live stdin to a running phase, until cancelled (the phase's end).

    Data is written in order, as the program takes it (``write`` returns once the
    pipe took it); what the program has not read waits here, at most
    :data:`MAX_PENDING_INPUT` bytes (the rest is dropped). Signals are sent as they
    arrive: input the program has not read does not hold them back, as typed input
    does not hold back Ctrl-C. ``eof`` ends the stdin after the data before it.
    """
    pending: asyncio.Queue[bytes | None] = asyncio.Queue()
    held = 0

    async def writer() -> None:
        nonlocal held
        while True:
            chunk = await pending.get()
            if chunk is None:
                await end()
                return
            held -= len(chunk)
            await write(chunk)

    writing = asyncio.create_task(writer(), name="live-stdin")
    ended = dropped = False
    try:
        while True:
            item = await live.get()
            if item.data and not ended:
                if held + len(item.data) > MAX_PENDING_INPUT:
                    if not dropped:
                        log.warning("live stdin: the program does not read; input beyond "
                                    "%d bytes is dropped", MAX_PENDING_INPUT)
                    dropped = True
                else:
                    held += len(item.data)
                    pending.put_nowait(item.data)
            number = signal_number(item.signal) if item.signal else None
            if number is not None:
                try:
                    await send_signal(number)
                except Exception:  # the program may be gone already; the phase goes on
                    log.warning("live stdin: %s could not be sent", item.signal, exc_info=True)
            if item.eof and not ended:
                ended = True
                pending.put_nowait(None)
    finally:
        writing.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await writing


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"SIG{number}"


def phase_result(stdout: CappedOutput, stderr: CappedOutput, *, status: int, wall_ms: int,
                 cpu_ns: int, peak_bytes: int, time_limit: str | None, oom_killed: bool,
                 overflow: bool) -> PhaseResult:
    """The phase's result; ``status`` is how it exited, read as a shell would.

    Both backends see the program through something that reports a program
    killed by signal N as exit status 128+N (bwrap, the exec's shell), so above
    128 the status is read as a signal; a program that really calls exit(137)
    is reported as SIGKILL. A negative status is a process that itself died by
    signal -status. The phases we kill ourselves, and OOM kills, are known
    exactly.
    """
    result = PhaseResult(
        stdout=stdout.data(), stderr=stderr.data(), wall_ms=wall_ms,
        cpu_ms=cpu_ns // 1_000_000, memory_kb=peak_bytes // 1024,
        stdout_truncated=stdout.truncated, stderr_truncated=stderr.truncated,
        time_limit=time_limit, oom_killed=oom_killed, output_limit_hit=overflow,
    )
    if time_limit or overflow or oom_killed:
        result.signal = "SIGKILL"
    elif status < 0:
        result.signal = signal_name(-status)
    elif status > 128 and status - 128 < signal.NSIG:
        result.signal = signal_name(status - 128)
    else:
        result.exit_code = status
    return result
