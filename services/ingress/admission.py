"""Admission control: refuse work early when the queue is already long.

The backlog, in seconds, is estimated as

    (worker group's lag on the requests topic + what this ingress produced since
     that lag was measured) x mean execution time / live worker slots

The lag and the live slots come from :class:`~runstream.streams.worker_group.GroupWatch`
(polled in the background, never on the request path); the mean execution time
is an exponentially weighted mean of ``finished - started`` over the results read.
"""

from __future__ import annotations

import re
from datetime import datetime

from runstream.services.ingress.problems import Overloaded

# Before any result is seen: a typical interpreted hello-world under the sandbox is
# well under this; erring high refuses a little early rather than queueing too much.
DEFAULT_EXEC_S = 1.0
_STAMP = re.compile(rb'"(started|finished)"\s*:\s*"([^"]+)"')


class Backlog:
    """How many seconds of work are queued for the live workers (pure arithmetic)."""

    def __init__(self, max_backlog_s: float, *, default_exec_s: float = DEFAULT_EXEC_S,
                 alpha: float = 0.1) -> None:
        self.max_backlog_s = max_backlog_s
        self.mean_exec_s = default_exec_s
        self.alpha = alpha
        self.lag = 0
        self.slots = 0
        self.produced_since_poll = 0
        self.observed = 0

    def on_poll(self, lag: int, slots: int) -> None:
        """A new measurement of the group's lag and of the live slots."""
        self.lag = max(0, lag)
        self.slots = max(0, slots)

    def poll_started(self) -> None:
        """The lag measurement that starts now will include what we produced so far."""
        self.produced_since_poll = 0

    def on_execution(self, seconds: float) -> None:
        if seconds < 0:
            return
        self.observed += 1
        first = self.observed == 1
        self.mean_exec_s = seconds if first else (
            self.alpha * seconds + (1 - self.alpha) * self.mean_exec_s)

    def seconds(self) -> float:
        # No live slot known: count one, so a queue still drains on paper as workers return.
        queued = self.lag + self.produced_since_poll
        return queued * self.mean_exec_s / max(1, self.slots)

    def admit(self) -> None:
        """Count one more request in, or raise Overloaded (429) if it would exceed the bound.

        Counted at admission, not once Kafka acknowledged it: a burst of concurrent
        requests is all admitted before the first produce completes.
        """
        self.check()
        self.produced_since_poll += 1

    def check(self) -> None:
        """Raise Overloaded (429) when one more request would exceed the bound."""
        backlog = (self.lag + self.produced_since_poll + 1) * self.mean_exec_s / max(1, self.slots)
        if backlog > self.max_backlog_s:
            raise Overloaded(
                f"about {backlog:.0f}s of work is queued for {max(1, self.slots)} worker "
                f"slot(s), over this service's bound of {self.max_backlog_s:g}s; retry after "
                "the Retry-After delay (or add workers)",
                retry_after=backlog - self.max_backlog_s,
                backlog_s=round(backlog, 1))


def execution_seconds(result: bytes) -> float | None:
    """``finished - started`` of an encoded result, read without parsing the whole of it."""
    at = result.rfind(b'"timestamps"')  # near the end: outputs come first
    if at < 0:
        return None
    stamps = dict(_STAMP.findall(result, at))
    try:
        started = datetime.fromisoformat(stamps[b"started"].decode())
        finished = datetime.fromisoformat(stamps[b"finished"].decode())
    except (KeyError, ValueError):
        return None
    return (finished - started).total_seconds()
