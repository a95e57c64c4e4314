"""Webhooks end to end: real ingresses (the deliverers), a real worker, real Kafka, and a
real HTTP receiver on a free loopback port.

The system is this module's own (short backoff, a secret), so its timings do not
depend on the session's system.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import jsonschema
import orjson
import pytest
from aiokafka.partitioner import murmur2
from runstream.schemas.codec import load_schema

from tests.system import System, launch_system, stop
from tests.webhook_receiver import Receiver

pytestmark = [pytest.mark.kafka, pytest.mark.sandbox]

SECRET = "whsec-e2e-" + uuid.uuid4().hex
JOB_PARTITIONS = 6


def verify(secret: bytes, body: bytes, header: str, tolerance_s: int = 300) -> bool:
    """docs/webhooks.md's verification snippet, as a receiver would write it."""
    parts = dict(p.split("=", 1) for p in header.split(","))
    t = int(parts["t"])
    if abs(time.time() - t) > tolerance_s:
        return False
    expected = hmac.new(secret, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["v1"])


@pytest.fixture(scope="module")
def hooks_system(kafka: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    env = {"RUNSTREAM_CALLBACK_SECRET": SECRET,
           "RUNSTREAM_CALLBACKS_PARTITIONS": str(JOB_PARTITIONS),
           "RUNSTREAM_CALLBACK_BACKOFF_S": "0.3", "RUNSTREAM_CALLBACK_BACKOFF_MAX_S": "1.5",
           "RUNSTREAM_CALLBACK_MAX_ATTEMPTS": "60", "RUNSTREAM_CALLBACK_TIMEOUT_S": "5"}
    with launch_system(kafka, tmp_path_factory.mktemp("webhooks"), ingresses=2, workers=1,
                       extra_env=env) as running:
        yield running


@pytest.fixture(scope="module")
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    try:
        yield r
    finally:
        await r.stop()


async def run(system: System, callback: Any, source: str = "print(6*7)",
              ingress: int = 0) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=system.urls[ingress], timeout=90) as c:
        r = await c.post("/v1/executions", json={"language": "python", "source": source,
                                                 "callback": callback})
    assert r.status_code == 200, r.text
    doc: dict[str, Any] = r.json()
    return doc


async def deliveries(system: System, exec_id: str, *, until: str, timeout_s: float = 60,
                     ingress: int = 0, key: str | None = None) -> dict[str, Any]:
    """GET .../deliveries (another process's state) until its state is ``until``."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    headers = {"Authorization": f"Bearer {key}"} if key else None
    async with httpx.AsyncClient(timeout=10, headers=headers) as c:
        while time.monotonic() < deadline:
            try:
                r = await c.get(f"{system.urls[ingress]}/v1/executions/{exec_id}/deliveries")
                last = r.status_code, r.text
                if r.status_code == 200 and r.json()["state"] == until:
                    doc: dict[str, Any] = r.json()
                    jsonschema.validate(doc, load_schema("delivery.v1.json"))
                    return doc
            except httpx.HTTPError as e:  # an ingress being restarted
                last = repr(e)
            await asyncio.sleep(0.2)
    raise AssertionError(f"deliveries of {exec_id} not {until!r} in {timeout_s}s: {last}")


async def test_a_delivery_arrives_signed_and_verifiable(hooks_system: System,
                                                        receiver: Receiver) -> None:
    result = await run(hooks_system, f"{receiver.url}/signed")
    [got] = await receiver.wait_for("/signed", 1, timeout_s=60)
    assert got.method == "POST"
    assert orjson.loads(got.body) == result  # the result document as it is
    assert got.headers["content-type"] == "application/json"
    assert got.headers["x-runstream-id"] == result["id"]
    assert got.headers["x-runstream-delivery"]
    assert verify(SECRET.encode(), got.body, got.headers["x-runstream-signature"])
    assert not verify(b"another secret", got.body, got.headers["x-runstream-signature"])
    assert not verify(SECRET.encode(), got.body + b" ", got.headers["x-runstream-signature"])
    # Visible on any ingress, not only the one that delivered it.
    doc = await deliveries(hooks_system, result["id"], until="delivered", ingress=1)
    assert [a["status_code"] for a in doc["attempts"]] == [200]
    assert doc["attempts"][0]["delivery"] == got.headers["x-runstream-delivery"]
    assert doc["callback"] == {"url": f"{receiver.url}/signed", "method": "POST",
                               "format": "runstream"}


async def test_a_receiver_failing_twice_gets_it_on_the_third_attempt(
        hooks_system: System, receiver: Receiver) -> None:
    receiver.script["/flaky"] = [500, 500]
    result = await run(hooks_system, {"url": f"{receiver.url}/flaky", "method": "PUT"})
    got = await receiver.wait_for("/flaky", 3, timeout_s=60)
    assert [r.answered for r in got] == [500, 500, 200]
    assert {r.method for r in got} == {"PUT"}
    assert len({r.headers["x-runstream-delivery"] for r in got}) == 3  # one id per attempt
    assert {r.headers["x-runstream-id"] for r in got} == {result["id"]}
    assert all(verify(SECRET.encode(), r.body, r.headers["x-runstream-signature"])
               for r in got)
    doc = await deliveries(hooks_system, result["id"], until="delivered")
    attempts = doc["attempts"]
    assert [a["attempt"] for a in attempts] == [1, 2, 3]
    assert [a["status_code"] for a in attempts] == [500, 500, 200]
    assert [a["ok"] for a in attempts] == [False, False, True]
    assert attempts[0]["error"] == "HTTP 500" and attempts[2]["error"] is None
    assert all(a["duration_ms"] >= 0 for a in attempts)
    # Backoff: the second wait is not shorter than half the first step (0.3 s * 2 / 2).
    assert got[2].at - got[1].at >= 0.29


async def test_a_deliverer_killed_while_retrying_still_delivers_after_restart(
        hooks_system: System, receiver: Receiver) -> None:
    path = "/down-then-up"
    receiver.failing.add(path)
    result = await run(hooks_system, f"{receiver.url}{path}")
    await receiver.wait_for(path, 2, timeout_s=60)  # it is being retried
    doc = await deliveries(hooks_system, result["id"], until="pending")
    deliverer = doc["attempts"][-1]["by"]  # "ingress-<reply partition>"
    partition = int(deliverer.rpartition("-")[2])
    # The fault "nothing lost" is about: the process holding the retries dies at once.
    killed_at = time.time()
    await asyncio.to_thread(hooks_system.restart_ingress, partition, kill=True)
    receiver.failing.discard(path)
    [ok] = await receiver.wait_for(path, 1, timeout_s=90, status=200)
    print(f"killed {deliverer} after {len(receiver.got[path]) - 1} failed attempts; "
          f"delivered {ok.at - killed_at:.1f}s after the SIGKILL")
    assert orjson.loads(ok.body) == result
    assert verify(SECRET.encode(), ok.body, ok.headers["x-runstream-signature"])
    doc = await deliveries(hooks_system, result["id"], until="delivered")
    numbers = [a["attempt"] for a in doc["attempts"]]
    assert numbers == list(range(1, len(numbers) + 1)), numbers  # resumed, not restarted
    assert len(numbers) >= 3 and doc["attempts"][-1]["status_code"] == 200
    print("attempts by:", [a["by"] for a in doc["attempts"]])


def same_partition_ids(count: int, partitions: int) -> list[str]:
    """Ids that Kafka's default partitioner (murmur2 of the key) puts on one partition."""
    found: dict[int, list[str]] = {}
    while True:
        exec_id = f"hook-{uuid.uuid4().hex[:12]}"
        part = int(murmur2(exec_id.encode()) & 0x7FFFFFFF) % partitions
        found.setdefault(part, []).append(exec_id)
        if len(found[part]) == count:
            return found[part]


async def test_a_url_that_keeps_failing_does_not_hold_up_the_next_job_of_its_partition(
        hooks_system: System, receiver: Receiver) -> None:
    stuck_id, next_id = same_partition_ids(2, JOB_PARTITIONS)
    receiver.failing.add("/stuck")
    async with httpx.AsyncClient(base_url=hooks_system.url, timeout=90) as c:
        for exec_id, path in ((stuck_id, "/stuck"), (next_id, "/next")):
            r = await c.post("/v1/executions", json={
                "id": exec_id, "language": "python", "source": "print(1)",
                "callback": f"{receiver.url}{path}"})
            assert r.status_code == 200, r.text
            if path == "/stuck":
                await receiver.wait_for("/stuck", 2, timeout_s=60)  # it is being retried
    [got] = await receiver.wait_for("/next", 1, timeout_s=30)
    assert got.headers["x-runstream-id"] == next_id
    stuck = await deliveries(hooks_system, stuck_id, until="pending")
    assert stuck["next_attempt_at"] is not None and stuck["attempts"][-1]["status_code"] == 500
    receiver.failing.discard("/stuck")
    await deliveries(hooks_system, stuck_id, until="delivered")


@pytest.mark.parametrize(("callback", "field"), [
    ("ftp://example.com/hook", "callback"),
    ("not a url", "callback"),
    ("https://" + "a" * 2100 + ".example", "callback"),
    ({"url": "https://example.com/h", "method": "GET"}, "callback.method"),
    ({"url": "https://example.com/h", "format": "xml"}, "callback.format"),
    ({"method": "POST"}, "callback"),
    ({"url": "gopher://example.com/"}, "callback.url"),
    (42, "callback"),
])
async def test_a_bad_callback_is_a_422_naming_the_field(hooks_system: System, callback: Any,
                                                        field: str) -> None:
    async with httpx.AsyncClient(base_url=hooks_system.url, timeout=30) as c:
        r = await c.post("/v1/executions", json={"language": "python", "source": "print(1)",
                                                 "callback": callback})
        assert r.status_code == 422, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["field"] == field, r.json()
        assert (await c.get("/healthz")).status_code == 200  # and it keeps serving


async def test_no_deliveries_for_an_execution_without_callback(hooks_system: System) -> None:
    async with httpx.AsyncClient(base_url=hooks_system.url, timeout=90) as c:
        r = await c.post("/v1/executions", json={"language": "python", "source": "print(1)"})
        result = r.json()
        r = await c.get(f"/v1/executions/{result['id']}/deliveries")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"


async def test_the_judge0_format_is_put_as_judge0_s_callback_body(hooks_system: System,
                                                                  receiver: Receiver) -> None:
    result = await run(hooks_system, {"url": f"{receiver.url}/judge0", "method": "PUT",
                                      "format": "judge0"})
    [got] = await receiver.wait_for("/judge0", 1, timeout_s=60)
    body = orjson.loads(got.body)
    assert got.method == "PUT"
    assert body["token"] == result["id"]
    assert body["status"] == {"id": 3, "description": "Accepted"}
    assert base64.b64decode(body["stdout"]) == b"42\n"
    assert verify(SECRET.encode(), got.body, got.headers["x-runstream-signature"])


async def test_a_stopping_deliverer_stops_within_its_bound_and_hands_its_retries_over(
        hooks_system: System, receiver: Receiver) -> None:
    path = "/handed-over"
    receiver.failing.add(path)
    result = await run(hooks_system, f"{receiver.url}{path}")
    await receiver.wait_for(path, 2, timeout_s=60)
    doc = await deliveries(hooks_system, result["id"], until="pending")
    partition = int(doc["attempts"][-1]["by"].rpartition("-")[2])
    proc = hooks_system.ingress_procs[partition]
    took = await asyncio.to_thread(stop, proc, 30)
    # uvicorn re-raises the SIGTERM once it has stopped; a SIGKILL would mean the bound ran out.
    assert proc.returncode in (0, -signal.SIGTERM), proc.returncode
    # Nothing waits for a result, so the drain is immediate: the bound is the client closes.
    assert took < 8, f"the ingress took {took:.1f}s to stop"
    receiver.failing.discard(path)
    other = 1 - partition  # it left the deliverers' group: the other ingress resumes at once
    [ok] = await receiver.wait_for(path, 1, timeout_s=30, status=200)
    doc = await deliveries(hooks_system, result["id"], until="delivered", ingress=other)
    assert doc["attempts"][-1]["by"] == f"ingress-{other}"
    assert orjson.loads(ok.body) == result
    print(f"ingress-{partition} stopped in {took:.1f}s with a webhook in retry; "
          f"ingress-{other} delivered it")
    hooks_system.start_ingress(partition, int(hooks_system.urls[partition].rpartition(":")[2]))
    await asyncio.to_thread(hooks_system.wait_ready)


@pytest.fixture(scope="module")
def keyed_system(kafka: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    """API keys on; the ingress does not deliver: a `runstream callbacks` process does."""
    env = {"RUNSTREAM_AUTH_REQUIRED": "true", "RUNSTREAM_CALLBACK_SECRET": SECRET,
           "RUNSTREAM_CALLBACK_DELIVER": "false"}
    logs = tmp_path_factory.mktemp("webhooks-keys")
    with launch_system(kafka, logs, ingresses=1, workers=1, extra_env=env) as running:
        with (logs / "callbacks.log").open("ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "runstream.services.cli", "callbacks"],
                env=running.env | {"RUNSTREAM_WORKER_ID": "callbacks-e2e"}, stdout=out,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        running.procs.append(proc)
        yield running


async def test_with_api_keys_each_key_s_own_secret_signs_its_webhooks(
        keyed_system: System, receiver: Receiver) -> None:
    """Also: `runstream callbacks` delivers, and stops within its bound."""
    out = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "runstream.services.cli", "keys", "create",
                         "--name", "webhooks-e2e", "--json"],
        env=keyed_system.env, capture_output=True, check=True, timeout=60)
    created = orjson.loads(out.stdout)
    async with httpx.AsyncClient(base_url=keyed_system.url, timeout=90) as c:
        r = await c.post("/v1/executions", headers={"Authorization": f"Bearer {created['key']}"},
                         json={"language": "python", "source": "print(1)",
                               "callback": f"{receiver.url}/keyed"})
    assert r.status_code == 200, r.text
    [got] = await receiver.wait_for("/keyed", 1, timeout_s=60)
    header = got.headers["x-runstream-signature"]
    assert verify(created["webhook_secret"].encode(), got.body, header)
    assert not verify(SECRET.encode(), got.body, header)  # not the server-wide secret
    doc = await deliveries(keyed_system, r.json()["id"], until="delivered",
                           key=created["key"])
    assert doc["attempts"][0]["by"] == "callbacks-callbacks-e2e"  # not the ingress
    [deliverer] = [p for p in keyed_system.procs if "callbacks" in p.args]
    took = await asyncio.to_thread(stop, deliverer, 30)
    assert deliverer.returncode == 0 and took < 15, (deliverer.returncode, took)
