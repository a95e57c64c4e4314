"""GET /v1/executions/{id}/events over real processes: live output, any ingress, bounds.

The system is the session's (two ingresses, two workers, bwrap, a real broker).
Streaming is proved by order, not by the clock: the first chunk of a program
that prints, sleeps and prints again arrives as its own event, while the
result does not exist yet (a GET at that moment answers 202), and before the
second chunk and ``finished``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from runstream.schemas.events import validate_event_doc

from tests.system import System

pytestmark = [pytest.mark.kafka, pytest.mark.sandbox]

STREAM_S = 60  # bound on reading one stream

PRINT_SLEEP_PRINT = ("import sys, time\nprint('first', flush=True)\ntime.sleep(2)\n"
                     "print('second', flush=True)\n")


async def sse(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """The messages of an SSE response: {"event", "id", "data" (parsed JSON)}."""
    current: dict[str, Any] = {}
    async for line in response.aiter_lines():
        if not line:
            if "event" in current:
                yield current
            current = {}
            continue
        if line.startswith(":"):
            continue  # a comment: keep-alive
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            current["data"] = orjson.loads(value)
            validate_event_doc(current["data"])  # every event matches the schema file
        elif name == "id":
            current["id"] = int(value)
        elif name == "event":
            current["event"] = value


async def collect(client: httpx.AsyncClient, url: str,
                  headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Every message of a stream, until the server closes it (bounded)."""
    out = []
    async with asyncio.timeout(STREAM_S), client.stream("GET", url, headers=headers) as r:
        assert r.status_code == 200, await r.aread()
        assert r.headers["content-type"].startswith("text/event-stream")
        async for message in sse(r):
            out.append(message)
    return out


async def submit(client: httpx.AsyncClient, base: str, body: dict[str, Any]) -> str:
    exec_id = f"ev-{uuid.uuid4().hex[:10]}"
    r = await client.post(f"{base}/v1/executions", params={"wait": 0},
                          json={"id": exec_id, **body})
    assert r.status_code == 202, r.text
    return exec_id


def output(events: list[dict[str, Any]], stream: str = "stdout") -> str:
    return "".join(m["data"]["data"] for m in events if m["event"] == stream)


@pytest.mark.parametrize("reader", [0, 1], ids=["same-ingress", "other-ingress"])
async def test_output_arrives_while_the_program_runs_on_any_ingress(
        system: System, reader: int) -> None:
    async with httpx.AsyncClient(timeout=30) as c:
        exec_id = await submit(c, system.urls[0], {"language": "python",
                                                   "source": PRINT_SLEEP_PRINT})
        seen: list[dict[str, Any]] = []
        pending_at_first_chunk = None
        url = f"{system.urls[reader]}/v1/executions/{exec_id}/events"
        async with asyncio.timeout(STREAM_S), c.stream("GET", url) as r:
            assert r.status_code == 200
            async for message in sse(r):
                seen.append(message)
                if message["event"] == "stdout" and pending_at_first_chunk is None:
                    got = await c.get(f"{system.urls[0]}/v1/executions/{exec_id}")
                    pending_at_first_chunk = got.status_code
    kinds = [m["event"] for m in seen]
    assert kinds[-1] == "finished" and kinds.count("finished") == 1, kinds
    assert "started" in kinds and kinds.index("started") < kinds.index("stdout")
    chunks = [m for m in seen if m["event"] == "stdout"]
    # The first line is its own chunk, sent while the program slept: the result
    # did not exist yet when it arrived.
    assert [m["data"]["data"] for m in chunks] == ["first\n", "second\n"]
    assert pending_at_first_chunk == 202
    assert [m["data"]["position"] for m in chunks] == [0, 6]
    ids = [m["id"] for m in seen if "id" in m]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    finished = seen[-1]["data"]
    assert finished["status"] == "ok" and finished["result"]["id"] == exec_id
    assert finished["result"]["run"]["stdout"] == "first\nsecond\n"
    assert all(m["data"]["id"] == exec_id for m in seen)


# A stream that starts after the result is stored gets only "finished" (by design), so
# each execution must still be going when its stream starts: the good program sleeps
# after its output, the bad one takes the compiler about a second before its error.
SLOW_TO_COMPILE = "".join(f"int f{n}(int x) {{ return x * {n} + {n % 7}; }}\n"
                          for n in range(12000))


async def test_a_compiled_language_reports_its_compile_step(system: System) -> None:
    async with httpx.AsyncClient(timeout=30) as c:
        ok = await submit(c, system.url, {"language": "c", "source":
                                          "#include <stdio.h>\n#include <unistd.h>\n"
                                          'int main(void){puts("hi"); fflush(stdout); sleep(1);}'})
        bad = await submit(c, system.url, {"language": "c",
                                           "source": SLOW_TO_COMPILE + "int main(void) { oops }"})
        good_events, bad_events = await asyncio.gather(
            collect(c, f"{system.url}/v1/executions/{ok}/events"),
            collect(c, f"{system.urls[1]}/v1/executions/{bad}/events"))
    kinds = [m["event"] for m in good_events]
    assert kinds.index("started") < kinds.index("compile") < kinds.index("stdout") \
        < kinds.index("finished"), kinds
    compile_event = next(m["data"] for m in good_events if m["event"] == "compile")
    assert (compile_event["status"], compile_event["exit_code"]) == ("ok", 0)
    assert output(good_events) == "hi\n" and good_events[-1]["data"]["status"] == "ok"

    compile_event = next(m["data"] for m in bad_events if m["event"] == "compile")
    assert compile_event["status"] == "compile_error" and compile_event["exit_code"] != 0
    diagnostics = [m["data"] for m in bad_events if m["event"] == "stderr"]
    assert diagnostics and all(d["phase"] == "compile" for d in diagnostics)
    assert "oops" in output(bad_events, "stderr")
    assert bad_events[-1]["data"]["status"] == "compile_error"
    assert [m["event"] for m in bad_events].count("stdout") == 0


async def test_an_execution_finished_before_the_stream_gets_finished_at_once(
        system: System) -> None:
    async with httpx.AsyncClient(timeout=60) as c:
        exec_id = f"ev-done-{uuid.uuid4().hex[:8]}"
        # A synchronous POST that asks for its events (a plain one writes none: see
        # test_events_requested.py).
        r = await c.post(f"{system.url}/v1/executions", json={
            "id": exec_id, "events": True, "language": "python", "source": "print(42)"})
        assert r.status_code == 200, r.text
        for url in system.urls:
            events = await collect(c, f"{url}/v1/executions/{exec_id}/events")
            # What every ingress kept of the run, in order, then the result: a late
            # subscriber sees the same story as an early one.
            assert [m["event"] for m in events] == ["queued", "started", "stdout", "finished"]
            assert output(events) == "42\n"
            assert events[-1]["data"]["result"] == r.json()


async def test_resuming_with_last_event_id_skips_what_was_seen(system: System) -> None:
    async with httpx.AsyncClient(timeout=30) as c:
        exec_id = await submit(c, system.url, {"language": "python",
                                               "source": PRINT_SLEEP_PRINT})
        url = f"{system.urls[1]}/v1/executions/{exec_id}/events"
        first: dict[str, Any] | None = None
        async with asyncio.timeout(STREAM_S), c.stream("GET", url) as r:
            async for message in sse(r):
                if message["event"] == "stdout":
                    first = message
                    break  # the client goes away after the first line
        assert first is not None and first["data"]["data"] == "first\n"
        rest = await collect(c, url, headers={"Last-Event-ID": str(first["id"])})
    assert all(m["id"] > first["id"] for m in rest if "id" in m)
    assert output(rest) == "second\n" and rest[-1]["event"] == "finished"


async def test_an_unknown_id_is_404_problem_json(system: System) -> None:
    async with httpx.AsyncClient(timeout=30) as c:
        r = await c.get(f"{system.urls[1]}/v1/executions/never-{uuid.uuid4().hex}/events")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    assert "no execution" in r.json()["detail"]


async def test_an_output_flood_yields_bounded_events_and_a_normal_result(
        system: System) -> None:
    async with httpx.AsyncClient(timeout=30) as c:
        exec_id = await submit(c, system.url, {"language": "bash", "source": "yes",
                                               "limits": {"output_kb": 64}})
        events = await collect(c, f"{system.urls[1]}/v1/executions/{exec_id}/events")
        stored = (await c.get(f"{system.url}/v1/executions/{exec_id}")).json()
    chunks = [m["data"] for m in events if m["event"] == "stdout"]
    streamed = output(events)
    assert len(streamed) <= 64 * 1024 and set(streamed) == {"y", "\n"}
    # 64 KiB in chunks of at most 16 KiB: a handful of events, not one per write
    assert 1 <= len(chunks) <= 64 // 16 + 2, len(chunks)
    assert all(len(c["data"]) <= 16 * 1024 for c in chunks)
    assert chunks[-1].get("truncated") is True
    finished = events[-1]["data"]
    assert finished["status"] == "output_limit_exceeded"
    assert finished["result"] == stored and stored["run"]["stdout_truncated"] is True
