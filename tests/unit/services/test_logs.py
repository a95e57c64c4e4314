"""Logs: RUNSTREAM_LOG_FORMAT=json gives one JSON object per line, with the execution id."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import pytest
from runstream.services import logs
from runstream.services.settings import Settings


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """The root logger configured as a process would be, writing into a buffer."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    out = io.StringIO()
    logs.configure("INFO", "json")
    root.handlers[0].setStream(out)  # type: ignore[attr-defined]
    try:
        yield out
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


def lines(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


async def test_each_task_logs_its_own_execution_id(stream: io.StringIO) -> None:
    log = logging.getLogger("runstream.test")

    async def handle(exec_id: str, gate: asyncio.Event) -> None:
        logs.bind_execution(exec_id)
        log.info("picked up")
        await gate.wait()  # the other task logs in between
        log.info("execution id=%s status=%s", exec_id, "ok")

    gate = asyncio.Event()
    a = asyncio.create_task(handle("id-a", gate))
    b = asyncio.create_task(handle("id-b", gate))
    await asyncio.sleep(0)
    gate.set()
    await asyncio.gather(a, b)
    log.info("not about an execution")
    got = lines(stream)
    assert [(g["execution_id"], g["message"]) for g in got[:4]] == [
        ("id-a", "picked up"), ("id-b", "picked up"),
        ("id-a", "execution id=id-a status=ok"), ("id-b", "execution id=id-b status=ok")]
    assert "execution_id" not in got[4]
    assert {"ts", "level", "logger", "message"} <= set(got[0])
    assert got[0]["level"] == "INFO" and got[0]["logger"] == "runstream.test"


def test_an_error_with_its_traceback_stays_one_line(stream: io.StringIO) -> None:
    log = logging.getLogger("runstream.test")
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        log.exception("failed", extra={"partition": 3})
    (only,) = lines(stream)
    assert only["message"] == "failed" and only["partition"] == 3
    assert "ValueError: bad" in str(only["error"])


def test_text_stays_the_default_format() -> None:
    assert Settings.from_env({}).log_format == "text"
    assert Settings.from_env({"RUNSTREAM_LOG_FORMAT": "json"}).log_format == "json"
    record = logging.makeLogRecord({"msg": "hello", "levelname": "INFO", "name": "x"})
    assert not logs.JsonFormatter().format(record).startswith("20")  # JSON, not a text line
    assert json.loads(logs.JsonFormatter().format(record))["message"] == "hello"
