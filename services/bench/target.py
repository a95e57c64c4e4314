"""What a benchmark target is: the protocol every target implements, and its error."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Protocol

from runstream.schemas.errors import RunstreamError


class TargetError(RunstreamError):
    """A request that got no result; ``kind`` is what the report counts."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


class Target(Protocol):
    """A system under test."""

    name: str

    async def start(self) -> None: ...

    async def execute(self, payload: dict[str, Any]) -> dict[str, Any]: ...

    async def stop(self) -> None: ...

    def describe(self) -> dict[str, Any]: ...


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
