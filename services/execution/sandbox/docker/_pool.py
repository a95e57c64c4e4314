"""Started, idle containers kept ready per image: an execution skips the ~180 ms start.

A container is handed out once and never returns to the pool: the execution
that took it is its only one, and it is removed after. How many are kept per
image follows the recent demand (see :mod:`._demand`). The pool grows
when an execution is over, never while one runs: starting a container costs
CPU that a running program would lose (node's start-up measured ~30 ms slower
beside one). It shrinks whenever it is looked at, and a janitor looks every
``idle_s / 4`` so that the pools of images nobody asks for any more empty.
Idle containers older than ``max_age_s`` are not handed out (their init's
lifetime is counted from their start).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from runstream.services.errors import SandboxError
from runstream.services.execution.languages import Language
from runstream.services.execution.sandbox.docker._demand import PoolDemand

log = logging.getLogger(__name__)


class WarmPool:
    """Ready containers by image, as many per image as its recent demand calls for."""

    def __init__(self, create: Callable[[Language], Awaitable[str]],
                 remove: Callable[[str], Awaitable[None]], demand: PoolDemand,
                 max_age_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._create = create
        self._remove = remove
        self.demand = demand
        self.max_age_s = max_age_s
        self._clock = clock
        self._ready: dict[str, list[tuple[float, str]]] = {}
        self._filling: dict[str, int] = {}
        self._languages: dict[str, Language] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._janitor: asyncio.Task[None] | None = None
        self._closed = False

    def start(self) -> None:
        """Start the janitor that empties the pools of images no longer asked for."""
        if self._janitor is None:
            self._janitor = asyncio.ensure_future(self._sweep_forever())

    def ready(self, language: Language) -> int:
        """How many started containers of the language's image wait in the pool."""
        return len(self._ready.get(language.image, ()))

    def take(self, language: Language) -> str | None:
        """A started container of the language's image, or None; the demand is counted."""
        now = self._clock()
        self.demand.asked(language.image, now)
        self._languages[language.image] = language
        ready = self._ready.setdefault(language.image, [])
        while ready:
            born, cid = ready.pop(0)
            if now - born < self.max_age_s:
                return cid
            self._spawn(self._remove(cid))
        return None

    def release(self, language: Language, held_s: float | None) -> None:
        """An execution is over (it held its container ``held_s``, None if it had none):
        bring every image's pool to the size its demand now calls for."""
        if held_s is not None:
            self.demand.held(language.image, held_s)
        self._languages[language.image] = language
        self._balance(grow=True)

    def _balance(self, *, grow: bool) -> None:
        now = self._clock()
        for image in set(self._ready) | set(self.demand.images(now)):
            ready = self._ready.setdefault(image, [])
            for entry in [e for e in ready if now - e[0] >= self.max_age_s]:
                ready.remove(entry)
                self._spawn(self._remove(entry[1]))
            target = self.demand.target(image, now)
            while len(ready) > target:  # the oldest go first: the nearest their end
                self._spawn(self._remove(ready.pop(0)[1]))
            missing = target - len(ready) - self._filling.get(image, 0)
            language = self._languages.get(image)
            if not grow or language is None or self._closed:
                continue
            for _ in range(max(0, missing)):
                self._filling[image] = self._filling.get(image, 0) + 1
                self._spawn(self._add(language))

    async def _add(self, language: Language) -> None:
        image = language.image
        began = self._clock()
        try:
            cid = await self._create(language)
        except SandboxError as e:
            log.warning("cannot pre-start a %s container: %s", image, e)
            return
        finally:
            self._filling[image] -= 1
        now = self._clock()
        self.demand.started(image, now - began)
        if self._closed:
            await self._remove(cid)
        else:
            self._ready.setdefault(image, []).append((now, cid))

    async def _sweep_forever(self) -> None:
        period = max(1.0, min(self.demand.idle_s, self.max_age_s) / 4)
        while not self._closed:
            await asyncio.sleep(period)  # a timer: the sweep is due every period
            self.sweep()

    def sweep(self) -> None:
        """Remove idle containers past their age or above their image's size (no growing)."""
        self._balance(grow=False)

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def settle(self) -> None:
        """Wait until every pending start or removal is done."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        """Stop refilling; remove every idle container."""
        self._closed = True
        if self._janitor is not None:
            self._janitor.cancel()
            await asyncio.gather(self._janitor, return_exceptions=True)
        await self.settle()
        for entries in self._ready.values():
            for _, cid in entries:
                with contextlib.suppress(SandboxError):
                    await self._remove(cid)
        self._ready.clear()
