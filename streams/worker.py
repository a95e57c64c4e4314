"""Start and stop one worker process: sandbox, language versions, the Faust app."""

from __future__ import annotations

import asyncio
import logging

import faust

from runstream.services.execution import Executor
from runstream.services.languages import Registry
from runstream.services.sandbox.factory import create_sandbox
from runstream.services.sandbox.versions import detect_versions
from runstream.services.settings import Settings
from runstream.streams.app import Worker

log = logging.getLogger(__name__)


def run_worker(settings: Settings) -> int:
    """Run a worker until SIGINT/SIGTERM; the sandbox is stopped whatever happens."""
    registry = Registry.load(settings.languages_file or None)
    sandbox = create_sandbox(settings)
    # One loop for the sandbox and Faust: the sandbox's state lives on it.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.run_until_complete(sandbox.start())
    try:
        versions = loop.run_until_complete(detect_versions(registry))
        missing = sorted(name for name, v in versions.items() if not v)
        if missing:
            log.warning("not serving %s: their runtimes are not installed", ", ".join(missing))
        registry = registry.with_versions(versions)
        log.info("worker %s serves %s with the %s sandbox, %d at a time", settings.worker_id,
                 ", ".join(f"{lang.name} {lang.version}" for lang in registry),
                 sandbox.name, settings.worker_concurrency)
        worker = Worker(settings, Executor(settings, registry, sandbox))
        faust.Worker(worker.app, loop=loop, loglevel=settings.log_level.lower(),
                     quiet=True, redirect_stdouts=False).execute_from_commandline()
    except SystemExit as e:
        return int(e.code or 0)
    finally:
        if loop.is_closed():
            loop = asyncio.new_event_loop()
        loop.run_until_complete(sandbox.stop())
        loop.close()
    return 0
