"""Webhooks on the wire: the ``callback`` field, the signature, the job and delivery documents.

Pure: no I/O. A request's ``callback`` says where its result goes when it is
finished; the worker writes a *job* (the callback and the stored result) to the
callbacks topic; a deliverer sends it, signed, and records every attempt in a
*delivery* document (schema ``delivery.v1.json``) on the compacted deliveries
topic, keyed by execution id.

The signature header is ``X-Runstream-Signature: t=<unix seconds>,v1=<hex>``
where ``<hex>`` is HMAC-SHA256, keyed by the caller's secret, of the bytes
``<t>.<body>``: the timestamp is signed with the body, so a receiver can refuse
an old message replayed at it.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import orjson

from .errors import InvalidRequest, MalformedPayload
from .models import Callback

MAX_URL_LENGTH = 2048
METHODS = ("POST", "PUT")
FORMATS = ("runstream", "judge0")

SIGNATURE_HEADER = "X-Runstream-Signature"
ID_HEADER = "X-Runstream-Id"
DELIVERY_HEADER = "X-Runstream-Delivery"
ATTEMPT_HEADER = "X-Runstream-Attempt"

JOB_SCHEMA = "runstream.callback.v1"
DELIVERY_SCHEMA = "runstream.delivery.v1"

#: States of a delivery: still being tried, done, or given up.
PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


def check_url(url: str, field: str = "callback.url") -> str:
    """``url`` if it is an absolute http(s) URL a deliverer can send to; else InvalidRequest.

    Where it points (a private address) is checked at delivery time, on the
    address the name resolves to then: a check here could be undone by DNS.
    """
    if len(url) > MAX_URL_LENGTH:
        raise InvalidRequest(f"{field}: longer than {MAX_URL_LENGTH} characters", field=field)
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise InvalidRequest(f"{field}: a URL cannot contain spaces or control characters",
                             field=field)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise InvalidRequest(f"{field}: not a valid URL ({e})", field=field) from e
    if parts.scheme.lower() not in ("http", "https"):
        raise InvalidRequest(f"{field}: only http and https URLs are called back, not "
                             f"{parts.scheme or 'a relative URL'!r}", field=field)
    if not parts.hostname:
        raise InvalidRequest(f"{field}: the URL has no host", field=field)
    if parts.username is not None or parts.password is not None:
        raise InvalidRequest(f"{field}: credentials in the URL are not sent; verify the "
                             "X-Runstream-Signature header instead", field=field)
    if port == 0:
        raise InvalidRequest(f"{field}: port 0 is not a port to call", field=field)
    return url


def callback_from_doc(value: Any) -> Callback:
    """The ``callback`` field (a URL string or an object), already schema-valid, as a model."""
    if isinstance(value, str):
        return Callback(url=check_url(value, "callback"))
    if not isinstance(value, dict):  # the schema refuses it first; kept for direct callers
        raise InvalidRequest("callback: expected a URL string or an object", field="callback")
    method = str(value.get("method", "POST")).upper()
    fmt = value.get("format", "runstream")
    if method not in METHODS:
        raise InvalidRequest(f"callback.method: one of {', '.join(METHODS)}",
                             field="callback.method")
    if fmt not in FORMATS:
        raise InvalidRequest(f"callback.format: one of {', '.join(FORMATS)}",
                             field="callback.format")
    return Callback(url=check_url(str(value.get("url", ""))), method=method, format=fmt)


def callback_to_doc(cb: Callback) -> dict[str, str]:
    return {"url": cb.url, "method": cb.method, "format": cb.format}


# -- signing ------------------------------------------------------------------------
def signature(secret: bytes, body: bytes, timestamp: int) -> str:
    """The value of ``X-Runstream-Signature`` for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: bytes, body: bytes, header: str, *, now: int,
           tolerance_s: int = 300) -> bool:
    """What a receiver does: the header signs this body, and not too long ago."""
    fields: dict[str, list[str]] = {}
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        fields.setdefault(name, []).append(value)
    try:
        t = int(fields["t"][0])
    except (KeyError, ValueError):
        return False
    if abs(now - t) > tolerance_s:
        return False
    expected = signature(secret, body, t).partition(",v1=")[2]
    return any(hmac.compare_digest(expected, v) for v in fields.get("v1", []))


# -- the job (callbacks topic) ------------------------------------------------------
def encode_job(exec_id: str, cb: Callback, result: bytes, *, key_id: str | None,
               created: datetime) -> bytes:
    """A delivery job: the callback and the stored result bytes, embedded unchanged."""
    return orjson.dumps({
        "schema": JOB_SCHEMA, "id": exec_id, "callback": callback_to_doc(cb),
        "key_id": key_id, "created": _time(created), "result": orjson.Fragment(result),
    })


def decode_job(raw: bytes) -> tuple[str, Callback, str | None, datetime, dict[str, Any]]:
    """(id, callback, key id, created, result document); MalformedPayload if it is not one."""
    try:
        doc = orjson.loads(raw)
        exec_id = doc["id"]
        cb = callback_from_doc(doc["callback"])
        created = datetime.fromisoformat(doc["created"].replace("Z", "+00:00"))
        result = doc["result"]
        key_id = doc.get("key_id")
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError,
            InvalidRequest) as e:
        raise MalformedPayload(f"not a callback job: {e!r}") from e
    if not isinstance(exec_id, str) or not isinstance(result, dict):
        raise MalformedPayload("not a callback job: id or result of the wrong type")
    return exec_id, cb, key_id if isinstance(key_id, str) else None, created, result


# -- the delivery document (deliveries topic, GET .../deliveries) -------------------
def new_delivery(exec_id: str, cb: Callback) -> dict[str, Any]:
    """The delivery document before any attempt."""
    return {"schema": DELIVERY_SCHEMA, "id": exec_id, "callback": callback_to_doc(cb),
            "state": PENDING, "attempts": [], "next_attempt_at": None, "reason": None}


def attempt_doc(*, number: int, delivery: str, at: datetime, by: str,
                status_code: int | None, error: str | None, duration_ms: int) -> dict[str, Any]:
    """One attempt as the deliveries document lists it."""
    return {"attempt": number, "delivery": delivery, "at": _time(at), "by": by,
            "status_code": status_code, "error": error, "duration_ms": duration_ms,
            "ok": status_code is not None and 200 <= status_code < 300}


def is_final(doc: dict[str, Any]) -> bool:
    return doc.get("state") in (DELIVERED, FAILED)


def _time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
