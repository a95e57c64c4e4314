"""The worker process: run the worker app until a signal, and stop within a bound.

The first SIGTERM/SIGINT starts the drain (see ``streams/worker.py``); the process
shell's watchdog (``services/process.py``) ends the process if anything holds the
stop past the drain bound plus ``CLOSE_BUDGET_S``; a second signal exits at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from runstream.services import metrics
from runstream.services.process import EXIT_OK, StopSignals
from runstream.services.settings import Settings
from runstream.streams import telemetry
from runstream.streams.worker import CLOSE_BUDGET_S, WorkerProcess

log = logging.getLogger(__name__)


def run_worker(settings: Settings) -> int:
    """Run a worker until SIGINT/SIGTERM; the stop is bounded (see the module docstring)."""
    return asyncio.run(_main(settings))


async def _main(settings: Settings) -> int:
    worker = WorkerProcess(settings)

    def drain(signum: int) -> None:
        log.info("signal %d: draining for up to %.0f s", signum, settings.worker_drain_s)
        worker.stop_requested.set()

    stop = StopSignals(drain, bound_s=settings.worker_drain_s + CLOSE_BUDGET_S, log=log)
    stop.install(asyncio.get_running_loop())
    # Served from the start, so that a slow start-up can be watched too (docs/metrics.md).
    stop_metrics = (metrics.serve(settings.worker_metrics_host, settings.worker_metrics_port)
                    if settings.worker_metrics_port else None)
    sampler = asyncio.create_task(
        telemetry.sample(lambda: worker.agent,
                         lambda: worker.app.consumer if worker.app and worker.agent else None),
        name="metrics")
    try:
        return await _serve(worker, settings, stop)
    finally:
        sampler.cancel()
        if stop_metrics is not None:
            stop_metrics()


async def _serve(worker: WorkerProcess, settings: Settings, stop: StopSignals) -> int:
    running = asyncio.create_task(worker.run(), name="worker")
    stopped = asyncio.create_task(worker.stop_requested.wait())
    await asyncio.wait({running, stopped}, return_when=asyncio.FIRST_COMPLETED)
    if not running.done() and worker.agent is None:
        running.cancel()  # still starting (e.g. the broker is away): nothing to drain
    with contextlib.suppress(asyncio.CancelledError):
        await running
    stopped.cancel()
    took = stop.took_s()
    if took is not None:
        log.info("worker %s stopped in %.1f s (bound %.0f s)", settings.worker_id, took,
                 stop.bound_s)
    return EXIT_OK
