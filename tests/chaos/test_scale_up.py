"""Chaos: a third worker joins under load while long runs keep every slot busy (issue 7, item 7).

Two workers x two slots each run two long requests (on four partitions, two owned by
each worker) while short requests keep arriving over HTTP and straight onto Kafka;
then ``e2e-worker-3`` starts and the group rebalances to three members. Rule under
test (``streams/placement.py``): a partition with a run in progress stays with its
owner, so no long run is read again by the newcomer and executed a second time.
Each execution publishes one result, so the results topic holding exactly one result
per long id (from the worker it was sent to) is the proof.
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
    ids_on_partition,
    load_until,
    longest_gap,
    poll_until,
    read_results,
    settle,
    worker_log_since,
)
from tests.system import System, children

pytestmark = [pytest.mark.kafka, pytest.mark.sandbox]

NEWCOMER = "e2e-worker-3"
LONG_S = 8.0  # long enough that the newcomer starts and joins while every slot is busy
AFTER_JOIN_S = 3.0  # the load goes on this long once the group has three members
JOIN_WITHIN_S = 20.0


def _long_body(marker: str) -> tuple[dict[str, object], str]:
    source = f"import time\ntime.sleep({LONG_S})\nprint({marker!r})"
    return ({"language": "python", "source": source,
             "limits": {"wall_ms": int(LONG_S * 1000) + 7000}}, f"{marker}\n")


async def test_scale_up_under_load_never_runs_a_long_request_twice(
        chaos_system: System, ledger: Callable[[str], Ledger]) -> None:
    book = ledger("scale-up 2→3 workers under load, 4 long runs busy (7.7)")
    settings = Settings.from_env(chaos_system.env)
    http = HttpClients(chaos_system, book, wait_s=20, deadline_s=60, retry_429=True)
    kafka = KafkaDirect(chaos_system, book, deadline_s=60)
    group = GroupProbe(chaos_system)
    await kafka.start()
    await group.start()
    stop_load = asyncio.Event()
    clients: list[asyncio.Task[Any]] = []
    try:
        # Two long requests on partitions of each worker: all four slots busy.
        owned = await group.wait_for(chaos_system.workers, 30)
        longs: dict[str, str] = {}  # id -> the worker whose partition it is on
        for name, parts in sorted(owned.items()):
            assert len(parts) >= 2, owned
            for n, part in enumerate(parts[:2]):
                (exec_id,) = ids_on_partition(f"long-{name[-1]}{n}", part,
                                              settings.requests_partitions, 1)
                longs[exec_id] = name
                body, out = _long_body(exec_id)
                if n == 0:
                    clients.append(asyncio.ensure_future(http.run(exec_id, body,
                                                                  expect_stdout=out)))
                else:
                    clients.append(asyncio.ensure_future(kafka.send(exec_id, body,
                                                                    expect_stdout=out)))
        procs = [chaos_system.worker_procs[w] for w in chaos_system.workers]
        assert await poll_until(lambda: all(len(children(p.pid)) >= chaos_system.slots
                                            for p in procs), 20), (
            "the long requests did not start on both workers' two slots")

        load = asyncio.ensure_future(load_until(http, kafka, stop_load, rate=3, max_s=30,
                                                runs=(0.1,), prefix="scale"))
        book.fault_begins()
        scale_start = time.monotonic()
        await asyncio.to_thread(chaos_system.start_worker, NEWCOMER)
        members = [*chaos_system.workers, NEWCOMER]
        owned = await group.wait_for(members, JOIN_WITHIN_S)
        joined = time.monotonic()
        # The scenario itself: the rebalance happened while the long runs were going.
        early = [i for i in longs if book.requests[i].answered]
        assert not early, f"long runs {early} finished before {NEWCOMER} joined: no test"
        await asyncio.to_thread(chaos_system.wait_ready, 3, 20)  # the ingresses see 3 too
        await asyncio.sleep(AFTER_JOIN_S)  # the load goes on with three members: a parameter
        stop_load.set()
        window_end = time.monotonic()  # the scale-up window: the newcomer's start to here
        clients += await asyncio.wait_for(load, 10)
        await settle(book, clients, 45)
        book.fault_ends()
        # A second run of anything would hold its offset back: wait for it, then count.
        await group.wait_idle(30)
        await http.verify()
        found = await read_results(kafka.bootstrap, kafka.results_topic,
                                   settings.results_partitions, book.requests, 15)
        newcomer_ran = sum(1 for docs in found.values() for d in docs
                           if d.get("worker") == NEWCOMER)
        shown = re.findall(r"partitions: (\d+) owned", worker_log_since(chaos_system, NEWCOMER))
        book.note(f"{NEWCOMER} joined {joined - scale_start:.1f}s after its start "
                  f"(owns {owned[NEWCOMER]}), ran {newcomer_ran} requests; longest pause "
                  f"during the scale-up {longest_gap(book, scale_start, window_end):.1f}s"
                  f" (every slot busy with a {LONG_S:.0f}s run until it joined)")

        twice = {i: [(d.get("worker"), (d.get("timestamps") or {}).get("started"))
                     for d in found[i]] for i in longs if len(found[i]) != 1}
        assert not twice, f"long runs not executed exactly once: {twice}"
        moved = {i: (w, found[i][0].get("worker")) for i, w in longs.items()
                 if found[i][0].get("worker") != w}
        assert not moved, f"long runs finished elsewhere than where they started: {moved}"
        book.assert_promise()
        others = {i: len(docs) for i, docs in found.items() if len(docs) != 1}
        assert not others, f"ids without exactly one result on the results topic: {others}"
        assert any(int(n) > 0 for n in shown), (
            f"{NEWCOMER} never owned a partition; its log says {shown}")
    finally:
        stop_load.set()
        await group.close()
        await kafka.stop()
        await http.close()
