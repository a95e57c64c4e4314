"""Admission control's estimate of the backlog, and what it reads from results."""

from __future__ import annotations

import orjson
import pytest
from runstream.services.ingress.admission import DEFAULT_EXEC_S, Backlog, execution_seconds
from runstream.services.ingress.problems import Overloaded
from runstream.streams.worker_group import live_worker_ids


def test_backlog_is_lag_plus_own_production_times_mean_over_slots() -> None:
    b = Backlog(max_backlog_s=30)
    assert b.mean_exec_s == DEFAULT_EXEC_S
    b.on_execution(2.0)  # the first observation replaces the default
    b.on_poll(lag=10, slots=4)
    for _ in range(6):
        b.admit()
    assert b.seconds() == pytest.approx((10 + 6) * 2.0 / 4)
    b.poll_started()  # the next measurement includes what we produced
    assert b.seconds() == pytest.approx(10 * 2.0 / 4)


def test_mean_execution_time_is_an_ewma() -> None:
    b = Backlog(max_backlog_s=30, alpha=0.5)
    b.on_execution(1.0)
    b.on_execution(3.0)
    assert b.mean_exec_s == pytest.approx(2.0)
    b.on_execution(-1.0)  # clock skew between hosts: ignored
    assert b.mean_exec_s == pytest.approx(2.0)


def test_check_admits_up_to_the_bound_then_refuses_with_the_wait() -> None:
    b = Backlog(max_backlog_s=10)
    b.on_execution(1.0)
    b.on_poll(lag=17, slots=2)  # (17 + 1) / 2 = 9 s: admitted
    b.check()
    b.on_poll(lag=25, slots=2)  # (25 + 1) / 2 = 13 s: 3 s over
    with pytest.raises(Overloaded) as refused:
        b.check()
    assert refused.value.retry_after == 3 and refused.value.http_status == 429
    assert "2 worker slot(s)" in refused.value.message


def test_no_live_slot_counts_as_one() -> None:
    b = Backlog(max_backlog_s=5)
    b.on_poll(lag=3, slots=0)
    assert b.seconds() == pytest.approx(3 * DEFAULT_EXEC_S)


def test_execution_seconds_from_the_result_timestamps() -> None:
    doc = {"id": "x", "status": "ok", "run": {"stdout": '"started": "nope"' * 100},
           "timestamps": {"enqueued": "2026-01-01T00:00:00+00:00",
                          "started": "2026-01-01T00:00:01.250000+00:00",
                          "finished": "2026-01-01T00:00:03+00:00"}, "metadata": None}
    assert execution_seconds(orjson.dumps(doc)) == pytest.approx(1.75)
    assert execution_seconds(orjson.dumps({"id": "x", "status": "rejected"})) is None
    assert execution_seconds(orjson.dumps(
        {"timestamps": {"started": None, "finished": "2026-01-01T00:00:03Z"}})) is None


def test_live_workers_are_announced_ids_of_group_members() -> None:
    announced = {"w1", "w2", "gone"}
    members = ["runstream-worker-w1", "runstream-worker-w2-3f2a", "someone-else"]
    assert live_worker_ids(members, announced) == {"w1", "w2"}
