"""braindrill's API, ``POST /lang/{language}``, through the real pipeline: every outcome
answers what braindrill answered (its sentences), with the verdict and id in headers."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.system import System

pytestmark = [pytest.mark.kafka, pytest.mark.sandbox]

TIMEOUT = "The process was aborted because it exceeded the timeout"
MEMORY = "The process was aborted because it exceeded the memory usage"


async def post(client: httpx.AsyncClient, language: str, code: str | bytes,
               content_type: str | None = None) -> httpx.Response:
    headers = {"Content-Type": content_type} if content_type else {}
    return await client.post(f"/lang/{language}", content=code, headers=headers)


def verdict(r: httpx.Response) -> str:
    assert r.headers["x-runstream-id"], r.headers
    return r.headers["x-runstream-status"]


async def test_ok_is_stdout(system: System, client: httpx.AsyncClient) -> None:
    r = await post(client, "python", 'import sys\nprint("out")\nprint("err", file=sys.stderr)')
    assert (r.status_code, r.text, verdict(r)) == (200, "out\n", "ok")
    assert r.headers["content-type"].startswith("text/plain")


async def test_stderr_when_stdout_is_empty(system: System, client: httpx.AsyncClient) -> None:
    r = await post(client, "python", 'import sys\nprint("only on stderr", file=sys.stderr)')
    assert (r.status_code, r.text, verdict(r)) == (200, "only on stderr\n", "ok")


async def test_runtime_error_is_the_traceback(system: System, client: httpx.AsyncClient) -> None:
    r = await post(client, "python", "print(1 // 0)")
    assert r.status_code == 200 and verdict(r) == "runtime_error"
    assert "ZeroDivisionError" in r.text


async def test_endless_loop_is_braindrills_timeout_within_two_seconds(
        system: System, client: httpx.AsyncClient) -> None:
    t0 = time.monotonic()
    r = await post(client, "python", "while True: pass")
    elapsed = time.monotonic() - t0
    assert (r.status_code, r.text, verdict(r)) == (422, TIMEOUT, "time_limit_exceeded")
    # braindrill's 2 s, plus the pipeline and the sandbox's start and kill.
    assert 2.0 <= elapsed < 4.0, elapsed


async def test_memory_bomb_is_braindrills_memory_sentence(
        system: System, client: httpx.AsyncClient) -> None:
    r = await post(client, "python", 'x = "x" * (200 * 1024 * 1024)\nprint(len(x))')
    assert (r.status_code, r.text, verdict(r)) == (422, MEMORY, "memory_limit_exceeded")


async def test_endless_output_is_the_output_limit(system: System,
                                                  client: httpx.AsyncClient) -> None:
    r = await post(client, "python", 'while True: print("x" * 1000)')
    assert r.status_code == 422 and verdict(r) == "output_limit_exceeded"
    assert r.text == "The process was aborted because it exceeded the output limit"


async def test_compile_error_carries_the_compilers_message(
        system: System, client: httpx.AsyncClient) -> None:
    r = await post(client, "c", "int main(void) { return undeclared; }")
    assert r.status_code == 422 and verdict(r) == "compile_error"
    assert r.text.startswith("The code did not compile:\n")
    assert "undeclared" in r.text and "error" in r.text


async def test_unsupported_language_is_braindrills_sentence(
        system: System, client: httpx.AsyncClient) -> None:
    r = await post(client, "klingon", "Qapla'")
    assert (r.status_code, r.text) == (400, "unsupported language")
    assert r.headers["content-type"].startswith("text/plain")
    assert "x-runstream-status" not in r.headers  # nothing ran: no verdict, no id


async def test_the_simulators_json_content_type_with_raw_code(
        system: System, client: httpx.AsyncClient) -> None:
    # braindrill's load simulator labels raw Python as application/json.
    r = await post(client, "python", "print('hello world')", "application/json")
    assert (r.status_code, r.text, verdict(r)) == (200, "hello world\n", "ok")
    r = await post(client, "python", "\nfor i in range(1, 4):\n    print(\"number: \" + str(i))\n",
                   "application/json")
    assert r.text == "number: 1\nnumber: 2\nnumber: 3\n"


async def test_non_utf8_output_is_the_programs_bytes(system: System,
                                                     client: httpx.AsyncClient) -> None:
    r = await post(client, "python", "import sys; sys.stdout.buffer.write(bytes([255, 254, 10]))")
    assert (r.status_code, r.content, verdict(r)) == (200, b"\xff\xfe\n", "ok")
