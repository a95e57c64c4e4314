"""The root of runstream's one error tree, and the wire errors.

Every error runstream raises on purpose derives from :class:`RunstreamError`.
Third-party errors are wrapped (``raise ... from e``) at the boundary where they
happen. The errors here are the *wire* errors (:class:`WireError`): what a
client is told about its request or about the service, each with the HTTP
status and RFC 9457 problem type that the HTTP layer, and only it, turns into
an ``application/problem+json`` response. Errors internal to a process
(configuration, the sandbox, the local broker) live in ``services/errors.py``.
"""

from __future__ import annotations

import math
from typing import Any


class RunstreamError(Exception):
    """Root of every error runstream raises on purpose."""

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra: dict[str, Any] = extra


class WireError(RunstreamError):
    """An error a client is told about, as an HTTP status and a problem type."""

    http_status: int = 500
    problem_type: str = "internal-error"
    title: str = "Internal error"


class InvalidRequest(WireError):
    """A request does not match the wire contract (wrong type, missing field...)."""

    http_status = 422
    problem_type = "invalid-request"
    title = "Invalid execution request"

    def __init__(self, message: str, *, field: str | None = None, **extra: Any) -> None:
        super().__init__(message, **({"field": field} if field else {}), **extra)
        self.field = field


class MalformedPayload(InvalidRequest):
    """The bytes are not JSON (or not a JSON object) at all."""

    http_status = 400
    problem_type = "malformed-payload"
    title = "Malformed request body"


class UnknownLanguage(InvalidRequest):
    """The requested language (or version) is not served by this deployment."""

    http_status = 400
    problem_type = "unknown-language"
    title = "Unknown language"


class LimitExceeded(InvalidRequest):
    """A requested limit is above the server's configured maximum."""

    problem_type = "limit-above-maximum"
    title = "Requested limit above the server maximum"


class PayloadTooLarge(InvalidRequest):
    """The request body is larger than the configured maximum."""

    http_status = 413
    problem_type = "payload-too-large"
    title = "Request body too large"


class NotFound(WireError):
    """No execution with that id is known."""

    http_status = 404
    problem_type = "not-found"
    title = "Not found"


class BrokerUnavailable(WireError):
    """Kafka did not answer in time; the request was not (known to be) accepted."""

    http_status = 503
    problem_type = "broker-unavailable"
    title = "Message broker unavailable"


class NotReady(WireError):
    """The service is up but cannot serve yet (no worker, reply consumer not assigned)."""

    http_status = 503
    problem_type = "not-ready"
    title = "Service not ready"


class Unauthorized(WireError):
    """No API key, a malformed one, or one this service does not know (auth required)."""

    http_status = 401
    problem_type = "unauthorized"
    title = "API key required"


class Forbidden(WireError):
    """A known API key that may not do this: revoked, or a language it is not allowed."""

    http_status = 403
    problem_type = "forbidden"
    title = "Not allowed for this API key"


class QuotaExceeded(WireError):
    """An API key's rate limit or concurrency quota is used up; retry after ``retry_after``."""

    http_status = 429
    problem_type = "quota-exceeded"
    title = "Too many requests for this API key"

    def __init__(self, message: str, *, retry_after: float, quota: str, **extra: Any) -> None:
        self.retry_after = max(1, math.ceil(retry_after))
        super().__init__(message, retry_after=self.retry_after, quota=quota, **extra)
