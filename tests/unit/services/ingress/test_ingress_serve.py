"""The ingress's stop: the first signal drains before uvicorn stops, a second one forces it."""

from __future__ import annotations

import asyncio
import signal
from typing import Any, cast

import uvicorn
from runstream.services.ingress.app import Ingress
from runstream.services.ingress.serve import DrainingServer


class FakeIngress:
    """What the server asks of the ingress when it stops: ``drain()``."""

    def __init__(self) -> None:
        self.drained = asyncio.Event()
        self.release = asyncio.Event()

    async def drain(self) -> None:
        self.drained.set()
        await self.release.wait()


async def _app(scope: Any, receive: Any, send: Any) -> None:  # never called
    raise AssertionError("no request in these tests")


def _server(ingress: FakeIngress) -> DrainingServer:
    server = DrainingServer(uvicorn.Config(_app), cast(Ingress, ingress))
    server._loop = asyncio.get_running_loop()  # what serve() records before uvicorn runs
    return server


async def test_the_first_signal_drains_then_lets_uvicorn_exit_cleanly() -> None:
    ingress = FakeIngress()
    server = _server(ingress)
    server.handle_exit(signal.SIGTERM, None)
    await asyncio.wait_for(ingress.drained.wait(), 5)
    assert not server.should_exit  # uvicorn keeps serving while the ingress drains
    ingress.release.set()
    assert server._drain is not None
    await asyncio.wait_for(server._drain, 5)
    assert server.should_exit and not server.force_exit
    assert server._captured_signals == []  # a clean exit (0), not a death by SIGTERM


async def test_a_second_signal_forces_the_exit_at_once() -> None:
    ingress = FakeIngress()
    server = _server(ingress)
    server.handle_exit(signal.SIGTERM, None)
    await asyncio.wait_for(ingress.drained.wait(), 5)
    server.handle_exit(signal.SIGINT, None)
    assert server.force_exit and server.should_exit
    assert server._captured_signals == [signal.SIGINT]
    ingress.release.set()


async def test_a_signal_while_uvicorn_already_stops_forces_the_exit() -> None:
    ingress = FakeIngress()
    server = _server(ingress)
    server.should_exit = True  # e.g. the app's start-up failed
    server.handle_exit(signal.SIGTERM, None)
    assert server.force_exit and server._drain is None and not ingress.drained.is_set()
