"""The Piston v2-compatible API (/api/v2) over raw HTTP, npm's piston-client and PyPI's
pistonapi, against a running system (ingresses and workers as processes, a real
broker, real sandboxes).

Raw requests follow compat/judge0-piston.md section C; the two clients are the
real packages (piston-client 1.0.2 under node, installed into .cache/npm as
./deploy.sh test does; pistonapi 1.0.1 from the dev extra).
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pistonapi import PistonAPI, PistonError
from runstream.services.execution.languages import Registry

from tests.programs import ECHO
from tests.system import System

pytestmark = [pytest.mark.kafka, pytest.mark.sandbox]

ROOT = Path(__file__).resolve().parents[2]
PISTON_PAGE = ROOT / "docs" / "piston.md"
NPM_DIR = ROOT / ".cache" / "npm"  # where ./deploy.sh test installs node test packages
PISTON_CLIENT = NPM_DIR / "node_modules" / "piston-client"
DRIVER = Path(__file__).with_name("piston_client.mjs")
REGISTRY = Registry.load()
# Piston's name, or ours where Piston has none (as runtimes.piston_name lists it).
PISTON_NAME = {lang.name: lang.piston or lang.name for lang in REGISTRY}
COMPILED = {PISTON_NAME[lang.name] for lang in REGISTRY if lang.compiled}


@pytest.fixture
async def piston(system: System) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"{system.url}/api/v2", timeout=90) as c:
        yield c


async def execute(piston: httpx.AsyncClient, language: str, code: str,
                  **fields: Any) -> dict[str, Any]:
    r = await piston.post("/execute", json={"language": language, "version": "*",
                                            "files": [{"content": code}], **fields})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    doc: dict[str, Any] = r.json()
    return doc


async def refusal(r: httpx.Response, status: int) -> str:
    assert r.status_code == status, r.text
    doc = r.json()
    assert list(doc) == ["message"], doc  # Piston's error shape, never problem+json
    return str(doc["message"])


async def test_runtimes_and_packages_list_every_served_language(
        piston: httpx.AsyncClient) -> None:
    r = await piston.get("/runtimes")
    assert r.status_code == 200
    listed = {rt["language"]: rt for rt in r.json()}
    assert set(listed) == set(PISTON_NAME.values())
    for rt in listed.values():
        assert re.fullmatch(r"\d+\.\d+\.\d+", rt["version"]), rt
        assert isinstance(rt["aliases"], list)
    assert "py3" in listed["python"]["aliases"] and listed["c++"]["runtime"] == "gcc"
    assert listed["d"]["runtime"] == "gcc" and listed["csharp"]["runtime"] == "mono"
    packages = (await piston.get("/packages")).json()
    assert {(p["language"], p["language_version"]) for p in packages} == {
        (rt["language"], rt["version"]) for rt in listed.values()}
    assert all(p["installed"] is True for p in packages)


async def test_hello_world_in_every_language(piston: httpx.AsyncClient) -> None:
    versions = {rt["language"]: rt["version"] for rt in (await piston.get("/runtimes")).json()}
    names = sorted(ECHO)
    answers = await asyncio.gather(*(
        execute(piston, PISTON_NAME[name], ECHO[name], stdin="world") for name in names))
    for name, doc in zip(names, answers, strict=True):
        language = PISTON_NAME[name]
        assert (doc["language"], doc["version"]) == (language, versions[language]), doc
        run = doc["run"]
        assert run["stdout"].strip() == "hello world", (name, doc)
        assert (run["code"], run["signal"], run["status"], run["message"]) == (
            0, None, None, None), (name, run)
        assert run["output"] == run["stdout"] + run["stderr"]
        assert run["wall_time"] >= 0 and run["cpu_time"] >= 0 and run["memory"] > 0
        assert ("compile" in doc) == (language in COMPILED), (name, doc)
        if language in COMPILED:
            assert doc["compile"]["code"] == 0, (name, doc["compile"])


async def test_compile_error_is_copied_into_run(piston: httpx.AsyncClient) -> None:
    doc = await execute(piston, "c", "int main(void) { return undeclared; }")
    assert doc["compile"]["code"] not in (0, None) and doc["compile"]["status"] == "RE"
    assert "undeclared" in doc["compile"]["stderr"]
    assert doc["run"] == doc["compile"]


async def test_limits_stop_the_program_with_pistons_status(piston: httpx.AsyncClient) -> None:
    loop, memory, output, crash = await asyncio.gather(
        execute(piston, "python", "while True: pass", run_timeout=500),
        execute(piston, "python", "x = bytearray(300 * 1024 * 1024)\nprint(len(x))",
                run_memory_limit=64_000_000),
        execute(piston, "python", "print('x' * 3_000_000)"),
        execute(piston, "python", "import os; os.kill(os.getpid(), 11)"),
        )
    run = loop["run"]
    assert (run["signal"], run["status"], run["code"]) == ("SIGKILL", "TO", None), run
    assert run["message"].startswith("Time limit exceeded") and run["wall_time"] >= 500
    run = memory["run"]
    assert (run["signal"], run["status"], run["code"]) == ("SIGKILL", "SG", None), run
    run = output["run"]
    assert (run["signal"], run["status"], run["message"]) == (
        "SIGKILL", "OL", "stdout length exceeded"), {k: v for k, v in run.items()
                                                     if k not in ("stdout", "output")}
    run = crash["run"]
    assert (run["signal"], run["status"], run["code"]) == ("SIGSEGV", "SG", None), run
    nonzero = await execute(piston, "bash", "echo out; echo err >&2; exit 3")
    run = nonzero["run"]
    assert (run["code"], run["status"], run["signal"]) == (3, "RE", None)
    assert run["output"] == "out\nerr\n"  # stdout, then stderr


async def test_stdin_and_args(piston: httpx.AsyncClient) -> None:
    doc = await execute(piston, "py3", "import sys\nprint(sys.argv[1:], repr(sys.stdin.read()))",
                        stdin="line one\nline two", args=["a b", "-c"])
    assert doc["run"]["stdout"] == "['a b', '-c'] 'line one\\nline two\\n'\n"


async def test_encoded_and_several_files(piston: httpx.AsyncClient) -> None:
    files = [
        # The first utf8 file is the one run, wherever it is in the list (as Piston).
        {"name": "data.bin", "content": base64.b64encode(b"\x00\x01\xfe").decode(),
         "encoding": "base64"},
        {"name": "main.py", "content": "import helper\nprint(helper.show('data.bin'), "
                                       "open('note.txt').read())"},
        {"name": "helper.py", "content": "def show(p):\n    return list(open(p, 'rb').read())"},
        {"name": "note.txt", "content": b"hex!".hex(), "encoding": "hex"},
    ]
    r = await piston.post("/execute", json={"language": "python", "version": "3",
                                            "files": files})
    assert r.status_code == 200, r.text
    assert r.json()["run"]["stdout"] == "[0, 1, 254] hex!\n"
    alone = await execute(piston, "java", "public class Main { public static void main("
                          "String[] a) { System.out.println(Util.twice(21)); } }")
    assert alone["compile"]["status"] == "RE" and alone["run"] == alone["compile"]  # no Util
    r = await piston.post("/execute", json={"language": "java", "version": "*", "files": [
        {"name": "Main.java", "content": "public class Main { public static void main("
                                         "String[] a) { System.out.println(Util.twice(21)); } }"},
        {"name": "Util.java", "content": "public class Util { static int twice(int x) "
                                         "{ return 2 * x; } }"}]})
    assert r.status_code == 200 and r.json()["run"]["stdout"] == "42\n", r.text


async def test_version_ranges(piston: httpx.AsyncClient) -> None:
    version = next(rt["version"] for rt in (await piston.get("/runtimes")).json()
                   if rt["language"] == "python")
    major, minor, _ = version.split(".")
    for wanted in ("*", major, f"{major}.x", f"{major}.{minor}", f"^{major}.0", version,
                   f">={major} <{int(major) + 1}", f"1 || {major}"):
        r = await piston.post("/execute", json={"language": "python", "version": wanted,
                                                "files": [{"content": "print(2)"}]})
        assert r.status_code == 200 and r.json()["version"] == version, (wanted, r.text)
    for wanted in ("latest", f"{int(major) + 1}", f"<{major}"):
        r = await piston.post("/execute", json={"language": "python", "version": wanted,
                                                "files": [{"content": "print(2)"}]})
        assert await refusal(r, 400) == f"python-{wanted} runtime is unknown"


async def test_refusals_are_pistons_messages(piston: httpx.AsyncClient) -> None:
    hello = {"language": "python", "version": "*", "files": [{"content": "print(1)"}]}
    post = piston.post
    assert await refusal(await post("/execute", json={}), 400) == (
        "language is required as a string")
    assert await refusal(await post("/execute", json={**hello, "files": "x"}), 400) == (
        "files is required as an array")
    assert await refusal(await post("/execute", json={**hello, "run_timeout": 10**7}), 400) == (
        "run_timeout cannot exceed the configured limit of 30000")
    assert await refusal(await post("/execute", json={**hello, "run_cpu_time": "1"}), 400) == (
        "If specified, run_cpu_time must be a number")
    assert await refusal(await post("/execute", json={**hello, "run_memory_limit": -5}),
                         400) == "run_memory_limit must be non-negative"
    assert "not valid JSON" in await refusal(
        await post("/execute", content=b"{nope", headers={"Content-Type": "application/json"}),
        400)
    assert await refusal(await post("/execute", content=b"<x/>",
                                    headers={"Content-Type": "application/xml"}), 415) == (
        "requests must be of type application/json")
    assert "maximum" in await refusal(await post("/execute", content=b"x" * (2 * 1024 * 1024),
                                                 headers={"Content-Type": "text/plain"}), 413)
    bad_name = {**hello, "files": [{"name": "../../etc/x.py", "content": "print(1)"}]}
    assert "plain file name" in await refusal(await post("/execute", json=bad_name), 400)
    assert await refusal(await piston.get("/execute"), 404) == "Not Found"
    assert await refusal(await piston.get("/nothing/here"), 404) == "Not Found"
    assert "deployment" in await refusal(
        await post("/packages", json={"language": "python", "version": "3"}), 405)
    assert "deployment" in await refusal(await piston.delete("/packages/python/3.11.2"), 405)
    # Not a WebSocket handshake (tests/e2e/test_piston_connect.py speaks WebSocket there).
    assert "WebSocket" in await refusal(await piston.get("/connect"), 426)
    # And the service still serves.
    assert (await execute(piston, "python", "print(1)"))["run"]["stdout"] == "1\n"


async def test_json_as_text_plain_and_form_bodies(piston: httpx.AsyncClient) -> None:
    body = json.dumps({"language": "python", "version": "*",
                       "files": [{"content": "print('plain')"}]}).encode()
    for headers in ({"Content-Type": "text/plain;charset=UTF-8"}, {}):
        r = await piston.post("/execute", content=body, headers=headers)
        assert r.status_code == 200 and r.json()["run"]["stdout"] == "plain\n", r.text
    r = await piston.post("/execute", data={"language": "python", "version": "*",
                                            "files": "print(input())", "stdin": "form",
                                            "run_timeout": "2000"})
    assert r.status_code == 200 and r.json()["run"]["stdout"] == "form\n", r.text


async def test_the_docs_example(piston: httpx.AsyncClient) -> None:
    """The Piston request of docs/piston.md (Piston's own README example), sent as written."""
    section = PISTON_PAGE.read_text(encoding="utf-8").split("# Piston-compatible API", 1)[1]
    block = re.search(r"```json\n(.*?)```", section, re.S)
    assert block is not None, "docs/piston.md has no JSON request"
    r = await piston.post("/execute", content=block.group(1).encode(),
                          headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["language"] == "javascript" and "compile" not in doc
    assert "my_cool_code.js" in doc["run"]["stdout"]
    assert "'1', '2', '3'" in doc["run"]["stdout"].replace("\n", "").replace("  ", " ")


async def test_npm_piston_client(system: System) -> None:
    node = shutil.which("node")
    assert node is not None, "node is not installed (./deploy.sh installs nodejs)"
    index = await asyncio.to_thread(installed_piston_client)
    proc = await asyncio.create_subprocess_exec(
        node, str(DRIVER), str(index), system.url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    got = json.loads(out)
    assert {rt["language"] for rt in got["runtimes"]} == set(PISTON_NAME.values())
    assert got["hello"]["run"]["stdout"] == "hello from piston-client\n", got["hello"]
    assert got["withInput"]["run"]["stdout"] == "abc x,y\n", got["withInput"]
    assert got["compiled"]["compile"]["code"] == 0
    assert got["compiled"]["run"]["stdout"] == "c++ ok\n", got["compiled"]
    assert (got["limited"]["run"]["status"], got["limited"]["run"]["signal"]) == ("TO",
                                                                                 "SIGKILL")
    assert got["alias"] == {"message": "version is required as a string"}


def installed_piston_client() -> Path:
    """piston-client 1.0.2 in .cache/npm, installed there first if ./deploy.sh has not."""
    package = PISTON_CLIENT / "package.json"
    if not package.exists():
        npm = shutil.which("npm")
        assert npm is not None, "npm is not installed (./deploy.sh test installs it)"
        done = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--prefix",
                               str(NPM_DIR), "piston-client@1.0.2"],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    assert json.loads(package.read_text())["version"] == "1.0.2"
    return PISTON_CLIENT / "index.js"


async def test_pypi_pistonapi(system: System) -> None:
    api = PistonAPI(endpoint=f"{system.url}/api/v2")

    def drive() -> tuple[dict[str, Any], str, str, str]:
        languages = api.languages
        output = api.execute("python", "3", "import sys\nprint(input(), sys.argv[1:])",
                             stdin="from pypi", args=["a", "b"])
        compiled = api.execute("c", "*", '#include <stdio.h>\nint main(){puts("c ok");}')
        with pytest.raises(PistonError) as e:
            api.execute("python", "latest", "print(1)")
        return languages, output, compiled, str(e.value)

    languages, output, compiled, error = await asyncio.wait_for(asyncio.to_thread(drive), 120)
    assert set(languages) == set(PISTON_NAME.values())
    assert "version" in languages["python"] and "aliases" in languages["python"]
    assert output == "from pypi ['a', 'b']\n"
    assert compiled == "c ok\n"
    assert error == "python-latest runtime is unknown"
