"""How runstream logs: text or JSON lines, the execution id on each, rate-limited repeats.

``configure`` sets up the root logger (``RUNSTREAM_LOG_FORMAT``: ``text`` or ``json``);
``bind_execution`` marks the lines of the current task as concerning one execution
(the JSON ``execution_id`` field); ``Throttled`` logs a failure that repeats once in
a while, with a count, not per try.
"""

from __future__ import annotations

import contextvars
import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

_EVERY_S = 10.0


class Throttled:
    """Logs each key at most once per ``every_s``, counting what it held back."""

    def __init__(self, logger: logging.Logger, every_s: float = _EVERY_S) -> None:
        self.logger = logger
        self.every_s = every_s
        self._last: dict[str, tuple[float, int]] = {}

    def warning(self, key: str, msg: str, *args: Any) -> None:
        now = time.monotonic()
        last, held = self._last.get(key, (float("-inf"), 0))
        if now - last < self.every_s:
            self._last[key] = (last, held + 1)
            return
        if held:
            msg += f" ({held} similar lines held back in the last {self.every_s:.0f} s)"
        self._last[key] = (now, 0)
        if len(self._last) > 1000:  # keys are topics and reasons; bound them anyway
            self._last = {key: self._last[key]}
        self.logger.warning(msg, *args)


#: The execution a line concerns: set once per request or record being handled (each
#: runs in its own asyncio task, which copies the context), read by every log line.
execution_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "runstream_execution_id", default=None)

#: Attributes every LogRecord has: anything else on a record came from ``extra=``.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message", "asctime", "execution_id",
    "color_message",  # uvicorn's copy of the message with terminal colours
}
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def bind_execution(exec_id: str | None) -> None:
    """Mark the rest of the current task's log lines as concerning ``exec_id``."""
    execution_id.set(exec_id)


class ExecutionFilter(logging.Filter):
    """Copies the bound execution id onto each record (at the call, in the caller's context)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "execution_id", None) is None:
            record.execution_id = execution_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, execution id, extras, error."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        exec_id = getattr(record, "execution_id", None)
        if exec_id is not None:
            doc["execution_id"] = exec_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                doc[key] = value
        if record.exc_info:
            doc["error"] = self.formatException(record.exc_info)
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        return json.dumps(doc, default=str, ensure_ascii=False)


def configure(level: str, fmt: str = "text") -> None:
    """Log to stderr at ``level``, as text lines or (``fmt="json"``) one JSON object a line."""
    handler = logging.StreamHandler()
    handler.addFilter(ExecutionFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
