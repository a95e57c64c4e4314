"""Chaos: an ingress restarted (same port, same reply partition) under steady load.

Its clients do what a real client does: retry the same id against the other ingress
or the restarted one (POST is idempotent by id; GET ?wait long-polls).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from tests.chaos._harness import (
    Ledger,
    clients,
    conclude,
    settle,
    steady_load,
)
from tests.system import System

pytestmark = [pytest.mark.kafka, pytest.mark.sandbox]


async def test_ingress_restart_under_load(chaos_system: System,
                                          ledger: Callable[[str], Ledger]) -> None:
    book = ledger("ingress restart under load")
    async with clients(chaos_system, book, wait_s=20, deadline_s=60,
                       retry_429=True) as (http, kafka):
        load = asyncio.ensure_future(steady_load(http, kafka, rate=3, duration_s=14,
                                                 run_s=1.0, prefix="ingress"))
        await asyncio.sleep(4)  # requests are in flight on both ingresses by then
        book.fault_begins()
        away_s = await asyncio.to_thread(chaos_system.restart_ingress, 0)
        book.note(f"ingress 0 away {away_s:.1f}s")
        tasks = await asyncio.wait_for(load, 60)
        await settle(book, tasks, 60)
        await conclude(book, http)
