"""Judge0's submission on the wire, response side: a runstream result -> Judge0's object.

Judge0 1.13.1 serialises a submission's columns in a fixed order; ``fields``
picks a subset (default: ``DEFAULT_FIELDS``), ``*`` all of them. The official
SDK refuses any key outside that set, so nothing else is ever emitted. Text
attributes are base64 (Ruby's ``encode64``, 60-character lines) when the client
asked for ``base64_encoded=true``; otherwise they must be UTF-8.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

import orjson
from runstream.services.ingress.judge0 import statuses as st
from runstream.services.ingress.judge0._b64 import encode64
from runstream.services.ingress.judge0.catalog import Catalog
from runstream.services.ingress.judge0.errors import BadParameter, NotUtf8
from runstream.services.ingress.judge0.submission import META_KEY

FIELDS = (
    "source_code", "language_id", "stdin", "expected_output", "stdout", "status_id",
    "created_at", "finished_at", "time", "memory", "stderr", "token", "number_of_runs",
    "cpu_time_limit", "cpu_extra_time", "wall_time_limit", "memory_limit", "stack_limit",
    "max_processes_and_or_threads", "enable_per_process_and_thread_time_limit",
    "enable_per_process_and_thread_memory_limit", "max_file_size", "compile_output",
    "exit_code", "exit_signal", "message", "wall_time", "compiler_options",
    "command_line_arguments", "redirect_stderr_to_stdout", "callback_url", "additional_files",
    "enable_network", "status", "language",
)
DEFAULT_FIELDS = ("stdout", "time", "memory", "stderr", "token", "compile_output", "message",
                  "status")
TEXT_FIELDS = frozenset({"source_code", "stdin", "expected_output", "stdout", "stderr",
                         "compile_output", "message"})
_LIMIT_FLOATS = ("cpu_time_limit", "cpu_extra_time", "wall_time_limit")
_LIMIT_INTS = ("number_of_runs", "memory_limit", "stack_limit", "max_processes_and_or_threads",
               "max_file_size")


def parse_fields(raw: str | None) -> tuple[str, ...]:
    """The ``fields`` parameter, in column order; BadParameter (400) names unknown ones."""
    if raw is None or not raw.strip():
        return tuple(f for f in FIELDS if f in DEFAULT_FIELDS)
    names = [n.strip() for n in raw.split(",") if n.strip()]
    if "*" in names:
        return FIELDS
    invalid = [n for n in names if n not in FIELDS]
    if invalid:
        raise BadParameter(f"invalid fields: [{', '.join(invalid)}]")
    return tuple(f for f in FIELDS if f in names)


def seconds(ms: float | None) -> str | None:
    """Milliseconds as Judge0's decimal string of seconds: 12 -> "0.012", 1500 -> "1.5"."""
    if ms is None:
        return None
    text = f"{ms / 1000:.3f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def _bytes(phase: Mapping[str, Any], name: str) -> bytes:
    value = phase.get(name) or ""
    if phase.get("encoding") == "base64":
        try:
            return base64.b64decode(value)
        except (binascii.Error, ValueError):
            return value.encode("utf-8", "replace")
    return str(value).encode("utf-8", "surrogatepass")


def _echo(result: Mapping[str, Any]) -> dict[str, Any]:
    meta = result.get("metadata")
    echo = meta.get(META_KEY) if isinstance(meta, dict) else None
    return echo if isinstance(echo, dict) else {}


def _echo_bytes(echo: Mapping[str, Any], name: str) -> bytes | None:
    value = echo.get(name)
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value)
    except (binascii.Error, ValueError):
        return None


def _shown_runs(result: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The runs Judge0 would have made: every test up to the first that failed."""
    tests = result.get("tests") or []
    if not tests:
        run = result.get("run")
        return [run] if isinstance(run, dict) else []
    shown = []
    for test in tests:
        if isinstance(test, dict) and isinstance(test.get("run"), dict):
            shown.append(test["run"])
            if test.get("status") != "ok":
                break
    return shown


def _message(verdict: str, status_id: int, run: Mapping[str, Any] | None,
             result: Mapping[str, Any]) -> str | None:
    if status_id == st.INTERNAL_ERROR:
        return str(result.get("message") or verdict.replace("_", " "))
    if run is None:
        return None
    if verdict == "time_limit_exceeded":
        return ("Time limit exceeded (wall clock)" if run.get("time_limit") == "wall"
                else "Time limit exceeded")
    if verdict == "memory_limit_exceeded":
        return "Memory limit exceeded"
    if verdict == "output_limit_exceeded":
        return "Output limit exceeded"
    if verdict == "runtime_error":
        number = st.signal_number(run.get("signal"))
        if number is not None:
            return f"Caught fatal signal {number}"
        return f"Exited with error status {run.get('exit_code')}"
    return None


def _mean(runs: list[Mapping[str, Any]], key: str) -> float | None:
    values = [float(r.get(key) or 0) for r in runs]
    return sum(values) / len(values) if values else None


def _outcome(result: Mapping[str, Any]) -> dict[str, Any]:
    """The execution side of the submission, text attributes as bytes."""
    verdict = str(result.get("status"))
    runs = _shown_runs(result)
    run = runs[-1] if runs else None
    status_id = st.judge0_status(verdict, run.get("signal") if run else None)
    out: dict[str, Any] = {"status_id": status_id}
    compiled = result.get("compile")
    compile_output = b""
    if isinstance(compiled, dict):
        compile_output = _bytes(compiled, "stdout") + _bytes(compiled, "stderr")
        if verdict == "compile_error" and compiled.get("time_limit") and not compile_output:
            compile_output = b"Compilation time limit exceeded."
    out["compile_output"] = compile_output or None
    if verdict == "compile_error" or run is None:
        out.update(stdout=None, stderr=None, time=None, wall_time=None, memory=None,
                   exit_code=None, exit_signal=None)
    else:
        memory = _mean(runs, "memory_kb")
        out.update(
            stdout=_bytes(run, "stdout") or None, stderr=_bytes(run, "stderr") or None,
            time=seconds(_mean(runs, "cpu_ms")), wall_time=seconds(_mean(runs, "wall_ms")),
            memory=round(memory) if memory is not None else None,
            # Judge0 reports 0 when the program was killed and gave no exit code.
            exit_code=run.get("exit_code") if run.get("exit_code") is not None else 0,
            exit_signal=st.signal_number(run.get("signal")))
    message = _message(verdict, status_id, run, result)
    out["message"] = message.encode("utf-8") if message is not None else None
    return out


def _values(result: Mapping[str, Any], catalog: Catalog | None) -> dict[str, Any]:
    echo = _echo(result)
    raw_stamps = result.get("timestamps")
    stamps: Mapping[str, Any] = raw_stamps if isinstance(raw_stamps, dict) else {}
    lang_id = echo.get("language_id") if isinstance(echo.get("language_id"), int) else (
        catalog.id_of(result.get("language")) if catalog is not None else None)
    values: dict[str, Any] = {
        "source_code": _echo_bytes(echo, "source_code"),
        "language_id": lang_id,
        "stdin": _echo_bytes(echo, "stdin"),
        "expected_output": _echo_bytes(echo, "expected_output"),
        "created_at": stamps.get("enqueued") or stamps.get("started") or stamps.get("finished"),
        "finished_at": stamps.get("finished"),
        "token": result.get("id"),
        "enable_per_process_and_thread_time_limit": False,
        "enable_per_process_and_thread_memory_limit": False,
        "compiler_options": None,
        "command_line_arguments": echo.get("command_line_arguments")
        if isinstance(echo.get("command_line_arguments"), str) else None,
        "redirect_stderr_to_stdout": False,
        "callback_url": echo.get("callback_url")
        if isinstance(echo.get("callback_url"), str) else None,
        "additional_files": None,
        "enable_network": False,
        "language": ({"id": lang_id, "name": catalog.names.get(lang_id, "")}
                     if catalog is not None and lang_id is not None else None),
    }
    for name in _LIMIT_FLOATS:
        value = echo.get(name)
        values[name] = str(float(value)) if isinstance(value, (int, float)) else None
    for name in _LIMIT_INTS:
        value = echo.get(name)
        values[name] = int(value) if isinstance(value, (int, float)) else None
    values.update(_outcome(result))
    values["status"] = st.status_doc(values["status_id"])
    return values


def _pick(values: Mapping[str, Any], fields: tuple[str, ...], base64_encoded: bool) -> dict[
        str, Any]:
    doc: dict[str, Any] = {}
    for name in fields:
        value = values.get(name)
        if name in TEXT_FIELDS and value is not None:
            if base64_encoded:
                value = encode64(value)
            else:
                try:
                    value = value.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise NotUtf8() from e
        doc[name] = value
    return doc


def submission_doc(result: Mapping[str, Any], fields: tuple[str, ...], *,
                   base64_encoded: bool, catalog: Catalog | None = None) -> dict[str, Any]:
    """A finished result as Judge0's submission object (NotUtf8 if text needs base64)."""
    return _pick(_values(result, catalog), fields, base64_encoded)


def pending_doc(token: str, fields: tuple[str, ...]) -> dict[str, Any]:
    """A submission not finished yet: its token and status 1 (In Queue), the rest null."""
    values = {"token": token, "status_id": st.IN_QUEUE, "status": st.status_doc(st.IN_QUEUE)}
    return {name: values.get(name) for name in fields}


def callback_body(result_doc: dict[str, Any]) -> bytes:
    """The JSON Judge0 PUTs to ``callback_url``: the default fields, always base64."""
    fields = tuple(f for f in FIELDS if f in DEFAULT_FIELDS)
    return orjson.dumps(submission_doc(result_doc, fields, base64_encoded=True))
