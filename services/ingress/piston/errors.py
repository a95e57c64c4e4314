"""The refusal a Piston client is told about, as Piston's ``{"message": ...}`` body."""

from __future__ import annotations

from typing import Any

from runstream.schemas.errors import InvalidRequest, PayloadTooLarge, RunstreamError, WireError


class PistonRefusal(WireError):
    """A request Piston would refuse; ``message`` is Piston's own sentence where it has one.

    The HTTP status is Piston's (400 for every request error, 404, 415); the
    routes answer ``{"message": message}`` with it.
    """

    problem_type = "piston-refusal"
    title = "Request refused"

    def __init__(self, message: str, *, status: int = 400, **extra: Any) -> None:
        super().__init__(message, **extra)
        self.http_status = status


def answer(exc: RunstreamError) -> tuple[int, str, dict[str, str]]:
    """Any runstream error as Piston would say it: HTTP status, message, headers.

    Piston answers every request error 400 (runstream's native API says 422 for
    most); a body too large stays 413, overload 429 and Retry-After are kept, and
    an error internal to runstream is a 500 whose message says no more.
    """
    headers: dict[str, str] = {}
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    if isinstance(exc, PistonRefusal | PayloadTooLarge):
        return exc.http_status, exc.message, headers
    if isinstance(exc, InvalidRequest):
        return 400, exc.message, headers
    if isinstance(exc, WireError):
        return exc.http_status, exc.message, headers
    return 500, "the service failed to handle this request; it is logged", headers
