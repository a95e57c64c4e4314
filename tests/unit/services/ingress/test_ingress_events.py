"""The SSE framing and the resume header of GET /v1/executions/{id}/events (in-process)."""

from __future__ import annotations

import pytest
from runstream.services.ingress.events import comment, last_event_id, sse
from starlette.requests import Request


def _request(headers: dict[str, str], query: str = "") -> Request:
    return Request({"type": "http", "method": "GET", "path": "/", "query_string": query.encode(),
                    "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]})


def test_a_message_is_id_event_and_one_data_line() -> None:
    assert sse(b'{"a":1}', "stdout", 42) == b'id: 42\nevent: stdout\ndata: {"a":1}\n\n'
    assert sse(b"{}", "finished") == b"event: finished\ndata: {}\n\n"
    assert comment("keep-alive") == b": keep-alive\n\n"


@pytest.mark.parametrize(("headers", "query", "expected"), [
    ({"Last-Event-ID": "17"}, "", 17),
    ({"Last-Event-ID": " 17 "}, "", 17),
    ({}, "last_event_id=5", 5),
    ({}, "", None),
    ({"Last-Event-ID": "-1"}, "", None),
    ({"Last-Event-ID": "abc"}, "", None),
    ({"Last-Event-ID": "٣"}, "", None),  # a digit, but not an ASCII one
    ({"Last-Event-ID": "9" * 5000}, "", None),  # would exceed int()'s digit limit
])
def test_resume_position_is_an_offset_or_nothing(headers: dict[str, str], query: str,
                                                 expected: int | None) -> None:
    assert last_event_id(_request(headers, query)) == expected
