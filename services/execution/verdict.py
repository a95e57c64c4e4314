"""Verdicts from what the sandbox observed: pure functions, no I/O."""

from __future__ import annotations

from collections.abc import Sequence

from runstream.schemas.models import Limits, PhaseResult, Status, TestResult

# Where a runtime's last words are looked for: the end of stdout and of stderr.
_LAST_WORDS = 4096


def heap_ran_out(phase: PhaseResult, heap_exhausted: Sequence[str]) -> bool:
    """Whether a failed phase ended with its runtime saying its capped heap ran out.

    Managed runtimes (JVM, .NET, GHC, V8) get a heap cap below the memory limit
    (``{heap_mb}``) so that they stop by themselves instead of thrashing at the
    cgroup's limit; what they print then is the language's ``heap_exhausted``.
    """
    if not heap_exhausted:
        return False
    tail = (phase.stdout[-_LAST_WORDS:].decode("utf-8", "replace") + "\n"
            + phase.stderr[-_LAST_WORDS:].decode("utf-8", "replace"))
    return any(marker in tail for marker in heap_exhausted)


def limit_status(phase: PhaseResult, heap_exhausted: Sequence[str] = ()) -> Status | None:
    """The verdict of a phase that broke a limit or failed, or None if it exited 0.

    The order matters: a program killed for its wall time also shows SIGKILL,
    and one that hit the output cap was killed by us, not by its own fault.
    ``heap_exhausted``: the language's words for a capped heap that ran out.
    """
    if phase.time_limit is not None:
        return Status.TIME_LIMIT_EXCEEDED
    if phase.oom_killed:
        return Status.MEMORY_LIMIT_EXCEEDED
    if phase.output_limit_hit:
        return Status.OUTPUT_LIMIT_EXCEEDED
    if phase.signal is not None or phase.exit_code != 0:
        if heap_ran_out(phase, heap_exhausted):
            return Status.MEMORY_LIMIT_EXCEEDED
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


def judge_run(phase: PhaseResult, expected_output: str | None,
              heap_exhausted: Sequence[str] = ()) -> Status:
    """The verdict of one run; compared with ``expected_output`` when there is one."""
    failed = limit_status(phase, heap_exhausted)
    if failed is not None:
        return failed
    if expected_output is not None and not outputs_match(phase.stdout, expected_output):
        return Status.WRONG_ANSWER
    return Status.OK


def compile_failed(phase: PhaseResult) -> bool:
    """A compile step that did not exit 0 (for any reason) is a compile error."""
    return limit_status(phase) is not None


def compile_limit_message(phase: PhaseResult, limits: Limits) -> str | None:
    """Why a compile step was stopped, when a limit (not the compiler) ended it.

    A compiler killed by its wall or CPU limit, the memory cap or the output cap
    shows only SIGKILL and a truncated log; the message names the limit, so a
    user (or an operator sizing ``RUNSTREAM_COMPILE_*``) knows what to raise.
    """
    if phase.time_limit == "wall":
        return f"the compile step exceeded its wall-time limit ({limits.wall_ms} ms)"
    if phase.time_limit is not None:
        return f"the compile step exceeded its CPU-time limit ({limits.cpu_ms} ms)"
    if phase.oom_killed:
        return f"the compile step exceeded its memory limit ({limits.memory_mb} MB)"
    if phase.output_limit_hit:
        return "the compile step exceeded the output limit"
    return None


def overall(tests: Sequence[TestResult]) -> Status:
    """The verdict of a request with tests: the first test that did not pass decides."""
    for test in tests:
        if test.status not in (Status.OK, Status.SKIPPED):
            return test.status
    return Status.OK
