"""Which runs write live events: the request's "events" flag and RUNSTREAM_EVENTS_PRODUCE."""

from __future__ import annotations

from dataclasses import replace

import orjson
import pytest
from runstream.schemas.codec import decode_request, encode_request
from runstream.schemas.errors import InvalidRequest
from runstream.services.settings import Settings
from runstream.streams.event_publisher import wants_events

BODY = {"language": "python", "source": "print(1)"}


def test_the_flag_travels_only_when_set_as_older_workers_know_requests() -> None:
    plain = decode_request(orjson.dumps(BODY))
    assert plain.events is False
    assert "events" not in orjson.loads(encode_request(plain))
    asked = decode_request(orjson.dumps({**BODY, "events": True}))
    assert asked.events is True
    assert orjson.loads(encode_request(asked))["events"] is True
    assert decode_request(encode_request(asked)).events is True
    assert decode_request(orjson.dumps({**BODY, "events": False})).events is False


def test_a_flag_that_is_not_a_boolean_is_refused_naming_it() -> None:
    with pytest.raises(InvalidRequest) as e:
        decode_request(orjson.dumps({**BODY, "events": "yes"}))
    assert "events" in str(e.value.field) + e.value.message


def test_requested_by_default_writes_only_the_runs_asked_for_and_always_every_one() -> None:
    plain = decode_request(orjson.dumps(BODY))
    requested, always = Settings(), Settings.from_env({"RUNSTREAM_EVENTS_PRODUCE": "always"})
    assert requested.events_produce == "requested" and not wants_events(requested, plain)
    assert always.events_produce == "always" and wants_events(always, plain)
    assert wants_events(requested, replace(plain, events=True))
    # A WebSocket session's output reaches its client as events: always written.
    assert wants_events(requested, replace(plain, interactive=True))
