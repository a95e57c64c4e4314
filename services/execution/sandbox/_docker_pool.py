"""Started, idle containers kept ready per image: an execution skips the ~180 ms start.

A container is handed out once and never returns to the pool; a replacement is
started in the background once the execution that took it is over. Idle
containers older than ``max_age_s`` are not handed out (their init's lifetime is
counted from their start).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from runstream.services.errors import SandboxError
from runstream.services.execution.languages import Language

log = logging.getLogger(__name__)


class WarmPool:
    """Ready containers by image, ``size`` per image once the image has been asked for."""

    def __init__(self, create: Callable[[Language], Awaitable[str]],
                 remove: Callable[[str], Awaitable[None]], size: int, max_age_s: float) -> None:
        self._create = create
        self._remove = remove
        self.size = size
        self.max_age_s = max_age_s
        self._ready: dict[str, list[tuple[float, str]]] = {}
        self._filling: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    def take(self, language: Language) -> str | None:
        """A started container of the language's image, or None.

        No refill here: starting a container costs CPU that the execution about to
        run would lose (node's start-up measured ~100 ms slower beside one); the
        sandbox refills when the execution is over.
        """
        ready = self._ready.setdefault(language.image, [])
        found = None
        while ready:
            born, cid = ready.pop(0)
            if time.monotonic() - born < self.max_age_s:
                found = cid
                break
            self._spawn(self._remove(cid))
        return found

    def fill(self, language: Language) -> None:
        """Start containers until ``size`` are ready or starting for this image."""
        image = language.image
        missing = self.size - len(self._ready.get(image, ())) - self._filling.get(image, 0)
        for _ in range(max(0, missing)):
            if self._closed:
                return
            self._filling[image] = self._filling.get(image, 0) + 1
            self._spawn(self._add(language))

    async def _add(self, language: Language) -> None:
        image = language.image
        try:
            cid = await self._create(language)
        except SandboxError as e:
            log.warning("cannot pre-start a %s container: %s", image, e)
            return
        finally:
            self._filling[image] -= 1
        if self._closed:
            await self._remove(cid)
        else:
            self._ready.setdefault(image, []).append((time.monotonic(), cid))

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def settle(self) -> None:
        """Wait until every pending start or removal is done."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        """Stop refilling; remove every idle container."""
        self._closed = True
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        for entries in self._ready.values():
            for _, cid in entries:
                with contextlib.suppress(SandboxError):
                    await self._remove(cid)
        self._ready.clear()
