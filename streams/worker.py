"""Start and stop one worker process: sandbox, language versions, the Faust app."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

import faust
import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from runstream.schemas.errors import BrokerUnavailable
from runstream.services.execution import Executor
from runstream.services.languages import Registry
from runstream.services.sandbox.factory import create_sandbox
from runstream.services.sandbox.versions import detect as detect_versions
from runstream.services.settings import Settings
from runstream.streams.app import Worker

log = logging.getLogger(__name__)


async def announce(settings: Settings, doc: dict[str, Any]) -> None:
    """Tell ingresses what this worker serves (compacted topic, keyed by worker id)."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all",
                                enable_idempotence=True)
    try:
        await asyncio.wait_for(producer.start(), 30)
        await asyncio.wait_for(
            producer.send_and_wait(settings.workers_topic, orjson.dumps(doc),
                                   key=settings.worker_id.encode()), 30)
    except (KafkaError, OSError, TimeoutError) as e:
        raise BrokerUnavailable(f"could not announce the worker: {e!r}") from e
    finally:
        await producer.stop()


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
        loop.run_until_complete(announce(settings, {
            "worker": settings.worker_id, "backend": sandbox.name,
            "concurrency": settings.worker_concurrency,
            "languages": {lang.name: lang.version for lang in registry},
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
        }))
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
