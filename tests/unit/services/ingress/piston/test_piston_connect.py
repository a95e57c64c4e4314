"""Piston's interactive WebSocket protocol, pure (services/ingress/piston/connect.py):
client messages and close codes as Piston's api/src/api/v2.js reads them, and the
frames a session sends from an execution's events and result."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from runstream.schemas import events
from runstream.schemas.models import PhaseResult
from runstream.services.ingress.piston import connect
from runstream.services.ingress.piston.connect import (
    Conversation,
    EndOfInput,
    Ignored,
    Init,
    Refuse,
    Signal,
    Stdin,
    WorkerLost,
    parse,
)

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def msg(**doc: Any) -> bytes:
    return orjson.dumps(doc)


def test_close_codes_and_reasons_are_pistons() -> None:
    assert [(c.code, c.reason) for c in (
        connect.ALREADY_INITIALIZED, connect.INIT_TIMEOUT, connect.NOTIFIED_ERROR,
        connect.NOT_INITIALIZED, connect.ONLY_STDIN, connect.INVALID_SIGNAL,
        connect.JOB_COMPLETED)] == [
        (4000, "Already Initialized"), (4001, "Initialization Timeout"),
        (4002, "Notified Error"), (4003, "Not yet initialized"),
        (4004, "Can only write to stdin"), (4005, "Invalid signal"), (4999, "Job Completed")]


def test_before_init() -> None:
    init = parse(msg(type="init", language="python", version="*"), initialized=False)
    assert isinstance(init, Init) and init.doc["language"] == "python"
    for kind in ("data", "signal", "eof"):
        assert parse(msg(type=kind, stream="stdin", data="x", signal="SIGINT"),
                     initialized=False) == Refuse(connect.NOT_INITIALIZED)
    # Piston ignores what it does not know (its switch has no default).
    assert parse(msg(type="ping"), initialized=False) == Ignored()
    assert parse(b"[1, 2]", initialized=False) == Ignored()
    bad = parse(b"{nope", initialized=False)
    assert isinstance(bad, Refuse) and bad.close == connect.NOTIFIED_ERROR
    assert bad.message and "not valid JSON" in bad.message


def test_after_init() -> None:
    assert parse(msg(type="init"), initialized=True) == Refuse(connect.ALREADY_INITIALIZED)
    assert parse(msg(type="data", stream="stdin", data="héllo\n"), initialized=True) == Stdin(
        "héllo\n".encode())
    assert parse(msg(type="data", stream="stdout", data="x"),
                 initialized=True) == Refuse(connect.ONLY_STDIN)
    assert parse(msg(type="data", data="x"), initialized=True) == Refuse(connect.ONLY_STDIN)
    refused = parse(msg(type="data", stream="stdin", data=5), initialized=True)
    assert isinstance(refused, Refuse) and refused.close == connect.NOTIFIED_ERROR
    for name in ("SIGKILL", "SIGINT", "SIGTERM", "SIGUSR1", "SIGRTMIN+3", "SIGRTMAX-14"):
        assert parse(msg(type="signal", signal=name), initialized=True) == Signal(name)
    for name in ("KILL", "sigint", "SIGFOO", 9, None, "SIGRTMIN+16"):
        assert parse(msg(type="signal", signal=name),
                     initialized=True) == Refuse(connect.INVALID_SIGNAL), name
    assert parse(msg(type="eof"), initialized=True) == EndOfInput()
    assert parse(b'{"type": "data", "stream": "stdin", "data": "x"}',
                 initialized=True) == Stdin(b"x")


def started(attempt: str = "a1") -> events.Event:
    return events.started("x", attempt, 0, NOW, worker="w", language="c", version="12")


def out(seq: int, data: bytes, position: int, *, stream: str = "stdout", phase: str = "run",
        attempt: str = "a1") -> events.Event:
    return events.output("x", attempt, seq, NOW, stream=stream, phase=phase, test=None,
                         data=data, position=position)


def run_doc(stdout: str = "", stderr: str = "", *, exit_code: int | None = 0,
            signal: str | None = None, **more: Any) -> dict[str, Any]:
    return {"stdout": stdout, "stderr": stderr, "encoding": "utf8", "exit_code": exit_code,
            "signal": signal, "wall_ms": 5, "cpu_ms": 1, "memory_kb": 100,
            "stdout_truncated": False, "stderr_truncated": False, "time_limit": None,
            "oom_killed": False, **more}


def test_an_interpreted_run_from_its_events_then_its_result() -> None:
    talk = Conversation(compiled=False)
    assert talk.on_event(events.queued("x", NOW, "python")) == []
    assert talk.on_event(started()) == [{"type": "stage", "stage": "run"}]
    assert talk.on_event(out(1, b"one\n", 0)) == [
        {"type": "data", "stream": "stdout", "data": "one\n"}]
    assert talk.on_event(out(2, b"oops\n", 0, stream="stderr")) == [
        {"type": "data", "stream": "stderr", "data": "oops\n"}]
    assert talk.on_event(out(1, b"one\n", 0)) == []  # a repeat
    assert talk.on_event(events.finished("x", "a1", 3, NOW, "ok")) == [] and talk.ended
    frames, close = talk.on_result({"status": "ok", "run": run_doc("one\n", "oops\n")})
    assert frames == [{"type": "exit", "stage": "run", "code": 0, "signal": None}]
    assert close == connect.JOB_COMPLETED


def test_a_compiled_run_reports_both_stages_in_order() -> None:
    talk = Conversation(compiled=True)
    assert talk.on_event(started()) == [{"type": "stage", "stage": "compile"}]
    compiled = PhaseResult(exit_code=0, wall_ms=300)
    assert talk.on_event(events.compiled("x", "a1", 1, NOW, compiled, failed=False)) == [
        {"type": "exit", "stage": "compile", "code": 0, "signal": None},
        {"type": "stage", "stage": "run"}]
    assert talk.on_event(out(2, b"hi\n", 0)) == [{"type": "data", "stream": "stdout",
                                                   "data": "hi\n"}]
    frames, close = talk.on_result({"status": "runtime_error",
                                    "compile": run_doc(), "run": run_doc(
                                        "hi\n", exit_code=None, signal="SIGKILL")})
    assert frames == [{"type": "exit", "stage": "run", "code": None, "signal": "SIGKILL"}]
    assert close == connect.JOB_COMPLETED


def test_a_failed_compile_ends_without_a_run_stage() -> None:
    talk = Conversation(compiled=True)
    talk.on_event(started())
    failed = PhaseResult(exit_code=1)
    assert talk.on_event(events.compiled("x", "a1", 1, NOW, failed, failed=True)) == [
        {"type": "exit", "stage": "compile", "code": 1, "signal": None}]
    frames, close = talk.on_result({"status": "compile_error",
                                    "compile": run_doc(stderr="main.c: error\n", exit_code=1)})
    # The compiler's message the events missed comes from the result, in its stage.
    assert frames == [{"type": "data", "stream": "stderr", "data": "main.c: error\n"}]
    assert close == connect.JOB_COMPLETED


def test_without_events_every_frame_comes_from_the_result() -> None:
    talk = Conversation(compiled=True)
    frames, close = talk.on_result({"status": "ok", "compile": run_doc(),
                                    "run": run_doc("a\n", "b\n")})
    assert frames == [
        {"type": "stage", "stage": "compile"},
        {"type": "exit", "stage": "compile", "code": 0, "signal": None},
        {"type": "stage", "stage": "run"},
        {"type": "data", "stream": "stdout", "data": "a\n"},
        {"type": "data", "stream": "stderr", "data": "b\n"},
        {"type": "exit", "stage": "run", "code": 0, "signal": None}]
    assert close == connect.JOB_COMPLETED


def test_output_the_events_lost_at_the_end_is_sent_from_the_result() -> None:
    talk = Conversation(compiled=False)
    talk.on_event(started())
    talk.on_event(out(1, b"abc", 0))
    frames, _ = talk.on_result({"status": "time_limit_exceeded", "run": run_doc(
        "abcdef", exit_code=None, signal="SIGKILL", time_limit="wall")})
    assert frames == [{"type": "data", "stream": "stdout", "data": "def"},
                      {"type": "exit", "stage": "run", "code": None, "signal": "SIGKILL"}]
    binary = Conversation(compiled=False)
    frames, _ = binary.on_result({"status": "ok", "run": {
        **run_doc(), "encoding": "base64", "stdout": base64.b64encode(b"\xff!").decode()}})
    assert frames[1] == {"type": "data", "stream": "stdout", "data": "\ufffd!"}


def test_a_character_split_across_chunks_is_sent_whole() -> None:
    talk = Conversation(compiled=False)
    talk.on_event(started())
    snow = "☃".encode()
    assert talk.on_event(out(1, b"x" + snow[:1], 0)) == [
        {"type": "data", "stream": "stdout", "data": "x"}]
    assert talk.on_event(out(2, snow[1:] + b"\n", 2)) == [
        {"type": "data", "stream": "stdout", "data": "☃\n"}]


def test_a_second_attempt_means_the_worker_was_lost() -> None:
    talk = Conversation(compiled=False)
    talk.on_event(started("a1"))
    with pytest.raises(WorkerLost):
        talk.on_event(started("b2"))


@pytest.mark.parametrize(("status", "says"), [
    ("expired", "the code was not run"), ("rejected", "the code was not run"),
    ("internal_error", "internal error")])
def test_a_result_that_is_no_answer_is_an_error_then_4002(status: str, says: str) -> None:
    frames, close = Conversation(compiled=False).on_result({"status": status,
                                                            "message": "why"})
    assert close == connect.NOTIFIED_ERROR
    assert frames[0]["type"] == "error" and says in frames[0]["message"]


def test_frames_are_compact_json() -> None:
    assert connect.frame_text(connect.runtime("python", "3.11.2", "e1")) == (
        '{"type":"runtime","language":"python","version":"3.11.2","id":"e1"}')
