"""The idle figure of `runstream bench idle`: per-process arithmetic and its table."""

from __future__ import annotations

import pytest
from runstream.services.bench._idle import (
    GOAL_PERCENT,
    IdleRow,
    by_role,
    fold_threads,
    idle_markdown,
    percent_of_core,
    thread_kind,
)


def test_ticks_over_a_window_are_percent_of_one_core() -> None:
    # 100 ticks per second: 30 ticks in 10 s is 3 % of one core.
    got = percent_of_core({1: 100, 2: 50}, {1: 130, 2: 50}, 10.0, 100)
    assert got == {1: pytest.approx(3.0), 2: 0.0}


def test_a_thread_born_in_the_window_counts_from_zero_and_a_gone_one_is_left_out() -> None:
    got = percent_of_core({"gone": 10, "old": 10}, {"old": 20, "new": 5}, 1.0, 100)
    assert got == {"old": pytest.approx(10.0), "new": pytest.approx(5.0)}


def test_a_counter_that_went_backwards_counts_zero() -> None:
    assert percent_of_core({7: 500}, {7: 20}, 1.0, 100) == {7: 0.0}


def test_an_empty_window_is_refused() -> None:
    with pytest.raises(ValueError, match="some time"):
        percent_of_core({}, {}, 0.0, 100)


def test_threads_of_one_pool_fold_into_one_kind() -> None:
    assert thread_kind("GC Thread#3") == "GC Thread#N"
    assert thread_kind("data-plane-kafk") == "data-plane-kafk"
    assert thread_kind("kafka-request-handler-7") == "kafka-request-handler-N"
    assert thread_kind("  ") == "?"
    folded = fold_threads([("kafka-request-handler-0", 0.5), ("kafka-request-handler-1", 0.25),
                           ("GC Thread#0", 0.1), ("main", 0.0), ("C1 CompilerThre", 0.1),
                           ("C2 CompilerThre", 0.3)],
                          top=2)
    assert folded == (("kafka-request-handler-N", 0.75), ("CN CompilerThre", pytest.approx(0.4)))


def test_the_table_adds_workers_up_and_judges_the_goal() -> None:
    rows = [IdleRow("broker", 10, 1.5, (("kafka-request-handler-N", 1.0),)),
            IdleRow("ingress", 11, 0.5), IdleRow("workers", 12, 0.25),
            IdleRow("workers", 13, 0.5)]
    assert by_role(rows) == {"broker": 1.5, "ingress": 0.5, "workers": 0.75}
    text = idle_markdown(rows, 30.0, 42.0)
    assert "| **workers, total** | | **0.75** | |" in text
    assert f"| **all of runstream** | | **2.75** | goal ≤ {GOAL_PERCENT:g}: met |" in text
    assert "kafka-request-handler-N 1.00" in text
    assert "42.0 % of one core" in text
    over = idle_markdown([IdleRow("broker", 10, GOAL_PERCENT + 0.5)], 30.0, 10.0)
    assert "**not met**" in over
