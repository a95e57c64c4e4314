"""A runstream result as Piston's ``POST /api/v2/execute`` answer (api/src/job.js).

Each stage (``compile``, ``run``) is ``{signal, stdout, stderr, code, output,
memory, message, status, cpu_time, wall_time}``, with Piston's units (bytes, ms)
and its status codes: ``RE`` non-zero exit, ``SG`` killed by a signal, ``TO``
time limit, ``OL``/``EL`` stdout/stderr cap, null for exit 0. ``signal`` is
``"SIGKILL"`` for TO, OL and EL, as Piston forces it. A memory-limit kill is
``SG`` with ``SIGKILL``, as it is on Piston (isolate's cgroup kills the program).

``output`` is stdout followed by stderr: the sandbox captures the two streams
apart and keeps no order between them, so Piston's arrival-order interleaving
cannot be rebuilt. With one of the two empty (the usual case) it is exact.
"""

from __future__ import annotations

import base64
import binascii
import signal
from typing import Any

from runstream.services.ingress.piston.request import PistonJob
from runstream.services.ingress.piston.runtimes import semver_of

# Verdicts that are answers (200); the others are refusals or failures of ours.
_ANSWERED = {"ok", "wrong_answer", "runtime_error", "compile_error", "time_limit_exceeded",
             "memory_limit_exceeded", "output_limit_exceeded", "presentation_error", "partial"}
_REFUSED = {"rejected": 400, "expired": 503}


def unanswered(doc: dict[str, Any]) -> tuple[int, str] | None:
    """For a result that is no answer (refused, expired, failed): HTTP status and message."""
    status = str(doc.get("status"))
    message = str(doc.get("message") or status)
    if status in _REFUSED:
        return _REFUSED[status], f"the code was not run: {message}"
    if status not in _ANSWERED:
        # Piston answers a failed job with an empty 500; the reason is more use.
        return 500, f"the code could not be run because of an internal error: {message}"
    return None


def render(doc: dict[str, Any], job: PistonJob) -> tuple[int, dict[str, Any]]:
    """The HTTP status and body for one result document (schema runstream.result.v1)."""
    status = str(doc.get("status"))
    refused = unanswered(doc)
    if refused is not None:
        return refused[0], {"message": refused[1]}
    rt = job.runtime
    body: dict[str, Any] = {"language": rt.language,
                            "version": _version(doc.get("version"), rt.version)}
    compile_doc = doc.get("compile")
    compile_stage = stage(compile_doc, status if status == "compile_error" else None) if (
        rt.lang.compiled and compile_doc) else None
    if status == "compile_error" and compile_stage is not None:
        body["run"] = dict(compile_stage)  # Piston: run is a copy of a failed compile
    else:
        body["run"] = stage(doc.get("run"), status)
    if compile_stage is not None:
        body["compile"] = compile_stage
    return 200, body


def _version(ran: Any, chosen: str) -> str:
    return (semver_of(ran) if isinstance(ran, str) else None) or chosen


def stage(phase: dict[str, Any] | None, verdict: str | None) -> dict[str, Any]:
    """One stage object; ``verdict`` is the result's status when this phase decided it."""
    phase = phase or {}
    stdout, stderr = _text(phase, "stdout"), _text(phase, "stderr")
    code = phase.get("exit_code")
    sig = phase.get("signal")
    status, message = _status(phase, verdict)
    if status in ("TO", "OL", "EL") or (status == "SG" and sig is None):
        sig = "SIGKILL"  # as Piston forces it: we killed the program
    if sig is not None:
        code = None  # Piston: no exit code for a process that died on a signal
    memory = phase.get("memory_kb")
    return {
        "signal": sig,
        "stdout": stdout,
        "stderr": stderr,
        "code": code,
        "output": stdout + stderr,
        "memory": memory * 1024 if isinstance(memory, int) else None,
        "message": message,
        "status": status,
        "cpu_time": phase.get("cpu_ms"),
        "wall_time": phase.get("wall_ms"),
    }


def _status(phase: dict[str, Any], verdict: str | None) -> tuple[str | None, str | None]:
    """Piston's status code and isolate-style message for one phase."""
    if phase.get("time_limit") is not None:
        wall = " (wall clock)" if phase["time_limit"] == "wall" else ""
        return "TO", f"Time limit exceeded{wall}"
    if phase.get("oom_killed"):
        return "SG", "Memory limit exceeded (killed by SIGKILL)"
    if verdict == "output_limit_exceeded" or phase.get("stdout_truncated") or phase.get(
            "stderr_truncated"):
        if phase.get("stderr_truncated") and not phase.get("stdout_truncated"):
            return "EL", "stderr length exceeded"
        return "OL", "stdout length exceeded"
    sig = phase.get("signal")
    if sig is not None:
        return "SG", f"Caught fatal signal {_signal_number(sig)}"
    code = phase.get("exit_code")
    if code not in (0, None):
        return "RE", f"Exited with error status {code}"
    return None, None


def _signal_number(name: str) -> str:
    try:
        return str(signal.Signals[name].value)
    except KeyError:
        return name


def phase_bytes(phase: dict[str, Any], key: str) -> bytes:
    """A phase's ``stdout`` or ``stderr`` as bytes (base64 or UTF-8 in the document)."""
    value = str(phase.get(key) or "")
    if phase.get("encoding") == "base64":
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            pass
    return value.encode("utf-8", "surrogatepass")


def _text(phase: dict[str, Any], key: str) -> str:
    value = str(phase.get(key) or "")
    if phase.get("encoding") != "base64":
        return value
    try:  # not UTF-8: Piston decodes bytes as UTF-8 with replacement characters too
        return base64.b64decode(value, validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return value
