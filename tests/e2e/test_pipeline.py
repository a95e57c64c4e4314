"""The whole pipeline over HTTP: real ingresses, real workers, real Kafka, real bwrap."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import orjson
import pytest
from runstream.schemas.codec import validate_result_doc

from tests.system import TEAM_REPLY_PARTITION, System, team_clients

pytestmark = [pytest.mark.kafka, pytest.mark.sandbox]

HELLO = {
    "python": 'print("hello, world")',
    "javascript": 'console.log("hello, world")',
    "java": 'public class Main { public static void main(String[] a) '
            '{ System.out.println("hello, world"); } }',
    "ruby": 'puts "hello, world"',
    "perl": 'print "hello, world\\n";',
    "php": '<?php echo "hello, world\\n";',
}

ECHO = {  # read one line of stdin, print it with the first argument
    "python": "import sys\nprint(sys.argv[1], input())",
    "javascript": "const l = require('fs').readFileSync(0, 'utf8').split('\\n')[0];"
                  "console.log(process.argv[2], l)",
    "java": "import java.util.Scanner; public class Main { public static void main(String[] a)"
            " { System.out.println(a[0] + \" \" + new Scanner(System.in).nextLine()); } }",
    "ruby": "puts \"#{ARGV[0]} #{STDIN.gets.chomp}\"",
    "perl": "my $l = <STDIN>; chomp $l; print \"$ARGV[0] $l\\n\";",
    "php": "<?php $l = trim(fgets(STDIN)); echo $argv[1] . \" \" . $l . \"\\n\";",
}


@pytest.mark.parametrize("language", sorted(HELLO))
async def test_hello_world_over_v1(client: httpx.AsyncClient, language: str) -> None:
    r = await client.post("/v1/executions", json={"language": language,
                                                  "source": HELLO[language]})
    assert r.status_code == 200, r.text
    doc = r.json()
    validate_result_doc(doc)
    assert doc["status"] == "ok", doc
    assert doc["run"]["stdout"] == "hello, world\n"
    assert doc["run"]["exit_code"] == 0
    assert doc["version"], doc
    assert doc["worker"].startswith("e2e-worker-")
    stamps = doc["timestamps"]
    assert stamps["enqueued"] <= stamps["started"] <= stamps["finished"]


@pytest.mark.parametrize("language", sorted(HELLO))
async def test_hello_world_over_braindrill_api(client: httpx.AsyncClient, language: str) -> None:
    r = await client.post(f"/lang/{language}", content=HELLO[language])
    assert r.status_code == 200, r.text
    assert r.text == "hello, world\n"
    assert r.headers["x-runstream-status"] == "ok"


async def test_braindrill_api_returns_stderr_when_stdout_is_empty(
        client: httpx.AsyncClient) -> None:
    r = await client.post("/lang/python", content="import sys; sys.exit('boom')")
    assert r.text == "boom\n"
    assert r.headers["x-runstream-status"] == "runtime_error"


@pytest.mark.parametrize("language", sorted(ECHO))
async def test_stdin_and_args_reach_the_program(client: httpx.AsyncClient, language: str) -> None:
    r = await client.post("/v1/executions", json={
        "language": language, "source": ECHO[language], "stdin": "from stdin\nignored\n",
        "args": ["arg-1"]})
    doc = r.json()
    assert doc["status"] == "ok", doc
    assert doc["run"]["stdout"] == "arg-1 from stdin\n"


async def test_work_spreads_over_both_workers(client: httpx.AsyncClient, system: System) -> None:
    async def one(n: int) -> str:
        r = await client.post("/v1/executions", json={"language": "python",
                                                      "source": f"print({n})"})
        doc = r.json()
        assert doc["status"] == "ok" and doc["run"]["stdout"] == f"{n}\n"
        return str(doc["worker"])

    ran = await asyncio.gather(*(one(n) for n in range(24)))
    assert set(ran) == set(system.workers), ran


async def test_two_ingresses_each_get_their_own_answers(system: System) -> None:
    async def one(url: str, marker: str) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=90) as c:
            r = await c.post("/v1/executions", json={"language": "python",
                                                     "source": f"print('{marker}')"})
            assert r.json()["run"]["stdout"] == f"{marker}\n"

    await asyncio.gather(*(one(url, f"{i}-{n}") for i, url in enumerate(system.urls)
                           for n in range(6)))


async def test_get_by_id_from_the_other_ingress(system: System) -> None:
    exec_id = f"get-{uuid.uuid4().hex}"
    async with httpx.AsyncClient(timeout=90) as c:
        r = await c.post(f"{system.urls[0]}/v1/executions",
                         json={"id": exec_id, "language": "python", "source": "print(5)"})
        assert r.json()["status"] == "ok"
        # The other instance learns it from the compacted results topic.
        got = await c.get(f"{system.urls[1]}/v1/executions/{exec_id}?wait=20")
        assert got.status_code == 200 and got.json()["run"]["stdout"] == "5\n"


async def test_wait_zero_answers_202_then_get_returns_the_result(
        client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/executions?wait=0", json={"language": "python",
                                                         "source": "print('later')"})
    assert r.status_code == 202
    location = r.headers["location"]
    got = await client.get(f"{location}?wait=30")
    assert got.status_code == 200
    assert got.json()["run"]["stdout"] == "later\n"


async def test_same_id_twice_is_answered_from_the_first_run(client: httpx.AsyncClient) -> None:
    body = {"id": f"idem-{uuid.uuid4().hex}", "language": "python",
            "source": "import random; print(random.random())"}
    first = (await client.post("/v1/executions", json=body)).json()
    second = (await client.post("/v1/executions", json=body)).json()
    assert first == second


async def test_deadline_in_the_past_is_expired(client: httpx.AsyncClient) -> None:
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    r = await client.post("/v1/executions", json={"language": "python", "source": "print(1)",
                                                  "deadline": past})
    doc = r.json()
    assert doc["status"] == "expired" and doc["run"] is None
    assert "deadline" in doc["message"]


async def test_metadata_is_echoed(client: httpx.AsyncClient) -> None:
    meta = {"user": 7, "tags": ["a"]}
    r = await client.post("/v1/executions", json={"language": "python", "source": "",
                                                  "metadata": meta})
    assert r.json()["metadata"] == meta


@pytest.mark.parametrize(
    ("body", "status", "kind"),
    [
        (b'{"language": "klingon", "source": "x"}', 400, "unknown-language"),
        (b'{"language": "python", "source": ', 400, "malformed-payload"),
        (b'[1, 2]', 400, "malformed-payload"),
        (b'{"language": "python", "source": 42}', 422, "invalid-request"),
        (b'{"language": "python"}', 422, "invalid-request"),
        (b'{"language": "python", "source": "x", "limits": {"memory_mb": 99999}}', 422,
         "limit-above-maximum"),
    ],
)
async def test_bad_requests_get_problem_details(client: httpx.AsyncClient, body: bytes,
                                                status: int, kind: str) -> None:
    r = await client.post("/v1/executions", content=body)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    doc = r.json()
    assert doc["type"].endswith(kind) and doc["status"] == status and doc["detail"]


async def test_unknown_language_names_the_supported_ones(client: httpx.AsyncClient) -> None:
    # /lang/klingon answers braindrill's plain "unsupported language" (test_braindrill.py).
    r = await client.post("/v1/executions", json={"language": "klingon", "source": "x"})
    assert r.status_code == 400
    assert "python" in r.json()["detail"] and "java" in r.json()["supported"]


async def test_oversized_body_is_413(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/executions", content=b"x" * (1024 * 1024 + 1))
    assert r.status_code == 413
    assert r.headers["content-type"] == "application/problem+json"
    # ... and the service keeps serving.
    ok = await client.post("/v1/executions", json={"language": "python", "source": "print(1)"})
    assert ok.json()["status"] == "ok"


async def test_unknown_id_is_404(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/executions/never-seen")
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    waited = await client.get("/v1/executions/never-seen?wait=0.3")
    assert waited.status_code == 404


async def test_languages_lists_detected_versions(client: httpx.AsyncClient) -> None:
    langs = {lang["name"]: lang for lang in (await client.get("/v1/languages")).json()["languages"]}
    for name in HELLO:
        assert langs[name]["version"], langs[name]


async def test_kafka_producers_of_other_teams(system: System) -> None:
    """Another team produces straight onto the topic and reads its own reply topic."""
    env = system.env
    reply_topic = env["RUNSTREAM_REPLIES_TOPIC"]
    exec_id = f"team-{uuid.uuid4().hex}"
    async with team_clients(env, auto_offset_reset="latest") as (producer, consumer):
        doc = {"id": exec_id, "language": "ruby", "source": "puts 6*7",
               "reply_to": {"topic": reply_topic, "partition": TEAM_REPLY_PARTITION},
               "metadata": {"team": "b"}}
        await producer.send_and_wait(env["RUNSTREAM_REQUESTS_TOPIC"], orjson.dumps(doc),
                                     key=exec_id.encode())
        # Garbage with a key gets a `rejected` result; garbage without one is only logged.
        await producer.send_and_wait(env["RUNSTREAM_REQUESTS_TOPIC"], b"\x00not json",
                                     key=b"garbage-" + exec_id.encode())
        await producer.send_and_wait(env["RUNSTREAM_REQUESTS_TOPIC"], b"{}")
        async with asyncio.timeout(60):
            while True:
                msg = await consumer.getone()
                if msg.key == exec_id.encode():
                    break
        result = orjson.loads(msg.value)
        assert result["status"] == "ok" and result["run"]["stdout"] == "42\n"
        assert result["metadata"] == {"team": "b"}
    async with httpx.AsyncClient(base_url=system.url, timeout=30) as c:
        got = await c.get(f"/v1/executions/garbage-{exec_id}?wait=20")
        assert got.json()["status"] == "rejected"
        assert "JSON" in got.json()["message"]
        # ... and the agent still runs what comes next.
        ok = await c.post("/v1/executions", json={"language": "python", "source": "print(1)"})
        assert ok.json()["status"] == "ok"


async def test_a_request_delivered_twice_is_answered_once(system: System) -> None:
    """Duplicates on the topic (a producer retry, a re-delivery) run and answer once."""
    env = system.env
    reply_topic, requests = env["RUNSTREAM_REPLIES_TOPIC"], env["RUNSTREAM_REQUESTS_TOPIC"]
    dup, sentinel = f"dup-{uuid.uuid4().hex}", f"sentinel-{uuid.uuid4().hex}"
    async with team_clients(env) as (producer, consumer):
        for exec_id in (dup, dup, dup, sentinel):
            doc = {"id": exec_id, "language": "python", "source": "print(1)",
                   "reply_to": {"topic": reply_topic, "partition": TEAM_REPLY_PARTITION}}
            # One partition: the worker that owns it sees all four, in order.
            await producer.send_and_wait(requests, orjson.dumps(doc), key=exec_id.encode(),
                                         partition=0)
        seen: list[bytes] = []
        async with asyncio.timeout(60):
            while sentinel.encode() not in seen or dup.encode() not in seen:
                seen.append((await consumer.getone()).key)
    assert seen.count(dup.encode()) == 1, seen
