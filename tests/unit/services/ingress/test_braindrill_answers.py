"""braindrill's answers to every verdict (services/ingress/braindrill.py), without I/O."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from runstream.schemas.models import Status
from runstream.services.ingress import braindrill


def phase(stdout: str = "", stderr: str = "", **extra: Any) -> dict[str, Any]:
    return {"stdout": stdout, "stderr": stderr, "exit_code": 0, "signal": None,
            "wall_ms": 1, "cpu_ms": 1, "memory_kb": 1, **extra}


def doc(status: str, **fields: Any) -> dict[str, Any]:
    return {"schema": "runstream.result.v1", "id": "x", "status": status, **fields}


def test_every_verdict_has_a_status() -> None:
    assert set(braindrill.STATUS) == {s.value for s in Status}


def test_ok_is_stdout() -> None:
    a = braindrill.answer(doc("ok", run=phase("hi\n", "noise\n")))
    assert a == braindrill.Answer(200, b"hi\n")


def test_stderr_when_stdout_is_empty() -> None:
    a = braindrill.answer(doc("ok", run=phase("", "only stderr\n")))
    assert a == braindrill.Answer(200, b"only stderr\n")


def test_runtime_error_is_the_programs_words() -> None:
    a = braindrill.answer(doc("runtime_error", run=phase("", "Traceback…\nZeroDivisionError\n",
                                                             exit_code=1)))
    assert a.status == 200 and a.body == "Traceback…\nZeroDivisionError\n".encode()


def test_wrong_answer_shows_the_first_tests_output() -> None:
    a = braindrill.answer(doc("wrong_answer", run=None,
                              tests=[{"index": 0, "status": "wrong_answer", "run": phase("5\n")}]))
    assert a == braindrill.Answer(200, b"5\n")


def test_empty_output_is_an_empty_body() -> None:
    assert braindrill.answer(doc("ok", run=phase())) == braindrill.Answer(200, b"")


def test_timeout_is_braindrills_sentence() -> None:
    a = braindrill.answer(doc("time_limit_exceeded", run=phase("partial", time_limit="wall")))
    assert a == braindrill.Answer(
        422, b"The process was aborted because it exceeded the timeout")


def test_memory_is_braindrills_sentence() -> None:
    a = braindrill.answer(doc("memory_limit_exceeded", run=phase("", "MemoryError",
                                                                  oom_killed=True)))
    assert a == braindrill.Answer(
        422, b"The process was aborted because it exceeded the memory usage")


def test_output_limit_is_a_sentence() -> None:
    a = braindrill.answer(doc("output_limit_exceeded", run=phase("x" * 100,
                                                                  stdout_truncated=True)))
    assert a == braindrill.Answer(422, braindrill.OUTPUT_LIMIT.encode())
    assert b"output limit" in a.body


def test_compile_error_carries_the_compilers_message() -> None:
    a = braindrill.answer(doc("compile_error", run=None,
                              compile=phase("", "main.c:1: error: expected ';'\n", exit_code=1)))
    assert a.status == 422
    assert a.body == b"The code did not compile:\nmain.c:1: error: expected ';'\n"


def test_compile_error_with_the_message_on_stdout() -> None:
    a = braindrill.answer(doc("compile_error", compile=phase("error TS2304\n", "", exit_code=2)))
    assert a.body.endswith(b"error TS2304\n")


def test_compile_error_without_output_is_the_sentence_alone() -> None:
    a = braindrill.answer(doc("compile_error", compile=phase()))
    assert a.body == b"The code did not compile"


def test_expired_says_why() -> None:
    a = braindrill.answer(doc("expired", message="the deadline 2030-01-01 passed before it ran"))
    assert a.status == 503
    assert a.body.startswith(braindrill.EXPIRED.encode()) and b"deadline 2030" in a.body


def test_rejected_carries_the_message() -> None:
    a = braindrill.answer(doc("rejected", message="files do not fit the workspace"))
    assert a == braindrill.Answer(422, b"The code was not run:\nfiles do not fit the workspace")


def test_internal_error_carries_the_message() -> None:
    a = braindrill.answer(doc("internal_error", message="the sandbox failed: boom"))
    assert a.status == 500
    assert a.body == b"The code could not be run because of an internal error:\n" \
                     b"the sandbox failed: boom"


def test_an_unknown_verdict_is_an_internal_error() -> None:
    a = braindrill.answer(doc("mystery"))
    assert a.status == 500 and b"mystery" in a.body


def test_unsupported_language() -> None:
    assert braindrill.unsupported() == braindrill.Answer(400, b"unsupported language")


@pytest.mark.parametrize("status", ["ok", "runtime_error"])
def test_base64_output_is_decoded_to_bytes(status: str) -> None:
    raw = b"\xff\xfe not utf-8\n"
    a = braindrill.answer(doc(status, run=phase(base64.b64encode(raw).decode(), "",
                                                encoding="base64")))
    assert a.body == raw


def test_base64_stderr_when_stdout_is_empty() -> None:
    raw = b"\x80 err"
    a = braindrill.answer(doc("runtime_error", run=phase(
        "", base64.b64encode(raw).decode(), encoding="base64")))
    assert a.body == raw


def test_base64_compiler_message() -> None:
    raw = b"bad byte \xc3\x28"
    a = braindrill.answer(doc("compile_error", compile=phase(
        "", base64.b64encode(raw).decode(), encoding="base64")))
    assert a.body.endswith(raw)


def test_corrupt_base64_shows_what_arrived() -> None:
    a = braindrill.answer(doc("ok", run=phase("not base64!", "", encoding="base64")))
    assert a.body == b"not base64!"
