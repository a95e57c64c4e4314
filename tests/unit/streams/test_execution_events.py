"""A worker's per-execution events (streams/events.py ExecutionEvents), on a real event loop.

The publisher is a stand-in that records what is emitted (EventPublisher against a
real broker is tests/integration/test_events_kafka.py).
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from runstream.schemas.events import Event, EventType
from runstream.schemas.models import PhaseResult
from runstream.services.execution.languages import Registry
from runstream.services.settings import Settings
from runstream.streams.events import EventPublisher, ExecutionEvents, chunk_policy

SETTINGS = Settings.from_env({}, worker_id="w1")
PYTHON = Registry.load().resolve("python")


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.arrived = asyncio.Event()

    def emit(self, event: Event) -> None:
        self.events.append(event)
        self.arrived.set()


def _events(rec: Recorder) -> ExecutionEvents:
    return ExecutionEvents(cast(EventPublisher, rec), "x1", "w1",
                           chunk_policy(SETTINGS, SETTINGS.default_limits.output_bytes))


async def test_output_goes_out_when_its_interval_is_up_then_in_order_to_finished() -> None:
    rec = Recorder()
    ev = _events(rec)
    ev.started(PYTHON, SETTINGS.default_limits)
    sink = ev.output("run", None)
    rec.arrived.clear()
    sink("stdout", b"a")
    sink("stdout", b"b")
    await asyncio.wait_for(rec.arrived.wait(), 5)  # the 50 ms timer, not a flush
    assert [(e.type, e.details.get("data")) for e in rec.events] == [
        (EventType.STARTED, None), (EventType.STDOUT, "ab")]
    sink("stderr", b"late")
    ev.phase_ended("run", None, PhaseResult(stderr_truncated=True))
    sink("stdout", b"straggler of an ended phase")
    ev.finished("ok")
    kinds = [e.type for e in rec.events]
    assert kinds == [EventType.STARTED, EventType.STDOUT, EventType.STDERR, EventType.FINISHED]
    assert rec.events[2].details["truncated"] is True
    assert [e.seq for e in rec.events] == [0, 1, 2, 3]
    assert len({e.attempt for e in rec.events}) == 1
    ev.finished("ok")  # closed: nothing more
    assert len(rec.events) == 4


async def test_a_failure_while_reporting_stops_the_reports_not_the_run() -> None:
    rec = Recorder()
    ev = _events(rec)
    ev.started(PYTHON, SETTINGS.default_limits)

    class Broken:  # a bug of ours in chunking: cannot be produced for real
        def feed(self, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("bug")

    ev.coalescer = cast(Any, Broken())
    ev.output("run", None)("stdout", b"x")  # does not raise
    assert ev.closed
    ev.phase_ended("run", None, None)
    ev.finished("ok")
    assert [e.type for e in rec.events] == [EventType.STARTED]
