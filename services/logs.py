"""Rate-limited log lines: a failure that repeats says so once in a while, not per try."""

from __future__ import annotations

import logging
import time
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
