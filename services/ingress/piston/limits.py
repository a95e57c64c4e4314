"""Piston's six limit fields, in Piston's units, checked as Piston checks them.

``run_timeout``/``compile_timeout`` (wall ms), ``run_cpu_time``/``compile_cpu_time``
(ms) and ``run_memory_limit``/``compile_memory_limit`` (bytes), as api/src/api/v2.js
validates them: a falsy value (absent, 0) is the configured default; a value that is
not a number is refused; a value above the configured limit is refused. Here the
configured limit is this server's maximum, and ``-1`` (Piston's "no limit") means
that maximum. Only the run limits reach the sandbox: a compile step always runs
under the server's fixed compile limits (``RUNSTREAM_COMPILE_*``), so the compile
fields are checked against those and otherwise have no effect.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from runstream.schemas.models import RequestedLimits
from runstream.services.ingress.piston.errors import PistonRefusal
from runstream.services.settings import Settings

MIB = 1024 * 1024
NAMES = ("compile_memory_limit", "run_memory_limit", "compile_timeout", "run_timeout",
         "compile_cpu_time", "run_cpu_time")


@dataclass(frozen=True, slots=True)
class Ceilings:
    """This server's configured limits in Piston's units (ms and bytes)."""

    run_timeout: int
    run_cpu_time: int
    run_memory_limit: int
    compile_timeout: int
    compile_cpu_time: int
    compile_memory_limit: int

    @classmethod
    def of(cls, settings: Settings) -> Ceilings:
        return cls(settings.max_wall_ms, settings.max_cpu_ms, settings.max_memory_mb * MIB,
                   settings.compile_wall_ms, settings.compile_cpu_ms,
                   settings.compile_memory_mb * MIB)


def _number(name: str, value: Any) -> float | None:
    """The value as a number, None when Piston would use the default (falsy)."""
    if value is None or value is False or value == 0 or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise PistonRefusal(f"If specified, {name} must be a number")
    return float(value)


def check(doc: Mapping[str, Any], ceilings: Ceilings) -> dict[str, int | None]:
    """Each field in Piston's units: None for the default, else the value to apply.

    Refuses (400, Piston's sentences) a non-number, a value above the ceiling and a
    negative value other than -1, in Piston's order: compile before run, memory,
    then timeout, then CPU time.
    """
    checked: dict[str, int | None] = {}
    for constraint in ("memory_limit", "timeout", "cpu_time"):
        for stage in ("compile", "run"):
            name = f"{stage}_{constraint}"
            value = _number(name, doc.get(name))
            ceiling: int = getattr(ceilings, name)
            if value is None:
                checked[name] = None
            elif value > ceiling:
                raise PistonRefusal(
                    f"{name} cannot exceed the configured limit of {ceiling}")
            elif value == -1:
                checked[name] = ceiling
            elif value < 0:
                raise PistonRefusal(f"{name} must be non-negative")
            else:
                checked[name] = math.ceil(value)
    return checked


def requested(checked: Mapping[str, int | None]) -> RequestedLimits:
    """The run limits as runstream limits (ms, MiB rounded up); None is the server default."""
    memory = checked.get("run_memory_limit")
    return RequestedLimits(
        wall_ms=checked.get("run_timeout"),
        cpu_ms=checked.get("run_cpu_time"),
        memory_mb=None if memory is None else max(1, math.ceil(memory / MIB)),
    )
