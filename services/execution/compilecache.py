"""Compile once per source: the key of a compile step and a bounded LRU of its artefacts.

Judges run one program against many inputs and clients re-submit identical
sources: a worker that compiled a source keeps what the compile step left in
the workspace and, the next time the same step would run, restores it into
the fresh workspace instead of running the compiler.

This module is pure (no I/O): the backends take the snapshot and restore it
(``Workspace.snapshot`` / ``Workspace.restore``). The cache lives in the
worker's memory, so it is per process by construction, dies with the worker,
and never puts anything a submission wrote on a path another process reads.

What is safe to keep: only regular files and directories, with permission
bits only (setuid, setgid and sticky are dropped); a snapshot that holds
anything else (a link, a fifo, a device) or more than the bounds is not kept.
"""

from __future__ import annotations

import dataclasses
import hashlib
import stat
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from runstream.schemas.models import Limits, PhaseResult
from runstream.services.execution.languages import Language

HIT = "hit"
MISS = "miss"
#: Most files and directories kept of one compile (javac makes one file per class).
MAX_FILES = 1024
#: Deepest directory kept (a workspace can nest far deeper than any build needs).
MAX_DEPTH = 32
#: Bytes charged per kept file besides its content (path, object, bookkeeping).
ENTRY_OVERHEAD = 256


@dataclass(frozen=True, slots=True)
class Artefact:
    """One regular file (``data``) or directory (``data`` None) a compile step left.

    ``path`` is relative and '/'-separated; ``mode`` holds permission bits only.
    """

    path: str
    data: bytes | None
    mode: int


@dataclass(frozen=True, slots=True)
class SnapshotBounds:
    """What a workspace snapshot may hold at most: entries, bytes of content, depth."""

    max_files: int = MAX_FILES
    max_bytes: int = 16 * 1024 * 1024
    max_depth: int = MAX_DEPTH


def safe_mode(mode: int) -> int:
    """Permission bits only: never a setuid, setgid or sticky bit from untrusted code."""
    return stat.S_IMODE(mode) & 0o777


def plain_path(path: str) -> str | None:
    """``path`` without a leading ``./`` if it is a plain relative path, else None."""
    while path.startswith("./"):
        path = path[2:]
    path = path.rstrip("/")
    parts = path.split("/")
    if (not path or "\0" in path
            or any(p in ("", ".", "..") for p in parts)):
        return None
    return path


def compile_key(language: Language, argv: Sequence[str], limits: Limits,
                files: Sequence[tuple[str, bytes]]) -> bytes:
    """The identity of one compile step: every input that can change what it makes.

    The language (name, version, image, environment, binds), the rendered argv, the
    limits it runs under, and every submitted file's name and bytes, in order. Each
    part is length-prefixed, so no two different inputs share a key by concatenation.
    """
    h = hashlib.sha256()

    def part(data: bytes) -> None:
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)

    for text in (language.name, language.version or "", language.image,
                 repr(sorted(language.env.items())), repr(language.binds)):
        part(text.encode("utf-8", "surrogateescape"))
    part(repr(list(argv)).encode("utf-8", "surrogateescape"))
    part(repr(dataclasses.astuple(limits)).encode())
    part(len(files).to_bytes(8, "big"))
    for name, content in files:
        part(name.encode("utf-8", "surrogateescape"))
        part(content)
    return h.digest()


def cacheable(phase: PhaseResult) -> bool:
    """A compile worth keeping: it succeeded, and no limit cut it or its output short."""
    return (phase.exit_code == 0 and phase.signal is None and phase.time_limit is None
            and not phase.oom_killed and not phase.output_limit_hit
            and not phase.stdout_truncated and not phase.stderr_truncated)


def added_by_compile(found: Iterable[Artefact], submitted: Sequence[tuple[str, bytes]]
                     ) -> tuple[Artefact, ...] | None:
    """What the compile step added to the submitted files, parents first.

    None when it changed or removed a submitted file: restoring on top of the
    fresh submission could not reproduce that workspace, so it is not kept.
    """
    sources = dict(submitted)
    seen: set[str] = set()
    added = []
    for artefact in found:
        if artefact.path in sources:
            if artefact.data != sources[artefact.path]:
                return None
            seen.add(artefact.path)
            continue
        added.append(artefact)
    if seen != set(sources):
        return None
    return tuple(sorted(added, key=lambda a: a.path.split("/")))


@dataclass(frozen=True, slots=True)
class CachedCompile:
    """A kept compile: its artefacts and its phase (whose output a hit reports again)."""

    artefacts: tuple[Artefact, ...]
    phase: PhaseResult
    size: int

    def replay(self, wall_ms: int) -> PhaseResult:
        """The compile phase of a hit: the original output, no compiler time."""
        return dataclasses.replace(self.phase, wall_ms=wall_ms, cpu_ms=0, memory_kb=0,
                                   cache=HIT)


def entry_size(artefacts: Iterable[Artefact], phase: PhaseResult) -> int:
    """Bytes a kept compile is charged: contents, paths, the output, per-file overhead."""
    size = len(phase.stdout) + len(phase.stderr) + ENTRY_OVERHEAD
    for a in artefacts:
        size += len(a.data or b"") + len(a.path) + ENTRY_OVERHEAD
    return size


class CompileCache:
    """Kept compiles by key, least recently used first out, within ``max_bytes``.

    An entry over ``entry_max_bytes`` is not kept. ``hits``, ``misses`` and
    ``evictions`` count lookups and removals since the cache was made.
    """

    def __init__(self, max_bytes: int, entry_max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.entry_max_bytes = min(entry_max_bytes, max_bytes)
        self.bounds = SnapshotBounds(max_bytes=self.entry_max_bytes)
        self._entries: OrderedDict[bytes, CachedCompile] = OrderedDict()
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: bytes) -> bool:
        return key in self._entries

    def get(self, key: bytes) -> CachedCompile | None:
        """The kept compile of ``key`` (now the most recently used), counted as hit or miss."""
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry

    def put(self, key: bytes, artefacts: tuple[Artefact, ...], phase: PhaseResult) -> bool:
        """Keep a compile; False if it is over the per-entry bound (nothing is evicted)."""
        size = entry_size(artefacts, phase)
        if size > self.entry_max_bytes:
            return False
        old = self._entries.pop(key, None)
        if old is not None:
            self.bytes -= old.size
        kept = dataclasses.replace(phase, cache=None)  # a copy: the caller's result moves on
        self._entries[key] = CachedCompile(artefacts, kept, size)
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self.bytes -= evicted.size
            self.evictions += 1
        return True
