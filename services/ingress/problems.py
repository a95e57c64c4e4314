"""HTTP error answers: every error is ``application/problem+json`` (RFC 9457).

The ingress's own refusals (overload, draining) live here; the other wire
errors are in ``schemas/errors.py``, internal ones in ``services/errors.py``.
A refusal that a client should retry carries ``retry_after`` and is answered
with a ``Retry-After`` header.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import orjson
from runstream.schemas.errors import RunstreamError, WireError
from runstream.services.logs import Throttled
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

log = logging.getLogger(__name__)
_warn = Throttled(log)

JSON = "application/json"
PROBLEM = "application/problem+json"


class Overloaded(WireError):
    """More work is queued (or more bodies are being read) than this ingress admits."""

    http_status = 429
    problem_type = "overloaded"
    title = "Too many requests"

    def __init__(self, message: str, *, retry_after: float, **extra: Any) -> None:
        self.retry_after = max(1, math.ceil(retry_after))
        super().__init__(message, retry_after=self.retry_after, **extra)


class Draining(WireError):
    """This ingress is stopping; another instance (or this one, restarted) will serve."""

    http_status = 503
    problem_type = "draining"
    title = "Ingress stopping"

    def __init__(self, message: str, *, retry_after: float = 1, **extra: Any) -> None:
        self.retry_after = max(1, math.ceil(retry_after))
        super().__init__(message, retry_after=self.retry_after, **extra)


def json_response(doc: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(doc), status_code=status, media_type=JSON, headers=headers)


def problem(status: int, kind: str, title: str, detail: str,
            headers: dict[str, str] | None = None, **extra: Any) -> Response:
    doc = {"type": f"https://runstream.dev/problems/{kind}", "title": title, "status": status,
           "detail": detail, **extra}
    return Response(orjson.dumps(doc), status_code=status, media_type=PROBLEM, headers=headers)


async def runstream_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RunstreamError)
    if not isinstance(exc, WireError):  # internal: logged, not explained to the client
        log.error("%s %s failed: %s: %s", request.method, request.url.path,
                  type(exc).__name__, exc.message)
        return problem(500, "internal-error", "Internal error",
                       "the service failed to handle this request; it is logged")
    extra = {k: v for k, v in exc.extra.items() if v is not None}
    retry_after = getattr(exc, "retry_after", None)
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    if exc.http_status >= 500:  # a balancer polling /readyz must not flood the log
        _warn.warning(f"{request.url.path}:{exc.http_status}", "%s %s -> %d: %s",
                      request.method, request.url.path, exc.http_status, exc.message)
    return problem(exc.http_status, exc.problem_type, exc.title, exc.message, headers, **extra)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    # Starlette's headers are the HTTP answer's own (405's Allow, RFC 9110): keep them.
    return problem(exc.status_code, "http-error", str(exc.detail), str(exc.detail),
                   dict(exc.headers) if exc.headers else None)


async def unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return problem(500, "internal-error", "Internal error", "an unexpected error; it is logged")


HANDLERS = {RunstreamError: runstream_error, HTTPException: http_error, Exception: unexpected}
