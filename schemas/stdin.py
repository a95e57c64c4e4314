"""Live stdin messages (schema ``stdin.v1.json``): the typed model and its orjson codec.

An interactive execution (request field ``interactive``) reads its standard
input while it runs: the ingress holding the client's WebSocket writes each
item to the stdin topic keyed by execution id (so in order), and the worker
running the execution writes it to the program. An item is ``data`` (bytes),
``eof`` (the program's stdin ends), ``signal`` (a signal for the program) or
``hangup`` (the client is gone: the program is killed). Pure: no I/O.
"""

from __future__ import annotations

import base64
import binascii
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from .codec import _validate, parse_json_object
from .errors import InvalidRequest, RunstreamError

STDIN_SCHEMA = "stdin.v1.json"
SCHEMA_NAME = "runstream.stdin.v1"
#: Most bytes one data item carries; longer input travels as several items.
MAX_DATA_BYTES = 64 * 1024

#: The signal names a client may send: Piston's list (``api/src/globals.js``), by number.
SIGNALS: tuple[str, ...] = (
    "SIGHUP", "SIGINT", "SIGQUIT", "SIGILL", "SIGTRAP", "SIGABRT", "SIGBUS", "SIGFPE",
    "SIGKILL", "SIGUSR1", "SIGSEGV", "SIGUSR2", "SIGPIPE", "SIGALRM", "SIGTERM",
    "SIGSTKFLT", "SIGCHLD", "SIGCONT", "SIGSTOP", "SIGTSTP", "SIGTTIN", "SIGTTOU",
    "SIGURG", "SIGXCPU", "SIGXFSZ", "SIGVTALRM", "SIGPROF", "SIGWINCH", "SIGIO", "SIGPWR",
    "SIGSYS", "SIGRTMIN", *(f"SIGRTMIN+{n}" for n in range(1, 16)),
    *(f"SIGRTMAX-{n}" for n in range(14, 0, -1)), "SIGRTMAX",
)
_SIGNALS = frozenset(SIGNALS)


class InvalidStdin(RunstreamError):
    """Bytes on the stdin topic that are not a stdin message of this schema."""


class StdinKind(enum.StrEnum):
    DATA = "data"
    EOF = "eof"
    SIGNAL = "signal"
    HANGUP = "hangup"


_KINDS = frozenset(k.value for k in StdinKind)


@dataclass(frozen=True, slots=True)
class StdinMessage:
    """One item of an execution's live stdin."""

    id: str
    seq: int
    kind: StdinKind
    data: bytes = b""
    signal: str | None = None


def is_signal(name: object) -> bool:
    """Whether ``name`` is one of the signal names a client may send."""
    return isinstance(name, str) and name in _SIGNALS


def data_items(exec_id: str, first_seq: int, data: bytes) -> list[StdinMessage]:
    """``data`` as items of at most :data:`MAX_DATA_BYTES`, numbered from ``first_seq``."""
    return [StdinMessage(exec_id, first_seq + n, StdinKind.DATA,
                         data[start:start + MAX_DATA_BYTES])
            for n, start in enumerate(range(0, len(data), MAX_DATA_BYTES))]


def stdin_doc(msg: StdinMessage) -> dict[str, Any]:
    doc: dict[str, Any] = {"schema": SCHEMA_NAME, "id": msg.id, "seq": msg.seq,
                           "type": str(msg.kind)}
    if msg.kind is StdinKind.DATA:
        try:
            doc["data"], doc["encoding"] = msg.data.decode("utf-8"), "utf8"
        except UnicodeDecodeError:
            doc["data"], doc["encoding"] = base64.b64encode(msg.data).decode("ascii"), "base64"
    elif msg.kind is StdinKind.SIGNAL:
        doc["signal"] = msg.signal
    return doc


def encode_stdin(msg: StdinMessage) -> bytes:
    return orjson.dumps(stdin_doc(msg))


def validate_stdin_doc(doc: Any) -> None:
    """Check a document against stdin.v1.json itself (tests, other producers)."""
    try:
        _validate(doc, STDIN_SCHEMA)
    except InvalidRequest as e:
        raise InvalidStdin(f"not a {SCHEMA_NAME} document: {e}") from e


def stdin_from_doc(doc: Mapping[str, Any]) -> StdinMessage:
    """Validate a parsed document (by hand, as the schema says) and build the message."""
    def bad(why: str) -> InvalidStdin:
        return InvalidStdin(f"not a {SCHEMA_NAME} document: {why}")

    if doc.get("schema") != SCHEMA_NAME:
        raise bad("schema: expected " + SCHEMA_NAME)
    exec_id, seq, kind = doc.get("id"), doc.get("seq"), doc.get("type")
    if not isinstance(exec_id, str) or not exec_id:
        raise bad("'id' must be a non-empty string")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise bad("'seq' must be an integer >= 0")
    if not isinstance(kind, str) or kind not in _KINDS:
        raise bad(f"type: {kind!r} is not one of data, eof, signal, hangup")
    what = StdinKind(kind)
    if what is StdinKind.DATA:
        return StdinMessage(exec_id, seq, what, data=_data(doc, bad))
    if what is StdinKind.SIGNAL:
        if not is_signal(doc.get("signal")):
            raise bad(f"signal: {doc.get('signal')!r} is not a signal name")
        return StdinMessage(exec_id, seq, what, signal=doc["signal"])
    return StdinMessage(exec_id, seq, what)


def _data(doc: Mapping[str, Any], bad: Any) -> bytes:
    text, encoding = doc.get("data"), doc.get("encoding")
    if not isinstance(text, str):
        raise bad("'data' must be a string")
    if encoding == "utf8":
        data = text.encode("utf-8", "surrogatepass")
    elif encoding == "base64":
        try:
            data = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as e:
            raise bad(f"data: not valid base64 ({e})") from e
    else:
        raise bad(f"encoding: {encoding!r} is not utf8 or base64")
    if len(data) > MAX_DATA_BYTES:
        raise bad(f"data: more than {MAX_DATA_BYTES} bytes")
    return data


def decode_stdin(raw: bytes) -> StdinMessage:
    """Bytes from the stdin topic to a validated message."""
    try:
        doc = parse_json_object(raw)
    except InvalidRequest as e:
        raise InvalidStdin(f"not a {SCHEMA_NAME} document: {e.message}") from e
    return stdin_from_doc(doc)
