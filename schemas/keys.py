"""API keys: the key format, the hash that is stored, the record on the keys topic.

A key reads ``rs_<id>_<secret>``. The id (16 hex digits) is public: it is listed,
logged, revoked by and stamped on the requests made with the key. The secret is
32 random bytes, URL-safe base64 without padding (43 characters); it is shown
once, when the key is created, and never stored: the record keeps
``sha256:<hex>`` of ``<id>:<secret>`` and the check compares in constant time.

Why SHA-256 and not bcrypt or argon2: those are slow on purpose, so that a stolen
hash of a low-entropy *password* costs a lot to guess. A 256-bit random secret
cannot be guessed at any speed, so slowness would buy nothing, and it would cost
tens of milliseconds of CPU on every request: a flood of bogus keys would then
exhaust the ingress. Hashing the id together with the secret ties a hash to its
own record.

Pure: no I/O. The record's JSON Schema is ``key.v1.json``.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import math
import re
import secrets
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import jsonschema
import orjson

from .codec import load_schema
from .errors import InvalidRequest, MalformedPayload

KEY_SCHEMA = "key.v1.json"
KEY_SCHEMA_TAG = "runstream.key.v1"
PREFIX = "rs"
# Longer than any well-formed key: refused before any parsing.
MAX_KEY_LENGTH = 128
_KEY = re.compile(r"rs_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")

DEFAULT_RATE_PER_S = 10.0
DEFAULT_MAX_CONCURRENT = 4


def default_burst(rate_per_s: float) -> int:
    """Two seconds' worth of requests at once, at least one."""
    return max(1, math.ceil(2 * rate_per_s))


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """One API key as stored (schema runstream.key.v1); never holds the secret itself."""

    id: str
    name: str
    hash: str
    created_at: datetime
    webhook_secret: str
    revoked_at: datetime | None = None
    rate_per_s: float = DEFAULT_RATE_PER_S  # 0: unlimited
    burst: int = default_burst(DEFAULT_RATE_PER_S)
    max_concurrent: int = DEFAULT_MAX_CONCURRENT  # 0: unlimited
    languages: tuple[str, ...] | None = None  # None: every language

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def allows(self, language: str) -> bool:
        """Whether this key may run ``language`` (a canonical name)."""
        return self.languages is None or language in self.languages

    def webhook_key(self) -> bytes:
        """The HMAC key of this key's webhook signatures: the secret's text, as printed."""
        return self.webhook_secret.encode("ascii")


def _ms(value: datetime) -> datetime:
    """``value`` to the millisecond: what the record keeps of it."""
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def _random_text() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode("ascii")


def hash_secret(key_id: str, secret: str) -> str:
    """What the record stores for a secret: ``sha256:<hex>`` of ``<id>:<secret>``."""
    digest = hashlib.sha256(f"{key_id}:{secret}".encode()).hexdigest()
    return f"sha256:{digest}"


def format_key(key_id: str, secret: str) -> str:
    return f"{PREFIX}_{key_id}_{secret}"


def parse_key(token: str) -> tuple[str, str] | None:
    """(id, secret) of a well-formed key; None for anything else."""
    if len(token) > MAX_KEY_LENGTH:
        return None
    match = _KEY.fullmatch(token)
    return (match[1], match[2]) if match else None


def matches(record: KeyRecord, secret: str) -> bool:
    """Whether ``secret`` is the record's, compared in constant time."""
    return hmac.compare_digest(record.hash.encode(), hash_secret(record.id, secret).encode())


def new_key(name: str, *, now: datetime, rate_per_s: float = DEFAULT_RATE_PER_S,
            burst: int | None = None, max_concurrent: int = DEFAULT_MAX_CONCURRENT,
            languages: tuple[str, ...] | None = None) -> tuple[KeyRecord, str]:
    """A fresh record and the full key (``rs_<id>_<secret>``), to be shown once."""
    key_id = secrets.token_hex(8)
    secret = _random_text()
    record = KeyRecord(
        id=key_id, name=name, hash=hash_secret(key_id, secret), created_at=_ms(now),
        webhook_secret=_random_text(), rate_per_s=float(rate_per_s),
        burst=default_burst(rate_per_s) if burst is None else burst,
        max_concurrent=max_concurrent, languages=languages)
    check_record(record)
    return record, format_key(key_id, secret)


def revoke(record: KeyRecord, now: datetime) -> KeyRecord:
    """The record that revokes ``record`` (kept: a revoked key answers 403, not 401)."""
    return record if record.revoked else replace(record, revoked_at=_ms(now))


def _time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_time(value: str, field: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as e:
        raise InvalidRequest(f"{field}: {value!r} is not a date-time", field=field) from e
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def record_to_doc(record: KeyRecord) -> dict[str, Any]:
    return {
        "schema": KEY_SCHEMA_TAG,
        "id": record.id,
        "name": record.name,
        "hash": record.hash,
        "created_at": _time(record.created_at),
        "revoked_at": _time(record.revoked_at) if record.revoked_at else None,
        "rate_per_s": record.rate_per_s,
        "burst": record.burst,
        "max_concurrent": record.max_concurrent,
        "languages": list(record.languages) if record.languages is not None else None,
        "webhook_secret": record.webhook_secret,
    }


def encode_record(record: KeyRecord) -> bytes:
    return orjson.dumps(record_to_doc(record))


@functools.cache
def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(load_schema(KEY_SCHEMA))


def _validate(doc: Any) -> None:
    error = jsonschema.exceptions.best_match(_validator().iter_errors(doc))
    if error is not None:
        where = ".".join(str(p) for p in error.absolute_path) or "(record)"
        raise InvalidRequest(f"{where}: {error.message}", field=where)


def record_from_doc(doc: Any) -> KeyRecord:
    """Validate a key document and build the record; raises InvalidRequest."""
    _validate(doc)
    languages = doc.get("languages")
    return KeyRecord(
        id=doc["id"], name=doc["name"], hash=doc["hash"],
        created_at=_parse_time(doc["created_at"], "created_at"),
        revoked_at=_parse_time(doc["revoked_at"], "revoked_at") if doc.get("revoked_at")
        else None,
        rate_per_s=float(doc.get("rate_per_s", DEFAULT_RATE_PER_S)),
        burst=int(doc.get("burst", default_burst(DEFAULT_RATE_PER_S))),
        max_concurrent=int(doc.get("max_concurrent", DEFAULT_MAX_CONCURRENT)),
        languages=tuple(languages) if languages is not None else None,
        webhook_secret=doc["webhook_secret"])


def decode_record(raw: bytes) -> KeyRecord:
    """Bytes from the keys topic to a validated record; raises InvalidRequest."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise MalformedPayload(f"key record is not JSON: {e}") from e
    return record_from_doc(doc)


def check_record(record: KeyRecord) -> None:
    """Raise InvalidRequest if ``record`` would not be valid on the topic."""
    _validate(record_to_doc(record))
