"""The wire codec: validation errors name the field, unknown fields pass, types are strict."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import orjson
import pytest
from runstream.schemas.codec import (
    decode_request,
    encode_request,
    encode_result,
    request_from_doc,
    validate_result_doc,
)
from runstream.schemas.errors import InvalidRequest, MalformedPayload
from runstream.schemas.models import ExecutionResult, PhaseResult, ReplyTo, Status


def test_minimal_request_gets_an_id_and_defaults() -> None:
    req = decode_request(b'{"language": "Python", "source": "print(1)"}')
    assert req.language == "python"
    assert len(req.id) == 32
    assert req.files[0].name is None and req.files[0].content == b"print(1)"
    assert req.stdin == b"" and req.args == () and req.tests == ()


@pytest.mark.parametrize(
    ("body", "field", "fragment"),
    [
        ({"language": "python", "source": 1}, "source", "expected string, got int"),
        ({"language": 3, "source": "x"}, "language", "expected string"),
        ({"source": "x"}, "(body)", "'language' is a required property"),
        ({"language": "python"}, "(body)", "'source'"),
        ({"language": "python", "source": "x", "limits": {"wall_ms": "5"}}, "limits.wall_ms",
         "expected integer, got str"),
        ({"language": "python", "source": "x", "limits": {"wall_ms": 0}}, "limits.wall_ms",
         "less than the minimum"),
        ({"language": "python", "source": "x", "args": [1]}, "args.0", "expected string"),
        ({"language": "python", "files": [{"name": "../etc/passwd", "content": ""}]},
         "files.0.name", "does not match"),
        ({"language": "python", "source": "x", "id": "has space"}, "id", "does not match"),
        ({"language": "python", "source": "x", "deadline": "tomorrow"}, "deadline",
         "is not a 'date-time'"),
    ],
)
def test_invalid_requests_name_the_field(body: dict[str, object], field: str,
                                         fragment: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        decode_request(orjson.dumps(body))
    assert caught.value.field == field
    assert fragment in caught.value.message


@pytest.mark.parametrize("raw", [b"", b"{", b"[1,2]", b'"text"', b"\xff\xfe"])
def test_malformed_bodies(raw: bytes) -> None:
    with pytest.raises(MalformedPayload):
        decode_request(raw)


def test_unknown_fields_from_newer_producers_are_tolerated() -> None:
    req = decode_request(b'{"language":"python","source":"x","priority":5,"limits":{"gpu":1}}')
    assert req.language == "python"


def test_source_and_files_together_are_refused() -> None:
    with pytest.raises(InvalidRequest, match="either 'source' or 'files'"):
        decode_request(b'{"language":"python","source":"x","files":[{"content":"y"}]}')


def test_duplicate_file_names_are_refused() -> None:
    doc = {"language": "c", "files": [{"name": "a.c", "content": ""},
                                      {"name": "a.c", "content": ""}]}
    with pytest.raises(InvalidRequest, match="same name"):
        request_from_doc(doc)


def test_bad_base64_names_the_file() -> None:
    doc = {"language": "c", "files": [{"name": "a.c", "content": "!!", "encoding": "base64"}]}
    with pytest.raises(InvalidRequest) as caught:
        request_from_doc(doc)
    assert caught.value.field == "files.0.content"


def test_message_key_supplies_or_must_match_the_id() -> None:
    assert decode_request(b'{"language":"python","source":"x"}', key=b"k-1").id == "k-1"
    with pytest.raises(InvalidRequest, match="differs from the message key"):
        decode_request(b'{"language":"python","source":"x","id":"a"}', key=b"b")


def test_request_round_trip_keeps_everything() -> None:
    doc = {
        "id": "abc-1", "language": "python", "version": "3.11",
        "files": [{"name": "main.py", "content": "print(input())"},
                  {"name": "data.bin", "content": base64.b64encode(b"\x00\xff").decode(),
                   "encoding": "base64"}],
        "stdin": "héllo\n", "args": ["-v", "x y"],
        "tests": [{"stdin": "1", "expected_output": "1", "name": "one"}],
        "limits": {"wall_ms": 1000, "memory_mb": 64},
        "deadline": "2030-01-01T00:00:00Z",
        "reply_to": {"topic": "team.replies", "partition": 3},
        "metadata": {"user": 7, "nested": {"a": [1]}},
    }
    req = request_from_doc(doc)
    again = decode_request(encode_request(req))
    assert again == req
    assert again.files[1].content == b"\x00\xff"
    assert again.deadline == datetime(2030, 1, 1, tzinfo=UTC)
    assert again.reply_to == ReplyTo("team.replies", 3)


def test_result_encoding_matches_the_schema_and_flags_binary_output() -> None:
    phase = PhaseResult(stdout=b"\xff\xfe binary", stderr=b"ok", exit_code=0, wall_ms=3)
    result = ExecutionResult(id="x", status=Status.OK, run=phase, language="python",
                             finished=datetime(2026, 1, 1, tzinfo=UTC))
    doc = orjson.loads(encode_result(result))
    validate_result_doc(doc)
    assert doc["run"]["encoding"] == "base64"
    assert base64.b64decode(doc["run"]["stdout"]) == b"\xff\xfe binary"
    assert base64.b64decode(doc["run"]["stderr"]) == b"ok"
    assert doc["timestamps"]["finished"] == "2026-01-01T00:00:00.000Z"


def test_utf8_output_stays_text() -> None:
    result = ExecutionResult(id="x", status=Status.OK, run=PhaseResult(stdout="€\n".encode()))
    doc = orjson.loads(encode_result(result))
    assert doc["run"] == doc["run"] | {"stdout": "€\n", "encoding": "utf8"}
