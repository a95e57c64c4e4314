"""Chaos: the broker restarted (same port, same data folder) under steady load."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from runstream.services.broker import LocalBroker

from tests.chaos._harness import (
    Ledger,
    clients,
    conclude,
    settle,
    steady_load,
)
from tests.system import System, restart_broker

pytestmark = [pytest.mark.kafka, pytest.mark.sandbox]


async def test_broker_restart_under_load(chaos_system: System, chaos_broker: LocalBroker,
                                         ledger: Callable[[str], Ledger]) -> None:
    book = ledger("broker restart under load")
    async with clients(chaos_system, book, wait_s=20, deadline_s=90,
                       retry_429=True) as (http, kafka):
        load = asyncio.ensure_future(steady_load(http, kafka, rate=3, duration_s=15,
                                                 run_s=0.5, prefix="broker"))
        await asyncio.sleep(3)  # the load runs a while before the fault: a parameter
        book.fault_begins()
        stopped_s, started_s = await asyncio.to_thread(restart_broker, chaos_broker)
        book.note(f"broker stop {stopped_s:.1f}s, start {started_s:.1f}s")
        tasks = await asyncio.wait_for(load, 60)
        await settle(book, tasks, 90)
        await conclude(book, http)
