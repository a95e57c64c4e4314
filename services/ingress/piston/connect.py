"""Piston's interactive WebSocket protocol (``/api/v2/connect``), pure: frames and codes.

As Piston's ``api/src/api/v2.js`` speaks it (``compat/judge0-piston.md`` C.7):

- the client sends ``{"type":"init", ...the /execute fields...}`` within 1 s (else
  close 4001), then ``{"type":"data","stream":"stdin","data":...}`` and
  ``{"type":"signal","signal":"SIGINT"}``; runstream adds ``{"type":"eof"}``
  (the end of stdin; Piston has none, and ignores message types it does not know);
- the server sends ``runtime`` after init, ``stage`` at the start of each stage,
  ``data`` as the program writes, ``exit`` per stage, and closes 4999 "Job
  Completed"; a refusal is ``{"type":"error","message"}`` then close 4002.

:func:`parse` reads one client message; :class:`Conversation` turns the
execution's events (``schemas/events.py``) and its result into server frames.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field
from typing import Any

import orjson
from runstream.schemas.events import Event, EventType, output_bytes
from runstream.schemas.stdin import is_signal
from runstream.services.ingress.piston.response import phase_bytes, stage, unanswered

#: Piston closes a socket that sent no init within this long.
INIT_TIMEOUT_S = 1.0


@dataclass(frozen=True, slots=True)
class Close:
    """A close code and reason, as Piston's ``ws.close(code, reason)``."""

    code: int
    reason: str


ALREADY_INITIALIZED = Close(4000, "Already Initialized")
INIT_TIMEOUT = Close(4001, "Initialization Timeout")
NOTIFIED_ERROR = Close(4002, "Notified Error")
NOT_INITIALIZED = Close(4003, "Not yet initialized")
ONLY_STDIN = Close(4004, "Can only write to stdin")
INVALID_SIGNAL = Close(4005, "Invalid signal")
JOB_COMPLETED = Close(4999, "Job Completed")


# -- client to server ------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Init:
    """``init``: the /execute fields (``stdin`` is ignored, as on Piston)."""

    doc: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Stdin:
    data: bytes


@dataclass(frozen=True, slots=True)
class Signal:
    name: str


@dataclass(frozen=True, slots=True)
class EndOfInput:
    """runstream's ``{"type":"eof"}``: the program's stdin ends."""


@dataclass(frozen=True, slots=True)
class Ignored:
    """A message Piston ignores (a type it does not know)."""


@dataclass(frozen=True, slots=True)
class Refuse:
    """Close with ``close``; with a ``message``, send it as an ``error`` frame first."""

    close: Close
    message: str | None = None


Message = Init | Stdin | Signal | EndOfInput | Ignored | Refuse


def parse(raw: str | bytes, *, initialized: bool) -> Message:
    """One client message, as Piston reads it (its checks in its order)."""
    try:
        msg = orjson.loads(raw)
    except orjson.JSONDecodeError as e:  # Piston: JSON.parse throws -> error, 4002
        return Refuse(NOTIFIED_ERROR, f"the message is not valid JSON: {e}")
    if not isinstance(msg, dict):
        return Ignored()
    kind = msg.get("type")
    if kind == "init":
        return Refuse(ALREADY_INITIALIZED) if initialized else Init(msg)
    if kind not in ("data", "signal", "eof"):
        return Ignored()
    if not initialized:
        return Refuse(NOT_INITIALIZED)
    if kind == "data":
        if msg.get("stream") != "stdin":
            return Refuse(ONLY_STDIN)
        data = msg.get("data")
        if not isinstance(data, str):
            return Refuse(NOTIFIED_ERROR, "data must be a string")
        return Stdin(data.encode("utf-8", "replace"))
    if kind == "signal":
        name = msg.get("signal")
        return Signal(name) if is_signal(name) and isinstance(name, str) else Refuse(
            INVALID_SIGNAL)
    return EndOfInput()


# -- server to client ------------------------------------------------------------

def runtime(language: str, version: str, exec_id: str) -> dict[str, Any]:
    """Piston's ``runtime`` frame, plus the execution ``id`` (``GET /v1/executions/{id}``)."""
    return {"type": "runtime", "language": language, "version": version, "id": exec_id}


def error(message: str) -> dict[str, Any]:
    return {"type": "error", "message": message}


def frame_text(frame: dict[str, Any]) -> str:
    return orjson.dumps(frame).decode()


class WorkerLost(Exception):
    """The execution started over (a worker died mid-run): live input cannot be replayed."""


@dataclass
class _Stream:
    next: int = 0  # the next byte position expected
    decoder: Any = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")(
        errors="replace"))


class Conversation:
    """The frames of one session's execution, from its events, then its result.

    Stages go forward only (compile, then run); output is sent once per byte
    position; what the events missed at the end of a stream (events may be
    lost, and they stop at their bounds) is sent from the result.
    """

    def __init__(self, *, compiled: bool) -> None:
        self.compiled = compiled
        self.attempt: str | None = None
        self.ended = False  # the worker's own "finished" event was read
        self._stage: str | None = None
        self._exited: set[str] = set()
        self._streams: dict[tuple[str, str], _Stream] = {}

    @property
    def started(self) -> bool:
        """A worker's event was read."""
        return self.attempt is not None

    def on_event(self, event: Event) -> list[dict[str, Any]]:
        """Frames for one event; raises WorkerLost when the execution started over."""
        if event.attempt is None:
            return []  # queued
        if self.attempt is None:
            self.attempt = event.attempt
        elif event.attempt != self.attempt:
            raise WorkerLost("the worker running the program stopped and it was started "
                             "again elsewhere; its live input cannot be replayed")
        d = event.details
        if event.type is EventType.STARTED:
            return self._enter("compile" if self.compiled else "run")
        if event.type is EventType.COMPILE:
            frames = self._enter("compile")
            frames += self._flush("compile")
            sig = d.get("signal")
            frames += self._exit("compile", None if sig else d.get("exit_code"), sig)
            if d.get("status") == "ok":
                frames += self._enter("run")
            return frames
        if event.type in (EventType.STDOUT, EventType.STDERR):
            phase = str(d.get("phase"))
            frames = self._enter(phase)
            position = d.get("position")
            return frames + self._data(phase, str(event.type), output_bytes(event),
                                       position if isinstance(position, int) else None)
        if event.type is EventType.FINISHED:
            self.ended = True
        return []

    def on_result(self, doc: dict[str, Any]) -> tuple[list[dict[str, Any]], Close]:
        """The last frames, from the stored result, and how to close."""
        refused = unanswered(doc)
        if refused is not None:
            return [error(refused[1])], NOTIFIED_ERROR
        status = str(doc.get("status"))
        frames: list[dict[str, Any]] = []
        compile_doc = doc.get("compile")
        if self.compiled and isinstance(compile_doc, dict):
            frames += self._finish("compile", compile_doc,
                                   status if status == "compile_error" else None)
        if status != "compile_error":
            run_doc = doc.get("run")
            frames += self._finish("run", run_doc if isinstance(run_doc, dict) else {}, status)
        return frames, JOB_COMPLETED

    # -- the parts -------------------------------------------------------------
    def _enter(self, name: str) -> list[dict[str, Any]]:
        order = ("compile", "run")
        if name not in order or (self._stage is not None
                                 and order.index(name) <= order.index(self._stage)):
            return []
        self._stage = name
        return [{"type": "stage", "stage": name}]

    def _exit(self, name: str, code: Any, sig: Any) -> list[dict[str, Any]]:
        if self._stage != name or name in self._exited:
            return []  # a stage already left (its exit was lost) is not reported late
        self._exited.add(name)
        return [{"type": "exit", "stage": name, "code": code, "signal": sig}]

    def _data(self, phase: str, stream: str, data: bytes,
              position: int | None) -> list[dict[str, Any]]:
        if self._stage != phase:
            return []  # output of a stage already left
        s = self._streams.setdefault((phase, stream), _Stream())
        start = s.next if position is None else position
        if start + len(data) <= s.next:
            return []  # a repeat
        if start < s.next:
            data = data[s.next - start:]
            start = s.next
        s.next = start + len(data)
        text = s.decoder.decode(data)
        return [{"type": "data", "stream": stream, "data": text}] if text else []

    def _flush(self, phase: str) -> list[dict[str, Any]]:
        frames = []
        for stream in ("stdout", "stderr"):
            s = self._streams.get((phase, stream))
            text = s.decoder.decode(b"", final=True) if s is not None else ""
            if text:
                frames.append({"type": "data", "stream": stream, "data": text})
        return frames

    def _finish(self, phase: str, phase_doc: dict[str, Any],
                verdict: str | None) -> list[dict[str, Any]]:
        frames = self._enter(phase)
        for stream in ("stdout", "stderr"):
            full = phase_bytes(phase_doc, stream)
            known = self._streams.get((phase, stream))
            if len(full) > (known.next if known is not None else 0):
                frames += self._data(phase, stream, full[known.next if known else 0:],
                                     known.next if known else 0)
        frames += self._flush(phase)
        piston = stage(phase_doc, verdict)
        return frames + self._exit(phase, piston["code"], piston["signal"])
