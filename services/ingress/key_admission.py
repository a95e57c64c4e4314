"""What the caller's API key admits: the key of the current request, its languages and quota.

The middleware (``auth.py``) sets it in a context variable before any route
runs, so every route (native, Judge0, Piston, ones not written yet) and the
tasks they start see it without passing it along. The gateway calls
:func:`admit` on every request it produces: that is where the key id is
stamped on the request and where the key's language list and concurrency
quota are enforced, whichever route built the request.

Pure: no Starlette, no Kafka.
"""

from __future__ import annotations

import contextvars
from dataclasses import replace
from datetime import UTC, datetime

from runstream.schemas.errors import Forbidden, QuotaExceeded
from runstream.schemas.keys import KeyRecord
from runstream.schemas.models import ExecutionRequest
from runstream.services.ingress.quotas import InFlight
from runstream.services.settings import Settings

_current: contextvars.ContextVar[KeyRecord | None] = contextvars.ContextVar(
    "runstream_api_key", default=None)

# A slot whose result never came is freed after its deadline plus this much at most.
MAX_SLOT_S = 3600.0


def current_key() -> KeyRecord | None:
    """The key of the request being handled; None when auth is off (or on open routes)."""
    return _current.get()


def set_key(key: KeyRecord | None) -> contextvars.Token[KeyRecord | None]:
    return _current.set(key)


def reset_key(token: contextvars.Token[KeyRecord | None]) -> None:
    _current.reset(token)


def slot_ttl_s(req: ExecutionRequest, settings: Settings, now: datetime) -> float:
    """How long a concurrency slot may stay taken if the result never arrives.

    A request not started by its deadline comes back ``expired``; one started runs
    within its compile and run limits. Past that, something was lost.
    """
    until_deadline = ((req.deadline - now).total_seconds() if req.deadline is not None
                      else settings.ingress_deadline_s)
    judged = req.checker_program is not None or req.interactor is not None
    # A checker program runs after each test, an interactor beside it (and outlives it
    # by a second); either has a compile step of its own.
    runs = 1 + len(req.tests) * (2 if judged else 1)
    compiles = 2 if judged else 1
    run_s = (compiles * settings.compile_wall_ms + runs * settings.max_wall_ms) / 1000
    return min(MAX_SLOT_S, max(0.0, until_deadline)) + run_s + 30.0


def admit(req: ExecutionRequest, inflight: InFlight, settings: Settings,
          retry_after_s: float = 1.0) -> ExecutionRequest:
    """The request as it is produced: stamped with the caller's key id (or none).

    A client cannot choose ``key_id``: whatever it sent is overwritten. Raises
    Forbidden (403) for a language the key may not run and QuotaExceeded (429)
    when the key already has its maximum of executions in flight here.
    """
    key = _current.get()
    if key is None:
        return req if req.key_id is None else replace(req, key_id=None)
    if not key.allows(req.language):
        allowed = ", ".join(key.languages or ())
        raise Forbidden(f"API key {key.id} may not run {req.language!r} (allowed: {allowed})",
                        key_id=key.id)
    ttl = slot_ttl_s(req, settings, datetime.now(UTC))
    if not inflight.acquire(key.id, req.id, key.max_concurrent, ttl):
        raise QuotaExceeded(
            f"API key {key.id} already has {key.max_concurrent} execution(s) running on this "
            "ingress, its concurrency quota; retry when one has finished",
            retry_after=retry_after_s, quota="concurrency", limit=key.max_concurrent,
            key_id=key.id)
    return replace(req, key_id=key.id)
