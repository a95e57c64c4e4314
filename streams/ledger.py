"""Which offsets of each partition may be committed: pure bookkeeping, no Kafka.

The delivery rule (DESIGN.md, "What a delivery promise means here"): an offset
is committed only when every earlier offset of its partition has its result
acknowledged by the broker. With several slots per worker, runs of one
partition finish out of order, so the committable offset of a partition is the
lowest offset still being worked on, or one past the highest offset taken when
nothing is.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

TP = TypeVar("TP", bound=Hashable)


@dataclass
class _Partition:
    pending: set[int] = field(default_factory=set)
    highest: int = -1  # the highest offset ever taken
    committed: int | None = None  # the last offset committed


class OffsetLedger(Generic[TP]):
    """Tracks taken and finished offsets per partition and says what is safe to commit."""

    def __init__(self) -> None:
        self._parts: dict[TP, _Partition] = {}

    def take(self, tp: TP, offset: int) -> bool:
        """Record that ``offset`` is being worked on; False if it was taken before.

        After a rebalance the consumer fetches again from the committed offset, so
        a partition kept by this worker re-delivers offsets it is running or has
        finished: those are not taken twice.
        """
        part = self._parts.setdefault(tp, _Partition())
        if offset <= part.highest:
            return False
        part.highest = offset
        part.pending.add(offset)
        return True

    def finish(self, tp: TP, offset: int) -> None:
        """Record that ``offset``'s result is acknowledged (or it needed none)."""
        part = self._parts.get(tp)
        if part is not None:
            part.pending.discard(offset)

    def safe_offset(self, tp: TP) -> int | None:
        """The offset to commit for ``tp`` (the next one to read), or None if none taken."""
        part = self._parts.get(tp)
        if part is None or part.highest < 0:
            return None
        return min(part.pending) if part.pending else part.highest + 1

    def committable(self, tps: Iterable[TP] | None = None) -> dict[TP, int]:
        """Safe offsets that are ahead of what was last committed, by partition."""
        out: dict[TP, int] = {}
        for tp in self._parts if tps is None else tps:
            safe = self.safe_offset(tp)
            part = self._parts.get(tp)
            if safe is not None and part is not None and (
                    part.committed is None or safe > part.committed):
                out[tp] = safe
        return out

    def committed(self, offsets: dict[TP, int]) -> None:
        """Record offsets the broker accepted as committed."""
        for tp, offset in offsets.items():
            part = self._parts.get(tp)
            if part is not None:
                part.committed = offset

    def last_committed(self, tp: TP) -> int | None:
        """The offset the broker last accepted as committed for ``tp`` (None: none yet)."""
        part = self._parts.get(tp)
        return part.committed if part else None

    def holds(self, tp: TP, offset: int) -> bool:
        """True while ``offset`` of ``tp`` is taken, not finished, and not forgotten."""
        part = self._parts.get(tp)
        return part is not None and offset in part.pending

    def pending(self, tp: TP) -> set[int]:
        """Offsets of ``tp`` taken and not finished."""
        part = self._parts.get(tp)
        return set(part.pending) if part else set()

    def forget(self, tps: Iterable[TP]) -> None:
        """Drop partitions this worker no longer owns; late finishes for them are ignored."""
        for tp in tps:
            self._parts.pop(tp, None)

    def partitions(self) -> list[TP]:
        return list(self._parts)
