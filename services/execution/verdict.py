"""Verdicts from what the sandbox observed: pure functions, no I/O."""

from __future__ import annotations

from collections.abc import Sequence

from runstream.schemas.models import PhaseResult, Status, TestResult


def limit_status(phase: PhaseResult) -> Status | None:
    """The verdict of a phase that broke a limit or failed, or None if it exited 0.

    The order matters: a program killed for its wall time also shows SIGKILL,
    and one that hit the output cap was killed by us, not by its own fault.
    """
    if phase.time_limit is not None:
        return Status.TIME_LIMIT_EXCEEDED
    if phase.oom_killed:
        return Status.MEMORY_LIMIT_EXCEEDED
    if phase.output_limit_hit:
        return Status.OUTPUT_LIMIT_EXCEEDED
    if phase.signal is not None or phase.exit_code != 0:
        return Status.RUNTIME_ERROR
    return None


def normalise_output(text: str) -> str:
    """Output as judges compare it: trailing spaces of lines and trailing blank lines ignored."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines)


def outputs_match(actual: bytes, expected: str) -> bool:
    """Whether a program's stdout is the expected output, judge-style."""
    return normalise_output(actual.decode("utf-8", "replace")) == normalise_output(expected)


def judge_run(phase: PhaseResult, expected_output: str | None) -> Status:
    """The verdict of one run; compared with ``expected_output`` when there is one."""
    failed = limit_status(phase)
    if failed is not None:
        return failed
    if expected_output is not None and not outputs_match(phase.stdout, expected_output):
        return Status.WRONG_ANSWER
    return Status.OK


def compile_failed(phase: PhaseResult) -> bool:
    """A compile step that did not exit 0 (for any reason) is a compile error."""
    return limit_status(phase) is not None


def overall(tests: Sequence[TestResult]) -> Status:
    """The verdict of a request with tests: the first test that did not pass decides."""
    for test in tests:
        if test.status is not Status.OK:
            return test.status
    return Status.OK
