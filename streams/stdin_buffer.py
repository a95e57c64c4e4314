"""The live stdin a worker holds, by execution id, in bounded memory (pure; clock passed in).

Every worker follows the whole stdin topic (``streams/stdin_feed.py``): the
items of an interactive execution may arrive before any worker has taken it
(the client types while the request waits in the queue) and whichever worker
takes it must have them. So each worker keeps every id's recent items until
the execution runs here (:meth:`StdinBuffers.watch`: the run takes them as it
goes) or they expire (``ttl_s`` after the id's last item: by then the
execution has run, somewhere). Memory is bounded per id (data not taken yet)
and overall (the least recently active ids that no run here watches go
first). Repeats (a producer's retry) are recognised by ``seq`` and dropped.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field

from runstream.schemas.stdin import StdinKind, StdinMessage

#: What an id's entry costs besides its data (a guess on the high side).
ENTRY_OVERHEAD = 256
#: What an item costs besides its data.
ITEM_OVERHEAD = 64
#: Items of one id kept at most while nobody takes them (signals and data alike).
MAX_ITEMS = 4096


@dataclass(slots=True)
class _Entry:
    at: float  # the last item's arrival
    items: deque[StdinMessage] = field(default_factory=deque)
    size: int = ENTRY_OVERHEAD
    last_seq: int = -1
    hung_up: bool = False
    watched: bool = False
    dropped: int = 0  # bytes of data past the per-id bound


class StdinBuffers:
    """Items by execution id: at most ``max_bytes`` in all and ``per_id_bytes`` per id."""

    def __init__(self, max_bytes: int, per_id_bytes: int, ttl_s: float) -> None:
        self.max_bytes = max_bytes
        self.per_id_bytes = per_id_bytes
        self.ttl_s = ttl_s
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self.size = 0
        self.dropped = 0  # bytes of data dropped, all ids together

    def add(self, msg: StdinMessage, now: float) -> bool:
        """Keep ``msg``; False when it is a repeat, or data (or an item) past the bounds."""
        entry = self._entries.get(msg.id)
        if entry is None:
            entry = self._entries[msg.id] = _Entry(now)
            self.size += entry.size
        self._entries.move_to_end(msg.id)
        entry.at = now
        if msg.seq <= entry.last_seq:
            return False
        entry.last_seq = msg.seq
        if msg.kind is StdinKind.HANGUP:
            entry.hung_up = True
        cost = ITEM_OVERHEAD + len(msg.data)
        if msg.kind is StdinKind.DATA and entry.size + cost > self.per_id_bytes + ENTRY_OVERHEAD:
            entry.dropped += len(msg.data)
            self.dropped += len(msg.data)
            return False
        if len(entry.items) >= MAX_ITEMS and msg.kind is not StdinKind.HANGUP:
            return False
        entry.items.append(msg)
        entry.size += cost
        self.size += cost
        self._evict()
        return True

    def take(self, exec_id: str) -> list[StdinMessage]:
        """Every item of ``exec_id`` waiting, oldest first (they are given up here)."""
        entry = self._entries.get(exec_id)
        if entry is None or not entry.items:
            return []
        items = list(entry.items)
        entry.items.clear()
        freed = entry.size - ENTRY_OVERHEAD
        entry.size = ENTRY_OVERHEAD
        self.size -= freed
        return items

    def hung_up(self, exec_id: str) -> bool:
        """The client of ``exec_id`` is gone (a hangup item was read)."""
        entry = self._entries.get(exec_id)
        return entry is not None and entry.hung_up

    def dropped_of(self, exec_id: str) -> int:
        entry = self._entries.get(exec_id)
        return entry.dropped if entry is not None else 0

    def watch(self, exec_id: str, now: float) -> None:
        """A run of ``exec_id`` starts here: its items are kept until :meth:`unwatch`."""
        entry = self._entries.get(exec_id)
        if entry is None:
            entry = self._entries[exec_id] = _Entry(now)
            self.size += entry.size
        entry.watched = True

    def unwatch(self, exec_id: str) -> None:
        """The run ended: forget the id (a late item makes a new, expiring entry)."""
        entry = self._entries.pop(exec_id, None)
        if entry is not None:
            self.size -= entry.size

    def expire(self, now: float) -> None:
        """Forget the ids nobody runs here whose last item is older than ``ttl_s``."""
        for exec_id in [k for k, e in self._entries.items()
                        if not e.watched and e.at < now - self.ttl_s]:
            self.unwatch(exec_id)

    def __contains__(self, exec_id: object) -> bool:
        return exec_id in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def _evict(self) -> None:
        """Least recently active unwatched ids go first, while over ``max_bytes``."""
        if self.size <= self.max_bytes:
            return
        for exec_id in [k for k, e in self._entries.items() if not e.watched]:
            if self.size <= self.max_bytes:
                return
            self.unwatch(exec_id)
