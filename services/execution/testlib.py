"""testlib's calling convention for checkers and interactors: command lines and verdicts.

Pure, no I/O. A checker is called ``checker <input> <output> <answer>``, an
interactor ``interactor <input> <output>``; both answer with their exit code:
0 accepted, 1 wrong answer, 2 presentation error, 3 their own failure, 7
partial points (the fraction first in what they write). Anything else (a
crash, a limit, an unknown code, a score that is no number) is a judge error:
the test is ``internal_error`` with a comment naming the judge program's
fault, never a verdict against the submission.

The files reach the judge program's sandbox through its stdin: a ``sh``
prelude copies each one's bytes (``head -c``) into the workspace, then execs
the program with their names. That works alike on every backend, needs no
host path shared with a sandbox, and an interactor's stdin goes on after the
input file as the submission's output.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from runstream.schemas.models import Limits, PhaseResult, Status

INPUT = "runstream.input"
OUTPUT = "runstream.output"
ANSWER = "runstream.answer"
SHELL = "/bin/sh"

#: testlib's exit codes -> the test's verdict (3, the judge's failure, is handled apart).
_VERDICTS = {0: Status.OK, 1: Status.WRONG_ANSWER, 2: Status.PRESENTATION_ERROR,
             7: Status.PARTIAL}
FAILED = 3
PRELUDE_FAILED = "runstream: cannot write the test's files into the judge's workspace"
#: How much of a judge program's message becomes the test's comment.
COMMENT_CHARS = 1024


def judge_argv(argv: Sequence[str], files: Sequence[tuple[str, int]],
               extra: Sequence[str] = ()) -> list[str]:
    """``argv`` preceded by a prelude that writes ``files`` (name, size) from stdin.

    The program is then called with the files' names and ``extra`` (e.g. the
    interactor's output file) as its arguments.
    """
    copies = " && ".join(f"head -c {int(size)} > {shlex.quote(name)}" for name, size in files)
    names = " ".join(shlex.quote(n) for n in [*(name for name, _ in files), *extra])
    # A copy that fails (the judge's own workspace full, or a name it took) must not
    # pass for a verdict: it is testlib's "judge failed".
    guard = (f'{{ {copies}; }} || {{ echo "{PRELUDE_FAILED}" >&2; exit {FAILED}; }}; '
             if files else "")
    return [SHELL, "-c", f'{guard}exec "$@" {names}', "runstream-judge", *argv]


@dataclass(frozen=True, slots=True)
class JudgeVerdict:
    """What a checker or interactor decided about one test.

    ``fraction`` is the share of the test's points it gave (1 accepted, 0 not,
    in between for partial); ``comment`` its message, or the judge error.
    """

    status: Status
    fraction: float
    comment: str | None


def _message(phase: PhaseResult) -> str | None:
    """The judge program's words: testlib writes them on stderr; else its stdout."""
    for data in (phase.stderr, phase.stdout):
        text = data.decode("utf-8", "replace").strip()
        if text:
            return text[:COMMENT_CHARS]
    return None


def _fraction(phase: PhaseResult) -> float | None:
    """The partial score: the first number written (testlib's "points 0.5 ..." too)."""
    for data in (phase.stdout, phase.stderr):
        words = data.decode("utf-8", "replace").split()[:2]
        if words and words[0].lower() == "points":
            words = words[1:]
        if words:
            try:
                value = float(words[0])
            except ValueError:
                return None
            return value if math.isfinite(value) and 0 <= value <= 1 else None
    return None


def _judge_error(role: str, why: str, phase: PhaseResult) -> JudgeVerdict:
    said = _message(phase)
    text = f"judge error: the {role} {why}" + (f": {said}" if said else "")
    return JudgeVerdict(Status.INTERNAL_ERROR, 0.0, text[:COMMENT_CHARS])


def read_verdict(phase: PhaseResult, limits: Limits, role: str = "checker") -> JudgeVerdict:
    """The verdict a checker's or interactor's ``phase`` gave (``role`` names it)."""
    if phase.time_limit == "wall":
        return _judge_error(role, f"exceeded its wall-time limit ({limits.wall_ms} ms)", phase)
    if phase.time_limit is not None:
        return _judge_error(role, f"exceeded its CPU-time limit ({limits.cpu_ms} ms)", phase)
    if phase.oom_killed:
        return _judge_error(role, f"exceeded its memory limit ({limits.memory_mb} MB)", phase)
    if phase.output_limit_hit:
        return _judge_error(role, "exceeded its output limit", phase)
    if phase.signal is not None:
        return _judge_error(role, f"was killed by {phase.signal}", phase)
    code = phase.exit_code
    if code == FAILED:
        return _judge_error(role, "failed (exit code 3)", phase)
    status = _VERDICTS.get(code) if code is not None else None
    if status is None:
        return _judge_error(role, f"exited with {code}, which is no verdict (0 accepted, 1 "
                                  "wrong answer, 2 presentation error, 3 failure, 7 partial)",
                            phase)
    if status is Status.PARTIAL:
        fraction = _fraction(phase)
        if fraction is None:
            return _judge_error(role, "gave partial points (exit code 7) without a score "
                                      "from 0 to 1 first in its output", phase)
        return JudgeVerdict(status, fraction, _message(phase))
    return JudgeVerdict(status, 1.0 if status is Status.OK else 0.0, _message(phase))
