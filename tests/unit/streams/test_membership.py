"""When a worker stops trusting its group membership (streams/membership.py), no Kafka."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from runstream.streams.ledger import OffsetLedger
from runstream.streams.membership import Membership, MembershipWatchError


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_a_member_is_current_until_a_session_less_one_heartbeat_has_passed() -> None:
    clock = Clock()
    m = Membership(6.0, 1.0, clock=clock)
    assert m.current()
    clock.t += 4.9
    assert m.current()
    clock.t += 0.2  # 5.1 s: the coordinator may drop it within the next second
    assert not m.current()
    m.confirmed()
    assert m.current() and m.age() == 0


class _Coordinator:
    def __init__(self, answers: list[bool]) -> None:
        self.answers = answers
        self.member_id = "m-1"

    async def _do_heartbeat(self) -> bool:
        return self.answers.pop(0)


class _Consumer:
    def __init__(self, coordinator: Any) -> None:
        self._coordinator = coordinator


async def test_only_heartbeats_the_coordinator_accepts_confirm_the_membership() -> None:
    clock = Clock()
    m = Membership(6.0, 1.0, clock=clock)
    coordinator = _Coordinator([False, True])
    m.watch(_Consumer(coordinator))
    assert m.member_id() == "m-1"
    clock.t += 5.5
    assert await coordinator._do_heartbeat() is False
    assert not m.current()
    waiter = asyncio.create_task(m.wait_change(10))
    await asyncio.sleep(0)  # let it start waiting
    assert await coordinator._do_heartbeat() is True
    await asyncio.wait_for(waiter, 1)  # woken by the confirmation, not the timeout
    assert m.current()


def test_an_aiokafka_without_the_heartbeat_hook_fails_at_start_not_later() -> None:
    with pytest.raises(MembershipWatchError, match="aiokafka"):
        Membership(6.0, 1.0).watch(_Consumer(object()))


def test_the_ledger_holds_an_offset_until_finished_or_forgotten() -> None:
    ledger: OffsetLedger[str] = OffsetLedger()
    assert ledger.take("p", 5) and ledger.holds("p", 5)
    ledger.finish("p", 5)
    assert not ledger.holds("p", 5)
    assert ledger.take("p", 6)
    ledger.forget(["p"])
    assert not ledger.holds("p", 6)
