"""API keys, pure: the key format, the stored hash, the record on the keys topic."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import replace
from datetime import UTC, datetime

import orjson
import pytest
from runstream.schemas.codec import decode_request, encode_request
from runstream.schemas.errors import InvalidRequest
from runstream.schemas.keys import (
    MAX_KEY_LENGTH,
    decode_record,
    encode_record,
    format_key,
    hash_secret,
    matches,
    new_key,
    parse_key,
    revoke,
)

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def test_a_new_key_is_rs_id_secret_with_32_random_bytes_and_only_a_hash_is_kept() -> None:
    record, key = new_key("ci", now=NOW)
    parsed = parse_key(key)
    assert parsed is not None and key.startswith(f"rs_{record.id}_")
    key_id, secret = parsed
    assert key_id == record.id and len(key_id) == 16
    assert len(base64.urlsafe_b64decode(secret + "=")) == 32
    assert secret not in encode_record(record).decode()
    assert record.hash == "sha256:" + hashlib.sha256(f"{key_id}:{secret}".encode()).hexdigest()
    other, other_key = new_key("ci", now=NOW)
    assert other.id != record.id and other_key != key  # random, not derived from the name
    assert record.webhook_secret != other.webhook_secret
    assert len(record.webhook_key()) == 43


def test_the_secret_matches_only_its_own_record() -> None:
    record, key = new_key("a", now=NOW)
    other, other_key = new_key("b", now=NOW)
    parsed = parse_key(key)
    other_parsed = parse_key(other_key)
    assert parsed is not None and other_parsed is not None
    assert matches(record, parsed[1])
    assert not matches(record, other_parsed[1])
    # The hash covers the id: a record carrying another key's hash does not match its secret.
    assert not matches(replace(record, hash=hash_secret(other.id, other_parsed[1])),
                       other_parsed[1])


@pytest.mark.parametrize("token", [
    "", "rs_", "Bearer x", "rs_0123456789abcdef", "rs_0123456789ABCDEF_" + "a" * 43,
    "rs_0123456789abcdef_" + "a" * 42, "rs_0123456789abcdef_" + "a" * 44,
    "xx_0123456789abcdef_" + "a" * 43, "rs_0123456789abcdef_" + "a" * 42 + "=",
    "rs_0123456789abcdef_" + "a" * 42 + "\n", "r" * (MAX_KEY_LENGTH + 1),
])
def test_anything_but_a_well_formed_key_is_refused(token: str) -> None:
    assert parse_key(token) is None


def test_a_secret_may_hold_underscores_and_dashes() -> None:
    secret = "_-" * 21 + "a"
    assert parse_key(format_key("0123456789abcdef", secret)) == ("0123456789abcdef", secret)


def test_records_round_trip_and_a_revocation_keeps_everything_else() -> None:
    record, _ = new_key("team b", now=NOW, rate_per_s=2.5, burst=7, max_concurrent=3,
                        languages=("c", "python"))
    assert decode_record(encode_record(record)) == record
    revoked = revoke(record, NOW)
    assert revoked.revoked and revoked.revoked_at == NOW
    assert replace(revoked, revoked_at=None) == record
    assert decode_record(encode_record(revoked)) == revoked
    assert revoke(revoked, datetime(2030, 1, 1, tzinfo=UTC)) is revoked  # first revocation stays
    assert record.allows("c") and not record.allows("ruby")


def test_default_quotas_and_burst() -> None:
    record, _ = new_key("d", now=NOW, rate_per_s=3)
    assert record.burst == 6 and record.max_concurrent == 4 and record.languages is None
    assert new_key("z", now=NOW, rate_per_s=0)[0].burst == 1


@pytest.mark.parametrize(("change", "field"), [
    ({"id": "nothex"}, "id"), ({"hash": "md5:00"}, "hash"), ({"burst": 0}, "burst"),
    ({"rate_per_s": -1}, "rate_per_s"), ({"name": ""}, "name"),
    ({"webhook_secret": "short"}, "webhook_secret"), ({"languages": [5]}, "languages.0"),
])
def test_invalid_records_are_refused_naming_the_field(change: dict[str, object],
                                                      field: str) -> None:
    record, _ = new_key("x", now=NOW)
    doc = orjson.loads(encode_record(record)) | change
    with pytest.raises(InvalidRequest) as e:
        decode_record(orjson.dumps(doc))
    assert e.value.field == field


def test_non_json_record_is_refused() -> None:
    with pytest.raises(InvalidRequest):
        decode_record(b"\x00not json")


def test_key_id_travels_on_the_request_and_is_validated() -> None:
    req = decode_request(b'{"language":"python","source":"1","key_id":"0123456789abcdef"}')
    assert req.key_id == "0123456789abcdef"
    assert decode_request(encode_request(req)).key_id == "0123456789abcdef"
    assert "key_id" not in orjson.loads(encode_request(replace(req, key_id=None)))
    with pytest.raises(InvalidRequest) as e:
        decode_request(b'{"language":"python","source":"1","key_id":"../admin"}')
    assert e.value.field == "key_id"
