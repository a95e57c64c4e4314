"""The process shell: a first signal asks, a second insists, a watchdog bounds the stop."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading

import pytest
from runstream.services.process import STOP_SIGNALS, StopSignals, killed_by


def test_the_first_signal_asks_for_the_stop_and_later_ones_insist(
        caplog: pytest.LogCaptureFixture) -> None:
    asked: list[int] = []
    insisted: list[int] = []
    stop = StopSignals(asked.append, on_second=insisted.append, second="second: now")
    assert not stop.requested and stop.took_s() is None
    with caplog.at_level(logging.WARNING):
        stop(signal.SIGTERM)
        assert asked == [signal.SIGTERM] and insisted == [] and stop.requested
        stop(signal.SIGINT)
        stop(signal.SIGTERM)
    assert asked == [signal.SIGTERM] and insisted == [signal.SIGINT, signal.SIGTERM]
    assert [r.getMessage() for r in caplog.records] == ["second: now", "second: now"]
    took = stop.took_s()
    assert took is not None and took >= 0


def test_without_a_second_action_later_signals_change_nothing(
        caplog: pytest.LogCaptureFixture) -> None:
    asked: list[int] = []
    stop = StopSignals(asked.append, on_second=None)
    with caplog.at_level(logging.WARNING):
        stop(signal.SIGINT)
        stop(signal.SIGINT)
    assert asked == [signal.SIGINT] and not caplog.records


def test_the_watchdog_fires_when_the_stop_overruns_its_bound() -> None:
    fired = threading.Event()
    bounds: list[float] = []

    def overdue(bound_s: float) -> None:
        bounds.append(bound_s)
        fired.set()

    stop = StopSignals(lambda _: None, bound_s=0.05, overdue=overdue)
    stop(signal.SIGTERM)
    assert fired.wait(10), "the watchdog did not fire"
    assert bounds == [0.05]


def test_a_stop_that_finishes_in_time_is_not_cut_short() -> None:
    fired = threading.Event()
    stop = StopSignals(lambda _: None, bound_s=30, overdue=lambda _: fired.set())
    stop(signal.SIGTERM)
    assert stop.watchdog is not None and stop.watchdog.daemon  # never holds the exit
    stop.cancel()
    stop.watchdog.join(5)
    assert not stop.watchdog.is_alive() and not fired.is_set()


async def test_installed_on_a_loop_it_handles_both_stop_signals() -> None:
    loop = asyncio.get_running_loop()
    got = asyncio.Event()
    seen: list[int] = []

    def on_stop(signum: int) -> None:
        seen.append(signum)
        got.set()

    stop = StopSignals(on_stop, on_second=seen.append)
    stop.install(loop)
    try:
        signal.raise_signal(signal.SIGTERM)
        await asyncio.wait_for(got.wait(), 5)
        assert seen == [signal.SIGTERM]
    finally:
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)


def test_exit_codes_follow_the_shells() -> None:
    assert killed_by(signal.SIGINT) == 130 and killed_by(signal.SIGTERM) == 143
