"""Run a coroutine's first step at once, and make a task of it only if it has to wait.

Python 3.12 has this built in (``asyncio.eager_task_factory``); runstream runs on 3.11.
Faust delivers each record to its stream through ``Service.wait_first``, which makes
four tasks per record to race the delivery against a rebalance, a stop and a crash.
A delivery almost never waits (the stream buffer has room: the worker fetches only
for free slots), and one that finishes in its first step has nothing to race.
"""

from __future__ import annotations

import types
from collections.abc import Coroutine, Generator
from typing import Any


class Started:
    """A coroutine that :func:`start` ran up to its first wait."""

    __slots__ = ("coro", "pending")

    def __init__(self, coro: Coroutine[Any, Any, Any], pending: Any) -> None:
        self.coro = coro
        self.pending = pending

    async def resume(self) -> Any:
        """Run the rest of the coroutine (a task can run this); its result."""
        return await _resumed(self.coro, self.pending)  # type: ignore[misc]


def start(coro: Coroutine[Any, Any, Any]) -> tuple[bool, Any]:
    """Run ``coro`` up to its first wait: ``(True, result)`` or ``(False, Started)``.

    An exception raised in the first step propagates, as awaiting ``coro`` would.
    """
    try:
        pending = coro.send(None)
    except StopIteration as done:
        return True, done.value
    return False, Started(coro, pending)


@types.coroutine
def _resumed(coro: Coroutine[Any, Any, Any], pending: Any) -> Generator[Any, Any, Any]:
    # Pass what the coroutine waits on up to the task that runs us, and what the task
    # sends or throws (a result, a cancellation) back down: the coroutine cannot tell
    # that its first step ran outside a task.
    while True:
        try:
            sent = yield pending
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as e:  # a cancellation goes down too
            try:
                pending = coro.throw(e)
            except StopIteration as done:
                return done.value
        else:
            try:
                pending = coro.send(sent)
            except StopIteration as done:
                return done.value
