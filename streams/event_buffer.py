"""The recent events of executions still going, by id, in bounded memory (pure).

Every ingress reads every event (``streams/event_feed.py``) and keeps the recent
ones, so that a stream that starts late, or resumes with ``Last-Event-ID``, on
any ingress, gets what it missed (also just after the execution finished). Memory is bounded
overall (the least recently active executions go first) and per execution (an
output flood cannot push the others out). Repeats (a producer's retry) are
recognised by (attempt, seq) and dropped.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from runstream.schemas.events import OUTPUT, Event, EventType

#: What an id's entry costs besides its events' bytes (a guess on the high side).
ENTRY_OVERHEAD = 256


@dataclass(frozen=True, slots=True)
class Stored:
    """One event as read: its offset in the partition (the SSE id) and its bytes."""

    offset: int
    event: Event
    payload: bytes


@dataclass(slots=True)
class _Entry:
    events: list[Stored] = field(default_factory=list)
    size: int = ENTRY_OVERHEAD
    seqs: dict[str, int] = field(default_factory=dict)  # attempt -> highest seq seen
    finished: bool = False


class RecentEvents:
    """Events by execution id, at most ``max_bytes`` in all and ``per_id_bytes`` per id."""

    def __init__(self, max_bytes: int, per_id_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.per_id_bytes = per_id_bytes
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self.size = 0

    def add(self, stored: Stored) -> bool:
        """Keep ``stored``; False when it is a repeat or stale, and not worth passing on."""
        event = stored.event
        entry = self._entries.get(event.id)
        if entry is None:
            entry = self._entries[event.id] = _Entry()
            self.size += entry.size
        self._entries.move_to_end(event.id)
        if event.attempt is None:
            if entry.seqs or entry.finished:
                return False  # "queued" read after the run started: stale
        elif event.seq <= entry.seqs.get(event.attempt, -1):
            return False
        else:
            entry.seqs[event.attempt] = event.seq
        if event.type is EventType.FINISHED:
            # The result store has the result now; the output chunks are kept (until
            # evicted like any other) so that a stream that resumes with Last-Event-ID
            # just after the end still gets the chunks it missed before "finished".
            entry.finished = True
        elif not (event.type in OUTPUT and entry.size + len(stored.payload) > self.per_id_bytes):
            entry.events.append(stored)
            entry.size += len(stored.payload)
            self.size += len(stored.payload)
        self._evict()
        return True

    def since(self, exec_id: str, after: int | None = None) -> list[Stored]:
        """The kept events of ``exec_id`` after offset ``after`` (all when None)."""
        entry = self._entries.get(exec_id)
        if entry is None:
            return []
        return [s for s in entry.events if after is None or s.offset > after]

    def known(self, exec_id: str) -> bool:
        """Some event of ``exec_id`` was read (and not evicted since)."""
        return exec_id in self._entries

    def started(self, exec_id: str) -> bool:
        """A worker's event of ``exec_id`` was read (it ran, or runs)."""
        entry = self._entries.get(exec_id)
        return entry is not None and bool(entry.seqs)

    def finished(self, exec_id: str) -> bool:
        entry = self._entries.get(exec_id)
        return entry is not None and entry.finished

    def __len__(self) -> int:
        return len(self._entries)

    def _evict(self) -> None:
        while self.size > self.max_bytes and self._entries:
            _, entry = self._entries.popitem(last=False)
            self.size -= entry.size
