"""Effective limits: the client's request, the server's defaults and maxima."""

from __future__ import annotations

from dataclasses import fields

from .errors import LimitExceeded
from .models import Limits, RequestedLimits

_UNITS = {
    "wall_ms": "ms",
    "cpu_ms": "ms",
    "memory_mb": "MiB",
    "processes": "processes",
    "output_kb": "KiB",
    "file_size_kb": "KiB",
}


def resolve_limits(requested: RequestedLimits, defaults: Limits, maxima: Limits) -> Limits:
    """Fill in defaults and refuse anything above the server's maximum.

    Refusing (rather than silently clamping) tells the client that the verdict
    it gets would not mean what it asked for.
    """
    values: dict[str, int] = {}
    for f in fields(Limits):
        asked = getattr(requested, f.name)
        ceiling = getattr(maxima, f.name)
        if asked is None:
            values[f.name] = min(getattr(defaults, f.name), ceiling)
        elif asked > ceiling:
            raise LimitExceeded(
                f"limits.{f.name}: {asked} {_UNITS[f.name]} is above this server's maximum "
                f"of {ceiling} {_UNITS[f.name]}",
                field=f"limits.{f.name}",
                maximum=ceiling,
            )
        else:
            values[f.name] = asked
    return Limits(**values)
