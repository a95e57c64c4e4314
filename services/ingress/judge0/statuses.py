"""Judge0's statuses and how runstream's verdicts map onto them.

Judge0 1.13.1 has no status for a memory or an output limit. A program killed
for its memory is a runtime error there too (isolate reports the kill), so
``memory_limit_exceeded`` becomes 12 "Runtime Error (Other)", with the message
"Memory limit exceeded". Output over the limit is what Judge0 reports as 8
"Runtime Error (SIGXFSZ)" (its output is a file capped by ``max_file_size``).
What kept the code from running at all (``expired``, ``rejected``,
``internal_error``) is 13 "Internal Error" with our message, which is how
Judge0 reports a job that failed for a reason other than the program.
"""

from __future__ import annotations

import signal
from typing import Any

STATUSES: tuple[tuple[int, str], ...] = (
    (1, "In Queue"),
    (2, "Processing"),
    (3, "Accepted"),
    (4, "Wrong Answer"),
    (5, "Time Limit Exceeded"),
    (6, "Compilation Error"),
    (7, "Runtime Error (SIGSEGV)"),
    (8, "Runtime Error (SIGXFSZ)"),
    (9, "Runtime Error (SIGFPE)"),
    (10, "Runtime Error (SIGABRT)"),
    (11, "Runtime Error (NZEC)"),
    (12, "Runtime Error (Other)"),
    (13, "Internal Error"),
    (14, "Exec Format Error"),
)
DESCRIPTIONS = dict(STATUSES)

IN_QUEUE = 1
ACCEPTED = 3
WRONG_ANSWER = 4
TIME_LIMIT = 5
COMPILATION_ERROR = 6
SIGXFSZ = 8
NZEC = 11
RUNTIME_OTHER = 12
INTERNAL_ERROR = 13

# Which status a runtime error gets from the signal that ended it (isolate_job.rb).
_BY_SIGNAL = {"SIGSEGV": 7, "SIGXFSZ": 8, "SIGFPE": 9, "SIGABRT": 10}

#: runstream verdict -> Judge0 status id (runtime errors are refined by signal).
BY_VERDICT = {
    "ok": ACCEPTED,
    "wrong_answer": WRONG_ANSWER,
    "time_limit_exceeded": TIME_LIMIT,
    "compile_error": COMPILATION_ERROR,
    "runtime_error": NZEC,
    "memory_limit_exceeded": RUNTIME_OTHER,
    "output_limit_exceeded": SIGXFSZ,
    "expired": INTERNAL_ERROR,
    "rejected": INTERNAL_ERROR,
    "internal_error": INTERNAL_ERROR,
    # Judge0 has no checkers of runstream's: a Judge0 request never gets these; were it
    # to, they are not accepted.
    "presentation_error": WRONG_ANSWER,
    "partial": WRONG_ANSWER,
    "skipped": INTERNAL_ERROR,
}


def status_doc(status_id: int) -> dict[str, Any]:
    """``{"id": 3, "description": "Accepted"}``."""
    return {"id": status_id, "description": DESCRIPTIONS[status_id]}


def statuses() -> list[dict[str, Any]]:
    """The body of ``GET /statuses``: all 14, in id order."""
    return [status_doc(i) for i, _ in STATUSES]


def signal_number(name: str | None) -> int | None:
    """``"SIGKILL"`` -> 9 (Linux numbering); None for no or an unknown signal."""
    if not name:
        return None
    try:
        return int(signal.Signals[name])
    except KeyError:
        return None


def judge0_status(verdict: str, signal_name: str | None) -> int:
    """The Judge0 status of a verdict; a runtime error by its signal, NZEC without one."""
    if verdict == "runtime_error" and signal_name:
        return _BY_SIGNAL.get(signal_name, RUNTIME_OTHER)
    return BY_VERDICT.get(verdict, INTERNAL_ERROR)
