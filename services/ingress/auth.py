"""API keys at the door: an ASGI middleware in front of every route.

When ``RUNSTREAM_AUTH_REQUIRED`` is on, every request (HTTP or WebSocket) except
the open paths below must carry a key, in ``Authorization: Bearer <key>``,
``X-Api-Key`` or Judge0's ``X-Auth-Token``. It answers before any route runs,
so routes written later (Judge0 under ``/judge0``, Piston under ``/api/v2``)
are covered without knowing about it:

- no key, a malformed one, an unknown one: ``401`` with ``WWW-Authenticate``;
- a revoked key: ``403``;
- past the key's rate limit: ``429`` + ``Retry-After``. Only requests that may
  create work take a token (not GET/HEAD/OPTIONS): a client polling for results
  it was admitted for is never refused for it.

The accepted key is put in a context variable (``caller.py``) for the routes and
the gateway, which stamps its id on the request and enforces the language list
and the concurrency quota (``403``/``429``) where the request is produced.
"""

from __future__ import annotations

import logging
from typing import Any

from runstream.schemas.errors import Forbidden, QuotaExceeded, Unauthorized, WireError
from runstream.schemas.keys import KeyRecord, matches, parse_key
from runstream.services.ingress.key_admission import reset_key, set_key
from runstream.services.ingress.problems import problem
from runstream.services.ingress.quotas import RateLimits
from runstream.services.settings import Settings
from runstream.streams.api_keys import KeyStore
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

# Open whatever the setting: probes, metrics, the API's description, static pages.
OPEN_PATHS = frozenset({"/", "/healthz", "/readyz", "/metrics", "/openapi.json", "/docs",
                        "/dashboard", "/favicon.ico"})
OPEN_PREFIXES = ("/docs/", "/dashboard/", "/assets/", "/static/")
# Methods that only read: authenticated, but they take no token of the rate limit.
READS = frozenset({"GET", "HEAD", "OPTIONS"})
HEADERS_TRIED = "'Authorization: Bearer <key>', 'X-Api-Key: <key>' or 'X-Auth-Token: <key>'"


def is_open(path: str) -> bool:
    """Whether ``path`` is served without a key (never one with a ``..`` segment)."""
    return path in OPEN_PATHS or (path.startswith(OPEN_PREFIXES) and "/.." not in path)


def presented_key(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The key the client sent: Authorization (Bearer), else X-Api-Key, else X-Auth-Token.

    An Authorization header of another scheme is returned whole, so that it is
    refused as malformed rather than as missing.
    """
    found: dict[bytes, str] = {}
    for name, value in headers:
        lowered = name.lower()
        if lowered in (b"authorization", b"x-api-key", b"x-auth-token") and lowered not in found:
            found[lowered] = value.decode("latin-1").strip()
    auth = found.get(b"authorization")
    if auth:
        scheme, _, token = auth.partition(" ")
        return token.strip() if scheme.lower() == "bearer" else auth
    return found.get(b"x-api-key") or found.get(b"x-auth-token") or None


class ApiKeyAuth:
    """ASGI middleware: authenticate, rate-limit, then hand the key to the routes.

    ``keys`` None means auth is off: every request passes untouched.
    """

    def __init__(self, app: ASGIApp, *, keys: KeyStore | None, settings: Settings,
                 limits: RateLimits | None = None) -> None:
        self.app = app
        self.keys = keys
        self.settings = settings
        self.limits = limits or RateLimits()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if (self.keys is None or kind not in ("http", "websocket") or is_open(scope["path"])
                or (kind == "http" and scope["method"] == "OPTIONS")):
            await self.app(scope, receive, send)
            return
        writes = kind == "websocket" or scope["method"] not in READS
        try:
            key = await self.authenticate(scope, writes=writes)
        except WireError as e:
            await self._refuse(scope, receive, send, e)
            return
        scope.setdefault("state", {})["api_key_id"] = key.id
        token = set_key(key)
        try:
            await self.app(scope, receive, self._with_limit_headers(send, key) if (
                writes and kind == "http") else send)
        finally:
            reset_key(token)

    async def authenticate(self, scope: Scope, *, writes: bool) -> KeyRecord:
        """The key record of this request, or raise the wire error that refuses it."""
        assert self.keys is not None
        presented = presented_key(scope["headers"])
        if presented is None:
            raise Unauthorized(f"this service needs an API key: send it as {HEADERS_TRIED}")
        parsed = parse_key(presented)
        if parsed is None:
            raise Unauthorized("malformed API key: expected rs_<16 hex digits>_<43 characters> "
                               f"in {HEADERS_TRIED}", reason="malformed")
        key_id, secret = parsed
        record = await self.keys.lookup(key_id, self.settings.request_timeout_s)
        if record is None or not matches(record, secret):
            raise Unauthorized("unknown API key (create one with `runstream keys create`)",
                               reason="unknown")
        if record.revoked_at is not None:
            raise Forbidden(f"API key {key_id} was revoked at "
                            f"{record.revoked_at.isoformat(timespec='seconds')}", key_id=key_id)
        if writes:
            wait_s = self.limits.take(record)
            if wait_s > 0:
                raise QuotaExceeded(
                    f"API key {key_id} is over its rate limit of {record.rate_per_s:g} "
                    f"request(s)/s (bursts of {record.burst}); retry after the Retry-After delay",
                    retry_after=wait_s, quota="rate", limit=record.rate_per_s,
                    burst=record.burst, key_id=key_id)
        return record

    def _with_limit_headers(self, send: Send, key: KeyRecord) -> Send:
        """``send`` that adds X-RateLimit-Limit/-Remaining to the response's headers."""
        remaining = self.limits.remaining(key)
        if remaining is None:
            return send

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(b"x-ratelimit-limit", str(key.burst).encode()),
                            (b"x-ratelimit-remaining", str(remaining).encode())]
                message = {**message, "headers": headers}
            await send(message)

        return sending

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, e: WireError) -> None:
        extra: dict[str, Any] = {k: v for k, v in e.extra.items() if v is not None}
        headers: dict[str, str] = {}
        if isinstance(e, QuotaExceeded):
            headers["Retry-After"] = str(e.retry_after)
        if isinstance(e, Unauthorized):
            # RFC 6750: error="invalid_token" when a key was sent but is not accepted.
            headers["WWW-Authenticate"] = ('Bearer realm="runstream"' if "reason" not in extra
                                           else 'Bearer realm="runstream", error="invalid_token"')
        log.debug("%s %s refused: %d %s", scope["type"], scope["path"], e.http_status, e.message)
        response = problem(e.http_status, e.problem_type, e.title, e.message, headers, **extra)
        if scope["type"] == "http":
            await response(scope, receive, send)
            return
        # A WebSocket: answer the handshake with the problem if the server can, else close
        # it before accepting (the server then answers 403).
        if "websocket.http.response" in scope.get("extensions", {}):
            await send({"type": "websocket.http.response.start", "status": response.status_code,
                        "headers": response.raw_headers})
            await send({"type": "websocket.http.response.body", "body": response.body})
            return
        await receive()  # websocket.connect
        await send({"type": "websocket.close", "code": 1008, "reason": e.message[:120]})
