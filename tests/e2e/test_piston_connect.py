"""Piston's interactive WebSocket /api/v2/connect against a running system: a real
socket (the ``websockets`` client) to an ingress process, the request through Kafka
to a worker process, the program in the bwrap sandbox, its stdin live over the stdin
topic and its output back over the events topic.

The messages are those Piston's own CLI sends with ``-t`` (cli/commands/execute.js):
init with ``{language, version, files: [{name, content, encoding}], args,
compile_timeout, run_timeout}``, then ``{"type": "data", "stream": "stdin", "data"}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.system import System, busy_worker

pytestmark = [pytest.mark.kafka, pytest.mark.sandbox]

TWO_LINES = ("import sys\n"
             "for i in (1, 2):\n"
             "    line = sys.stdin.readline()\n"
             "    print(f'{i}: {line.strip()[::-1]}', flush=True)\n")
ASKS = ('#include <stdio.h>\n'
        'int main(void) {\n'
        '    char name[64];\n'
        '    printf("name?\\n"); fflush(stdout);\n'
        '    if (scanf("%63s", name) == 1) printf("hello %s\\n", name);\n'
        '    return 0;\n'
        '}\n')
SPINS = "print('ready', flush=True)\nwhile True:\n    pass\n"
SLEEPS = "import time\nprint('ready', flush=True)\ntime.sleep(1000)\n"


class Session:
    """One client of /api/v2/connect: what it sent and every frame it got."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.frames: list[dict[str, Any]] = []
        self.close: tuple[int, str] | None = None

    async def send(self, **doc: Any) -> None:
        await self.ws.send(json.dumps(doc))

    async def init(self, language: str, code: str, name: str, **fields: Any) -> dict[str, Any]:
        await self.send(**{"type": "init", "language": language, "version": "*",
                           "files": [{"name": name, "content": code, "encoding": "utf8"}],
                           "args": [], "compile_timeout": 10000, "run_timeout": 20000,
                           **fields})
        runtime = await self.until(lambda f: True)
        assert runtime["type"] == "runtime", runtime
        return runtime

    async def until(self, predicate: Callable[[dict[str, Any]], bool],
                    timeout_s: float = 60) -> dict[str, Any]:
        """The next frame that satisfies ``predicate`` (every frame is kept)."""
        async with asyncio.timeout(timeout_s):
            while True:
                frame = json.loads(await self.ws.recv())
                self.frames.append(frame)
                if predicate(frame):
                    return frame

    def stdout(self) -> str:
        return "".join(f["data"] for f in self.frames
                       if f["type"] == "data" and f["stream"] == "stdout")

    async def printed(self, text: str, timeout_s: float = 60) -> None:
        if text not in self.stdout():
            await self.until(lambda f: text in self.stdout(), timeout_s)

    async def closed(self, timeout_s: float = 60) -> tuple[int, str]:
        """Read frames until the server closes: its code and reason."""
        try:
            await self.until(lambda f: False, timeout_s)
        except ConnectionClosed as e:
            assert e.rcvd is not None, "the connection ended without a close frame"
            return e.rcvd.code, e.rcvd.reason
        raise AssertionError("unreachable")

    def kinds(self) -> list[tuple[str, str | None]]:
        """The frames that are not output: (type, stage)."""
        return [(f["type"], f.get("stage")) for f in self.frames if f["type"] != "data"]


@pytest.fixture
def ws_url(system: System) -> str:
    return system.url.replace("http://", "ws://") + "/api/v2/connect"


@pytest.fixture
async def session(ws_url: str) -> AsyncIterator[Session]:
    async with connect(ws_url, open_timeout=10, close_timeout=5) as ws:
        yield Session(ws)


async def result(system: System, exec_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=system.url, timeout=60) as http:
        r = await http.get(f"/v1/executions/{exec_id}", params={"wait": 30})
    assert r.status_code == 200, r.text
    doc: dict[str, Any] = r.json()
    return doc


async def test_python_answers_each_line_before_the_next_is_sent(session: Session) -> None:
    runtime = await session.init("python", TWO_LINES, "main.py")
    assert runtime["language"] == "python" and runtime["version"].count(".") == 2
    assert await session.until(lambda f: True) == {"type": "stage", "stage": "run"}
    await session.send(type="data", stream="stdin", data="abc\n")
    await session.printed("1: cba\n")
    assert "2:" not in session.stdout()  # the answer to line 1 came before line 2 was sent
    await session.send(type="data", stream="stdin", data="def\n")
    await session.printed("2: fed\n")
    assert await session.closed() == (4999, "Job Completed")
    assert session.stdout() == "1: cba\n2: fed\n"
    assert session.kinds() == [("runtime", None), ("stage", "run"), ("exit", "run")]
    assert session.frames[-1] == {"type": "exit", "stage": "run", "code": 0, "signal": None}


async def test_c_compiles_then_runs_with_live_stdin(session: Session) -> None:
    await session.init("c", ASKS, "main.c")
    # Typed before the program exists (queued, then compiling): kept for its run.
    await session.send(type="data", stream="stdin", data="world\n")
    await session.printed("name?\n")
    assert session.kinds() == [("runtime", None), ("stage", "compile"), ("exit", "compile"),
                               ("stage", "run")]
    assert session.frames[2] == {"type": "exit", "stage": "compile", "code": 0, "signal": None}
    assert await session.closed() == (4999, "Job Completed")
    assert session.stdout() == "name?\nhello world\n"
    assert session.frames[-1] == {"type": "exit", "stage": "run", "code": 0, "signal": None}


async def test_sigkill_ends_an_endless_program(session: Session, system: System) -> None:
    runtime = await session.init("python", SPINS, "main.py", run_cpu_time=20000)
    await session.printed("ready")
    sent = time.monotonic()
    await session.send(type="signal", signal="SIGKILL")
    assert await session.closed() == (4999, "Job Completed")
    assert time.monotonic() - sent < 10  # the kill, not its 20 s limits
    assert session.frames[-1] == {"type": "exit", "stage": "run", "code": None,
                                  "signal": "SIGKILL"}
    run = (await result(system, runtime["id"]))["run"]
    assert (run["signal"], run["time_limit"]) == ("SIGKILL", None) and run["wall_ms"] < 15000


async def test_the_close_codes_before_init(ws_url: str) -> None:
    async with connect(ws_url, open_timeout=10) as ws:
        t0 = time.monotonic()
        assert await Session(ws).closed() == (4001, "Initialization Timeout")
        assert 0.9 <= time.monotonic() - t0 < 5
    async with connect(ws_url, open_timeout=10) as ws:
        s = Session(ws)
        await s.send(type="data", stream="stdin", data="early")
        assert await s.closed() == (4003, "Not yet initialized")
    async with connect(ws_url, open_timeout=10) as ws:
        s = Session(ws)
        await s.send(type="init", language="nosuchlang", version="*", files=[{"content": "x"}])
        assert await s.closed() == (4002, "Notified Error")
        assert s.frames == [{"type": "error", "message": "nosuchlang-* runtime is unknown"}]


async def test_a_control_character_in_init_is_refused_and_the_next_session_runs(
        ws_url: str) -> None:
    """A string that would reach a process (issue 23): Piston's error then 4002, no run.

    That nothing reaches Kafka is checked in-process
    (tests/unit/services/ingress/piston/test_piston_session.py, every field).
    """
    for change, words in [
        ({"args": ["a\0b"]}, "args.0: contains the control character U+0000 (NUL)"),
        ({"files": [{"name": "main.py\n", "content": "print(1)"}]},
         "files[0].name must be a plain file name"),
        ({"language": "python\n"}, "language: contains the control character U+000A"),
    ]:
        async with connect(ws_url, open_timeout=10) as ws:
            s = Session(ws)
            await s.send(**{"type": "init", "language": "python", "version": "*",
                            "files": [{"name": "main.py", "content": "print(1)"}], **change})
            assert await s.closed() == (4002, "Notified Error"), change
            assert [f["type"] for f in s.frames] == ["error"], s.frames  # no runtime: no id
            assert s.frames[0]["message"].startswith(words), s.frames
    async with connect(ws_url, open_timeout=10) as ws:
        s = Session(ws)
        await s.init("python", "print(6*7)", "main.py")
        assert await s.closed() == (4999, "Job Completed")
        assert s.stdout() == "42\n"


@pytest.mark.parametrize(("message", "close"), [
    ({"type": "data", "stream": "stderr", "data": "x"}, (4004, "Can only write to stdin")),
    ({"type": "signal", "signal": "SIGWHATEVER"}, (4005, "Invalid signal")),
    ({"type": "init", "language": "python", "version": "*", "files": []},
     (4000, "Already Initialized")),
])
async def test_a_protocol_error_closes_and_kills_the_program(
        session: Session, system: System, message: dict[str, Any],
        close: tuple[int, str]) -> None:
    runtime = await session.init("python", SLEEPS, "main.py", run_timeout=30000)
    await session.printed("ready")
    await session.send(**message)
    assert await session.closed() == close
    run = (await result(system, runtime["id"]))["run"]
    # Killed when the session ended, not 30 s later at its wall limit.
    assert (run["signal"], run["time_limit"]) == ("SIGKILL", None) and run["wall_ms"] < 15000


async def test_a_client_that_leaves_mid_run_frees_its_slot(ws_url: str, system: System) -> None:
    ids = []
    for _ in range(system.slots * len(system.workers)):  # every slot of the system
        async with connect(ws_url, open_timeout=10) as ws:
            s = Session(ws)
            ids.append((await s.init("python", SLEEPS, "main.py", run_timeout=30000))["id"])
            await s.printed("ready")
        # The socket is closed here, with the program still sleeping.
    runs = [(await result(system, exec_id))["run"] for exec_id in ids]
    assert all((r["signal"], r["time_limit"]) == ("SIGKILL", None) for r in runs), runs
    assert all(r["wall_ms"] < 15000 for r in runs), runs
    async with httpx.AsyncClient(base_url=f"{system.url}/api/v2", timeout=60) as http:
        t0 = time.monotonic()
        r = await http.post("/execute", json={"language": "python", "version": "*",
                                              "files": [{"content": "print(42)"}]})
        assert r.status_code == 200 and r.json()["run"]["stdout"] == "42\n", r.text
        assert time.monotonic() - t0 < 15  # no slot is still held by a session that left


async def test_a_flood_into_a_program_that_never_reads(session: Session,
                                                       system: System) -> None:
    """Past the session's stdin budget (1 MiB) the session ends, and the program with it."""
    runtime = await session.init("python", SLEEPS, "main.py", run_timeout=30000)
    await session.printed("ready")
    chunk = "x" * (128 * 1024)
    with contextlib.suppress(ConnectionClosed):  # the server may close while we still send
        for _ in range(64):  # 8 MiB
            await session.send(type="data", stream="stdin", data=chunk)
    assert await session.closed() == (4002, "Notified Error")
    error = next(f for f in session.frames if f["type"] == "error")
    assert "stdin over" in error["message"]
    run = (await result(system, runtime["id"]))["run"]
    assert (run["signal"], run["time_limit"]) == ("SIGKILL", None) and run["wall_ms"] < 15000


async def test_a_worker_that_dies_mid_run_ends_the_session(ws_url: str, system: System) -> None:
    """The request runs again elsewhere, but typed input cannot be replayed: error, 4002."""
    async with connect(ws_url, open_timeout=10) as ws:
        s = Session(ws)
        exec_id = (await s.init("python", SLEEPS, "main.py", run_timeout=30000))["id"]
        await s.printed("ready")
        victim = await busy_worker(system, 1, 20)
        await asyncio.to_thread(system.kill_worker, victim)
        try:
            assert await s.closed(timeout_s=90) == (4002, "Notified Error")
            error = next(f for f in s.frames if f["type"] == "error")
            assert "cannot be replayed" in error["message"]
            doc = await result(system, exec_id)  # the second run, killed by the hang-up
            assert doc["worker"] != victim
            assert (doc["run"]["signal"], doc["run"]["time_limit"]) == ("SIGKILL", None)
        finally:
            system.start_worker(victim)
            await asyncio.to_thread(system.wait_ready)
