"""Shared fixtures: one real Kafka broker (KRaft, from Maven Central) per test session.

The broker starts only when a test asks for it, on free ports and a fresh data
folder, and is stopped (SIGTERM, then SIGKILL) when the session ends.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from runstream.services.broker import LocalBroker
from runstream.services.settings import Settings


def free_port(pair: bool = False) -> int:
    """A free TCP port on loopback (and the next one too, when ``pair``)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if not pair:
            return port
        with socket.socket() as s2:
            try:
                s2.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port pair on loopback")


def new_broker(data: Path) -> LocalBroker:
    """A local broker on a free port pair with its storage in ``data`` (not started)."""
    port = free_port(pair=True)
    settings = Settings.from_env({}, bootstrap_servers=f"127.0.0.1:{port}",
                                 broker_data_dir=str(data))
    return LocalBroker(settings, data_dir=data)


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap address of a real single-node Kafka broker for this session."""
    broker = new_broker(tmp_path_factory.mktemp("kafka"))
    broker.start()
    try:
        yield f"{broker.host}:{broker.port}"
    finally:
        broker.stop()


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
        requests_partitions=4,
        replies_partitions=2,
        results_partitions=2,
        worker_group=f"t{tag}-workers",
        worker_data_dir=f"/tmp/runstream-test-{tag}",
    )
