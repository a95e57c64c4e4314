"""Strings that reach a process: refused at intake with a control character (issue 23).

One set of rules, written in ``schemas/request.v1.json`` and applied by the codec,
holds every front end: the native API (422 problem+json naming the field), Judge0
(its 422 errors hash), Piston (its 400 ``{"message"}``), braindrill (its
"unsupported language") and the requests topic (``rejected``: see
tests/hostile/test_bad_strings_pipeline.py, on both sandbox backends). What a program
reads (stdin, file contents) may hold any byte.
"""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from runstream.schemas.codec import check_request, load_schema, request_from_doc
from runstream.schemas.errors import InvalidRequest
from runstream.schemas.models import Callback, ExecutionRequest, SourceFile
from runstream.services.settings import Settings

from tests.unit.services.ingress.test_ingress_app import PROBLEM, FakeChannel, in_process

HELLO: dict[str, Any] = {"language": "python", "source": "print(1)"}

# (a change to the request, the field named, the character named)
BAD: list[tuple[dict[str, Any], str, str]] = [
    ({"args": ["a\0b"]}, "args.0", "U+0000 (NUL) at position 1"),
    ({"args": ["ok", "\x1b[31m"]}, "args.1", "U+001B (ESC) at position 0"),
    ({"args": ["\t\x7f"]}, "args.0", "U+007F (DEL) at position 1"),
    ({"args": ["\x01"]}, "args.0", "U+0001 at position 0"),
    ({"language": "python\0"}, "language", "U+0000 (NUL) at position 6"),
    ({"language": "python\n"}, "language", "U+000A (newline) at position 6"),
    ({"version": "3\t"}, "version", "U+0009 (tab) at position 1"),
    ({"version": "3\x85"}, "version", "U+0085 at position 1"),
    ({"source": None, "files": [{"name": "main.py\n", "content": "x"}]}, "files.0.name",
     "U+000A (newline) at position 7"),
    ({"source": None, "files": [{"name": "a\0.py", "content": "x"}]}, "files.0.name",
     "U+0000 (NUL) at position 1"),
    ({"callback": "https://example.com/\0"}, "callback", "U+0000 (NUL)"),
    ({"callback": {"url": "https://example.com/\r\nX-Evil: 1"}}, "callback.url",
     "U+000D (carriage return)"),
    ({"id": "abc\n"}, "id", "U+000A (newline) at position 3"),
    ({"reply_to": {"topic": "replies\n"}}, "reply_to.topic", "U+000A (newline)"),
    # A judge program is a program too (issue 24): its language and version reach a process.
    ({"tests": [{"stdin": "", "expected_output": ""}],
      "checker": {"language": "py\0thon", "source": "print(1)"}},
     "checker.language", "U+0000 (NUL) at position 2"),
    ({"tests": [{"stdin": "", "expected_output": ""}],
      "interactor": {"language": "python", "version": "3\n", "source": "print(1)"}},
     "interactor.version", "U+000A (newline) at position 1"),
]


def doc_with(change: dict[str, Any]) -> dict[str, Any]:
    doc = {**HELLO, **change}
    return {k: v for k, v in doc.items() if v is not None}


@pytest.mark.parametrize(("change", "field", "words"), BAD)
def test_a_control_character_is_refused_naming_the_field_and_the_character(
        change: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(InvalidRequest) as e:
        request_from_doc(doc_with(change))
    assert e.value.field == field
    assert e.value.message.startswith(f"{field}: contains the control character {words}")
    assert len(e.value.message) < 200


def test_arguments_keep_tab_newline_and_carriage_return_and_any_other_text() -> None:
    args = ["a\tb", "line 1\nline 2\r\n", "é ü 日本 \u200b", "$(rm -rf /); `x`", ""]
    assert request_from_doc({**HELLO, "args": args}).args == tuple(args)


def test_what_the_program_reads_may_hold_any_byte() -> None:
    raw = bytes(range(256))
    req = request_from_doc({
        "language": "python", "stdin": "\0\x01\x1b\x7f",
        "files": [{"name": "main.py", "content": "print(1)\0"},
                  {"name": "data.bin", "content": base64.b64encode(raw).decode(),
                   "encoding": "base64"}],
        "tests": [{"stdin": "\0", "expected_output": "\x1b", "name": "t\0"}],
        "metadata": {"note": "\0"}})
    assert req.stdin == b"\0\x01\x1b\x7f" and req.files[1].content == raw
    assert req.files[0].content.endswith(b"\0") and req.tests[0].stdin == b"\0"


def test_the_schema_says_the_rules_so_other_producers_see_them() -> None:
    props = load_schema("request.v1.json")["properties"]
    patterns = {
        "language": props["language"]["pattern"],
        "version": props["version"]["pattern"],
        "args": props["args"]["items"]["pattern"],
        "files.name": props["files"]["items"]["properties"]["name"]["pattern"],
        "callback": props["callback"]["pattern"],
        "callback.url": props["callback"]["properties"]["url"]["pattern"],
    }
    for where, pattern in patterns.items():
        assert re.search(pattern, "http://a\0b") is None, where
    assert re.search(patterns["args"], "a\tb\nc\rd")
    assert re.search(patterns["language"], "c++") and re.search(patterns["version"], "3.11")


def test_a_request_built_in_code_is_held_to_the_same_rules() -> None:
    ok = ExecutionRequest(id="x", language="python", files=(SourceFile(None, b"\0"),),
                          args=("a\tb",), callback=Callback("https://example.com/"))
    check_request(ok)
    for bad, field in [
        (ExecutionRequest(id="x", language="python", files=(SourceFile(None, b""),),
                          args=("a\0b",)), "args.0"),
        (ExecutionRequest(id="x", language="python",
                          files=(SourceFile("m\n", b""),)), "files.0.name"),
        (ExecutionRequest(id="x", language="py\0", files=(SourceFile(None, b""),)),
         "language"),
        (ExecutionRequest(id="x", language="python", files=(SourceFile(None, b""),),
                          version="3\0"), "version"),
        (ExecutionRequest(id="x", language="python", files=(SourceFile(None, b""),),
                          callback=Callback("https://e.x/\0")), "callback.url"),
    ]:
        with pytest.raises(InvalidRequest) as e:
            check_request(bad)
        assert e.value.field == field and "control character" in e.value.message


# -- over HTTP, in-process (the real app, a fake request channel: nothing reaches Kafka) ---------
class ServingGateway(FakeChannel):
    """A fake request channel whose worker group serves python 3.11.2 (Piston selects runtimes)."""

    def language_versions(self) -> dict[str, list[str]]:
        return {"python": ["3.11.2"]}


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, ServingGateway]]:
    settings = Settings.from_env({}, index_dir=str(tmp_path), ingress_wait_s=2.0)
    gateway = ServingGateway(settings)
    async with in_process(settings, gateway) as c:
        yield c, gateway


@pytest.mark.parametrize(("change", "field", "words"), BAD)
async def test_native_api_answers_422_problem_naming_the_field(
        served: tuple[httpx.AsyncClient, ServingGateway], change: dict[str, Any], field: str,
        words: str) -> None:
    client, gateway = served
    r = await client.post("/v1/executions", content=orjson.dumps(doc_with(change)))
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == PROBLEM
    problem = r.json()
    assert problem["field"] == field and words in problem["detail"]
    assert problem["type"] == "https://runstream.dev/problems/invalid-request"
    assert gateway.sent == []  # refused before Kafka


async def test_judge0_answers_its_own_422_errors_hash(
        served: tuple[httpx.AsyncClient, ServingGateway]) -> None:
    client, gateway = served
    r = await client.post("/judge0/submissions", json={
        "source_code": "print(1)", "language_id": 71, "command_line_arguments": "a\u0001b c"})
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.json() == {"command_line_arguments": [
        "contains the control character U+0001 at position 1, which this field cannot "
        "carry"]}
    batch = await client.post("/judge0/submissions/batch", json={"submissions": [
        {"source_code": "print(1)", "language_id": 71, "command_line_arguments": "\u0000"}]})
    assert batch.status_code == 422 and list(batch.json()[0]) == ["command_line_arguments"]
    assert gateway.sent == []


@pytest.mark.parametrize(("url", "words"), [
    ("http://example.com/\u0000x", "U+0000 (NUL) at position 19"),
    ("http://example.com/\nx", "U+000A (newline) at position 19"),
    ("http://example.com/\r\nX-Evil: 1", "U+000D (carriage return) at position 19"),
])
async def test_judge0_answers_422_naming_callback_url(
        served: tuple[httpx.AsyncClient, ServingGateway], url: str, words: str) -> None:
    client, gateway = served
    hash_ = {"callback_url": [f"contains the control character {words}, which this field "
                              "cannot carry"]}
    bad = {"source_code": "print(1)", "language_id": 71, "callback_url": url}
    for path in ("/judge0/submissions", "/judge0/submissions?wait=true"):
        r = await client.post(path, json=bad)
        assert r.status_code == 422, r.text
        assert r.headers["content-type"].startswith("application/json")
        assert r.json() == hash_
    assert gateway.sent == []
    # In a batch, Judge0 answers each submission: the good one is queued, the bad one refused.
    batch = await client.post("/judge0/submissions/batch", json={"submissions": [
        {"source_code": "print(1)", "language_id": 71}, bad]})
    assert batch.status_code == 201, batch.text
    token, refused = batch.json()
    assert refused == hash_ and [r.id for r in gateway.sent] == [token["token"]]
    alone = await client.post("/judge0/submissions/batch", json={"submissions": [bad]})
    assert (alone.status_code, alone.json()) == (422, [hash_])
    assert len(gateway.sent) == 1


async def test_piston_answers_its_own_400_message(
        served: tuple[httpx.AsyncClient, ServingGateway]) -> None:
    client, gateway = served
    r = await client.post("/api/v2/execute", json={
        "language": "python", "version": "*", "files": [{"content": "print(1)"}],
        "args": ["fine", "a\u0000b"]})
    assert r.status_code == 400, r.text
    assert r.json() == {"message": "args.1: contains the control character U+0000 (NUL) at "
                                   "position 1, which this field cannot carry"}
    assert gateway.sent == []


@pytest.mark.parametrize(("change", "message"), [
    ({"language": "py\u0000thon"}, "language: contains the control character U+0000 (NUL) at "
                                   "position 2, which this field cannot carry"),
    # Trimmed by the runtime lookup, these ran as python before (the native API refuses them).
    ({"language": "python\n"}, "language: contains the control character U+000A (newline) "
                               "at position 6, which this field cannot carry"),
    ({"version": "*\t"}, "version: contains the control character U+0009 (tab) at position "
                         "1, which this field cannot carry"),
])
async def test_piston_answers_400_for_a_control_character_in_language_or_version(
        served: tuple[httpx.AsyncClient, ServingGateway], change: dict[str, Any],
        message: str) -> None:
    client, gateway = served
    r = await client.post("/api/v2/execute", json={
        "language": "python", "version": "*", "files": [{"content": "print(1)"}], **change})
    assert (r.status_code, r.json()) == (400, {"message": message}), r.text
    assert gateway.sent == []


@pytest.mark.parametrize("language", ["python%0A", "py%00thon", "python%09"])
async def test_braindrill_answers_unsupported_language_for_a_control_character(
        served: tuple[httpx.AsyncClient, ServingGateway], language: str) -> None:
    client, gateway = served
    r = await client.post(f"/lang/{language}", content=b"print(1)")
    assert (r.status_code, r.text) == (400, "unsupported language")
    assert r.headers["content-type"].startswith("text/plain")
    assert gateway.sent == []
