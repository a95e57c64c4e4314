"""A worker's stop is bounded whatever it is doing, and loses nothing (issue 14).

Each test has a system of its own (one ingress, workers started by the test) on
the session's broker, or on a broker of its own when the test stops it.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from runstream.services.broker import LocalBroker

from tests.conftest import running_broker
from tests.system import System, busy_worker, children, launch_system

pytestmark = [pytest.mark.kafka, pytest.mark.sandbox]

DRAIN_S = 2.0
CLOSE_BUDGET_S = 8.0  # streams/worker_node.py CLOSE_BUDGET_S
# Long enough to outlast a second worker's join on a loaded machine (the group must
# settle first), so that the run is still going when the first worker is stopped.
LONG = {"language": "python", "source": "import time\ntime.sleep(12)\nprint('done')",
        "limits": {"wall_ms": 25000}}


@pytest.fixture
def small(kafka: str, tmp_path: Path) -> Iterator[System]:
    """One ingress, no worker yet; workers drain for DRAIN_S."""
    with launch_system(kafka, tmp_path, ingresses=1, workers=0,
                       extra_env={"RUNSTREAM_WORKER_DRAIN_S": str(DRAIN_S)}) as running:
        yield running


async def _stop_time(proc: object, sig: int, timeout_s: float) -> float:
    t0 = time.monotonic()
    proc.send_signal(sig)  # type: ignore[attr-defined]
    await asyncio.to_thread(proc.wait, timeout_s)  # type: ignore[attr-defined]
    return time.monotonic() - t0


async def test_a_run_past_the_drain_bound_is_killed_and_run_by_another_worker_once(
        small: System) -> None:
    first = small.start_worker("w-first")
    small.wait_ready(workers=1)
    async with httpx.AsyncClient(base_url=small.url, timeout=60) as c:
        r = await c.post("/v1/executions?wait=0", json=LONG)
        assert r.status_code == 202, r.text
        exec_id = r.json()["id"]
        await busy_worker(small, 1, 20, among=["w-first"])
        small.start_worker("w-second")
        small.wait_ready(workers=2)
        assert children(first.pid), "the run ended before the stop: nothing to test"
        took = await _stop_time(first, signal.SIGTERM, DRAIN_S + CLOSE_BUDGET_S + 5)
        print(f"\nworker stopped in {took:.1f}s with a 12 s run past its {DRAIN_S:.0f} s drain")
        assert took < DRAIN_S + CLOSE_BUDGET_S
        assert first.returncode == 0
        assert not children(first.pid)  # the killed run died with its sandbox
        # Left uncommitted at the bound, the request is run again by the survivor.
        done = await c.get(f"/v1/executions/{exec_id}", params={"wait": 45})
        assert done.status_code == 200, done.text
        doc = done.json()
        assert doc["status"] == "ok" and doc["worker"] == "w-second"
        assert doc["run"]["stdout"] == "done\n"


async def test_a_second_signal_exits_at_once(small: System) -> None:
    worker = small.start_worker("w-impatient", {"RUNSTREAM_WORKER_DRAIN_S": "60"})
    small.wait_ready(workers=1)
    async with httpx.AsyncClient(base_url=small.url, timeout=60) as c:
        r = await c.post("/v1/executions?wait=0", json=LONG)
        assert r.status_code == 202, r.text
        await busy_worker(small, 1, 20, among=["w-impatient"])
        worker.send_signal(signal.SIGTERM)  # drains: would wait for the run
        # Signals of one kind sent at once merge into one: send the second only once
        # the worker has acted on the first.
        log = small.logs / "w-impatient.log"
        assert await _poll(lambda: "draining for up to" in log.read_text(), 10)
        took = await _stop_time(worker, signal.SIGTERM, 10)
    assert took < 2, f"the second signal took {took:.1f}s"
    assert worker.returncode != 0


async def _poll(check: Callable[[], bool], timeout_s: float) -> bool:
    """Another process's state, polled until ``check()`` or ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[LocalBroker]:
    with running_broker(tmp_path / "kafka") as broker:
        yield broker


async def test_a_broker_that_is_gone_cannot_hold_the_stop(own_broker: LocalBroker,
                                                         tmp_path: Path) -> None:
    kafka = f"{own_broker.host}:{own_broker.port}"
    (tmp_path / "logs").mkdir()
    with launch_system(kafka, tmp_path / "logs", ingresses=1, workers=0,
                       extra_env={"RUNSTREAM_WORKER_DRAIN_S": str(DRAIN_S)}) as small:
        worker = small.start_worker("w-stranded")
        small.wait_ready(workers=1)
        async with httpx.AsyncClient(base_url=small.url, timeout=60) as c:
            r = await c.post("/v1/executions?wait=0", json=LONG)
            assert r.status_code == 202, r.text
            await busy_worker(small, 1, 20, among=["w-stranded"])
        await asyncio.to_thread(own_broker.stop)
        # Its run ends, the result cannot be stored, the group cannot be left: bounded.
        took = await _stop_time(worker, signal.SIGTERM, DRAIN_S + CLOSE_BUDGET_S + 10)
        print(f"\nworker stopped in {took:.1f}s with the broker gone")
        assert took < DRAIN_S + CLOSE_BUDGET_S + 1
        assert not children(worker.pid)
