"""API keys and quotas end to end: the `runstream keys` CLI against real ingresses
(auth required) and a real worker, over HTTP; and the default system without auth."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import orjson
import pytest

from tests.system import System, launch_system

pytestmark = [pytest.mark.kafka, pytest.mark.sandbox]

HELLO = {"language": "python", "source": "print(6 * 7)"}
# Runs long enough to hold its concurrency slot while the test asks for another.
SLOW = {"language": "python", "source": "import time\ntime.sleep(3)\nprint('done')"}


@pytest.fixture(scope="module")
def secured(kafka: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    """Two ingresses that require keys, one worker with three slots."""
    with launch_system(kafka, tmp_path_factory.mktemp("keys-logs"), ingresses=2, workers=1,
                       slots=3, extra_env={"RUNSTREAM_AUTH_REQUIRED": "true"}) as system:
        yield system


@pytest.fixture
async def clients(secured: System) -> AsyncIterator[list[httpx.AsyncClient]]:
    async with httpx.AsyncClient(base_url=secured.urls[0], timeout=60) as a, \
            httpx.AsyncClient(base_url=secured.urls[1], timeout=60) as b:
        yield [a, b]


async def keys_cli(system: System, *args: str) -> tuple[int, str, str]:
    """``runstream keys ...`` as a process, with the system's environment."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "runstream.services.cli", "keys", *args, env=system.env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


async def create(system: System, *args: str) -> dict[str, Any]:
    code, out, err = await keys_cli(system, "create", "--json", *args)
    assert code == 0, err
    doc: dict[str, Any] = orjson.loads(out)
    assert doc["key"].startswith(f"rs_{doc['id']}_")
    return doc


def problem(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    doc: dict[str, Any] = r.json()
    assert doc["status"] == status and doc["detail"]
    return doc


async def test_cli_keys_are_required_checked_listed_and_revoked_everywhere(
        secured: System, clients: list[httpx.AsyncClient]) -> None:
    created = await create(secured, "--name", "e2e-main")
    key, key_id = created["key"], created["id"]
    for c in clients:
        r = await c.post("/v1/executions", json=HELLO)
        problem(r, 401)
        assert r.headers["www-authenticate"].startswith("Bearer")
        problem(await c.post("/v1/executions", json=HELLO,
                             headers={"X-Api-Key": key[:-1] + ("A" if key[-1] != "A" else "B")}),
                401)
        problem(await c.post("/judge0/authenticate"), 401)
        assert (await c.get("/healthz")).status_code == 200
        # Right after the CLI returned, on both ingresses, in each of the three headers.
        r = await c.post("/v1/executions", json=HELLO, headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200 and r.json()["run"]["stdout"] == "42\n", r.text
        assert (await c.post("/judge0/authenticate", headers={"X-Auth-Token": key})
                ).status_code == 200
        r = await c.post("/judge0/submissions?wait=true", headers={"X-Auth-Token": key},
                         json={"source_code": "print(1)", "language_id": 71})
        assert r.status_code == 201 and r.json()["stdout"] == "1\n", r.text
        r = await c.post("/lang/python", content=b"print(1)", headers={"X-Api-Key": key})
        assert (r.status_code, r.text) == (200, "1\n")

    code, listed, _ = await keys_cli(secured, "list")
    assert code == 0 and key_id in listed and "e2e-main" in listed
    secret = key.split("_", 2)[2]
    assert secret not in listed and created["webhook_secret"] not in listed
    code, as_json, _ = await keys_cli(secured, "list", "--json")
    doc = next(d for d in orjson.loads(as_json) if d["id"] == key_id)
    assert "hash" not in doc and "webhook_secret" not in doc and doc["revoked_at"] is None

    code, out, err = await keys_cli(secured, "revoke", key_id)
    assert code == 0 and key_id in out, err
    revoked_at = time.monotonic()
    for c in clients:  # another process's state: polled every 50 ms, for 5 s at most
        for _ in range(100):
            r = await c.post("/v1/executions", json=HELLO, headers={"X-Api-Key": key})
            if r.status_code == 403:
                break
            await asyncio.sleep(0.05)
        assert "revoked" in problem(r, 403)["detail"]
    print(f"revocation effective on both ingresses {time.monotonic() - revoked_at:.2f}s "
          "after the CLI returned")
    code, _, err = await keys_cli(secured, "revoke", "0123456789abcdef")
    assert code == 2 and "no API key" in err


async def test_a_burst_past_the_rate_is_429_with_retry_after(
        secured: System, clients: list[httpx.AsyncClient]) -> None:
    key = (await create(secured, "--name", "e2e-rate", "--rate", "0.2", "--burst", "3",
                        "--concurrency", "0"))["key"]
    c = clients[0]
    auth = {"X-Api-Key": key}
    answers = [await c.post("/v1/executions?wait=0", json=HELLO, headers=auth) for _ in range(4)]
    assert [r.status_code for r in answers[:3]] == [202, 202, 202]
    doc = problem(answers[3], 429)
    assert doc["quota"] == "rate"
    assert 1 <= int(answers[3].headers["retry-after"]) <= 5  # one token per 5 s
    # Reads take no token: the admitted executions can still be collected.
    for r in answers[:3]:
        got = await c.get(r.headers["location"] + "?wait=30", headers=auth)
        assert got.status_code == 200 and got.json()["status"] == "ok", got.text


async def test_the_concurrency_quota_holds_while_long_programs_run(
        secured: System, clients: list[httpx.AsyncClient]) -> None:
    key = (await create(secured, "--name", "e2e-slots", "--rate", "0",
                        "--concurrency", "2"))["key"]
    c = clients[0]
    auth = {"X-Api-Key": key}
    first = await c.post("/v1/executions?wait=0", json=SLOW, headers=auth)
    second = await c.post("/v1/executions?wait=0", json=SLOW, headers=auth)
    assert (first.status_code, second.status_code) == (202, 202)
    third = await c.post("/v1/executions?wait=0", json=HELLO, headers=auth)
    doc = problem(third, 429)
    assert doc["quota"] == "concurrency" and int(third.headers["retry-after"]) >= 1
    done = await c.get(first.headers["location"] + "?wait=30", headers=auth)
    assert done.status_code == 200 and done.json()["run"]["stdout"] == "done\n", done.text
    # One slot is free again once a result is in.
    r = await c.post("/v1/executions", json=HELLO, headers=auth)
    assert r.status_code == 200 and r.json()["status"] == "ok", r.text


async def test_a_key_limited_to_languages_is_403_for_others(
        secured: System, clients: list[httpx.AsyncClient]) -> None:
    # The human form of `keys create`: the key and the webhook secret, once.
    code, out, err = await keys_cli(secured, "create", "--name", "e2e-c-only",
                                    "--languages", "C")
    assert code == 0 and "not shown again" in out and "languages: c" in out, err
    key = next(line.split()[1] for line in out.splitlines() if line.strip().startswith("key:"))
    r = await clients[1].post("/v1/executions", json=HELLO, headers={"X-Api-Key": key})
    assert "python" in problem(r, 403)["detail"]
    r = await clients[1].post("/v1/executions", headers={"X-Api-Key": key}, json={
        "language": "c", "source": "#include <stdio.h>\nint main(void){puts(\"c\");}"})
    assert r.status_code == 200 and r.json()["run"]["stdout"] == "c\n", r.text
    code, _, err = await keys_cli(secured, "create", "--name", "bad", "--languages", "klingon")
    assert code == 2 and "klingon" in err


async def test_without_auth_everything_works_without_a_key(system: System) -> None:
    async with httpx.AsyncClient(base_url=system.url, timeout=60) as c:
        for headers in ({}, {"X-Api-Key": "not-a-key"}):
            r = await c.post("/v1/executions", json=HELLO, headers=headers)
            assert r.status_code == 200 and r.json()["status"] == "ok", r.text
