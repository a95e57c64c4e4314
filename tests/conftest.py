"""Shared fixtures: one real Kafka broker (KRaft, from Maven Central) per test session.

The broker starts only when a test asks for it, on free ports and a fresh data
folder, and is stopped (SIGTERM, then SIGKILL) when the session ends.
"""

from __future__ import annotations

import contextlib
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from runstream.services.broker import LocalBroker
from runstream.services.settings import Settings

from tests.system import System, free_port, launch_system


def pytest_configure(config: pytest.Config) -> None:
    # A command started in the background by a shell without job control (`cmd &` in a
    # script) starts with SIGINT ignored, and an ignored signal is inherited through
    # exec: `./deploy.sh local` under test could then not be stopped by Ctrl-C at all
    # (bash cannot trap a signal ignored at its start). A handler, unlike SIG_IGN, is
    # reset to the default at exec, so the processes the tests start get Ctrl-C back.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def new_broker(data: Path) -> LocalBroker:
    """A local broker on a free port pair with its storage in ``data`` (not started)."""
    port = free_port(pair=True)
    settings = Settings.from_env({}, bootstrap_servers=f"127.0.0.1:{port}",
                                 broker_data_dir=str(data))
    return LocalBroker(settings, data_dir=data)


@contextlib.contextmanager
def running_broker(data: Path) -> Iterator[LocalBroker]:
    """A started :func:`new_broker`, stopped (bounded) when the block ends."""
    broker = new_broker(data)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap address of a real single-node Kafka broker for this session."""
    with running_broker(tmp_path_factory.mktemp("kafka")) as broker:
        yield f"{broker.host}:{broker.port}"


@pytest.fixture
def fresh_settings(kafka: str) -> Settings:
    """Settings whose topics and worker group exist for this test alone."""
    tag = uuid.uuid4().hex[:8]
    return Settings.from_env(
        {},
        bootstrap_servers=kafka,
        requests_topic=f"t{tag}.requests",
        replies_topic=f"t{tag}.replies",
        results_topic=f"t{tag}.results",
        workers_topic=f"t{tag}.workers",
        keys_topic=f"t{tag}.keys",
        requests_partitions=4,
        replies_partitions=2,
        results_partitions=2,
        worker_group=f"t{tag}-workers",
        ingress_group=f"t{tag}-ingresses",
    )


@pytest.fixture(scope="session")
def system(kafka: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    with launch_system(kafka, tmp_path_factory.mktemp("e2e-logs")) as running:
        yield running
