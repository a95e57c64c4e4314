"""Judge0 tokens: UUID v4 strings that also carry the instant they were issued.

A token is the execution id of the request it names. Its first 48 bits are the
issuing time in milliseconds (the layout of UUID v7), the version and variant
bits say v4 (what Judge0 issues and what strict clients check), the remaining
74 bits are random. The time lets any ingress answer "In Queue" for a token that
another ingress issued a moment ago and whose result is not stored yet, and
404 for a token that was never issued.
"""

from __future__ import annotations

import secrets
import time
import uuid


def new_token(now_ms: int | None = None) -> str:
    """A fresh token issued at ``now_ms`` (default: now)."""
    ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    raw = bytearray(ms.to_bytes(6, "big") + secrets.token_bytes(10))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    return str(uuid.UUID(bytes=bytes(raw)))


def issued_at_ms(token: str) -> int | None:
    """When ``token`` says it was issued, or None if it is not a UUID v4 at all.

    A random v4 token (not issued here) decodes to an arbitrary instant, almost
    surely far from now; callers only trust a recent one.
    """
    try:
        parsed = uuid.UUID(token)
    except ValueError:
        return None
    if parsed.version != 4 or str(parsed) != token.lower():
        return None
    return int.from_bytes(parsed.bytes[:6], "big")


def recently_issued(token: str, within_s: float, now_ms: int | None = None) -> bool:
    """Whether ``token`` was issued less than ``within_s`` seconds ago (and not in the future)."""
    at = issued_at_ms(token)
    if at is None:
        return False
    now = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    return -5_000 <= now - at <= within_s * 1000  # a few seconds of clock skew between hosts
