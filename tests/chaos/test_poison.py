"""Chaos: poison messages (issue 7, item 2) must not stall their partition.

Four requests produced straight onto the requests topic, all on one partition, each
with a ``reply_to`` topic that does not exist. An ordinary request on that partition
must be answered quickly, the poison ones answered ``rejected`` on the results topic,
and after the workers restart nothing stalls again (their offsets moved on).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

import pytest
from runstream.services.settings import Settings

from tests.chaos._harness import (
    HttpClients,
    KafkaDirect,
    Ledger,
    clients,
    conclude,
    ids_on_partition,
    poll_until,
    read_results,
)
from tests.system import System

pytestmark = [pytest.mark.kafka, pytest.mark.sandbox]

QUICK_S = 10.0  # "answered quickly": an ordinary request behind the poison ones
PARTITION = 3


async def _ordinary_on_partition(http: HttpClients, kafka: KafkaDirect, ids: list[str]) -> None:
    """One HTTP and one reply_to request on the poisoned partition, each within QUICK_S."""
    body = {"language": "python", "source": "print('fine')"}
    t0 = time.monotonic()
    sent = await kafka.send(ids[1], body, expect_stdout="fine\n", partition=PARTITION)
    http_answer = await http.run(ids[0], body, expect_stdout="fine\n")
    assert sent is not None
    await poll_until(lambda: sent.answered, QUICK_S - (time.monotonic() - t0))
    waited = time.monotonic() - t0
    assert http_answer.answered, (f"the HTTP request on the poisoned partition was not "
                                  f"answered within {QUICK_S}s: {http_answer.errors[-2:]}")
    assert sent.answered, f"the reply_to request on the poisoned partition: none in {waited:.0f}s"


async def test_poison_messages_do_not_stall_their_partition(
        chaos_system: System, ledger: Callable[[str], Ledger]) -> None:
    book = ledger("poison: 4 x reply_to a missing topic (7.2)")
    settings = Settings.from_env(chaos_system.env)
    ids = ids_on_partition("poison", PARTITION, settings.requests_partitions, 8)
    poison, ordinary = ids[:4], ids[4:]
    async with clients(chaos_system, book, wait_s=QUICK_S, deadline_s=QUICK_S) as (http, kafka):
        missing = {"topic": f"chaos-missing-{uuid.uuid4().hex[:8]}", "partition": 0}
        book.fault_begins()
        for exec_id in poison:
            book.track(exec_id, "results").accepted = True  # answered on runstream.results
            await kafka.send(exec_id, {"language": "python", "source": "print('poison')"},
                             partition=PARTITION, reply_to=missing, track=False)
        await _ordinary_on_partition(http, kafka, ordinary[:2])
        found = await read_results(kafka.bootstrap, kafka.results_topic,
                                   settings.results_partitions, poison, 15)
        for exec_id, docs in found.items():
            book.requests[exec_id].answers += [(time.monotonic(), d) for d in docs]
        statuses = {i: [d["status"] for d in docs] for i, docs in found.items()}
        assert all(s and set(s) == {"rejected"} for s in statuses.values()), statuses
        # "rejected with a reason": the reason names what is wrong.
        assert all("reply" in (found[i][0].get("message") or "").lower() for i in poison), (
            [found[i][0].get("message") for i in poison])
        # After a restart of the workers the partition does not replay the stall.
        for name in chaos_system.workers:
            took = await asyncio.to_thread(chaos_system.restart_worker, name)
            book.note(f"{name} stopped in {took:.1f}s")
        await asyncio.to_thread(chaos_system.wait_ready)
        await _ordinary_on_partition(http, kafka, ordinary[2:])
        await conclude(book, http)
