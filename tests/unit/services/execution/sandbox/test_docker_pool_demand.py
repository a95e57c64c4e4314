"""The docker backend's warm pool: its size from recent demand, and its bookkeeping."""

from __future__ import annotations

import itertools

import pytest
from runstream.services.execution.languages import Registry
from runstream.services.execution.sandbox.docker._demand import (
    FIRST_HOLD_S,
    FIRST_START_S,
    PoolDemand,
)
from runstream.services.execution.sandbox.docker._pool import WarmPool

JS = "runstream/javascript"


def test_an_image_never_asked_for_keeps_none() -> None:
    assert PoolDemand(1, 4, idle_s=60).target(JS, now=100.0) == 0


def test_an_image_in_use_keeps_at_least_the_floor() -> None:
    d = PoolDemand(1, 4, idle_s=60)
    d.asked(JS, now=0.0)
    assert d.target(JS, now=10.0) == 1
    assert PoolDemand(0, 4, idle_s=60).target(JS, now=0.0) == 0


def test_the_size_is_the_rate_times_the_turnaround() -> None:
    d = PoolDemand(1, 10, idle_s=60, window_s=10)
    for i in range(50):  # 5 per second for 10 s
        d.asked(JS, now=i / 5)
    assert d.rate(JS, now=10.0) == pytest.approx(5.0, rel=0.05)
    assert round(FIRST_HOLD_S + FIRST_START_S, 6) == 0.4
    assert d.target(JS, now=10.0) == 2  # 5/s * 0.4 s
    for _ in range(30):  # executions that hold their container 1 s
        d.held(JS, 1.0)
    assert d.target(JS, now=10.0) == 7  # 5/s * (1 + 0.25 s) = 6.25, rounded up


def test_the_ceiling_bounds_a_burst() -> None:
    d = PoolDemand(1, 3, idle_s=60)
    for _ in range(100):
        d.asked(JS, now=5.0)
    assert d.target(JS, now=5.0) == 3


def test_a_first_burst_is_measured_over_at_least_a_second() -> None:
    d = PoolDemand(0, 100, idle_s=60)
    for _ in range(4):
        d.asked(JS, now=0.0)
    assert d.rate(JS, now=0.0) == 4.0


def test_old_takes_leave_the_window_and_the_pool_shrinks_to_the_floor() -> None:
    d = PoolDemand(1, 10, idle_s=600, window_s=10)
    for i in range(100):
        d.asked(JS, now=i / 10)
    assert d.target(JS, now=10.0) > 1
    assert d.rate(JS, now=25.0) == 0.0
    assert d.target(JS, now=25.0) == 1


def test_an_idle_image_keeps_none_and_is_forgotten() -> None:
    d = PoolDemand(2, 4, idle_s=30)
    d.asked(JS, now=0.0)
    d.asked("runstream/python", now=20.0)
    assert d.target(JS, now=31.0) == 0
    assert d.target("runstream/python", now=31.0) == 2
    assert d.images(now=31.0) == ["runstream/python"]


def test_hold_and_start_times_are_smoothed_not_replaced() -> None:
    d = PoolDemand(0, 100, idle_s=60, window_s=1)
    for _ in range(10):
        d.asked(JS, now=0.0)  # 10/s
    before = d.target(JS, now=0.0)
    d.started(JS, 10.0)  # one slow start moves the figure, it does not set it
    after = d.target(JS, now=0.0)
    assert before < after < 10 * (FIRST_HOLD_S + 10.0)


@pytest.mark.parametrize(("floor", "ceiling"), [(-1, 4), (5, 4)])
def test_bounds_are_checked(floor: int, ceiling: int) -> None:
    with pytest.raises(ValueError):
        PoolDemand(floor, ceiling, idle_s=60)


class _Engine:
    """Containers as names: what the pool created and removed (no engine needed here)."""

    def __init__(self) -> None:
        self.names = (f"c{i}" for i in itertools.count())
        self.created: list[str] = []
        self.removed: list[str] = []

    async def create(self, _language: object) -> str:
        cid = next(self.names)
        self.created.append(cid)
        return cid

    async def remove(self, cid: str) -> None:
        self.removed.append(cid)


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_the_pool_hands_each_container_out_once_and_follows_demand() -> None:
    js = Registry.load().resolve("javascript")
    engine, clock = _Engine(), _Clock()
    pool = WarmPool(engine.create, engine.remove, PoolDemand(1, 3, idle_s=60, window_s=10),
                    max_age_s=100, clock=clock)
    assert pool.take(js) is None  # cold: nothing asked for before
    pool.release(js, 0.1)
    await pool.settle()
    assert pool.ready(js) == 1
    first = pool.take(js)
    assert first == "c0" and pool.take(js) is None  # never twice
    for _ in range(40):  # a burst: 40 asks within the second
        pool.take(js)
    pool.release(js, 0.1)
    await pool.settle()
    assert pool.ready(js) == 3  # the ceiling
    handed = [pool.take(js) for _ in range(3)]
    assert len(set(handed)) == 3 and first not in handed and None not in handed
    clock.now += 61  # idle: the pool empties
    pool.release(js, None)
    await pool.settle()
    assert pool.ready(js) == 0
    await pool.close()
    assert set(engine.removed) <= set(engine.created)
    assert not set(handed) & set(engine.removed)  # handed out: the sandbox removes those


async def test_an_aged_container_is_removed_not_handed_out() -> None:
    js = Registry.load().resolve("javascript")
    engine, clock = _Engine(), _Clock()
    pool = WarmPool(engine.create, engine.remove, PoolDemand(1, 3, idle_s=600),
                    max_age_s=100, clock=clock)
    pool.take(js)
    pool.release(js, 0.1)
    await pool.settle()
    clock.now += 101
    assert pool.take(js) is None
    await pool.settle()
    assert engine.removed == ["c0"]
    await pool.close()


async def test_a_sweep_shrinks_without_growing() -> None:
    js = Registry.load().resolve("javascript")
    engine, clock = _Engine(), _Clock()
    pool = WarmPool(engine.create, engine.remove, PoolDemand(2, 3, idle_s=4),
                    max_age_s=100, clock=clock)
    pool.take(js)
    pool.release(js, 0.1)
    await pool.settle()
    assert pool.ready(js) == 2
    pool.take(js)  # the pool is one short now, and a sweep does not refill it
    pool.sweep()
    await pool.settle()
    assert pool.ready(js) == 1 and len(engine.created) == 2
    clock.now += 5  # idle past idle_s
    pool.sweep()
    await pool.settle()
    assert pool.ready(js) == 0 and engine.removed == ["c1"]
    await pool.close()
    assert len(engine.created) == 2
