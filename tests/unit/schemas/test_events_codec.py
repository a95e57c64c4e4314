"""The event contract (schemas/event.v1.json, schemas/events.py) and the ingress's event buffer."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from runstream.schemas import events
from runstream.schemas.codec import load_schema
from runstream.schemas.events import EventType, InvalidEvent
from runstream.schemas.models import PhaseResult
from runstream.streams.eventbuffer import RecentEvents, Stored

AT = datetime(2026, 11, 29, 21, 0, 0, 123000, tzinfo=UTC)


def test_every_event_type_round_trips_and_matches_the_schema() -> None:
    made = [
        events.queued("x1", AT, "python"),
        events.started("x1", "a1", 0, AT, worker="w1", language="python", version="3.11"),
        events.compiled("x1", "a1", 1, AT, PhaseResult(exit_code=1, wall_ms=5), failed=True),
        events.output("x1", "a1", 2, AT, stream="stdout", phase="run", test=None,
                      data="héllo\n".encode(), position=0),
        events.output("x1", "a1", 3, AT, stream="stderr", phase="run", test=2,
                      data=b"\xff\xfe", position=7, truncated=True),
        events.finished("x1", "a1", 4, AT, "ok"),
    ]
    for event in made:
        raw = events.encode_event(event)
        back = events.decode_event(raw)
        assert back == event
        assert orjson.loads(raw)["at"] == "2026-11-29T21:00:00.123Z"
    compile_doc = orjson.loads(events.encode_event(made[2]))
    assert (compile_doc["status"], compile_doc["exit_code"]) == ("compile_error", 1)
    assert events.output_bytes(made[3]) == "héllo\n".encode()
    assert made[4].details["encoding"] == "base64"
    assert events.output_bytes(made[4]) == b"\xff\xfe"
    assert load_schema(events.EVENT_SCHEMA)["properties"]["schema"]["const"] == \
        events.SCHEMA_NAME


@pytest.mark.parametrize("raw", [
    b"not json", b"[]", b'{"schema": "runstream.event.v1"}',
    b'{"schema":"runstream.event.v1","id":"x","type":"stdout","at":"2026-11-29T21:00:00Z",'
    b'"seq":0}',  # an output event without its data
    b'{"schema":"runstream.event.v1","id":"x","type":"nope","at":"2026-11-29T21:00:00Z",'
    b'"seq":0}',
    b'{"schema":"runstream.event.v1","id":"x","type":"queued","at":"yesterday","seq":0}',
    b'{"schema":"runstream.event.v1","id":"x","type":"queued","at":"2026-11-29T21:00:00Z",'
    b'"seq":-1}',
])
def test_what_is_not_an_event_is_refused_with_a_reason(raw: bytes) -> None:
    with pytest.raises(InvalidEvent, match=r"not a runstream\.event\.v1 document"):
        events.decode_event(raw)


VALID = {"schema": "runstream.event.v1", "id": "x", "type": "stdout",
         "at": "2026-11-29T21:00:00Z", "attempt": "a", "seq": 0, "phase": "run", "test": None,
         "data": "hi", "encoding": "utf8", "position": 0}


@pytest.mark.parametrize("change", [
    {}, {"type": "queued", "phase": None}, {"seq": True}, {"seq": 1.5}, {"id": ""},
    {"id": 7}, {"attempt": 3}, {"phase": "link"}, {"test": -1}, {"test": "0"},
    {"encoding": "latin1"}, {"position": -3}, {"truncated": "yes"}, {"data": None},
    {"type": "finished"}, {"type": "finished", "status": "ok"}, {"type": "compile"},
    {"type": "compile", "status": "ok", "exit_code": 0, "wall_ms": 3},
    {"type": "compile", "status": "ok", "exit_code": "0", "wall_ms": 3},
    {"result": []}, {"result": {"id": "x"}}, {"schema": "runstream.event.v2"},
    {"unknown": "newer producers may add fields"},
])
def test_the_fast_check_and_the_json_schema_agree(change: dict[str, object]) -> None:
    """Every event read is checked by hand (fast); the schema file stays the contract."""
    doc = {k: v for k, v in (VALID | change).items() if v is not None or k not in change}
    try:
        events.validate_event_doc(doc)
        schema_ok = True
    except InvalidEvent:
        schema_ok = False
    try:
        events.event_from_doc(doc)
        fast_ok = True
    except InvalidEvent:
        fast_ok = False
    assert fast_ok == schema_ok, (doc, schema_ok)


def test_finished_over_http_carries_the_result() -> None:
    result = {"id": "x1", "status": "ok", "timestamps": {"finished": "2026-11-29T21:00:01.000Z"}}
    doc = orjson.loads(events.finished_with_result("x1", result, attempt="a1", seq=5))
    assert (doc["type"], doc["status"], doc["result"], doc["at"], doc["seq"]) == (
        "finished", "ok", result, "2026-11-29T21:00:01.000Z", 5)
    assert events.event_from_doc(doc).type is EventType.FINISHED


def _stored(offset: int, event: events.Event) -> Stored:
    return Stored(offset, event, events.encode_event(event))


def _out(seq: int, size: int, exec_id: str = "x1", attempt: str = "a1") -> events.Event:
    return events.output(exec_id, attempt, seq, AT, stream="stdout", phase="run", test=None,
                         data=b"x" * size, position=0)


def test_the_buffer_keeps_an_executions_events_drops_repeats_and_resumes_by_offset() -> None:
    buf = RecentEvents(max_bytes=1 << 20, per_id_bytes=1 << 19)
    assert buf.add(_stored(0, events.queued("x1", AT, "python")))
    assert buf.add(_stored(1, events.started("x1", "a1", 0, AT, worker="w", language="python",
                                             version=None)))
    assert buf.add(_stored(2, _out(1, 10)))
    assert not buf.add(_stored(3, _out(1, 10)))  # a producer's retry: same attempt and seq
    assert not buf.add(_stored(4, events.queued("x1", AT, "python")))  # stale
    assert [s.offset for s in buf.since("x1")] == [0, 1, 2]
    assert [s.offset for s in buf.since("x1", after=1)] == [2]
    # a run again after a crash has a new attempt: its seq starts over
    assert buf.add(_stored(5, _out(0, 10, attempt="a2")))
    assert buf.add(_stored(6, events.finished("x1", "a2", 1, AT, "ok")))
    assert buf.known("x1") and buf.finished("x1")
    # Kept after the end: a stream resuming just then still gets the chunks it missed.
    assert [s.offset for s in buf.since("x1", after=2)] == [5]


def test_the_buffer_is_bounded_per_execution_and_overall() -> None:
    buf = RecentEvents(max_bytes=64 * 1024, per_id_bytes=16 * 1024)
    for seq in range(100):  # a flood: ~1 KiB events
        buf.add(_stored(seq, _out(seq, 1000)))
    assert buf.size <= 16 * 1024 + 1024
    for n in range(20):
        for seq in range(10):
            buf.add(_stored(seq, _out(seq, 1000, exec_id=f"id{n}")))
    assert buf.size <= 64 * 1024
    assert buf.known("id19") and not buf.known("x1")  # the least recently active went
