"""Chaos: a rolling restart of every worker, one by one, under steady load (issue 14, item 4).

Each worker in turn gets SIGTERM while it has a run going, and is started again once
it is gone; the next one is restarted when the group has two members again. A graceful
stop drains its runs (publishes their results, commits them) and leaves the group, so
nothing is lost, nothing is answered twice and nothing is executed a second time: the
results topic holds exactly one result per id. Every stop must end within its bound,
the drain bound plus the close budget, and leave no process of the old worker behind.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from typing import Any

import pytest
from runstream.services.settings import Settings

from tests.chaos._harness import (
    GroupProbe,
    HttpClients,
    KafkaDirect,
    Ledger,
    descendants,
    load_until,
    poll_until,
    process_group_left,
    read_results,
    settle,
    still_running,
    worker_log_mark,
    worker_log_since,
)
from tests.system import System, busy_worker

pytestmark = [pytest.mark.kafka, pytest.mark.sandbox]

DRAIN_S = 10.0  # this row's RUNSTREAM_WORKER_DRAIN_S (default 20)
CLOSE_BUDGET_S = 8.0  # streams/worker_node.py CLOSE_BUDGET_S: a stop's time beyond the drain
STOP_BOUND_S = DRAIN_S + CLOSE_BUDGET_S
REJOIN_WITHIN_S = 30.0
AFTER_S = 2.0  # the load goes on this long after the last restart


@pytest.fixture
def chaos_env() -> dict[str, str]:
    return {"RUNSTREAM_WORKER_DRAIN_S": str(DRAIN_S)}


async def test_rolling_restart_of_every_worker_under_load(
        chaos_system: System, ledger: Callable[[str], Ledger]) -> None:
    book = ledger("rolling restart of every worker (SIGTERM) under load (14.4)")
    settings = Settings.from_env(chaos_system.env)
    http = HttpClients(chaos_system, book, wait_s=20, deadline_s=60, retry_429=True)
    kafka = KafkaDirect(chaos_system, book, deadline_s=60)
    group = GroupProbe(chaos_system)
    await kafka.start()
    await group.start()
    stop_load = asyncio.Event()
    stops: dict[str, float] = {}
    notes: list[str] = []
    try:
        # Short requests, and every third one a time.sleep(1).
        load = asyncio.ensure_future(load_until(http, kafka, stop_load, rate=3, max_s=40,
                                                runs=(0.1, 0.1, 1.0), prefix="roll"))
        assert await poll_until(lambda: sum(t.answered for t in book.requests.values()) >= 3,
                                20), "the load is not being answered before the restarts"
        book.fault_begins()
        for name in chaos_system.workers:
            old = chaos_system.worker_procs[name]
            await busy_worker(chaos_system, 1, 15, among=[name])  # a stop with a run going
            below = descendants(old.pid)
            mark = worker_log_mark(chaos_system, name)
            stops[name] = await asyncio.to_thread(chaos_system.restart_worker, name,
                                                  grace_s=STOP_BOUND_S + 5)
            t0 = time.monotonic()
            left = sorted(set(still_running(below)) | set(process_group_left(old.pid)))
            drained = re.findall(r"draining: (\d+) executions", worker_log_since(
                chaos_system, name, mark))
            notes.append(f"{name} stopped in {stops[name]:.1f}s (exit {old.returncode}, "
                         f"{'+'.join(drained) or 0} run(s) going at SIGTERM drained)")
            assert stops[name] < STOP_BOUND_S, (
                f"{name} took {stops[name]:.1f}s to stop (bound {STOP_BOUND_S:.0f}s); log: "
                f"{chaos_system.logs / (name + '.log')}")
            assert old.returncode == 0, f"{name} exited with {old.returncode}"
            assert not left, f"processes of the stopped {name} still running: {left}"
            await group.wait_for(chaos_system.workers, REJOIN_WITHIN_S)
            notes[-1] += f", group whole again {time.monotonic() - t0:.1f}s later"
        await asyncio.sleep(AFTER_S)  # the load goes on after the last restart: a parameter
        stop_load.set()
        clients: list[asyncio.Task[Any]] = await asyncio.wait_for(load, 10)
        await settle(book, clients, 45)
        book.fault_ends()
        # A second run of anything would hold its offset back: wait for it, then count.
        await group.wait_idle(30)
        await http.verify()
        found = await read_results(kafka.bootstrap, kafka.results_topic,
                                   settings.results_partitions, book.requests, 15)
        book.note("; ".join(notes))
        book.note(f"longest pause clients saw {book.longest_pause():.1f}s")

        book.assert_promise()
        not_once = {i: [(d.get("worker"), (d.get("timestamps") or {}).get("started"))
                        for d in docs] for i, docs in found.items() if len(docs) != 1}
        assert not not_once, f"ids not executed exactly once: {not_once}"
    finally:
        stop_load.set()
        if not book.notes and notes:
            book.note("; ".join(notes))
        await group.close()
        await kafka.stop()
        await http.close()
