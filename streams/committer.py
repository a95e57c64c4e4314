"""Committing by the ledger's rule: what may be committed, and what the broker accepted.

One :class:`Committer` per consumer that commits offsets of records it runs out of
order (the worker's agent under Faust, the webhook jobs' group member). It keeps the
:class:`~.ledger.OffsetLedger` behind a lock, because the worker's assignor reads it
from Faust's consumer thread, and it records an offset as committed only once the
broker accepted it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Collection, Hashable, Iterable
from typing import Generic, TypeVar

from runstream.streams.ledger import OffsetLedger

TP = TypeVar("TP", bound=Hashable)


class Committer(Generic[TP]):
    """The commit side of an offset ledger: safe offsets in, accepted commits recorded."""

    def __init__(self, ledger: OffsetLedger[TP], lock: threading.Lock | None = None) -> None:
        self.ledger = ledger
        #: Guards the ledger (shared with whoever takes and finishes its offsets).
        self.lock = lock if lock is not None else threading.Lock()

    def safe_offset(self, tp: TP) -> int | None:
        """The offset that may be committed for ``tp`` (the next one to read), or None."""
        with self.lock:
            return self.ledger.safe_offset(tp)

    def should_commit(self, tp: TP, offset: int) -> bool:
        """Whether ``offset`` is ahead of what the broker last accepted for ``tp``."""
        with self.lock:
            last = self.ledger.last_committed(tp)
        return last is None or offset > last

    def committed(self, offsets: dict[TP, int]) -> None:
        """The broker accepted ``offsets`` as committed."""
        with self.lock:
            self.ledger.committed(offsets)

    def progressed(self, owned: Collection[TP]) -> list[TP]:
        """Partitions of ``owned`` whose ledger has taken something (candidates to commit)."""
        with self.lock:
            return [tp for tp in self.ledger.partitions() if tp in owned]

    def due(self, owned: Iterable[TP]) -> dict[TP, int]:
        """Per partition of ``owned``, the safe offset if it is ahead of the last commit."""
        with self.lock:
            return self.ledger.committable(owned)

    async def commit(self, send: Callable[[dict[TP, int]], Awaitable[object]], owned: Iterable[TP],
                     timeout_s: float) -> dict[TP, int]:
        """Commit what is due for ``owned`` with ``send`` (the consumer's commit), bounded.

        Returns the offsets committed (none: nothing was due). Raises what ``send``
        raises, or TimeoutError: nothing is then recorded, and the next commit tries again.
        """
        offsets = self.due(owned)
        if offsets:
            await asyncio.wait_for(send(offsets), timeout_s)
            self.committed(offsets)
        return offsets
