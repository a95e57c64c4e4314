"""Execution events (schema ``event.v1.json``): the typed model and its orjson codec.

An event is one step of an execution as it happens: ``queued`` (the ingress
produced it), ``started`` (a worker took it), ``compile`` (the compile step
ended), ``stdout``/``stderr`` (a chunk of output), ``finished`` (the result is
stored). Events travel on the events topic keyed by execution id; the HTTP
stream adds the result to ``finished``. Pure: no I/O.
"""

from __future__ import annotations

import base64
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from .codec import _validate, parse_json_object
from .errors import InvalidRequest, RunstreamError
from .models import PhaseResult, TestResult

EVENT_SCHEMA = "event.v1.json"
SCHEMA_NAME = "runstream.event.v1"


class InvalidEvent(RunstreamError):
    """Bytes on the events topic that are not an event of this schema."""


class EventType(enum.StrEnum):
    """What happened; the SSE event name."""

    QUEUED = "queued"
    STARTED = "started"
    COMPILE = "compile"
    STDOUT = "stdout"
    STDERR = "stderr"
    #: A test was run and judged (docs/judging.md).
    TEST = "test"
    FINISHED = "finished"


#: Events that carry output.
OUTPUT = frozenset({EventType.STDOUT, EventType.STDERR})


@dataclass(frozen=True, slots=True)
class Event:
    """One event; ``details`` holds the fields particular to its type (see the schema)."""

    id: str
    type: EventType
    at: datetime
    seq: int = 0
    attempt: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


def _time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def output_text(data: bytes) -> tuple[str, str]:
    """(text, encoding): UTF-8 as it is, anything else base64, never silently mangled."""
    try:
        return data.decode("utf-8"), "utf8"
    except UnicodeDecodeError:
        return base64.b64encode(data).decode("ascii"), "base64"


def output_bytes(event: Event) -> bytes:
    """The bytes an output event carries."""
    data = str(event.details["data"])
    if event.details.get("encoding") == "base64":
        return base64.b64decode(data)
    return data.encode("utf-8", "surrogatepass")


# -- building ------------------------------------------------------------------

def queued(exec_id: str, at: datetime, language: str) -> Event:
    return Event(exec_id, EventType.QUEUED, at, details={"language": language})


def started(exec_id: str, attempt: str, seq: int, at: datetime, *, worker: str,
            language: str, version: str | None) -> Event:
    return Event(exec_id, EventType.STARTED, at, seq, attempt,
                 {"worker": worker, "language": language, "version": version})


def output(exec_id: str, attempt: str, seq: int, at: datetime, *, stream: str, phase: str,
           test: int | None, data: bytes, position: int, truncated: bool = False) -> Event:
    text, encoding = output_text(data)
    details: dict[str, Any] = {"phase": phase, "test": test, "data": text,
                               "encoding": encoding, "position": position}
    if truncated:
        details["truncated"] = True
    return Event(exec_id, EventType(stream), at, seq, attempt, details)


def compiled(exec_id: str, attempt: str, seq: int, at: datetime, phase: PhaseResult,
             *, failed: bool) -> Event:
    return Event(exec_id, EventType.COMPILE, at, seq, attempt, {
        "status": "compile_error" if failed else "ok", "exit_code": phase.exit_code,
        "signal": phase.signal, "wall_ms": phase.wall_ms, "cpu_ms": phase.cpu_ms,
        "memory_kb": phase.memory_kb})


def tested(exec_id: str, attempt: str, seq: int, at: datetime, result: TestResult) -> Event:
    details: dict[str, Any] = {
        "test": result.index, "status": str(result.status), "exit_code": result.run.exit_code,
        "signal": result.run.signal, "wall_ms": result.run.wall_ms,
        "cpu_ms": result.run.cpu_ms, "memory_kb": result.run.memory_kb}
    if result.score is not None:
        details["score"] = result.score
    if result.comment is not None:
        details["comment"] = result.comment
    return Event(exec_id, EventType.TEST, at, seq, attempt, details)


def finished(exec_id: str, attempt: str, seq: int, at: datetime, status: str) -> Event:
    return Event(exec_id, EventType.FINISHED, at, seq, attempt, {"status": status})


# -- the wire --------------------------------------------------------------------

def event_doc(event: Event) -> dict[str, Any]:
    """The event document (schema runstream.event.v1)."""
    return {"schema": SCHEMA_NAME, "id": event.id, "type": str(event.type),
            "at": _time(event.at), "attempt": event.attempt, "seq": event.seq,
            **event.details}


def encode_event(event: Event) -> bytes:
    return orjson.dumps(event_doc(event))


def validate_event_doc(doc: Any) -> None:
    """Check a document against event.v1.json itself (tests, other consumers).

    About a millisecond per event: too slow for every event an ingress reads, which
    :func:`event_from_doc` checks by hand, field by field as the schema says (a unit
    test holds the two to the same verdicts).
    """
    try:
        _validate(doc, EVENT_SCHEMA)
    except InvalidRequest as e:
        raise InvalidEvent(f"not a {SCHEMA_NAME} document: {e}") from e


def _is_int(value: Any, *, low: int | None = None, null: bool = False) -> bool:
    if value is None:
        return null
    return isinstance(value, int) and not isinstance(value, bool) and (
        low is None or value >= low)


def _is_str(value: Any, *, null: bool = False) -> bool:
    return isinstance(value, str) or (null and value is None)


_TYPE_NAMES = frozenset(t.value for t in EventType)
# The schema's fields, checked by hand: (field, check) for every type, then per type.
_COMMON: tuple[tuple[str, Any], ...] = (
    ("schema", lambda v: v == SCHEMA_NAME), ("id", lambda v: _is_str(v) and bool(v)),
    ("type", lambda v: v in _TYPE_NAMES), ("at", _is_str), ("seq", lambda v: _is_int(v, low=0)))
_OPTIONAL: dict[str, Any] = {
    "attempt": lambda v: _is_str(v, null=True), "worker": lambda v: _is_str(v, null=True),
    "language": lambda v: _is_str(v, null=True), "version": lambda v: _is_str(v, null=True),
    "phase": lambda v: v in ("compile", "run"), "test": lambda v: _is_int(v, low=0, null=True),
    "data": _is_str, "encoding": lambda v: v in ("utf8", "base64"),
    "position": lambda v: _is_int(v, low=0), "truncated": lambda v: isinstance(v, bool),
    "status": lambda v: _is_str(v, null=True), "exit_code": lambda v: _is_int(v, null=True),
    "signal": lambda v: _is_str(v, null=True), "wall_ms": _is_int, "cpu_ms": _is_int,
    "memory_kb": _is_int, "result": lambda v: isinstance(v, dict),
    "score": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "comment": _is_str}
_REQUIRED: dict[str, tuple[str, ...]] = {
    "stdout": ("phase", "data", "encoding", "position"),
    "stderr": ("phase", "data", "encoding", "position"),
    "finished": ("status",), "compile": ("status", "exit_code", "wall_ms"),
    "test": ("test", "status", "wall_ms")}


def _check(doc: Mapping[str, Any]) -> str | None:
    """What is wrong with ``doc`` as event.v1.json sees it, or None."""
    for name, ok in _COMMON:
        if name not in doc:
            return f"'{name}' is a required property"
        if not ok(doc[name]):
            return f"{name}: {doc[name]!r} is not valid"
    for name in _REQUIRED.get(doc["type"], ()):
        if name not in doc:
            return f"'{name}' is a required property"
    for name, value in doc.items():
        ok = _OPTIONAL.get(name)
        if ok is not None and not ok(value):
            return f"{name}: {value!r} is not valid"
    return None


def event_from_doc(doc: Mapping[str, Any]) -> Event:
    """Validate a parsed document and build the event; InvalidEvent if it is not one."""
    problem = _check(doc)
    if problem is not None:
        raise InvalidEvent(f"not a {SCHEMA_NAME} document: {problem}")
    try:
        at = _parse_time(doc["at"])
    except ValueError as e:
        raise InvalidEvent(f"not a {SCHEMA_NAME} document: at: {e}") from e
    common = ("schema", "id", "type", "at", "attempt", "seq")
    return Event(id=doc["id"], type=EventType(doc["type"]), at=at, seq=doc["seq"],
                 attempt=doc.get("attempt"),
                 details={k: v for k, v in doc.items() if k not in common})


def decode_event(raw: bytes) -> Event:
    """Bytes from the events topic to a validated event."""
    try:
        doc = parse_json_object(raw)
    except InvalidRequest as e:
        raise InvalidEvent(f"not a {SCHEMA_NAME} document: {e.message}") from e
    return event_from_doc(doc)


def finished_with_result(exec_id: str, result: Mapping[str, Any], *,
                         attempt: str | None, seq: int) -> bytes:
    """The HTTP stream's last event: ``finished`` carrying the stored result document."""
    stamps = result.get("timestamps")
    at = stamps.get("finished") if isinstance(stamps, Mapping) else None
    doc = {"schema": SCHEMA_NAME, "id": exec_id, "type": str(EventType.FINISHED),
           "at": at or _time(datetime.now(UTC)), "attempt": attempt, "seq": seq,
           "status": result.get("status"), "result": result}
    return orjson.dumps(doc)
