"""Integration fixtures: a ``bench`` helper on the session's real pipeline.

``system`` (real ingresses and workers on the session's broker) comes from
tests/conftest.py, shared with the e2e and hostile suites: one pipeline per session.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from runstream.services.bench.cli import main as bench_main
from runstream.services.settings import Settings
from runstream.streams import kafka

from tests.system import System


@dataclass
class Bench:
    """Runs ``runstream bench ...`` in this process against the session's system."""

    settings: Settings
    url: str
    out: Path

    async def __call__(self, *argv: str) -> int:
        return await bench_main(self.settings, [*argv])


@pytest.fixture
def bench(system: System, tmp_path: Path) -> Bench:
    settings = Settings.from_env(system.env)
    return Bench(settings=settings, url=system.url, out=tmp_path)


@pytest.fixture
async def producer(settings: Settings) -> AsyncIterator[AIOKafkaProducer]:
    """A plain producer on the module's ``settings`` (the results store's tests)."""
    p = kafka.producer(settings, client_id="test-results-producer")
    await kafka.start(p, settings)
    try:
        yield p
    finally:
        await kafka.close(p)
