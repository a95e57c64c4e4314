"""braindrill's answers: a result document as ``POST /lang/{language}`` says it.

braindrill (the Scala/Pekko engine runstream descends from) answered every
request with plain text: the program's stdout, its stderr when stdout was
empty, or one sentence when the run was stopped. Its clients (a web page, a
load simulator) never read a header, so the body alone must tell a person what
happened. This module is pure: a result document (schema runstream.result.v1)
in, an HTTP status and a body out; ``app.py`` makes the response.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

# braindrill's own sentences, verbatim (workers/children/CodeExecutor.scala, Worker.scala).
TIMEOUT = "The process was aborted because it exceeded the timeout"
MEMORY = "The process was aborted because it exceeded the memory usage"
UNSUPPORTED = "unsupported language"

# Sentences for the verdicts braindrill did not have.
OUTPUT_LIMIT = "The process was aborted because it exceeded the output limit"
COMPILE_ERROR = "The code did not compile"
EXPIRED = "The code was not run: it waited longer than its deadline"
REJECTED = "The code was not run"
INTERNAL_ERROR = "The code could not be run because of an internal error"

# HTTP status per verdict (docs/http-api.md's table says why). A program that ran to its
# end, even one that failed, is a successful answer: its output is what was asked
# for, and braindrill answered it so. What stopped the code is the code's fault
# (4xx: sending it again gives the same answer); what kept it from running is ours
# (5xx: another try may succeed).
STATUS: dict[str, int] = {
    "ok": 200,
    "wrong_answer": 200,
    "runtime_error": 200,
    "compile_error": 422,
    # Not 408: clients and proxies retry a 408 by themselves, re-running the loop.
    "time_limit_exceeded": 422,
    # Not 413: that already means "request body too large" on this service.
    "memory_limit_exceeded": 422,
    "output_limit_exceeded": 422,
    "rejected": 422,
    "expired": 503,  # queued past its deadline: the service was too busy
    "internal_error": 500,
    # Only from a checker program or interactor, which braindrill requests do not have.
    "presentation_error": 200,
    "partial": 200,
    "skipped": 200,
}
# The same status as an unknown language on /v1/executions; only the body differs.
UNSUPPORTED_STATUS = 400


@dataclass(frozen=True, slots=True)
class Answer:
    """What ``/lang/{language}`` answers: an HTTP status and a plain-text body."""

    status: int
    body: bytes


def unsupported() -> Answer:
    """The answer for a language this service does not run."""
    return Answer(UNSUPPORTED_STATUS, UNSUPPORTED.encode())


def phase_output(phase: dict[str, Any] | None) -> bytes:
    """A phase's stdout, or its stderr when stdout is empty, as bytes (base64 decoded)."""
    if not phase:
        return b""
    stdout = _decoded(phase, "stdout")
    return stdout if stdout else _decoded(phase, "stderr")


def answer(doc: dict[str, Any]) -> Answer:
    """braindrill's answer to one result document."""
    status = str(doc.get("status", "internal_error"))
    http = STATUS.get(status, 500)
    message = doc.get("message") or ""
    if status == "time_limit_exceeded":
        return Answer(http, TIMEOUT.encode())
    if status == "memory_limit_exceeded":
        return Answer(http, MEMORY.encode())
    if status == "output_limit_exceeded":
        return Answer(http, OUTPUT_LIMIT.encode())
    if status == "compile_error":
        compiler = phase_output(doc.get("compile"))
        return Answer(http, _sentence(COMPILE_ERROR, compiler or message.encode()))
    if status == "expired":
        return Answer(http, _sentence(EXPIRED, message.encode()))
    if status == "rejected":
        return Answer(http, _sentence(REJECTED, message.encode()))
    if status in STATUS and status != "internal_error":
        # ok, wrong_answer, runtime_error: the program's own words, as braindrill did.
        run = doc.get("run")
        if run is None and doc.get("tests"):
            run = doc["tests"][0].get("run")
        return Answer(http, phase_output(run))
    detail = message if status == "internal_error" else f"unknown verdict {status!r} {message}"
    return Answer(500, _sentence(INTERNAL_ERROR, detail.strip().encode()))


def _sentence(head: str, detail: bytes) -> bytes:
    # One line a person reads first, then whatever explains it.
    return head.encode() + (b":\n" + detail if detail.strip() else b"")


def _decoded(phase: dict[str, Any], key: str) -> bytes:
    value = phase.get(key) or ""
    if phase.get("encoding") == "base64":
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            # A corrupt encoding must not hide the output: show what arrived.
            return str(value).encode()
    return str(value).encode()
