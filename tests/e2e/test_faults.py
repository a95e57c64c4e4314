"""Nothing lost: a worker killed mid-run, a broker restarted under load.

These tests own their broker (a module fixture) because they stop it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator

import httpx
import pytest
from runstream.services.broker import LocalBroker

from tests.conftest import running_broker
from tests.system import System, busy_worker, children, launch_system

pytestmark = [pytest.mark.kafka, pytest.mark.sandbox]

SLOW = "import time\ntime.sleep(3)\nprint('survived')"


@pytest.fixture(scope="module")
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    with running_broker(tmp_path_factory.mktemp("faults-kafka")) as broker:
        yield broker


@pytest.fixture(scope="module")
def faulty(own_broker: LocalBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    with launch_system(f"{own_broker.host}:{own_broker.port}",
                       tmp_path_factory.mktemp("faults-logs"), ingresses=1) as running:
        yield running


async def test_worker_killed_mid_run_the_request_is_still_answered_once(
        faulty: System) -> None:
    async with httpx.AsyncClient(base_url=faulty.url, timeout=90) as c:
        answer = asyncio.create_task(c.post("/v1/executions", json={
            "language": "python", "source": SLOW, "limits": {"wall_ms": 10000}}))
        victim = await busy_worker(faulty, 1, 20)
        os.killpg(faulty.worker_procs[victim].pid, signal.SIGKILL)
        r = await answer
        doc = r.json()
        assert r.status_code == 200, r.text
        assert doc["status"] == "ok" and doc["run"]["stdout"] == "survived\n"
        assert doc["worker"] != victim
        # The killed worker's sandbox died with it: no orphan keeps running.
        assert not children(faulty.worker_procs[victim].pid)
        faulty.start_worker(victim)


async def test_broker_restart_loses_nothing(faulty: System, own_broker: LocalBroker) -> None:
    async with httpx.AsyncClient(base_url=faulty.url, timeout=120) as c:
        assert (await c.post("/v1/executions", json={"language": "python",
                                                     "source": "print(1)"})).status_code == 200
        in_flight = asyncio.create_task(c.post("/v1/executions", json={
            "language": "python", "source": SLOW, "limits": {"wall_ms": 10000}}))
        await busy_worker(faulty, 1, 20)
        await asyncio.to_thread(own_broker.stop)
        # While the broker is down a new request is refused fast, never left hanging.
        t0 = time.monotonic()
        refused = await c.post("/v1/executions", json={"language": "python", "source": "1"})
        assert refused.status_code == 503
        assert refused.headers["content-type"] == "application/problem+json"
        assert time.monotonic() - t0 < 5
        await asyncio.to_thread(own_broker.start)
        # The request accepted before the restart is answered after it.
        r = await in_flight
        assert r.status_code == 200, r.text
        assert r.json()["run"]["stdout"] == "survived\n"
        after = await c.post("/v1/executions", json={"language": "python", "source": "print(2)"})
        assert after.json()["run"]["stdout"] == "2\n"
