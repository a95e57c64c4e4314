"""Errors answered in Judge0's own body shapes instead of problem+json.

Judge0's clients read its bodies: ``{"error": "..."}`` for a bad parameter,
``{"<field>": ["<message>", ...]}`` for validation, ``{"status": 404, "error":
"Not Found"}`` for an unknown token or language id, and an empty body for 401
and 403. The Judge0 routes render these; everything else (overload, a broker
that does not answer, a body too large) stays problem+json.
"""

from __future__ import annotations

from typing import Any

from runstream.schemas.errors import WireError


class Judge0Error(WireError):
    """A Judge0 answer: an HTTP status and the JSON body Judge0 gives (None: empty)."""

    problem_type = "judge0"
    title = "Judge0 API error"

    def __init__(self, status: int, body: Any, message: str) -> None:
        super().__init__(message)
        self.http_status = status
        self.body = body


class FieldErrors(Judge0Error):
    """422 with the errors hash, e.g. ``{"language_id": ["can't be blank"]}``."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        detail = "; ".join(f"{k} {', '.join(v)}" for k, v in errors.items())
        super().__init__(422, errors, detail)
        self.errors = errors


class BadParameter(Judge0Error):
    """400 ``{"error": "..."}``: invalid fields, batch size, text not UTF-8, ..."""

    def __init__(self, message: str) -> None:
        super().__init__(400, {"error": message}, message)


class NotFoundJudge0(Judge0Error):
    """404 for an unknown token or language id, with the body Rails gives JSON clients."""

    def __init__(self, what: str) -> None:
        super().__init__(404, {"status": 404, "error": "Not Found"}, what)


class NotUtf8(BadParameter):
    """A submission whose text cannot be shown without base64."""

    def __init__(self, many: bool = False) -> None:
        which = "one or more submissions" if many else "this submission"
        super().__init__(f"some attributes for {which} cannot be converted to UTF-8, use "
                         "base64_encoded=true query parameter")
