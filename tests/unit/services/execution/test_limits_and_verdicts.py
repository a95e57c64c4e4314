"""Limits resolution and verdict logic, pure."""

from __future__ import annotations

import pytest
from runstream.schemas.errors import LimitExceeded
from runstream.schemas.limits import resolve_limits
from runstream.schemas.models import Limits, PhaseResult, RequestedLimits, Status, TestResult
from runstream.services.execution.verdict import (
    compile_limit_message,
    judge_run,
    outputs_match,
    overall,
)

JVM = ("Terminating due to java.lang.OutOfMemoryError",)

DEFAULTS = Limits(5000, 5000, 256, 64, 1024, 16384)
MAXIMA = Limits(30000, 30000, 1024, 256, 4096, 65536)


def test_defaults_fill_what_was_not_asked() -> None:
    got = resolve_limits(RequestedLimits(wall_ms=100), DEFAULTS, MAXIMA)
    assert got == Limits(100, 5000, 256, 64, 1024, 16384)


def test_limit_above_maximum_is_refused_and_named() -> None:
    with pytest.raises(LimitExceeded) as caught:
        resolve_limits(RequestedLimits(memory_mb=2048), DEFAULTS, MAXIMA)
    assert caught.value.field == "limits.memory_mb"
    assert "1024 MiB" in caught.value.message
    assert caught.value.http_status == 422


def test_limit_at_maximum_is_accepted() -> None:
    assert resolve_limits(RequestedLimits(processes=256), DEFAULTS, MAXIMA).processes == 256


@pytest.mark.parametrize(
    ("phase", "expected", "status"),
    [
        (PhaseResult(exit_code=0, stdout=b"42\n"), None, Status.OK),
        (PhaseResult(exit_code=0, stdout=b"42  \n\n"), "42", Status.OK),
        (PhaseResult(exit_code=0, stdout=b"41\n"), "42", Status.WRONG_ANSWER),
        (PhaseResult(exit_code=1), None, Status.RUNTIME_ERROR),
        (PhaseResult(exit_code=None, signal="SIGSEGV"), None, Status.RUNTIME_ERROR),
        (PhaseResult(exit_code=None, signal="SIGKILL", time_limit="wall"), None,
         Status.TIME_LIMIT_EXCEEDED),
        (PhaseResult(exit_code=None, signal="SIGKILL", oom_killed=True), None,
         Status.MEMORY_LIMIT_EXCEEDED),
        (PhaseResult(exit_code=None, signal="SIGKILL", output_limit_hit=True), None,
         Status.OUTPUT_LIMIT_EXCEEDED),
        # A time limit wins over the OOM that a dying program may also show.
        (PhaseResult(signal="SIGKILL", time_limit="cpu", oom_killed=True), None,
         Status.TIME_LIMIT_EXCEEDED),
    ],
)
def test_judge_run(phase: PhaseResult, expected: str | None, status: Status) -> None:
    assert judge_run(phase, expected) is status


def test_output_comparison_ignores_trailing_whitespace_and_crlf() -> None:
    assert outputs_match(b"a b  \r\nc\n\n", "a b\nc")
    assert not outputs_match(b"a  b\n", "a b")
    assert not outputs_match(b"\nx", "x")


def test_first_failing_test_decides() -> None:
    tests = [TestResult(0, Status.OK, PhaseResult()),
             TestResult(1, Status.WRONG_ANSWER, PhaseResult()),
             TestResult(2, Status.TIME_LIMIT_EXCEEDED, PhaseResult())]
    assert overall(tests) is Status.WRONG_ANSWER
    assert overall(tests[:1]) is Status.OK


@pytest.mark.parametrize(("phase", "status"), [
    # The JVM ran out of the heap its -Xmx allowed: memory, not a crash.
    (PhaseResult(exit_code=3, stdout=b"Terminating due to java.lang.OutOfMemoryError: Java "
                 b"heap space\n"), Status.MEMORY_LIMIT_EXCEEDED),
    (PhaseResult(exit_code=1, stderr=b"x" * 10000 + b"Terminating due to java.lang."
                 b"OutOfMemoryError"), Status.MEMORY_LIMIT_EXCEEDED),
    # The same words in a program that exited 0, or another failure: what it was.
    (PhaseResult(exit_code=0, stdout=b"Terminating due to java.lang.OutOfMemoryError"),
     Status.OK),
    (PhaseResult(exit_code=1, stderr=b"Exception in thread main"), Status.RUNTIME_ERROR),
    # Words long before the end are not its last ones.
    (PhaseResult(exit_code=1, stderr=b"Terminating due to java.lang.OutOfMemoryError"
                 + b"x" * 10000), Status.RUNTIME_ERROR),
])
def test_a_capped_heap_that_ran_out_is_memory(phase: PhaseResult, status: Status) -> None:
    assert judge_run(phase, None, JVM) is status
    assert judge_run(phase, None) in (Status.OK, Status.RUNTIME_ERROR)  # no words, no memory


COMPILE_LIMITS = Limits(wall_ms=20000, cpu_ms=15000, memory_mb=1024, processes=64,
                        output_kb=64, file_size_kb=1024)


@pytest.mark.parametrize(("phase", "words"), [
    (PhaseResult(signal="SIGKILL", time_limit="wall"), "wall-time limit (20000 ms)"),
    (PhaseResult(signal="SIGKILL", time_limit="cpu"), "CPU-time limit (15000 ms)"),
    (PhaseResult(signal="SIGKILL", oom_killed=True), "memory limit (1024 MB)"),
    (PhaseResult(signal="SIGKILL", output_limit_hit=True), "output limit"),
])
def test_a_compile_stopped_by_a_limit_names_it(phase: PhaseResult, words: str) -> None:
    message = compile_limit_message(phase, COMPILE_LIMITS)
    assert message is not None and words in message


def test_a_compiler_that_failed_by_itself_needs_no_message() -> None:
    assert compile_limit_message(PhaseResult(exit_code=1, stderr=b"error"),
                                 COMPILE_LIMITS) is None
