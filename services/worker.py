"""The worker process: run the worker app until a signal, and stop within a bound.

The first SIGTERM/SIGINT starts the drain (see ``streams/worker.py``); a watchdog
thread ends the process if anything holds the stop past the drain bound plus
``CLOSE_BUDGET_S``; a second signal exits at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable

from runstream.services import metrics
from runstream.services.settings import Settings
from runstream.streams import telemetry
from runstream.streams.worker import CLOSE_BUDGET_S, WorkerProcess

log = logging.getLogger(__name__)


def run_worker(settings: Settings) -> int:
    """Run a worker until SIGINT/SIGTERM; the stop is bounded (see the module docstring)."""
    return asyncio.run(_main(settings))


async def _main(settings: Settings) -> int:
    worker = WorkerProcess(settings)
    loop = asyncio.get_running_loop()
    signals = 0
    bound = settings.worker_drain_s + CLOSE_BUDGET_S
    asked_at: float | None = None

    def on_signal(signum: int) -> None:
        nonlocal signals, asked_at
        signals += 1
        if signals > 1:
            log.warning("second signal: exiting at once")
            os._exit(128 + signum)
        log.info("signal %d: draining for up to %.0f s", signum, settings.worker_drain_s)
        asked_at = time.monotonic()
        worker.stop_requested.set()
        watchdog = threading.Timer(bound, _overdue, args=(bound,))
        watchdog.daemon = True
        watchdog.start()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    # Served from the start, so that a slow start-up can be watched too (docs/metrics.md).
    stop_metrics = (metrics.serve(settings.worker_metrics_host, settings.worker_metrics_port)
                    if settings.worker_metrics_port else None)
    sampler = asyncio.create_task(
        telemetry.sample(lambda: worker.agent,
                         lambda: worker.app.consumer if worker.app and worker.agent else None),
        name="metrics")
    try:
        return await _serve(worker, settings, lambda: asked_at, bound)
    finally:
        sampler.cancel()
        if stop_metrics is not None:
            stop_metrics()


async def _serve(worker: WorkerProcess, settings: Settings,
                 asked: Callable[[], float | None], bound: float) -> int:
    running = asyncio.create_task(worker.run(), name="worker")
    stopped = asyncio.create_task(worker.stop_requested.wait())
    await asyncio.wait({running, stopped}, return_when=asyncio.FIRST_COMPLETED)
    if not running.done() and worker.agent is None:
        running.cancel()  # still starting (e.g. the broker is away): nothing to drain
    with contextlib.suppress(asyncio.CancelledError):
        await running
    stopped.cancel()
    asked_at = asked()
    if asked_at is not None:
        log.info("worker %s stopped in %.1f s (bound %.0f s)", settings.worker_id,
                 time.monotonic() - asked_at, bound)
    return 0


def _overdue(bound: float) -> None:
    log.error("the stop took longer than %.0f s; exiting now", bound)
    logging.shutdown()
    os._exit(1)
