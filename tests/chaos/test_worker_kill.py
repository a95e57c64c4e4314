"""Chaos: a worker SIGKILLed while two of its slots are busy (issue 7, item 1).

Rule under test (../shared/DESIGN.md): an offset is committed only when every earlier
offset of its partition has its result acknowledged, so a run still going on a killed
worker is run again by a survivor and answered — once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from runstream.services.settings import Settings

from tests.chaos._harness import (
    HttpClients,
    Ledger,
    clients,
    conclude,
    ids_on_partition,
    settle,
    sleeper,
    steady_load,
)
from tests.system import System, busy_worker

pytestmark = [pytest.mark.kafka, pytest.mark.sandbox]


async def test_slow_then_fast_on_one_partition_then_the_worker_is_killed(
        chaos_system: System, ledger: Callable[[str], Ledger]) -> None:
    """Issue 7 item 1, exactly: the slow run must still be answered (GET ?wait=45)."""
    book = ledger("worker SIGKILL: slow+fast on one partition (7.1)")
    partitions = Settings.from_env(chaos_system.env).requests_partitions
    slow_id, fast_id = ids_on_partition("slow", 0, partitions, 2)
    http = HttpClients(chaos_system, book, wait_s=45, deadline_s=60)
    url = chaos_system.url
    try:
        slow_body, slow_out = sleeper(6, "slow")
        slow = book.track(slow_id, "http", slow_out)
        r = await http.client.post(f"{url}/v1/executions", params={"wait": 0},
                                   json={**slow_body, "id": slow_id})
        assert r.status_code == 202, r.text
        slow.accepted = True
        runner = await busy_worker(chaos_system, 1, 20)
        fast = await http.run(fast_id, {"language": "python", "source": "print(1)"},
                              expect_stdout="1\n")
        assert fast.answered, fast.errors
        # Same partition, so the same worker ran both, in its two slots.
        assert fast.answers[0][1]["worker"] == runner
        await asyncio.sleep(2)  # the scenario: the kill comes 2 s after the answer
        book.fault_begins()
        chaos_system.kill_worker(runner)
        t0 = time.monotonic()
        r = await http.client.get(f"{url}/v1/executions/{slow_id}", params={"wait": 45},
                                  timeout=60)
        book.fault_ends()
        if r.status_code == 200:
            slow.answers.append((time.monotonic(), r.json()))
        assert r.status_code == 200, (f"slow request not answered {time.monotonic() - t0:.0f}s"
                                      f" after the kill: {r.status_code} {r.text}")
        assert r.json()["worker"] != runner
        await http.verify()
        book.assert_promise()
    finally:
        await http.close()


async def test_worker_killed_under_load_with_two_slots_busy(
        chaos_system: System, ledger: Callable[[str], Ledger]) -> None:
    book = ledger("worker SIGKILL under load, 2 slots busy")
    async with clients(chaos_system, book, wait_s=20, deadline_s=60, retry_429=True) as (
            http, kafka):
        load = asyncio.ensure_future(steady_load(http, kafka, rate=3, duration_s=12,
                                                 run_s=0.8, prefix="kill"))
        victim = await busy_worker(chaos_system, 2, 20)
        book.fault_begins()
        chaos_system.kill_worker(victim)
        book.note(f"killed {victim} with 2 runs going")
        await asyncio.sleep(4)  # it stays dead a while: a scenario parameter
        await asyncio.to_thread(chaos_system.start_worker, victim)
        tasks = await asyncio.wait_for(load, 30)
        await settle(book, tasks, 60)
        await conclude(book, http)
