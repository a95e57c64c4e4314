"""A Piston WebSocket session in-process, over the fake request channel (no broker): fast.

The socket is driven as a server sees it (ASGI messages, on the test's own loop);
the worker's side is played by hand: its events are fed to the ingress's event
feed, its result answered on the channel. Covers the frames in order, stdin going
to the stdin topic, the hang-up when the client leaves, the API key's
concurrency quota counting an interactive run like any other, and an init with a
control character in a string that would reach a process refused before Kafka.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import orjson
from runstream.schemas import events
from runstream.schemas.stdin import StdinKind, StdinMessage
from runstream.services.ingress.app import create_app
from runstream.services.settings import Settings
from starlette.applications import Starlette

from tests.unit.services.ingress.test_ingress_app import FakeChannel
from tests.unit.services.ingress.test_ingress_auth import FakeKeys, issue

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
INIT = {"type": "init", "language": "python", "version": "*",
        "files": [{"name": "main.py", "content": "print(input())"}], "stdin": "ignored"}


class Gateway(FakeChannel):
    """The fake request channel, serving python, recording the stdin topic."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.stdin: list[StdinMessage] = []
        self.stdin_changed = asyncio.Event()
        self.offset = 0

    def language_versions(self) -> dict[str, list[str]]:
        return {"python": ["3.11.2"]}

    async def send_stdin(self, items: list[StdinMessage]) -> None:
        self.stdin += items
        self.stdin_changed.set()

    async def stdin_until(self, predicate: Callable[[list[StdinMessage]], bool]) -> None:
        async with asyncio.timeout(5):
            while not predicate(self.stdin):
                self.stdin_changed.clear()
                await self.stdin_changed.wait()

    def worker_says(self, event: events.Event) -> None:
        """An event as the ingress's feed reads it from the events topic."""
        assert self.events is not None
        self.offset += 1
        self.events._on_record(SimpleNamespace(value=events.encode_event(event),
                                               offset=self.offset, topic="e", partition=0))


class Socket:
    """A WebSocket client speaking ASGI to the app directly."""

    def __init__(self, app: Starlette, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        scope = {"type": "websocket", "path": "/api/v2/connect", "raw_path": b"/api/v2/connect",
                 "root_path": "", "scheme": "ws", "query_string": b"",
                 "headers": headers or [], "client": ("127.0.0.1", 1),
                 "server": ("ingress", 80), "subprotocols": [], "asgi": {"version": "3.0"}}
        self.inbox.put_nowait({"type": "websocket.connect"})
        self.task = asyncio.create_task(app(scope, self.inbox.get, self.outbox.put))

    async def accepted(self) -> None:
        assert (await self.next())["type"] == "websocket.accept"

    def send(self, doc: dict[str, Any]) -> None:
        self.inbox.put_nowait({"type": "websocket.receive", "text": orjson.dumps(doc).decode()})

    def leave(self) -> None:
        self.inbox.put_nowait({"type": "websocket.disconnect", "code": 1001})

    async def next(self) -> dict[str, Any]:
        async with asyncio.timeout(10):
            return await self.outbox.get()

    async def frame(self) -> dict[str, Any]:
        message = await self.next()
        assert message["type"] == "websocket.send", message
        doc: dict[str, Any] = orjson.loads(message["text"])
        return doc

    async def close(self) -> tuple[int, str]:
        message = await self.next()
        assert message["type"] == "websocket.close", message
        return message["code"], message.get("reason", "")


def app_with(settings: Settings, gateway: Gateway, keys: FakeKeys | None = None) -> Starlette:
    return create_app(settings, channel=gateway, keys=keys)


async def test_a_session_from_init_to_job_completed(tmp_path: Path) -> None:
    settings = Settings.from_env({}, index_dir=str(tmp_path))
    gateway = Gateway(settings)
    await gateway.start()
    ws = Socket(app_with(settings, gateway))
    await ws.accepted()
    ws.send(INIT)
    runtime = await ws.frame()
    (req,) = gateway.sent
    assert runtime == {"type": "runtime", "language": "python", "version": "3.11.2",
                       "id": req.id}
    assert req.interactive and req.stdin == b""  # init's stdin is ignored, as on Piston
    ws.send({"type": "data", "stream": "stdin", "data": "hello\n"})
    ws.send({"type": "signal", "signal": "SIGUSR1"})
    ws.send({"type": "eof"})
    await gateway.stdin_until(lambda items: len(items) == 3)
    assert [(m.seq, m.kind, m.data, m.signal) for m in gateway.stdin] == [
        (0, StdinKind.DATA, b"hello\n", None), (1, StdinKind.SIGNAL, b"", "SIGUSR1"),
        (2, StdinKind.EOF, b"", None)]
    gateway.worker_says(events.started(req.id, "a1", 0, NOW, worker="w", language="python",
                                       version="3.11.2"))
    assert await ws.frame() == {"type": "stage", "stage": "run"}
    gateway.worker_says(events.output(req.id, "a1", 1, NOW, stream="stdout", phase="run",
                                      test=None, data=b"hello\n", position=0))
    assert await ws.frame() == {"type": "data", "stream": "stdout", "data": "hello\n"}
    gateway.reply(req.id, orjson.dumps({
        "id": req.id, "status": "ok", "run": {"stdout": "hello\n", "stderr": "",
                                              "exit_code": 0, "signal": None}}))
    gateway.worker_says(events.finished(req.id, "a1", 2, NOW, "ok"))
    assert await ws.frame() == {"type": "exit", "stage": "run", "code": 0, "signal": None}
    assert await ws.close() == (4999, "Job Completed")
    await ws.task
    assert [m.kind for m in gateway.stdin] == [StdinKind.DATA, StdinKind.SIGNAL,
                                               StdinKind.EOF]  # no hang-up: it ended
    await gateway.stop()


async def test_protocol_errors_after_init_close_and_kill_the_program(tmp_path: Path) -> None:
    settings = Settings.from_env({}, index_dir=str(tmp_path))
    gateway = Gateway(settings)
    await gateway.start()
    app = app_with(settings, gateway)
    for message, close in [
        ({"type": "init"}, (4000, "Already Initialized")),
        ({"type": "data", "stream": "stdout", "data": "x"}, (4004, "Can only write to stdin")),
        ({"type": "signal", "signal": "SIGNOPE"}, (4005, "Invalid signal")),
    ]:
        ws = Socket(app)
        await ws.accepted()
        ws.send(INIT)
        exec_id = (await ws.frame())["id"]
        ws.send(message)
        assert await ws.close() == close
        await ws.task
        # Closing the socket ends the run: the worker is told to kill it.
        assert [m.kind for m in gateway.stdin if m.id == exec_id] == [StdinKind.HANGUP]
    await gateway.stop()


# (a change to INIT, the error frame's message): a string that would reach a process (issue 23)
BAD_INITS: list[tuple[dict[str, Any], str]] = [
    ({"args": ["a\0b"]}, "args.0: contains the control character U+0000 (NUL) at position 1, "
                          "which this field cannot carry"),
    ({"args": ["ok", "\x1b[2J"]}, "args.1: contains the control character U+001B (ESC) at "
                                  "position 0, which this field cannot carry"),
    ({"files": [{"name": "main.py\n", "content": "print(1)"}]},
     "files[0].name must be a plain file name (letters, digits, '.', '_', '-'; no "
     "directories, not starting with a dot)"),
    ({"files": [{"name": "a\0.py", "content": "print(1)"}]},
     "files[0].name must be a plain file name (letters, digits, '.', '_', '-'; no "
     "directories, not starting with a dot)"),
    ({"language": "py\0thon"}, "language: contains the control character U+0000 (NUL) at "
                               "position 2, which this field cannot carry"),
    # Trimmed by the runtime lookup, these ran as python before (the native API refuses them).
    ({"language": "python\n"}, "language: contains the control character U+000A (newline) "
                               "at position 6, which this field cannot carry"),
    ({"language": "\tpython"}, "language: contains the control character U+0009 (tab) at "
                               "position 0, which this field cannot carry"),
    ({"version": "*\n"}, "version: contains the control character U+000A (newline) at "
                         "position 1, which this field cannot carry"),
    ({"version": "3.11\x7f"}, "version: contains the control character U+007F (DEL) at "
                              "position 4, which this field cannot carry"),
]


async def test_a_control_character_in_init_is_an_error_then_4002_and_nothing_runs(
        tmp_path: Path) -> None:
    settings = Settings.from_env({}, index_dir=str(tmp_path))
    gateway = Gateway(settings)
    await gateway.start()
    app = app_with(settings, gateway)
    try:
        for change, message in BAD_INITS:
            ws = Socket(app)
            await ws.accepted()
            ws.send({**INIT, **change})
            assert await ws.frame() == {"type": "error", "message": message}, change
            assert await ws.close() == (4002, "Notified Error")
            await ws.task
        assert gateway.sent == [] and gateway.stdin == []  # nothing reached Kafka
        # The ingress goes on serving sessions.
        ws = Socket(app)
        await ws.accepted()
        ws.send(INIT)
        assert (await ws.frame())["id"] == gateway.sent[0].id
        ws.leave()
        await ws.task
    finally:
        await gateway.stop()


async def test_an_interactive_run_counts_against_its_keys_quota(tmp_path: Path) -> None:
    settings = Settings.from_env({}, index_dir=str(tmp_path), auth_required=True)
    gateway = Gateway(settings)
    await gateway.start()
    keys = FakeKeys(settings, name="test")
    app = app_with(settings, gateway, keys)
    record, full = issue(keys, max_concurrent=1, rate_per_s=0)
    auth = [(b"x-api-key", full.encode())]
    first = Socket(app, auth)
    await first.accepted()
    first.send(INIT)
    exec_id = (await first.frame())["id"]
    assert gateway.sent[-1].key_id == record.id  # stamped by the gateway, as every run
    second = Socket(app, auth)
    await second.accepted()
    second.send(INIT)
    refused = await second.frame()
    assert refused["type"] == "error" and "concurrency quota" in refused["message"]
    assert await second.close() == (4002, "Notified Error")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ingress") as http:
        hello = {"language": "python", "source": "print(1)"}
        r = await http.post("/v1/executions?wait=0", json=hello, headers={"X-Api-Key": full})
        assert r.status_code == 429
        first.leave()  # the client goes away: the program is killed...
        await gateway.stdin_until(lambda items: any(m.kind is StdinKind.HANGUP
                                                    for m in items))
        await first.task
        # ...and its slot is the key's again once the (killed) run's result is in.
        r = await http.post("/v1/executions?wait=0", json=hello, headers={"X-Api-Key": full})
        assert r.status_code == 429
        gateway.answer(exec_id, "runtime_error")
        r = await http.post("/v1/executions?wait=0", json=hello, headers={"X-Api-Key": full})
        assert r.status_code == 202, r.text
    await gateway.stop()
