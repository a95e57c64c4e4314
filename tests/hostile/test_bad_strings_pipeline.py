"""Bad strings through the whole pipeline, on both sandbox backends (issue 23).

A NUL (or another control character) in a string that reaches a process is
refused at intake: over HTTP with 422 naming the field, and on the requests
topic, for a record another team produced straight onto it, with a ``rejected``
result that says why. Before, ``args: ["a\\u0000b"]`` was accepted, went through
Kafka and came back ``internal_error`` with "ValueError('embedded null byte')".
The control characters an argument may hold (tab, newline, carriage
return) reach the program's argv exactly.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from tests.system import System

pytestmark = [pytest.mark.kafka, pytest.mark.sandbox]

BACKENDS = [pytest.param("bwrap", id="bwrap"),
            pytest.param("docker", id="docker", marks=pytest.mark.docker)]

# (a change to a python request, the field named, the character named)
BAD: list[tuple[dict[str, Any], str, str]] = [
    ({"args": ["a\0b"]}, "args.0", "U+0000 (NUL)"),
    ({"args": ["ok", "\x1b[2J"]}, "args.1", "U+001B (ESC)"),
    ({"source": None, "files": [{"name": "main.py\n", "content": "print(1)"}]},
     "files.0.name", "U+000A (newline)"),
    ({"language": "python\0"}, "language", "U+0000 (NUL)"),
    ({"version": "3\0"}, "version", "U+0000 (NUL)"),
]


def python_request(change: dict[str, Any], **extra: Any) -> dict[str, Any]:
    doc = {"language": "python", "source": "print(1)", **change, **extra}
    return {k: v for k, v in doc.items() if v is not None}


@pytest.fixture
def running(backend: str, request: pytest.FixtureRequest) -> Iterator[System]:
    yield request.getfixturevalue("system" if backend == "bwrap" else "docker_system")


@pytest.mark.parametrize("backend", BACKENDS)
def test_over_http_a_bad_string_is_422_naming_the_field(running: System) -> None:
    with httpx.Client(base_url=running.url, timeout=60) as c:
        for change, field, words in BAD:
            r = c.post("/v1/executions", content=orjson.dumps(python_request(change)))
            assert r.status_code == 422, (change, r.text)
            assert r.headers["content-type"] == "application/problem+json"
            assert r.json()["field"] == field and words in r.json()["detail"], r.json()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_on_the_requests_topic_a_bad_string_is_rejected_with_the_reason(
        running: System) -> None:
    env = running.env
    producer = AIOKafkaProducer(bootstrap_servers=env["RUNSTREAM_BOOTSTRAP_SERVERS"],
                                acks="all")
    ids = [f"bad-{uuid.uuid4().hex}" for _ in BAD]
    await producer.start()
    try:
        for exec_id, (change, _, _) in zip(ids, BAD, strict=True):
            await producer.send_and_wait(env["RUNSTREAM_REQUESTS_TOPIC"],
                                         orjson.dumps(python_request(change, id=exec_id)),
                                         key=exec_id.encode())
    finally:
        await producer.stop()
    async with httpx.AsyncClient(base_url=running.url, timeout=60) as c:
        for exec_id, (_, field, words) in zip(ids, BAD, strict=True):
            doc = (await c.get(f"/v1/executions/{exec_id}?wait=30")).json()
            assert doc["status"] == "rejected", doc
            assert doc["message"].startswith(f"{field}: contains the control character "
                                             f"{words}"), doc
        # ... and the worker goes on running what comes next.
        ok = await c.post("/v1/executions", json={"language": "python",
                                                  "source": "print(6*7)"})
        assert ok.json()["status"] == "ok" and ok.json()["run"]["stdout"] == "42\n"


@pytest.mark.parametrize("backend", BACKENDS)
def test_tab_newline_and_carriage_return_reach_the_programs_argv_exactly(
        running: System) -> None:
    args = ["a\tb", "line 1\nline 2", "cr\r", "日本 $(x) `y`"]
    with httpx.Client(base_url=running.url, timeout=90) as c:
        r = c.post("/v1/executions", json={
            "language": "python", "source": "import sys, json\nprint(json.dumps(sys.argv[1:]))",
            "args": args})
    doc = r.json()
    assert doc["status"] == "ok", doc
    assert orjson.loads(doc["run"]["stdout"]) == args
