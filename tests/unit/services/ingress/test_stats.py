"""The dashboard's aggregation (services/ingress/stats.py): pure, so fed by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from runstream.services.ingress.stats import (
    Traffic,
    backlog_view,
    owners_of,
    percentile,
    worker_id,
    workers_view,
)

NOW = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC).timestamp()
PREFIX = "runstream-worker-"


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def result(status: str = "ok", *, finished: float = NOW - 1.5, queued_ms: float = 100,
           run_ms: float = 50, **extra: Any) -> bytes:
    doc = {"id": "x", "status": status, "timestamps": {
        "enqueued": iso(finished - (queued_ms + run_ms) / 1000),
        "started": iso(finished - run_ms / 1000), "finished": iso(finished)}}
    return orjson.dumps(doc | extra)


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50 and percentile(values, 0.99) == 99
    assert percentile([7.0], 0.99) == 7.0 and percentile([], 0.5) is None


def test_throughput_latency_and_verdicts_over_the_window() -> None:
    t = Traffic(history_s=120, window_s=60, rate_s=10)
    for i in range(20):  # 2 per second over the last 10 full seconds
        t.add(result(finished=NOW - 0.5 - i / 2, queued_ms=10 * i, run_ms=5), NOW)
    t.add(result("time_limit_exceeded", finished=NOW - 30, queued_ms=5000, run_ms=5000), NOW)
    snap = t.snapshot(NOW)
    assert snap["throughput"]["per_s"] == pytest.approx(2.0)
    assert snap["verdicts"] == {"ok": 20, "time_limit_exceeded": 1}
    assert snap["results"] == {"in_window": 21, "counted": 21}
    lat = snap["latency_ms"]
    assert lat["samples"] == 21
    assert lat["p50"] == pytest.approx(5 + 10 * 10, abs=1)  # the 11th of 21 sorted
    assert lat["p99"] == pytest.approx(10000, abs=1)  # the slow one
    assert lat["run_p99"] == pytest.approx(5000, abs=1)
    series = snap["series"]
    assert len(series["t"]) == len(series["results"]) == 120 and series["t"][-1] == int(NOW)
    assert sum(series["results"]) == 21
    assert sum(series["verdicts"]["time_limit_exceeded"]) == 1
    assert "wrong_answer" not in series["verdicts"]  # only verdicts that occurred


def test_results_are_filed_under_the_second_they_finished_not_when_read() -> None:
    t = Traffic()
    t.add(result(finished=NOW - 50), NOW)  # read late: still 50 s ago
    series = t.snapshot(NOW)["series"]
    assert series["results"][series["t"].index(int(NOW - 50))] == 1
    assert t.snapshot(NOW)["throughput"]["per_s"] == 0  # not in the last 10 s


def test_retention_read_at_start_up_is_skipped_and_old_seconds_are_forgotten() -> None:
    t = Traffic(history_s=120)
    t.add(result(finished=NOW - 3600), NOW)
    assert t.counted == 0
    t.add(result(finished=NOW - 100), NOW)
    assert t.counted == 1
    later = t.snapshot(NOW + 200)
    assert sum(later["series"]["results"]) == 0 and not t.seconds


def test_a_finishing_time_in_the_future_counts_as_now() -> None:
    t = Traffic()
    t.add(result(finished=NOW + 3600), NOW)
    series = t.snapshot(NOW)["series"]
    assert series["results"][-1] == 1


@pytest.mark.parametrize("value", [
    b"not json", b"[1, 2]", b"null", b'"ok"', b"{}", b'{"status": 7, "timestamps": "x"}',
    b'{"status": "ok", "timestamps": {"finished": "yesterday", "enqueued": 5}}',
    b'{"status": "<script>", "timestamps": {"finished": "2030-01-01T12:00:00"}}',
    b'{"status": "ok", "timestamps": {"enqueued": "1970-01-01T00:00:00+00:00",'
    b' "finished": "2030-01-01T11:59:59+00:00"}}',
    b'{"status": "ok", "timestamps": {"finished": "' + b"9" * 5000 + b'"}}',
])
def test_hostile_results_never_raise_and_never_invent_numbers(value: bytes) -> None:
    t = Traffic()
    t.add(value, NOW)
    snap = t.snapshot(NOW)
    assert set(snap["verdicts"]) <= {"ok", "other"}
    # The 1970 enqueue time is a broken clock, not a 60-year latency.
    assert snap["latency_ms"]["p99"] is None
    orjson.dumps(snap)


def test_latency_samples_are_bounded_per_second() -> None:
    t = Traffic(samples_per_s=50)
    for i in range(1000):
        t.add(result(finished=NOW - 1.5, queued_ms=i, run_ms=1), NOW)
    snap = t.snapshot(NOW)
    assert snap["results"]["counted"] == 1000
    assert snap["latency_ms"]["samples"] == 50
    assert 0 <= snap["latency_ms"]["p50"] <= 1001


def test_snapshot_is_computed_once_per_second_and_change() -> None:
    t = Traffic()
    first = t.snapshot(NOW)
    assert t.snapshot(NOW + 0.5) is first
    t.add(result(), NOW + 0.6)
    assert t.snapshot(NOW + 0.7) is not first


def test_workers_view_names_slots_languages_and_partitions() -> None:
    announcements = {
        "w1": {"concurrency": 4, "backend": "bwrap", "started": "2030-01-01T11:00:00+00:00",
               "languages": {"python": "3.11.2", "c": "12.2.0"}},
        "w2": {"concurrency": "lots", "languages": ["python"], "backend": 5},
        "w3": {"languages": {"x" * 70: None, "x" * 64 + "y": "1", "ok": 3}},
        "gone": {"concurrency": 2},
    }
    members = [f"{PREFIX}w1", f"{PREFIX}w2-1-abc", "someone-else", f"{PREFIX}unannounced",
               f"{PREFIX}w3"]
    assigned = {f"{PREFIX}w1": [2, 0], f"{PREFIX}w2-1-abc": [1]}
    rows = workers_view(members, assigned, announcements, PREFIX)
    by_id = {r["id"]: r for r in rows}
    assert set(by_id) == {"w1", "w2", "w3", "unannounced"}  # members only, workers only
    assert by_id["w1"]["slots"] == 4 and by_id["w1"]["partitions"] == [0, 2]
    assert by_id["w1"]["languages"] == [{"name": "c", "version": "12.2.0"},
                                        {"name": "python", "version": "3.11.2"}]
    assert by_id["w2"]["slots"] is None and by_id["w2"]["languages"] == []
    assert by_id["w2"]["backend"] is None
    assert by_id["unannounced"]["announced"] is False
    assert {lang["name"] for lang in by_id["w3"]["languages"]} == {"ok", "x" * 64}
    assert owners_of(rows) == {0: "w1", 2: "w1", 1: "w2"}


@pytest.mark.parametrize("concurrency,slots", [(True, None), (float("inf"), None),
                                               (-3, 0), (10**12, 1_000_000), (2.7, 2)])
def test_announced_slots_are_clamped(concurrency: object, slots: int | None) -> None:
    rows = workers_view([f"{PREFIX}w"], {}, {"w": {"concurrency": concurrency}}, PREFIX)
    assert rows[0]["slots"] == slots


def test_worker_id_prefers_the_longest_announced_prefix() -> None:
    assert worker_id(f"{PREFIX}w-1-x", PREFIX, {"w", "w-1"}) == "w-1"
    assert worker_id("other", PREFIX, {"w"}) is None


def test_backlog_lists_every_requests_partition_and_busy_language_topics() -> None:
    lags = {("req", 0): 3, ("req", 1): 0, ("req.python", 0): 0, ("req.java", 0): 5}
    view = backlog_view(lags, "req", {0: "w1"})
    assert view["total"] == 8
    assert [(p["topic"], p["partition"], p["lag"], p["owner"]) for p in view["partitions"]] == [
        ("req", 0, 3, "w1"), ("req", 1, 0, None), ("req.java", 0, 5, None)]


def test_timestamps_without_offset_are_not_trusted() -> None:
    naive = (datetime(2030, 1, 1, 11, 59, 58) - timedelta(0)).isoformat()
    t = Traffic()
    t.add(orjson.dumps({"status": "ok", "timestamps": {"finished": naive}}), NOW)
    assert t.snapshot(NOW)["series"]["results"][-1] == 1  # counted as read now
