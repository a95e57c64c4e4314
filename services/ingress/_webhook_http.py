"""Sending one webhook over HTTP: bounded, no redirects, and only to addresses allowed.

The address check (``RUNSTREAM_CALLBACK_ALLOW_PRIVATE``) is made where the
connection is opened, on the address the host name resolved to at that moment,
and the connection goes to that very address: a name that resolves to a public
address when checked and to 127.0.0.1 when connected (DNS rebinding) cannot slip
through. TLS still verifies the certificate against the URL's host name.
Redirects are not followed (a 3xx is a failed attempt), so a receiver cannot
bounce a webhook to an internal address either.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpcore
from runstream.schemas.errors import RunstreamError
from runstream.streams.webhook_policy import address_allowed

#: Bytes of the receiver's answer read (and then dropped): only its status matters.
_ANSWER_READ = 4096


class AddressRefused(RunstreamError):
    """The URL's host resolves only to addresses webhooks may not go to."""


@dataclass(frozen=True)
class Outcome:
    """What one attempt got: a status code, or an error; and how long it took."""

    status_code: int | None
    error: str | None
    duration_ms: int
    #: No later attempt can do better (the address is refused).
    permanent: bool = False

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Connects only to resolved addresses that :func:`address_allowed` accepts."""

    def __init__(self, allow_private: bool) -> None:
        self.allow_private = allow_private
        self.inner = httpcore.AnyIOBackend()

    # The signatures are httpcore's network backend interface, timeout parameter included.
    async def connect_tcp(self, host: str, port: int,
                          timeout: float | None = None,  # noqa: ASYNC109
                          local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None,
                          ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout or 10.0)
        except (OSError, TimeoutError) as e:
            raise httpcore.ConnectError(f"{host} does not resolve: {e}") from e
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        allowed = [a for a in addresses if address_allowed(a, self.allow_private)]
        if not allowed:
            raise AddressRefused(
                f"{host} resolves to {', '.join(addresses)}: not a public address, and "
                "RUNSTREAM_CALLBACK_ALLOW_PRIVATE is off")
        error: Exception | None = None
        for address in allowed:
            try:
                stream: httpcore.AsyncNetworkStream = await self.inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address,
                    socket_options=socket_options)
                return stream
            except httpcore.ConnectError as e:
                error = e
        assert error is not None
        raise error

    async def connect_unix_socket(self, path: str,
                                  timeout: float | None = None,  # noqa: ASYNC109
                                  socket_options: Iterable[Any] | None = None,
                                  ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("webhooks do not go to unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class Sender:
    """A connection pool for webhooks; :meth:`send` makes one bounded attempt."""

    def __init__(self, *, allow_private: bool, timeout_s: float, connections: int) -> None:
        self.timeout_s = timeout_s
        self.pool = httpcore.AsyncConnectionPool(
            network_backend=_GuardedBackend(allow_private), max_connections=connections,
            keepalive_expiry=30.0, retries=0)

    async def close(self) -> None:
        with contextlib.suppress(TimeoutError, OSError, httpcore.NetworkError):
            await asyncio.wait_for(self.pool.aclose(), 2.0)

    async def send(self, method: str, url: str, body: bytes,
                   headers: list[tuple[str, str]]) -> Outcome:
        """One attempt, bounded by the timeout as a whole, whatever the receiver does."""
        t0 = time.monotonic()
        t = self.timeout_s
        ext = {"timeout": {"connect": t, "read": t, "write": t, "pool": t}}
        try:
            async with asyncio.timeout(t):
                async with self.pool.stream(method, url, headers=headers, content=body,
                                            extensions=ext) as response:
                    status = int(response.status)
                    read = 0
                    async for chunk in response.aiter_stream():
                        read += len(chunk)
                        if read >= _ANSWER_READ:
                            break
            return Outcome(status, None if 200 <= status < 300 else f"HTTP {status}",
                           _ms(t0))
        except AddressRefused as e:
            return Outcome(None, e.message, _ms(t0), permanent=True)
        except TimeoutError:
            return Outcome(None, f"no answer within {t:g}s", _ms(t0))
        except (httpcore.TimeoutException, httpcore.NetworkError,
                httpcore.ProtocolError, httpcore.UnsupportedProtocol, OSError) as e:
            return Outcome(None, f"{type(e).__name__}: {e}"[:500], _ms(t0))


def _ms(t0: float) -> int:
    return int((time.monotonic() - t0) * 1000)
