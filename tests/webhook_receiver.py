"""A real HTTP receiver for webhook tests: a small asyncio server on a free loopback port.

It answers each request with the next status scripted for its path (200 once the
script is used up, or while a path is held, 500), and records what it got, so a
test can await "the n-th request to this path" instead of sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field


@dataclass
class Received:
    """One request as the receiver read it, and the status it answered."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    answered: int
    at: float = field(default_factory=time.time)


class Receiver:
    """Records requests per path; answers from a per-path script of status codes."""

    def __init__(self) -> None:
        self.got: dict[str, list[Received]] = {}
        self.script: dict[str, list[int]] = {}
        self.failing: set[str] = set()  # paths answered 500 until released
        self._changed = asyncio.Condition()
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 5)

    async def wait_for(self, path: str, count: int, timeout_s: float,
                       status: int | None = None) -> list[Received]:
        """Until ``count`` requests to ``path`` (answered ``status``, if given) arrived."""

        def matching() -> list[Received]:
            return [r for r in self.got.get(path, [])
                    if status is None or r.answered == status]

        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: len(matching()) >= count),
                                   timeout_s)
        return matching()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(30):
                while True:
                    head = await reader.readuntil(b"\r\n\r\n")
                    lines = head.decode("latin-1").split("\r\n")
                    method, path, _ = lines[0].split(" ", 2)
                    headers = {k.strip().lower(): v.strip() for k, _, v in
                               (line.partition(":") for line in lines[1:] if line)}
                    body = await reader.readexactly(int(headers.get("content-length", "0")))
                    status = self._status(path)
                    async with self._changed:
                        self.got.setdefault(path, []).append(
                            Received(method, path, headers, body, status))
                        self._changed.notify_all()
                    writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 2\r\n"
                                 f"Content-Type: text/plain\r\n\r\nok".encode())
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError, ValueError):
            pass
        finally:
            writer.close()

    def _status(self, path: str) -> int:
        if path in self.failing:
            return 500
        script = self.script.get(path)
        return script.pop(0) if script else 200
