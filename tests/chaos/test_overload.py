"""Chaos: overload at 5x capacity (issue 7, item 6).

Four slots running ``time.sleep(1)`` serve about 4 requests a second; 20 a second for
8 seconds is 5x that. Overload must be answered early — ``429`` with ``Retry-After``
(problem+json) within milliseconds — and every accepted request must be answered.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.chaos._harness import HttpClients, Ledger, settle, steady_load
from tests.system import System

pytestmark = [pytest.mark.kafka, pytest.mark.sandbox]

RATE, SECONDS = 20.0, 8.0
# The admission bound of this row's ingresses, in seconds of queued work: small, so that
# at 5x capacity for 8 s most of the flood is clearly beyond it.
MAX_BACKLOG_S = 5
REFUSED_AT_LEAST = 0.25  # of what was sent: at 5x capacity most of the flood is excess
REFUSE_WITHIN_S = 0.5


@pytest.fixture
def chaos_env() -> dict[str, str]:
    return {"RUNSTREAM_INGRESS_MAX_BACKLOG_S": str(MAX_BACKLOG_S)}


async def test_overload_is_refused_early_and_accepted_work_is_answered(
        chaos_system: System, ledger: Callable[[str], Ledger]) -> None:
    book = ledger("overload 5x (20/s x 8 s of sleep(1), 4 slots)")
    # The clients do not retry a 429 here: what was refused is not 'accepted'.
    http = HttpClients(chaos_system, book, wait_s=30, deadline_s=120, retry_429=False)
    try:
        book.fault_begins()
        tasks = await steady_load(http, None, rate=RATE, duration_s=SECONDS, run_s=1.0,
                                  prefix="flood")
        await settle(book, tasks, 150)
        book.fault_ends()
        await http.verify()
        book.assert_promise()
        sent = len(book.requests)
        refused = [t for t in book.requests.values() if t.refused]
        slow = [r for r in http.refusals if r.seconds > REFUSE_WITHIN_S]
        book.note(f"{len(refused)}/{sent} refused with 429")
        assert len(refused) >= REFUSED_AT_LEAST * sent, (
            f"only {len(refused)} of {sent} got 429 at 5x capacity")
        assert not slow, f"{len(slow)} refusals took over {REFUSE_WITHIN_S}s"
        assert all(r.retry_after for r in http.refusals), "a 429 without Retry-After"
        assert all("problem+json" in r.content_type for r in http.refusals)
    finally:
        await http.close()
