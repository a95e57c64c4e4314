"""The process shell: how every long-running runstream process meets its stop signals.

One rule for the worker, the ingress, the local broker and the webhook deliverer
(docs/stopping.md): the first SIGTERM/SIGINT asks for a stop, which the process
carries out within its own bound; a watchdog ends the process if that stop
overruns the bound (exit :data:`EXIT_OVERDUE`); a second signal is the impatient
operator, and each process says what it does then (exit at once, kill its broker).

The shell only decides *when*; *what* a stop is (drain the worker, drain the
ingress then let uvicorn close, stop the broker) stays with each process.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType

#: The signals that stop a runstream process (Ctrl-C, and what compose and systemd send).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
#: A stop that finished in order.
EXIT_OK = 0
#: The watchdog's exit: the stop overran its bound.
EXIT_OVERDUE = 1


def killed_by(signum: int) -> int:
    """The exit code of a process ended by ``signum`` (the shells' 128 + n)."""
    return 128 + signum


def exit_now(signum: int) -> None:
    """End the process at once, as if killed by ``signum`` (nothing is flushed but logs)."""
    logging.shutdown()
    os._exit(killed_by(signum))


class StopSignals:
    """The stop signals of one process: first asks, a second insists, a watchdog bounds.

    ``on_stop(signum)`` runs on the first signal; it must only start the stop
    (set an event, schedule a task): handlers run between two bytecodes of the
    main thread. ``on_second(signum)`` runs on every later signal after
    ``second`` is logged; None ignores them. With ``bound_s``, a watchdog thread
    started by the first signal calls ``overdue`` (by default: log, exit 1) if the
    process still runs ``bound_s`` later.
    """

    def __init__(self, on_stop: Callable[[int], object], *,
                 on_second: Callable[[int], object] | None = exit_now,
                 second: str = "second signal: exiting at once",
                 bound_s: float | None = None,
                 log: logging.Logger | None = None,
                 overdue: Callable[[float], object] | None = None) -> None:
        self.on_stop = on_stop
        self.on_second = on_second
        self.second_message = second
        self.bound_s = bound_s
        self.log = log or logging.getLogger(__name__)
        self.overdue = overdue or self._overdue
        self.signals = 0
        #: When the first signal came (monotonic), None before.
        self.asked_at: float | None = None
        self.watchdog: threading.Timer | None = None

    @property
    def requested(self) -> bool:
        """Whether a stop was asked for."""
        return self.asked_at is not None

    def took_s(self) -> float | None:
        """Seconds since the stop was asked for; None if it was not."""
        return None if self.asked_at is None else time.monotonic() - self.asked_at

    def __call__(self, signum: int) -> None:
        self.signals += 1
        if self.signals > 1:
            self.second(signum)
            return
        self.asked_at = time.monotonic()
        self.on_stop(signum)
        if self.bound_s is not None:
            self.watchdog = threading.Timer(self.bound_s, self.overdue, args=(self.bound_s,))
            self.watchdog.daemon = True  # never what keeps a finished process alive
            self.watchdog.start()

    def second(self, signum: int) -> None:
        """Act as on a second signal (also for a first one the process cannot drain)."""
        if self.on_second is None:
            return
        self.log.warning(self.second_message)
        self.on_second(signum)

    def install(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Handle the stop signals: on ``loop`` (asyncio's handlers), else with ``signal``."""
        for sig in STOP_SIGNALS:
            if loop is not None:
                loop.add_signal_handler(sig, self, sig)
            else:
                signal.signal(sig, self.handler)

    def handler(self, signum: int, frame: FrameType | None) -> None:
        """The ``signal.signal`` form of the handler (for uvicorn's and sync processes)."""
        self(signum)

    def cancel(self) -> None:
        """Stop the watchdog: the stop finished (for tests and embedders)."""
        if self.watchdog is not None:
            self.watchdog.cancel()

    def _overdue(self, bound_s: float) -> None:
        self.log.error("the stop took longer than %.0f s; exiting now", bound_s)
        logging.shutdown()
        os._exit(EXIT_OVERDUE)


__all__ = ["EXIT_OK", "EXIT_OVERDUE", "STOP_SIGNALS", "StopSignals", "exit_now", "killed_by"]
