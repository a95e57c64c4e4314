"""The Judge0-compatible API (/judge0) driven by the official SDK and by raw HTTP.

The SDK is the real `judge0` package from PyPI, pointed at a running system
(ingresses and workers as processes, a real broker, real sandboxes). Every SDK
wait is bounded by a MaxWaitTime retry strategy; a submission still unfinished
when it runs out fails the assertion on its status.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import judge0
import pytest
from runstream.services.ingress.judge0.wire import DEFAULT_FIELDS, FIELDS

from tests.programs import ECHO
from tests.system import System, launch_system
from tests.webhook_receiver import Receiver

pytestmark = [pytest.mark.kafka, pytest.mark.sandbox]

JUDGE0_PAGE = Path(__file__).resolve().parents[2] / "docs" / "judge0.md"
ALIASES = {
    "python": judge0.PYTHON, "javascript": judge0.JAVASCRIPT, "typescript": judge0.TYPESCRIPT,
    "java": judge0.JAVA, "c": judge0.C, "cpp": judge0.CPP, "go": judge0.GO, "rust": judge0.RUST,
    "ruby": judge0.RUBY, "perl": judge0.PERL, "php": judge0.PHP, "bash": judge0.BASH,
}
DONE_WITHIN_S = 60


def sdk_client(system: System, url: str | None = None) -> judge0.Client:
    """A client whose waits end after DONE_WITHIN_S (a fresh strategy: it counts time spent)."""
    return judge0.Client(f"{url or system.url}/judge0",
                         retry_strategy=judge0.MaxWaitTime(DONE_WITHIN_S))


def b64(data: str | bytes) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


@pytest.fixture
async def j0(system: System) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"{system.url}/judge0", timeout=90) as c:
        yield c


async def finished(system: System, token: str) -> None:
    """Until the token's result is stored: the native long-poll (the token is the id)."""
    async with httpx.AsyncClient(base_url=system.url, timeout=DONE_WITHIN_S + 10) as c:
        r = await c.get(f"/v1/executions/{token}", params={"wait": DONE_WITHIN_S})
        assert r.status_code == 200, r.text


# -- the official SDK ------------------------------------------------------------------


def test_every_language_through_the_sdk(system: System) -> None:
    assert set(ALIASES) == set(ECHO)

    def run(language: str) -> tuple[str, Any]:
        result = judge0.run(client=sdk_client(system), source_code=ECHO[language],
                            language=ALIASES[language], stdin="world\n")
        return language, result

    with ThreadPoolExecutor(max_workers=4) as pool:  # the system has 4 sandbox slots
        results = dict(pool.map(run, sorted(ECHO)))
    for language, r in results.items():
        assert r.status == judge0.Status.ACCEPTED, (language, r.status, r.compile_output,
                                                    r.stderr, r.message)
        assert r.stdout == "hello world\n", (language, r.stdout)
        assert r.time is not None and r.time >= 0 and r.memory is not None
        assert r.token is not None and r.created_at is not None and r.finished_at is not None


def test_docs_snippets(system: System) -> None:
    """The Judge0 example of docs/judge0.md, run as written against this system."""
    text = JUDGE0_PAGE.read_text(encoding="utf-8")
    section = text.split("# Judge0-compatible API", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None, "docs/judge0.md has no python example"
    exec(code.group(1).replace("http://127.0.0.1:8080", system.url), {})


def test_test_cases_use_the_batch(system: System) -> None:
    rs = judge0.run(client=sdk_client(system), source_code="print(input())",
                    language=judge0.PYTHON,
                    test_cases=[("a", "a"), ("b", "x"), {"input": "c", "expected_output": "c"}])
    assert [r.status for r in rs] == [judge0.Status.ACCEPTED, judge0.Status.WRONG_ANSWER,
                                      judge0.Status.ACCEPTED]
    assert [r.stdout for r in rs] == ["a\n", "b\n", "c\n"]
    assert [r.expected_output for r in rs] == ["a", "x", "c"]


def test_async_execute_then_wait_on_another_ingress(system: System) -> None:
    sub = judge0.async_execute(client=sdk_client(system), source_code="print(6*7)",
                               language=71)
    assert sub.token is not None and not sub.is_done()
    # The other ingress did not produce it: it answers In Queue, then the result.
    sub = judge0.wait(client=sdk_client(system, system.urls[1]), submissions=sub,
                      retry_strategy=judge0.MaxWaitTime(DONE_WITHIN_S))
    assert sub.status == judge0.Status.ACCEPTED and sub.stdout == "42\n"
    assert sub.source_code == "print(6*7)"


def test_implicit_client_from_the_environment(system: System) -> None:
    env = {**os.environ, "JUDGE0_CE_ENDPOINT": f"{system.url}/judge0/",
           "JUDGE0_CE_AUTH_HEADERS": "{}"}
    out = subprocess.run(
        [sys.executable, "-c", "import judge0; r = judge0.run(source_code='print(1)', "
         "language=judge0.PYTHON); print(r.status.name, r.stdout, end='')"],
        env=env, capture_output=True, text=True, timeout=DONE_WITHIN_S + 30)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "ACCEPTED 1\n"


def test_failures_map_to_judge0_statuses(system: System) -> None:
    cases = {
        "import sys; sys.exit(3)": (judge0.Status.RUNTIME_ERROR_NZEC, 3),
        "import os; os.kill(os.getpid(), 11)": (judge0.Status.RUNTIME_ERROR_SIGSEGV, 0),
        "while True: pass": (judge0.Status.TIME_LIMIT_EXCEEDED, 0),
    }
    subs = [judge0.Submission(source_code=src, language=71, cpu_time_limit=1,
                              wall_time_limit=2) for src in cases]
    results = judge0.run(client=sdk_client(system), submissions=subs)
    for r, (status, exit_code) in zip(results, cases.values(), strict=True):
        assert r.status == status, (r.source_code, r.status, r.message)
        assert r.exit_code == exit_code
    assert results[1].exit_signal == 11
    hog = judge0.run(client=sdk_client(system), source_code="b = b'x' * (300 << 20)",
                     language=71, memory_limit=65536)
    assert hog.status == judge0.Status.RUNTIME_ERROR_OTHER, (hog.status, hog.message)
    assert base64.b64decode(hog.message) == b"Memory limit exceeded"  # the SDK keeps it base64
    assert hog.exit_signal == 9
    compile_error = judge0.run(client=sdk_client(system), source_code="int main( {",
                               language=judge0.C)
    assert compile_error.status == judge0.Status.COMPILATION_ERROR
    assert "error" in compile_error.compile_output
    assert compile_error.stdout is None and compile_error.time is None


# -- raw HTTP --------------------------------------------------------------------------


async def test_wait_true_answers_the_default_fields(j0: httpx.AsyncClient) -> None:
    r = await j0.post("/submissions", params={"wait": "true"},
                      json={"source_code": "print(input())", "language_id": 71,
                            "stdin": "Judge0", "expected_output": "Judge0"})
    assert r.status_code == 201, r.text
    doc = r.json()
    assert list(doc) == ["stdout", "time", "memory", "stderr", "token", "compile_output",
                         "message", "status"]
    assert doc["stdout"] == "Judge0\n" and doc["status"] == {"id": 3, "description": "Accepted"}
    assert isinstance(doc["time"], str) and float(doc["time"]) >= 0
    assert uuid.UUID(doc["token"]).version == 4


async def test_fields_and_base64(j0: httpx.AsyncClient) -> None:
    r = await j0.post("/submissions", params={"wait": "true", "base64_encoded": "true",
                                              "fields": "token,stdout,status_id,language"},
                      json={"source_code": b64("print('hé')"), "language_id": 71})
    assert r.status_code == 201, r.text
    doc = r.json()
    assert list(doc) == ["stdout", "status_id", "token", "language"]
    assert base64.b64decode(doc["stdout"]) == "hé\n".encode() and doc["stdout"].endswith("\n")
    assert doc["language"]["id"] == 71 and doc["language"]["name"].startswith("Python (3.")
    token = doc["token"]
    every = (await j0.get(f"/submissions/{token}", params={"fields": "*"})).json()
    assert tuple(every) == FIELDS and every["source_code"] == "print('hé')"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", every["created_at"])
    plain = (await j0.get(f"/submissions/{token}", params={"base64_encoded": "false"})).json()
    assert plain["stdout"] == "hé\n"


async def test_binary_output_needs_base64(j0: httpx.AsyncClient) -> None:
    src = "import sys; sys.stdout.buffer.write(bytes([255, 0, 254]))"
    r = await j0.post("/submissions", params={"wait": "true"},
                      json={"source_code": src, "language_id": 71})
    assert r.status_code == 201 and "base64_encoded=true" in r.json()["error"], r.text
    token = r.json()["token"]
    r = await j0.get(f"/submissions/{token}")
    assert r.status_code == 400 and "cannot be converted to UTF-8" in r.json()["error"]
    r = await j0.get(f"/submissions/{token}", params={"base64_encoded": "true"})
    assert base64.b64decode(r.json()["stdout"]) == bytes([255, 0, 254])


async def test_wait_false_then_get(system: System, j0: httpx.AsyncClient) -> None:
    r = await j0.post("/submissions", data={"source_code": "echo $1-$2", "language_id": "46",
                                            "command_line_arguments": "a 'b c'"})
    assert r.status_code == 201 and list(r.json()) == ["token"], r.text
    token = r.json()["token"]
    await finished(system, token)
    doc = (await j0.get(f"/submissions/{token}", params={"fields": "stdout,status,language_id,"
                                                         "command_line_arguments"})).json()
    assert doc == {"stdout": "a-b c\n", "language_id": 46, "command_line_arguments": "a 'b c'",
                   "status": {"id": 3, "description": "Accepted"}}


async def test_field_errors_are_422_in_judge0s_shape(j0: httpx.AsyncClient) -> None:
    r = await j0.post("/submissions", json={})
    assert r.status_code == 422 and r.json() == {"language_id": ["can't be blank"],
                                                 "source_code": ["can't be blank"]}
    r = await j0.post("/submissions", json={"source_code": "x", "language_id": 9999,
                                            "wall_time_limit": 10_000, "enable_network": True})
    assert r.status_code == 422
    doc = r.json()
    assert doc["language_id"] == ["language with id 9999 doesn't exist"]
    assert doc["wall_time_limit"][0].startswith("must be less than or equal to")
    assert doc["enable_network"] == ["enabling network is not allowed"]
    r = await j0.post("/submissions", content=b"{not json", headers={
        "content-type": "application/json"})
    assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json"
    r = await j0.get(f"/submissions/{uuid.uuid4()}", params={"fields": "stdout,nope"})
    assert r.status_code == 400 and r.json() == {"error": "invalid fields: [nope]"}
    r = await j0.get(f"/submissions/{uuid.uuid4()}")
    assert r.status_code == 404 and r.json() == {"status": 404, "error": "Not Found"}


async def test_batch(system: System, j0: httpx.AsyncClient) -> None:
    r = await j0.post("/submissions/batch", params={"base64_encoded": "true"}, json={
        "submissions": [{"source_code": b64("print(1)"), "language_id": 71},
                        {"source_code": b64("x"), "language_id": 1}]})
    assert r.status_code == 201, r.text
    first, second = r.json()
    assert second == {"language_id": ["language with id 1 doesn't exist"]}
    token = first["token"]
    await finished(system, token)
    unknown = str(uuid.uuid4())
    r = await j0.get("/submissions/batch", params={"tokens": f"{token},{unknown}",
                                                   "fields": "token,stdout,status"})
    assert r.json() == {"submissions": [
        {"stdout": "1\n", "token": token, "status": {"id": 3, "description": "Accepted"}}, None]}
    r = await j0.post("/submissions/batch", json={"submissions": [{}]})
    assert r.status_code == 422
    r = await j0.post("/submissions/batch", json={"submissions": [{}] * 21})
    assert r.status_code == 400 and "less than or equal to 20" in r.json()["error"]
    r = await j0.get("/submissions/batch", params={"tokens": ""})
    assert r.status_code == 400


async def test_read_only_endpoints(j0: httpx.AsyncClient) -> None:
    statuses = (await j0.get("/statuses")).json()
    assert len(statuses) == 14 and statuses[3] == {"id": 4, "description": "Wrong Answer"}
    assert (await j0.get("/about")).json()["version"] == "1.13.1"
    assert (await j0.get("/version")).text == "1.13.1"
    info = (await j0.get("/config_info")).json()
    assert len(info) == 39 and judge0.base_types.Config(**info).max_submission_batch_size == 20
    languages = (await j0.get("/languages")).json()
    assert {71, 52, 54, 62, 63, 74, 50, 60, 73, 72, 85, 68, 46} <= {x["id"] for x in languages}
    java = (await j0.get("/languages/62")).json()
    assert java["source_file"] == "Main.java" and java["is_archived"] is False
    assert java["name"].startswith("Java (OpenJDK ") and "javac" in java["compile_cmd"]
    assert (await j0.get("/languages/9999")).status_code == 404
    assert (await j0.get("/languages/all")).json()[0]["is_archived"] is False
    workers = (await j0.get("/workers")).json()
    assert workers[0]["queue"] == "1.13.1" and workers[0]["available"] >= 1
    system_info = (await j0.get("/system_info")).json()
    assert system_info["CPU(s)"] == str(os.cpu_count())
    assert (await j0.get("/submissions")).status_code == 403  # needs X-Auth-User


async def test_any_ingress_answers_a_token_in_queue(system: System,
                                                   j0: httpx.AsyncClient) -> None:
    r = await j0.post("/submissions", json={"source_code": "import time; time.sleep(1.5)",
                                            "language_id": 71})
    token = r.json()["token"]
    async with httpx.AsyncClient(base_url=f"{system.urls[1]}/judge0", timeout=30) as other:
        # Issued by the first ingress a moment ago, still running: In Queue, not 404.
        doc = (await other.get(f"/submissions/{token}", params={"fields": "*"})).json()
        assert doc["status"] == {"id": 1, "description": "In Queue"} and doc["token"] == token
        assert tuple(doc) == FIELDS
        await finished(system, token)
        doc = (await other.get(f"/submissions/{token}")).json()
        assert doc["status"]["id"] == 3


async def test_callback_url_gets_judge0s_put(j0: httpx.AsyncClient) -> None:
    receiver = Receiver()
    await receiver.start()
    try:
        r = await j0.post("/submissions", json={"source_code": "print(5)", "language_id": 71,
                                                "callback_url": f"{receiver.url}/judge0"})
        assert r.status_code == 201, r.text
        info = (await j0.get("/config_info")).json()
        assert info["enable_callbacks"] is True
        [got] = await receiver.wait_for("/judge0", 1, timeout_s=DONE_WITHIN_S)
    finally:
        await receiver.stop()
    assert got.method == "PUT" and got.headers["content-type"].startswith("application/json")
    body = json.loads(got.body)
    assert set(body) == set(DEFAULT_FIELDS) and body["token"] == r.json()["token"]
    assert base64.b64decode(body["stdout"]) == b"5\n" and body["status"]["id"] == 3


def test_x_auth_token_when_keys_are_required(kafka: str, tmp_path: Path) -> None:
    # No worker: the SDK's handshake and a create need only the ingress and Kafka.
    with launch_system(kafka, tmp_path, ingresses=1, workers=0,
                       extra_env={"RUNSTREAM_AUTH_REQUIRED": "true"}) as secured:
        made = subprocess.run(
            [sys.executable, "-m", "runstream.services.cli", "keys", "create", "--name",
             "judge0-sdk", "--json"], env=secured.env, capture_output=True, text=True,
            timeout=60)
        assert made.returncode == 0, made.stderr
        key = json.loads(made.stdout)["key"]
        alive(secured)
        with pytest.raises(RuntimeError, match="Authentication failed"):
            judge0.Client(f"{secured.url}/judge0")  # no key: /languages answers 401
        client = judge0.Client(f"{secured.url}/judge0", headers={"X-Auth-Token": key})
        sub = judge0.async_execute(client=client, source_code="print(1)", language=71)
        assert uuid.UUID(str(sub.token)).version == 4
        r = httpx.get(f"{secured.url}/judge0/submissions/{sub.token}", timeout=10)
        assert r.status_code == 401  # the same key check on every Judge0 route
        r = httpx.get(f"{secured.url}/judge0/submissions/{sub.token}", timeout=10,
                      headers={"X-Auth-Token": key})
        assert r.json()["status"]["id"] == 1  # no worker: it waits in the queue


def alive(system: System, timeout_s: float = 60) -> None:
    """Until the (only) ingress answers /healthz: without workers it is never 'ready'."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(f"{system.url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"{system.url} did not answer in {timeout_s}s"
        time.sleep(0.2)  # another process's start-up: nothing to await but its answer


async def test_hostile_bodies_get_clear_4xx(j0: httpx.AsyncClient) -> None:
    bodies = [b"[]", b'"x"', b"\x00\xff", b'{"source_code": {"a": [1]}, "language_id": [71]}',
              b'{"source_code": "x", "language_id": 1e308, "cpu_time_limit": 1e308}',
              b'{"source_code": "x", "language_id": 71, "number_of_runs": "many",'
              b' "stdin": 5, "memory_limit": true}']
    for body in bodies:
        r = await j0.post("/submissions", content=body,
                          headers={"content-type": "application/json"})
        assert 400 <= r.status_code < 500, (body, r.status_code, r.text)
    r = await j0.post("/submissions", content=b"language_id=%zz&source_code=%FF",
                      headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 422, r.text
    r = await j0.post("/submissions/batch", json={"submissions": [1, "a", None]})
    assert r.status_code == 422 and len(r.json()) == 3
    r = await j0.post("/submissions/batch", json={"submissions": "x"})
    assert r.status_code == 400
    r = await j0.get("/submissions/batch", params={"tokens": ",".join(["t"] * 21)})
    assert r.status_code == 400
    # And it still serves.
    r = await j0.post("/submissions", params={"wait": "true"},
                      json={"source_code": "print(2)", "language_id": 71})
    assert r.status_code == 201 and r.json()["stdout"] == "2\n"
