"""The pieces both sandbox backends share: rlimits, environment, supervision (pure)."""

from __future__ import annotations

import asyncio
import time

import pytest
from runstream.schemas.models import Limits
from runstream.services.execution.languages import Language
from runstream.services.execution.sandbox import rlimits
from runstream.services.execution.sandbox.bwrap import command
from runstream.services.execution.sandbox.docker._exec import phase_argv
from runstream.services.execution.sandbox.environment import program_env
from runstream.services.execution.sandbox.supervision import (
    CPU,
    WALL,
    CappedOutput,
    phase_result,
    watch,
)

LIMITS = Limits(wall_ms=5000, cpu_ms=2500, memory_mb=256, processes=64, output_kb=1024,
                file_size_kb=16384)
LANG = Language(name="go", entry="main.go", run=("./main",), version_cmd=("go", "version"),
                env={"GOCACHE": "/tmp/c", "A": "1"})


def test_both_backends_set_the_same_rlimits() -> None:
    script = rlimits.ulimit_script(LIMITS)
    assert script == ("ulimit -t 4; ulimit -f 32768; ulimit -n 256; ulimit -c 0; "
                      "ulimit -s 65536; ")
    spec = command.RunSpec(argv=["./main"], language=LANG, limits=LIMITS, workspace="/w",
                           cgroup_join=["/cg/tasks"], uid=1, gid=1, seccomp_fd=3, status_fd=4,
                           tmp_bytes=1)
    assert script in command.launcher_script(spec)
    assert script in phase_argv(["./main"], LIMITS, 0)[2]


def test_program_env_is_fixed_plus_the_languages() -> None:
    assert program_env(LANG) == {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8",
                                 "A": "1", "GOCACHE": "/tmp/c"}


def test_capped_output_keeps_the_cap_and_reports_once() -> None:
    calls = []
    out = CappedOutput(5, lambda: calls.append(1))
    for chunk in (b"abc", b"defg", b"hij"):
        out.keep(chunk)
    assert (out.data(), out.truncated, calls) == (b"abcde", True, [1])


@pytest.mark.parametrize("status,kw,exit_code,sig", [
    (0, {}, 0, None), (3, {}, 3, None), (134, {}, None, "SIGABRT"), (-11, {}, None, "SIGSEGV"),
    (0, {"time_limit": WALL}, None, "SIGKILL"), (0, {"overflow": True}, None, "SIGKILL"),
    (1, {"oom_killed": True}, None, "SIGKILL"),
])  # fmt: skip
def test_exit_status_is_read_like_a_shell(status: int, kw: dict[str, object],
                                          exit_code: int | None, sig: str | None) -> None:
    args: dict[str, object] = dict(time_limit=None, oom_killed=False, overflow=False)
    args.update(kw)
    r = phase_result(CappedOutput(1), CappedOutput(1), status=status, wall_ms=1, cpu_ns=2_000_000,
                     peak_bytes=4096, **args)  # type: ignore[arg-type]
    assert (r.exit_code, r.signal, r.cpu_ms, r.memory_kb) == (exit_code, sig, 2, 4)


async def _watch(*, cpu: int = 0, ended: bool = False, deadline_s: float = 10.0,
                 overflow: bool = False) -> str | None:
    event = asyncio.Event()
    if overflow:
        event.set()

    async def cpu_used_ns() -> int:
        return cpu

    async def has_ended() -> bool:
        return ended

    return await asyncio.wait_for(watch(
        deadline=time.monotonic() + deadline_s, cpu_cap_ns=1000, cpu_used_ns=cpu_used_ns,
        ended=has_ended, overflow=event, poll_s=0.001), 5)


async def test_watch_says_what_ended_the_phase() -> None:
    assert await _watch(ended=True) is None
    assert await _watch(cpu=1001) == CPU
    assert await _watch(deadline_s=0) == WALL
    assert await _watch(overflow=True, cpu=1001) is None  # the caller reads the event
