"""The orjson codec of the wire contract, validating against the JSON Schema files.

Decoding is strict about types and lenient about unknown properties, so newer
producers keep working with older workers. Every validation error names the
field (as a dotted path) and the problem.
"""

from __future__ import annotations

import base64
import functools
import json
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import jsonschema
import orjson

from .errors import InvalidRequest, MalformedPayload
from .judging import (
    decode_files,
    files_to_doc,
    judging_from_doc,
    judging_to_doc,
    limits_to_doc,
    requested_limits,
    result_extras,
    test_fields_from_doc,
    test_fields_to_doc,
    test_result_extras,
)
from .models import (
    Callback,
    ExecutionRequest,
    ExecutionResult,
    PhaseResult,
    ReplyTo,
    SourceFile,
    TestCase,
)
from .webhooks import callback_from_doc, callback_to_doc

REQUEST_SCHEMA = "request.v1.json"
RESULT_SCHEMA = "result.v1.json"


@functools.cache
def load_schema(name: str) -> dict[str, Any]:
    """Return the parsed JSON Schema shipped in this package."""
    text = resources.files(__package__).joinpath(name).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@functools.cache
def _ecma(pattern: str) -> re.Pattern[str]:
    # A schema's patterns are ECMA-262's, whose "$" matches only at the very end;
    # Python's also matches before a final newline ("main.py\n" would pass).
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    return re.compile(pattern)


def _pattern(validator: Any, pattern: str, instance: Any,
             schema: dict[str, Any]) -> Iterator[jsonschema.ValidationError]:
    if validator.is_type(instance, "string") and not _ecma(pattern).search(instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


_Validator = jsonschema.validators.extend(  # type: ignore[no-untyped-call]
    jsonschema.Draft202012Validator, {"pattern": _pattern})


@functools.cache
def _validator(name: str) -> Any:
    return _Validator(load_schema(name),
                      format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


#: C0 controls, DEL and C1 controls: what the schema's patterns keep out of the
#: strings that reach a process (docs/http-api.md).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_NAMES = {0: "NUL", 9: "tab", 10: "newline", 13: "carriage return", 27: "ESC",
                  127: "DEL"}


def _control(where: str, value: str) -> str | None:
    """The message for a string refused for a control character, or None."""
    found = list(_CONTROL.finditer(value))
    if not found:
        return None
    # Arguments may hold tab, newline and carriage return: name the one that is refused.
    bad = next((m for m in found if m.group() not in "\t\n\r"), found[0])
    code = ord(bad.group())
    name = f" ({_CONTROL_NAMES[code]})" if code in _CONTROL_NAMES else ""
    return (f"{where}: contains the control character U+{code:04X}{name} at position "
            f"{bad.start()}, which this field cannot carry")


def _field_path(error: jsonschema.ValidationError) -> str:
    path = ".".join(str(p) for p in error.absolute_path)
    return path or "(body)"


def _describe(error: jsonschema.ValidationError) -> str:
    """A message a person can act on, naming the field and the problem."""
    where = _field_path(error)
    if error.validator == "anyOf" and not error.absolute_path:
        return "give the program as 'source' (a string) or 'files' (a list)"
    if error.validator == "required":
        return f"{where}: {error.message}"
    if error.validator == "type":
        got = type(error.instance).__name__
        return f"{where}: expected {error.validator_value}, got {got}"
    if error.validator == "maxLength":  # the message would quote the whole long value
        return f"{where}: longer than {error.validator_value} characters"
    if error.validator == "pattern" and isinstance(error.instance, str):
        control = _control(where, error.instance)
        if control is not None:
            return control
    return f"{where}: {error.message}"


def _inner(error: jsonschema.ValidationError) -> jsonschema.ValidationError:
    """For "valid under none of these" (anyOf) on a field, the alternative's own error.

    The one deepest in the document, a pattern first: ``checker.language`` holding a
    NUL says so, not "not valid under any of the given schemas".
    """
    if error.validator != "anyOf" or not error.absolute_path or not error.context:
        return error
    best = max(error.context, key=lambda e: (len(e.absolute_path), e.validator == "pattern"))
    if len(best.absolute_path) <= len(error.absolute_path) and best.validator != "pattern":
        return error
    return _inner(best)


def _validate(doc: Any, schema: str) -> None:
    errors = sorted((_inner(e) for e in _validator(schema).iter_errors(doc)),
                    key=lambda e: list(e.absolute_path))
    if errors:
        # The first error is enough to act on; more are listed for the patient.
        first = errors[0]
        raise InvalidRequest(
            _describe(first),
            field=_field_path(first),
            errors=[_describe(e) for e in errors[:10]],
        )


def parse_json_object(raw: bytes | str) -> dict[str, Any]:
    """Parse bytes as a JSON object or raise MalformedPayload."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise MalformedPayload(f"body is not valid JSON: {e}") from e
    if not isinstance(doc, dict):
        raise MalformedPayload(f"body must be a JSON object, got {type(doc).__name__}")
    return doc


def new_execution_id() -> str:
    """A fresh, URL-safe execution id."""
    return uuid.uuid4().hex


def _parse_time(value: str, field: str) -> datetime:
    # jsonschema checks "date-time" only with an optional package; check here, always.
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as e:
        raise InvalidRequest(f"{field}: {value!r} is not a 'date-time' (RFC 3339)",
                             field=field) from e
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def request_from_doc(doc: dict[str, Any], *, key: bytes | None = None) -> ExecutionRequest:
    """Validate a parsed request document and build the typed request.

    ``key`` is the Kafka message key: a producer that left out ``id`` is answered
    under the key, and a key that disagrees with the id is refused.
    """
    _validate(doc, REQUEST_SCHEMA)
    exec_id = doc.get("id")
    if key is not None:
        key_text = key.decode("utf-8", "replace")
        if exec_id is None:
            exec_id = key_text
        elif exec_id != key_text:
            raise InvalidRequest(
                f"id: {exec_id!r} differs from the message key {key_text!r}", field="id"
            )
    if exec_id is None:
        exec_id = new_execution_id()
    if "source" in doc and "files" in doc:
        raise InvalidRequest("give either 'source' or 'files', not both", field="source")
    if "files" in doc:
        files = decode_files("files", doc["files"])
    else:
        files = (SourceFile(name=None, content=doc["source"].encode("utf-8", "surrogatepass")),)
    limits = requested_limits(doc)
    reply = doc.get("reply_to")
    tests = tuple(
        TestCase(
            stdin=t.get("stdin", "").encode("utf-8", "surrogatepass"),
            expected_output=t.get("expected_output"),
            name=t.get("name"),
            **test_fields_from_doc(t),
        )
        for t in doc.get("tests", ())
    )
    enqueued = doc.get("enqueued_at")
    interactive = bool(doc.get("interactive", False))
    if interactive and tests:
        raise InvalidRequest("interactive: an interactive run has no tests", field="tests")
    if interactive and doc.get("stdin"):
        raise InvalidRequest("stdin: an interactive run reads its stdin live (the stdin "
                             "topic), not from the request", field="stdin")
    return ExecutionRequest(
        id=exec_id,
        language=doc["language"].strip().lower(),
        version=doc.get("version"),
        files=files,
        stdin=doc.get("stdin", "").encode("utf-8", "surrogatepass"),
        args=tuple(doc.get("args", ())),
        tests=tests,
        limits=limits,
        deadline=_parse_time(doc["deadline"], "deadline") if "deadline" in doc else None,
        reply_to=ReplyTo(reply["topic"], reply.get("partition")) if reply else None,
        metadata=doc.get("metadata"),
        callback=_callback(doc),
        enqueued_at=_parse_time(enqueued, "enqueued_at") if isinstance(enqueued, str) else None,
        key_id=doc.get("key_id"),
        interactive=interactive,
        events=doc.get("events") is True,
        **judging_from_doc(doc),
    )


def _callback(doc: dict[str, Any]) -> Callback | None:
    value = doc.get("callback")
    return None if value is None else callback_from_doc(value)


def check_request(req: ExecutionRequest) -> None:
    """Hold a request built in code (not from a document) to the schema's rules for the
    strings that reach a process: language, version, file names, arguments, callback URL.

    A front end that builds :class:`ExecutionRequest` itself (Piston's) calls it, so
    that it refuses what the native API and the requests topic refuse, with the same
    message and field; InvalidRequest otherwise.
    """
    doc: dict[str, Any] = {
        "language": req.language,
        "files": [{"content": "", **({"name": f.name} if f.name is not None else {})}
                  for f in req.files],
        "args": list(req.args),
    }
    if req.version is not None:
        doc["version"] = req.version
    if req.callback is not None:
        doc["callback"] = {"url": req.callback.url}
    _validate(doc, REQUEST_SCHEMA)


def decode_request(raw: bytes, *, key: bytes | None = None) -> ExecutionRequest:
    """Bytes from HTTP or Kafka to a validated request."""
    return request_from_doc(parse_json_object(raw), key=key)


def _time(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def encode_request(req: ExecutionRequest) -> bytes:
    """The request as it travels on runstream.requests."""
    doc: dict[str, Any] = {
        "schema": "runstream.request.v1",
        "id": req.id,
        "language": req.language,
        "files": files_to_doc(req.files),
    }
    if req.version is not None:
        doc["version"] = req.version
    if req.stdin:
        doc["stdin"] = req.stdin.decode("utf-8", "surrogatepass")
    if req.args:
        doc["args"] = list(req.args)
    if req.tests:
        doc["tests"] = [
            {
                "stdin": t.stdin.decode("utf-8", "surrogatepass"),
                **({"expected_output": t.expected_output} if t.expected_output is not None else {}),
                **({"name": t.name} if t.name is not None else {}),
                **test_fields_to_doc(t.checker, t.points, t.group),
            }
            for t in req.tests
        ]
    limits_to_doc(doc, req.limits)
    if req.deadline is not None:
        doc["deadline"] = _time(req.deadline)
    if req.reply_to is not None:
        doc["reply_to"] = {"topic": req.reply_to.topic}
        if req.reply_to.partition is not None:
            doc["reply_to"]["partition"] = req.reply_to.partition
    if req.metadata is not None:
        doc["metadata"] = req.metadata
    if req.callback is not None:
        doc["callback"] = callback_to_doc(req.callback)
    if req.enqueued_at is not None:
        doc["enqueued_at"] = _time(req.enqueued_at)
    if req.key_id is not None:
        doc["key_id"] = req.key_id
    if req.interactive:  # absent otherwise: what older workers and producers know
        doc["interactive"] = True
    if req.events:  # likewise
        doc["events"] = True
    judging_to_doc(doc, req.checker, req.checker_program, req.interactor, req.stop_on_failure)
    return orjson.dumps(doc)


def _text(data: bytes) -> tuple[str, bool]:
    """Decode output; (text, is_utf8). Invalid UTF-8 is not silently mangled."""
    try:
        return data.decode("utf-8"), True
    except UnicodeDecodeError:
        return base64.b64encode(data).decode("ascii"), False


def phase_to_doc(phase: PhaseResult) -> dict[str, Any]:
    """A phase as JSON; stdout and stderr are base64 together when either is not UTF-8."""
    out, out_ok = _text(phase.stdout)
    err, err_ok = _text(phase.stderr)
    encoding = "utf8"
    if not (out_ok and err_ok):
        encoding = "base64"
        out = base64.b64encode(phase.stdout).decode("ascii")
        err = base64.b64encode(phase.stderr).decode("ascii")
    doc: dict[str, Any] = {
        "stdout": out,
        "stderr": err,
        "encoding": encoding,
        "exit_code": phase.exit_code,
        "signal": phase.signal,
        "wall_ms": phase.wall_ms,
        "cpu_ms": phase.cpu_ms,
        "memory_kb": phase.memory_kb,
        "stdout_truncated": phase.stdout_truncated,
        "stderr_truncated": phase.stderr_truncated,
        "time_limit": phase.time_limit,
        "oom_killed": phase.oom_killed,
    }
    if phase.cache is not None:  # absent unless a compile cache looked: older readers' view
        doc["cache"] = phase.cache
    return doc


def result_to_doc(result: ExecutionResult) -> dict[str, Any]:
    """The result document (schema runstream.result.v1)."""
    return {
        "schema": "runstream.result.v1",
        "id": result.id,
        "status": str(result.status),
        "message": result.message,
        "language": result.language,
        "version": result.version,
        "worker": result.worker,
        "compile": phase_to_doc(result.compile) if result.compile else None,
        "run": phase_to_doc(result.run) if result.run else None,
        "tests": [
            {"index": t.index, "name": t.name, "status": str(t.status), "run": phase_to_doc(t.run),
             **test_result_extras(t, phase_to_doc)}
            for t in result.tests
        ],
        "timestamps": {
            "enqueued": _time(result.enqueued),
            "started": _time(result.started),
            "finished": _time(result.finished),
        },
        "metadata": result.metadata,
        **result_extras(result, phase_to_doc),
    }


def encode_result(result: ExecutionResult) -> bytes:
    """The result as it travels on the reply and results topics."""
    return orjson.dumps(result_to_doc(result))


def validate_result_doc(doc: Any) -> None:
    """Check a result document against result.v1.json (used by tests and consumers)."""
    _validate(doc, RESULT_SCHEMA)
