"""The sandbox interface every backend implements.

An execution gets one :class:`Workspace` (a fresh, size-capped working
directory holding the submitted files); the executor runs one or more phases in
it (compile, then the program once or once per test). Each phase is a separate
sandboxed process tree with its own limits, and returns a
:class:`~runstream.schemas.models.PhaseResult` that says what happened without
judging it: verdicts are made by the pure ``verdict`` module.

A backend never raises for anything the submitted program does; it raises
:class:`~runstream.schemas.errors.SandboxError` only when the sandbox itself
failed (the result is then ``internal_error``, never blamed on the user).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

from runstream.schemas.models import Limits, PhaseResult
from runstream.services.execution.compilecache import Artefact, SnapshotBounds
from runstream.services.execution.languages import Language

#: Told ("stdout" | "stderr", bytes) as a phase writes output, up to its cap, on the
#: event loop's thread; it must not block (the executor's live-output sink).
PhaseOutput = Callable[[str, bytes], None]


@dataclass(frozen=True, slots=True)
class Input:
    """One item of a live stdin: bytes to write, then a signal to send, then the end.

    ``signal`` is a name (``"SIGINT"``); it goes to every process of the program
    (not to the sandbox's own), as Ctrl-C in a terminal goes to the foreground job.
    ``eof`` closes the program's stdin.
    """

    data: bytes = b""
    signal: str | None = None
    eof: bool = False


class LiveInput(Protocol):
    """The stdin of an interactive run, as it arrives (``streams/stdin_feed.py``).

    A phase given one reads it until the phase ends: it writes the data to the
    program as the program takes it (a program that does not read holds the rest
    back, never the worker), closes the program's stdin at ``eof`` and sends the
    signals. The phase stays bounded by its limits whatever arrives.
    """

    async def get(self) -> Input:
        """The next item (waits until there is one)."""
        ...


class Workspace(Protocol):
    """One execution's working directory, shared by its phases."""

    async def run(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes | LiveInput,
        limits: Limits,
        language: Language,
        output: PhaseOutput | None = None,
    ) -> PhaseResult:
        """Run ``argv`` (already templated) in the workspace under ``limits``.

        ``stdin`` is the whole input, or a :class:`LiveInput` read while it runs.
        ``output``, if given, is told the output as the program writes it.
        """
        ...

    async def snapshot(self, bounds: SnapshotBounds) -> list[Artefact] | None:
        """The regular files and directories now in the workspace (the compile cache's).

        The files were written by untrusted code: nothing is followed, permission
        bits only are kept. None when the workspace holds anything else (a link,
        a fifo...) or more than ``bounds``.
        """
        ...

    async def restore(self, artefacts: Sequence[Artefact]) -> None:
        """Add ``artefacts`` to the fresh workspace, owned as the submitted files are.

        Called before any phase ran; the paths do not exist yet, except directories.
        """
        ...


class Sandbox(Protocol):
    """A sandbox backend (bwrap, docker)."""

    name: str

    async def start(self) -> None:
        """Check the host can sandbox (privileges, cgroups, images) and reap leftovers."""
        ...

    async def stop(self) -> None:
        """Kill and remove whatever this backend still has running."""
        ...

    async def detect_versions(self, registry: Iterable[Language]) -> dict[str, str | None]:
        """Each language's version by name, as its programs will meet it (after ``start``).

        None for a language whose toolchain is missing or broken here (see
        ``Registry.with_versions``, which drops it).
        """
        ...

    def workspace(
        self, execution_id: str, files: Sequence[tuple[str, bytes]], language: Language
    ) -> AbstractAsyncContextManager[Workspace]:
        """A fresh working directory with ``files`` (name, content) written into it.

        The directory and everything in it is gone when the context exits. When
        the task is cancelled inside the context (``Workspace.run`` included),
        every process of the execution is killed and its directory removed
        before the CancelledError leaves the context.
        """
        ...
