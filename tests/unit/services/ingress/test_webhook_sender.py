"""One webhook attempt over real loopback sockets: answers, timeouts, redirects, SSRF.

In-process (the receiver is tests/webhook_receiver.py on a free port); no Kafka.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import pytest
from runstream.services.ingress._webhook_http import Sender

from tests.webhook_receiver import Receiver


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    try:
        yield r
    finally:
        await r.stop()


async def test_a_2xx_is_ok_and_the_body_and_headers_arrive(receiver: Receiver) -> None:
    sender = Sender(allow_private=True, timeout_s=5, connections=4)
    try:
        out = await sender.send("PUT", f"{receiver.url}/h", b'{"a":1}', [("X-Test", "1")])
    finally:
        await sender.close()
    assert out.ok and out.status_code == 200 and out.error is None and not out.permanent
    [got] = receiver.got["/h"]
    assert (got.method, got.body, got.headers["x-test"]) == ("PUT", b'{"a":1}', "1")


async def test_a_5xx_is_a_failed_attempt_to_retry(receiver: Receiver) -> None:
    receiver.script["/h"] = [503]
    sender = Sender(allow_private=True, timeout_s=5, connections=4)
    try:
        out = await sender.send("POST", f"{receiver.url}/h", b"{}", [])
    finally:
        await sender.close()
    assert not out.ok and out.status_code == 503 and out.error == "HTTP 503"
    assert not out.permanent


async def test_a_redirect_is_not_followed(receiver: Receiver) -> None:
    receiver.script["/h"] = [302]
    sender = Sender(allow_private=True, timeout_s=5, connections=4)
    try:
        out = await sender.send("POST", f"{receiver.url}/h", b"{}", [])
    finally:
        await sender.close()
    assert out.status_code == 302 and not out.ok
    assert len(receiver.got["/h"]) == 1


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::ffff:127.0.0.1]"])
async def test_private_addresses_are_refused_on_the_resolved_address(
        receiver: Receiver, host: str) -> None:
    sender = Sender(allow_private=False, timeout_s=5, connections=4)
    try:
        out = await sender.send("POST", f"http://{host}:{receiver.port}/h", b"{}", [])
    finally:
        await sender.close()
    assert out.permanent and not out.ok and out.status_code is None
    assert out.error is not None and "not a public address" in out.error
    assert "/h" not in receiver.got  # nothing was sent


async def test_a_receiver_that_never_answers_costs_the_timeout_not_more() -> None:
    accepted = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set()
        with contextlib.suppress(Exception):
            await reader.read()  # holds the connection, never answers
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    sender = Sender(allow_private=True, timeout_s=0.5, connections=4)
    try:
        out = await asyncio.wait_for(
            sender.send("POST", f"http://127.0.0.1:{port}/", b"{}", []), 5)
    finally:
        await sender.close()
        server.close()
    assert accepted.is_set()
    assert not out.ok and out.status_code is None and not out.permanent
    assert out.error is not None and 400 <= out.duration_ms < 3000


async def test_a_refused_connection_is_a_failed_attempt() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: refused
        sender = Sender(allow_private=True, timeout_s=2, connections=4)
        try:
            out = await sender.send("POST", f"http://127.0.0.1:{port}/", b"{}", [])
        finally:
            await sender.close()
    assert not out.ok and not out.permanent and out.error and "ConnectError" in out.error
