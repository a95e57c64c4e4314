"""Callers waiting for results by execution id, and the switch that releases them all.

Two things are kept apart on purpose: *someone waits for an id* (here) and *this
process produced an id* (``streams/channel.py``). A lookup that waits therefore
never makes a later request of the same id look already produced, and a result
that arrives twice (a re-run after a worker crash) resolves nothing the second time.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


@dataclass
class _Waiter:
    future: asyncio.Future[bytes]
    count: int = 0


class Waiters:
    """One future per awaited execution id, shared by everyone who waits for it."""

    def __init__(self) -> None:
        self._by_id: dict[str, _Waiter] = {}
        self._release: asyncio.Future[None] | None = None
        self._idle: asyncio.Event | None = None

    def open(self) -> None:
        """Start taking waits (in the running loop): release and idleness start here."""
        self._release = asyncio.get_running_loop().create_future()
        self._idle = asyncio.Event()
        self._idle.set()

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, exec_id: object) -> bool:
        return exec_id in self._by_id

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._by_id))

    def count(self, exec_id: str) -> int:
        """How many callers wait for ``exec_id`` now."""
        waiter = self._by_id.get(exec_id)
        return waiter.count if waiter is not None else 0

    @contextlib.contextmanager
    def waiting(self, exec_id: str) -> Iterator[asyncio.Future[bytes]]:
        """Register interest in ``exec_id`` for the block: its result resolves the future.

        Register before looking the id up, so a result arriving in between is not missed.
        """
        waiter = self._by_id.get(exec_id)
        if waiter is None:
            waiter = self._by_id[exec_id] = _Waiter(
                asyncio.get_running_loop().create_future())
            if self._idle is not None:
                self._idle.clear()
        waiter.count += 1
        try:
            yield waiter.future
        finally:
            waiter.count -= 1
            if waiter.count == 0 and self._by_id.get(exec_id) is waiter:
                del self._by_id[exec_id]
                if not waiter.future.done():
                    waiter.future.cancel()
                if not self._by_id and self._idle is not None:
                    self._idle.set()

    def resolve(self, exec_id: str, value: bytes) -> None:
        """Hand ``value`` to whoever waits for ``exec_id`` (nothing if it was resolved)."""
        waiter = self._by_id.get(exec_id)
        if waiter is not None and not waiter.future.done():
            waiter.future.set_result(value)

    async def wait(self, future: asyncio.Future[bytes], timeout_s: float) -> bytes | None:
        """The result, or None after ``timeout_s`` or once :meth:`release` was called."""
        if not future.done() and timeout_s > 0:
            waits: list[asyncio.Future[Any]] = [future]
            if self._release is not None:
                waits.append(self._release)
            await asyncio.wait(waits, timeout=timeout_s,
                               return_when=asyncio.FIRST_COMPLETED)
        if future.done() and not future.cancelled():
            return future.result()
        return None

    @property
    def stopping(self) -> asyncio.Future[None] | None:
        """Resolved once :meth:`release` was called: long waits (event streams) end."""
        return self._release

    def release(self) -> None:
        """Every wait, current and future, returns now (the process is stopping)."""
        if self._release is not None and not self._release.done():
            self._release.set_result(None)

    async def idle(self, timeout_s: float) -> bool:
        """Wait until nobody waits for a result; False if some still do after ``timeout_s``."""
        if self._idle is None:
            return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        return self._idle.is_set()
