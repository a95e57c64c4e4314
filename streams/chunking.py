"""Turning a program's writes into few, bounded output chunks (pure; the clock is passed in).

A program may write a byte at a time or a megabyte at once; the event stream
gets neither. Writes to one stream (phase, test, stdout|stderr) are coalesced
until the oldest byte has waited ``interval_s`` or ``max_bytes`` are pending;
a chunk does not end inside a UTF-8 character unless its stream ends there
or the rest of the character is late. Per
execution at most ``cap_bytes`` of each of stdout and stderr are streamed and
at most ``max_chunks`` chunks are made; the chunk where streaming stops says
``truncated`` (the result carries the output anyway).
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: (phase, test index or None, "stdout" | "stderr")
Key = tuple[str, int | None, str]


@dataclass(frozen=True, slots=True)
class Chunk:
    """Bytes of one stream, from ``position`` on."""

    phase: str
    test: int | None
    stream: str
    data: bytes
    position: int
    truncated: bool = False


@dataclass(frozen=True, slots=True)
class ChunkPolicy:
    """How output is cut into chunks and how much of it is streamed."""

    interval_s: float = 0.05
    max_bytes: int = 16 * 1024
    cap_bytes: int = 1024 * 1024
    max_chunks: int = 1000


@dataclass(slots=True)
class _Pending:
    key: Key
    position: int  # of the first pending byte in its stream
    since: float  # when the oldest pending byte arrived
    data: bytearray = field(default_factory=bytearray)
    truncated: bool = False


def utf8_cut(data: bytes | bytearray) -> int:
    """Where to end a chunk of ``data`` so it does not split a UTF-8 character."""
    n = len(data)
    for back in range(1, min(4, n + 1)):
        byte = data[n - back]
        if byte & 0xC0 == 0x80:
            continue  # a continuation byte: its lead is further back
        need = 2 if byte & 0xE0 == 0xC0 else 3 if byte & 0xF0 == 0xE0 else \
            4 if byte & 0xF8 == 0xF0 else 1
        return n - back if need > back else n
    return n


class Coalescer:
    """The output of one execution attempt, in bounded chunks."""

    def __init__(self, policy: ChunkPolicy) -> None:
        self.policy = policy
        self._pending: dict[Key, _Pending] = {}  # in order of their oldest byte
        self._next: dict[Key, int] = {}  # next byte position per stream
        self._streamed: dict[str, int] = {"stdout": 0, "stderr": 0}
        self._capped: set[str] = set()
        self.chunks = 0

    def feed(self, phase: str, test: int | None, stream: str, data: bytes,
             now: float) -> list[Chunk]:
        """Take a write; the chunks that are full now."""
        key = (phase, test, stream)
        position = self._next.get(key, 0)
        self._next[key] = position + len(data)
        if stream in self._capped or not data:
            return []
        room = self.policy.cap_bytes - self._streamed[stream]
        pending = self._pending.get(key)
        if pending is None:
            pending = self._pending[key] = _Pending(key, position, now)
        pending.data += data[:room]
        self._streamed[stream] += min(room, len(data))
        if len(data) > room:
            pending.truncated = True
            self._capped.add(stream)
        out: list[Chunk] = []
        while len(pending.data) >= self.policy.max_bytes and key in self._pending:
            cut = utf8_cut(pending.data[: self.policy.max_bytes]) or self.policy.max_bytes
            out += self._emit(pending, cut, last=False)
        return out

    def next_due(self) -> float | None:
        """When the oldest pending byte must be sent (the clock of ``now``), or None."""
        if not self._pending:
            return None
        return min(p.since for p in self._pending.values()) + self.policy.interval_s

    def due(self, now: float) -> list[Chunk]:
        """The chunks whose oldest byte has waited long enough.

        A character whose last bytes are late goes out split rather than wait.
        """
        out: list[Chunk] = []
        for pending in [p for p in self._pending.values()
                        if p.since + self.policy.interval_s <= now]:
            cut = len(pending.data) if pending.truncated else utf8_cut(pending.data)
            out += self._emit(pending, cut or len(pending.data), last=False, now=now)
        return out

    def flush(self, phase: str | None = None, test: int | None = None,
              truncated: tuple[str, ...] = ()) -> list[Chunk]:
        """Everything pending (of one phase and test, when given): its streams ended.

        ``truncated`` names streams of that phase whose output went past its cap (the
        sandbox kept only the cap): their last chunk says so.
        """
        for stream in truncated:
            if phase is None or stream in self._capped:
                continue
            key = (phase, test, stream)
            pending = self._pending.get(key)
            if pending is None:
                pending = self._pending[key] = _Pending(key, self._next.get(key, 0), 0.0)
            pending.truncated = True
            self._capped.add(stream)
        out: list[Chunk] = []
        for pending in list(self._pending.values()):
            if phase is None or pending.key[:2] == (phase, test):
                out += self._emit(pending, len(pending.data), last=True)
        return out

    def _emit(self, pending: _Pending, cut: int, *, last: bool,
              now: float | None = None) -> list[Chunk]:
        if self.chunks >= self.policy.max_chunks:
            self._stop_all()
            return []
        data = bytes(pending.data[:cut])
        del pending.data[:cut]
        done = last or not pending.data
        truncated = pending.truncated and not pending.data
        if self.chunks == self.policy.max_chunks - 1:
            truncated = True  # the last chunk allowed ends every stream of the execution
        chunk = Chunk(pending.key[0], pending.key[1], pending.key[2], data, pending.position,
                      truncated)
        self.chunks += 1
        pending.position += len(data)
        if self.chunks >= self.policy.max_chunks:
            self._stop_all()
        elif done:
            self._pending.pop(pending.key, None)
        elif now is not None:
            pending.since = now  # what was held back waits its own interval
        return [chunk]

    def _stop_all(self) -> None:
        self._pending.clear()
        self._capped.update(("stdout", "stderr"))
