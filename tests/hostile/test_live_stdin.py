"""A live stdin (interactive runs) against both sandbox backends directly (no Kafka).

The test types into the run while it goes and reads its output as it is written:
each answer arrives before the next line is sent, signals reach the program (not
the sandbox's own processes), a kill ends the run at once, and a program that
never reads while input floods in is still ended by its kill, with nothing left.
"""

from __future__ import annotations

import asyncio
import json
import textwrap
from collections.abc import Callable

import pytest
from runstream.schemas.models import PhaseResult
from runstream.services.execution.languages import Language, render
from runstream.services.execution.sandbox.base import Input, Sandbox
from runstream.services.execution.sandbox.bwrap import BwrapSandbox
from runstream.services.execution.sandbox.docker import DockerSandbox
from runstream.services.settings import Settings
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.system import System

from .conftest import REGISTRY, assert_clean_and_healthy, docker_containers, limits

TWO_LINES = textwrap.dedent("""\
    import sys
    for i in (1, 2):
        line = sys.stdin.readline()
        print(f"{i}: {line.strip()[::-1]}", flush=True)
    print("bye", sys.stdin.read() == "", flush=True)
""")
TRAPS = textwrap.dedent("""\
    import os, signal, time
    def caught(number, frame):
        os.write(1, b"got %d\\n" % number)  # not print: it may be inside print's flush
        os._exit(3)
    signal.signal(signal.SIGUSR1, caught)
    signal.signal(signal.SIGINT, caught)
    print("ready", flush=True)
    while True:
        time.sleep(0.05)
""")
SPIN = 'print("ready", flush=True)\nwhile True:\n    pass\n'
NEVER_READS = 'import time\nprint("ready", flush=True)\ntime.sleep(1000)\n'


class Keyboard:
    """A LiveInput the test types into, and the output the run writes, as it comes."""

    def __init__(self) -> None:
        self.items: asyncio.Queue[Input] = asyncio.Queue()
        self.stdout = bytearray()
        self.changed = asyncio.Event()

    async def get(self) -> Input:
        return await self.items.get()

    def type(self, data: bytes = b"", *, signal: str | None = None, eof: bool = False) -> None:
        self.items.put_nowait(Input(data=data, signal=signal, eof=eof))

    def output(self, stream: str, data: bytes) -> None:
        if stream == "stdout":
            self.stdout += data
            self.changed.set()

    async def until(self, predicate: Callable[[bytes], bool], timeout_s: float = 20) -> None:
        async with asyncio.timeout(timeout_s):
            while not predicate(bytes(self.stdout)):
                self.changed.clear()
                await self.changed.wait()


async def start(sb: Sandbox, source: str, keys: Keyboard, **over: int) -> asyncio.Task[
        PhaseResult]:
    """The program running with ``keys`` as its stdin (a task: the test types meanwhile)."""
    lang: Language = REGISTRY.resolve("python")
    settings: Settings = sb.settings  # type: ignore[attr-defined]
    lim = limits(settings, **over)

    async def run() -> PhaseResult:
        async with sb.workspace("live", [(lang.entry, source.encode())], lang) as ws:
            return await ws.run(render(lang.run, lang, lim), stdin=keys, limits=lim,
                                language=lang, output=keys.output)

    return asyncio.create_task(run())


async def two_lines_answered_one_by_one(sb: Sandbox) -> None:
    keys = Keyboard()
    running = await start(sb, TWO_LINES, keys, wall_ms=20000)
    keys.type(b"abc\n")
    await keys.until(lambda out: b"1: cba\n" in out)
    assert b"2:" not in keys.stdout  # the second line is not sent yet: the answer was live
    keys.type(b"def\n")
    await keys.until(lambda out: b"2: fed\n" in out)
    keys.type(eof=True)
    r = await asyncio.wait_for(running, 20)
    assert (r.exit_code, r.signal, r.stdout) == (0, None, b"1: cba\n2: fed\nbye True\n"), r


async def signals_reach_the_program(sb: Sandbox) -> None:
    keys = Keyboard()
    running = await start(sb, TRAPS, keys, wall_ms=20000)
    await keys.until(lambda out: b"ready" in out)
    keys.type(signal="SIGUSR1")
    r = await asyncio.wait_for(running, 20)
    # The program caught it and chose its exit status: the sandbox's own processes
    # were not signalled (bwrap would report a death by the signal instead).
    assert (r.exit_code, r.signal, r.stdout) == (3, None, b"ready\ngot 10\n"), r


@pytest.mark.sandbox
async def test_bwrap_answers_each_line_before_the_next_is_typed(sandbox: BwrapSandbox) -> None:
    await two_lines_answered_one_by_one(sandbox)
    await assert_clean_and_healthy(sandbox)


@pytest.mark.sandbox
async def test_bwrap_signals_reach_the_program(sandbox: BwrapSandbox) -> None:
    await signals_reach_the_program(sandbox)
    keys = Keyboard()
    running = await start(sandbox, SPIN, keys, wall_ms=20000)
    await keys.until(lambda out: b"ready" in out)
    keys.type(signal="SIGKILL")
    r = await asyncio.wait_for(running, 20)
    assert (r.signal, r.exit_code, r.time_limit) == ("SIGKILL", None, None), r
    assert r.wall_ms < 10000, r  # ended by the kill, not by its limit
    await assert_clean_and_healthy(sandbox)


async def a_kill_before_the_program_started_still_ends_it(sb: Sandbox) -> None:
    keys = Keyboard()
    keys.type(signal="SIGKILL", eof=True)  # a client that hung up at once
    r = await asyncio.wait_for(await start(sb, NEVER_READS, keys, wall_ms=20000), 20)
    assert (r.signal, r.time_limit) == ("SIGKILL", None) and r.wall_ms < 10000, r


@pytest.mark.sandbox
async def test_bwrap_a_kill_before_the_program_started_still_ends_it(
        sandbox: BwrapSandbox) -> None:
    await a_kill_before_the_program_started_still_ends_it(sandbox)
    await assert_clean_and_healthy(sandbox)


@pytest.mark.sandbox
async def test_bwrap_a_flood_into_a_program_that_never_reads_ends_at_its_kill(
        sandbox: BwrapSandbox) -> None:
    keys = Keyboard()
    running = await start(sandbox, NEVER_READS, keys, wall_ms=20000)
    await keys.until(lambda out: b"ready" in out)
    for _ in range(40):  # 10 MiB: past the pipe, past what a phase holds for it
        keys.type(b"x" * 256 * 1024)
    keys.type(signal="SIGKILL", eof=True)  # what a client that hung up sends
    r = await asyncio.wait_for(running, 20)
    assert (r.signal, r.time_limit) == ("SIGKILL", None) and r.wall_ms < 10000, r
    await assert_clean_and_healthy(sandbox)


@pytest.mark.docker
@pytest.mark.timeout(180)
async def test_docker_answers_each_line_and_takes_signals(docker_sandbox: DockerSandbox) -> None:
    await two_lines_answered_one_by_one(docker_sandbox)
    await signals_reach_the_program(docker_sandbox)
    await a_kill_before_the_program_started_still_ends_it(docker_sandbox)
    keys = Keyboard()
    running = await start(docker_sandbox, NEVER_READS, keys, wall_ms=20000)
    await keys.until(lambda out: b"ready" in out)
    for _ in range(16):
        keys.type(b"x" * 256 * 1024)
    keys.type(signal="SIGKILL", eof=True)
    r = await asyncio.wait_for(running, 30)
    assert (r.signal, r.time_limit) == ("SIGKILL", None) and r.wall_ms < 10000, r
    await docker_sandbox.settle()
    pooled = {cid for entries in (docker_sandbox._pool._ready.values()
                                  if docker_sandbox._pool else ()) for _, cid in entries}
    assert set(docker_containers(docker_sandbox.scope)) <= pooled


@pytest.mark.docker
@pytest.mark.kafka
@pytest.mark.timeout(300)
async def test_docker_through_the_pipeline(docker_system: System) -> None:
    """Piston's WebSocket, Kafka, a docker-backend worker: answers come line by line."""
    url = docker_system.url.replace("http://", "ws://") + "/api/v2/connect"
    async with connect(url, open_timeout=10, close_timeout=5) as ws:
        await ws.send(json.dumps({"type": "init", "language": "python", "version": "*",
                                  "files": [{"name": "main.py", "content": TWO_LINES}],
                                  "run_timeout": 20000}))
        frames: list[dict[str, object]] = []

        async def printed(text: str) -> str:
            async with asyncio.timeout(120):
                while True:
                    out = "".join(str(f["data"]) for f in frames if f["type"] == "data")
                    if text in out:
                        return out
                    frames.append(json.loads(await ws.recv()))

        await ws.send(json.dumps({"type": "data", "stream": "stdin", "data": "abc\n"}))
        assert "2:" not in await printed("1: cba\n")
        await ws.send(json.dumps({"type": "data", "stream": "stdin", "data": "def\n"}))
        await printed("2: fed\n")
        await ws.send(json.dumps({"type": "eof"}))  # runstream's end of input
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(60):
                while True:
                    frames.append(json.loads(await ws.recv()))
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4999, "Job Completed")
    assert [f["type"] for f in frames if f["type"] != "data"] == [
        "runtime", "stage", "exit"]
    assert frames[-1] == {"type": "exit", "stage": "run", "code": 0, "signal": None}
