"""The webhook contract: the callback field, URL validation, the signature, the job."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime

import orjson
import pytest
from runstream.schemas.codec import decode_request, encode_request, request_from_doc
from runstream.schemas.errors import InvalidRequest, MalformedPayload
from runstream.schemas.models import Callback
from runstream.schemas.webhooks import (
    MAX_URL_LENGTH,
    check_url,
    decode_job,
    encode_job,
    signature,
    verify,
)

BASE = {"language": "python", "source": "print(1)"}


@pytest.mark.parametrize(("value", "expected"), [
    ("https://example.com/hook", Callback("https://example.com/hook")),
    ("HTTP://Example.com:8080/h?x=1", Callback("HTTP://Example.com:8080/h?x=1")),
    ({"url": "http://[::1]:9000/"}, Callback("http://[::1]:9000/")),
    ({"url": "https://e.x/h", "method": "PUT", "format": "judge0"},
     Callback("https://e.x/h", "PUT", "judge0")),
])
def test_a_callback_is_a_url_or_an_object_and_survives_the_topic(value: object,
                                                                 expected: Callback) -> None:
    req = request_from_doc({**BASE, "callback": value})
    assert req.callback == expected
    assert decode_request(encode_request(req), key=req.id.encode()).callback == expected


def test_no_callback_is_none_and_is_not_encoded() -> None:
    req = request_from_doc(BASE)
    assert req.callback is None
    assert "callback" not in orjson.loads(encode_request(req))


@pytest.mark.parametrize(("value", "field", "words"), [
    ("ftp://example.com/", "callback", "does not match"),
    ("/relative", "callback", "does not match"),
    ("https://", "callback", "no host"),
    ("https://exa mple.com/", "callback", "spaces"),
    ("https://example.com/\x00", "callback", "control"),
    ("https://u:p@example.com/", "callback", "credentials"),
    ("https://example.com:99999/", "callback", "not a valid URL"),
    ("https://example.com:0/", "callback", "port 0"),
    ("https://" + "a" * MAX_URL_LENGTH, "callback", f"longer than {MAX_URL_LENGTH}"),
    (17, "callback", "expected"),
    ([], "callback", "expected"),
    ({}, "callback", "'url' is a required property"),
    ({"url": "mailto:x@y"}, "callback.url", "does not match"),
    ({"url": 5}, "callback.url", "expected string"),
    ({"url": "https://e.x/", "method": "DELETE"}, "callback.method", "is not one of"),
    ({"url": "https://e.x/", "format": "xml"}, "callback.format", "is not one of"),
])
def test_a_bad_callback_is_refused_naming_the_field(value: object, field: str,
                                                    words: str) -> None:
    with pytest.raises(InvalidRequest) as e:
        request_from_doc({**BASE, "callback": value})
    assert e.value.field == field
    assert words in e.value.message
    assert len(e.value.message) < 300  # never the whole oversized value


def test_check_url_returns_the_url_unchanged() -> None:
    assert check_url("https://example.com/a?b=c#d") == "https://example.com/a?b=c#d"


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    body = b'{"id":"x"}'
    header = signature(b"s3cret", body, 1_700_000_000)
    mac = hmac.new(b"s3cret", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={mac}"


def test_verify_accepts_the_signature_and_refuses_tampering_and_old_messages() -> None:
    body = b'{"id":"x","status":"ok"}'
    header = signature(b"k", body, 1000)
    assert verify(b"k", body, header, now=1000)
    assert verify(b"k", body, header, now=1299)
    assert not verify(b"k", body, header, now=1301)  # replayed later than the tolerance
    assert not verify(b"other", body, header, now=1000)
    assert not verify(b"k", body + b" ", header, now=1000)
    assert not verify(b"k", body, header.replace("t=1000", "t=1001"), now=1000)
    assert not verify(b"k", body, "garbage", now=1000)


def test_a_job_carries_the_stored_result_unchanged() -> None:
    result = b'{"id":"a","status":"ok","run":{"stdout":"\\u00e9"}}'
    created = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    raw = encode_job("a", Callback("https://e.x/h", "PUT"), result, key_id="k1",
                     created=created)
    exec_id, cb, key_id, when, doc = decode_job(raw)
    assert (exec_id, cb, key_id, when) == ("a", Callback("https://e.x/h", "PUT"), "k1", created)
    assert doc == orjson.loads(result)


@pytest.mark.parametrize("raw", [b"", b"[]", b'{"id":"a"}', b"not json",
                                 b'{"id":1,"callback":"https://e.x","created":"2026-01-01T00:00:00Z",'
                                 b'"result":{}}'])
def test_what_is_not_a_job_is_malformed(raw: bytes) -> None:
    with pytest.raises(MalformedPayload):
        decode_job(raw)
