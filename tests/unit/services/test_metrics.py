"""Metrics: the names, types and labels docs/metrics.md lists, and the hooks that feed them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from runstream.schemas.models import ExecutionResult, Status
from runstream.services import metrics
from runstream.services.ingress.app import create_app
from runstream.services.settings import Settings
from starlette.applications import Starlette

from tests.unit.services.ingress.test_ingress_app import FakeChannel

WORKER_METRICS = {
    "runstream_executions": ("counter", {"language", "status"}),
    "runstream_execution_queue_wait_seconds": ("histogram", {"language"}),
    "runstream_execution_sandbox_seconds": ("histogram", {"language"}),
    "runstream_execution_latency_seconds": ("histogram", {"language"}),
    "runstream_worker_slots": ("gauge", set()),
    "runstream_worker_slots_busy": ("gauge", set()),
    "runstream_worker_consumer_lag": ("gauge", {"topic", "partition"}),
    "runstream_worker_sampled_timestamp_seconds": ("gauge", set()),
    "runstream_worker_membership_age_seconds": ("gauge", set()),
    "runstream_compile_cache_lookups": ("counter", {"language", "result"}),
}
INGRESS_METRICS = {
    "runstream_http_requests": ("counter", {"route", "method", "status"}),
    "runstream_http_request_duration_seconds": ("histogram", {"route", "method"}),
    "runstream_http_requests_in_flight": ("gauge", set()),
    "runstream_ingress_executions_waiting": ("gauge", set()),
    "runstream_worker_group_lag": ("gauge", set()),
    "runstream_worker_group_slots": ("gauge", set()),
}


def families(text: str) -> dict[str, tuple[str, list[tuple[str, dict[str, str], float]]]]:
    return {f.name: (f.type, [(s.name, s.labels, s.value) for s in f.samples])
            for f in text_string_to_metric_families(text)}


def _result(language: str | None, status: Status = Status.OK) -> ExecutionResult:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    return ExecutionResult(id="x", status=status, language=language, enqueued=t0,
                           started=t0 + timedelta(milliseconds=40),
                           finished=t0 + timedelta(milliseconds=100))


def test_a_published_result_counts_its_verdict_and_times() -> None:
    get = metrics.WORKER.get_sample_value
    labels = {"language": "metrics-test", "status": "runtime_error"}
    before = get("runstream_executions_total", labels) or 0.0
    waits = get("runstream_execution_queue_wait_seconds_count", {"language": "metrics-test"}) or 0
    metrics.observe_result(_result("metrics-test", Status.RUNTIME_ERROR))
    assert get("runstream_executions_total", labels) == before + 1
    assert get("runstream_execution_queue_wait_seconds_count",
               {"language": "metrics-test"}) == waits + 1
    assert get("runstream_execution_sandbox_seconds_sum",
               {"language": "metrics-test"}) == pytest.approx(0.06 * (waits + 1))
    assert get("runstream_execution_latency_seconds_bucket",
               {"language": "metrics-test", "le": "0.1"}) == waits + 1


def test_a_refusal_without_start_counts_but_has_no_sandbox_time() -> None:
    refused = ExecutionResult(id="y", status=Status.REJECTED, language="refusal-test",
                              finished=datetime.now(UTC))
    metrics.observe_result(refused)
    get = metrics.WORKER.get_sample_value
    assert get("runstream_executions_total",
               {"language": "refusal-test", "status": "rejected"}) == 1
    assert not get("runstream_execution_sandbox_seconds_count", {"language": "refusal-test"})
    assert not get("runstream_execution_queue_wait_seconds_count", {"language": "refusal-test"})


def test_languages_from_hostile_producers_cannot_grow_the_series() -> None:
    for n in range(200):
        metrics.observe_result(_result(f"made-up-{n}", Status.REJECTED))
    names = {s.labels["language"] for f in text_string_to_metric_families(
        metrics.exposition(metrics.WORKER).decode()) if f.name == "runstream_executions"
        for s in f.samples}
    assert len(names) <= 64 + 2 and "other" in names
    assert metrics.method_label("BREW") == "other" and metrics.method_label("GET") == "GET"


def test_worker_exposition_has_every_metric_with_its_type_and_labels() -> None:
    metrics.observe_result(_result("python"))
    metrics.observe_slots(4, 3)
    metrics.observe_alive(1.5)
    metrics.observe_lag([("t.requests", 0, 5), ("t.requests", 1, 0)])
    got = families(metrics.exposition(metrics.WORKER).decode())
    for name, (kind, labels) in WORKER_METRICS.items():
        assert got[name][0] == kind, name
        for _, sample_labels, _ in got[name][1]:
            assert set(sample_labels) - {"le"} == labels, (name, sample_labels)
    assert ("runstream_worker_slots_busy", {}, 3.0) in got["runstream_worker_slots_busy"][1]
    lag = {s[1]["partition"]: s[2] for s in got["runstream_worker_consumer_lag"][1]}
    assert lag == {"0": 5.0, "1": 0.0}
    metrics.observe_lag([("t.requests", 1, 2)])  # partition 0 moved away: its series goes
    got = families(metrics.exposition(metrics.WORKER).decode())
    assert {s[1]["partition"] for s in got["runstream_worker_consumer_lag"][1]} == {"1"}
    assert "runstream_http_requests" not in got  # each process shows its own


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[Starlette]:
    settings = Settings.from_env({}, index_dir=str(tmp_path), ingress_wait_s=5.0)
    gateway = FakeChannel(settings)
    await gateway.start()
    try:
        yield create_app(settings, channel=gateway)
    finally:
        await gateway.stop()


async def test_ingress_counts_requests_by_route_template_not_by_path(app: Starlette) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ingress") as client:
        get = metrics.INGRESS.get_sample_value
        found = {"route": "/v1/executions/{id}", "method": "GET", "status": "404"}
        before = get("runstream_http_requests_total", found) or 0.0
        for n in range(3):
            assert (await client.get(f"/v1/executions/nope-{n}")).status_code == 404
        assert (await client.get("/no/such/path")).status_code == 404
        assert (await client.post("/v1/executions", content=b"{")).status_code == 400
        r = await client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert get("runstream_http_requests_total", found) == before + 3
    got = families(r.text)
    for name, (kind, labels) in INGRESS_METRICS.items():
        assert got[name][0] == kind, name
        for _, sample_labels, _ in got[name][1]:
            assert set(sample_labels) - {"le"} == labels, (name, sample_labels)
    routes = {s[1]["route"] for s in got["runstream_http_requests"][1]}
    assert {"/v1/executions/{id}", "(unmatched)", "/v1/executions"} <= routes
    assert not any("nope" in route for route in routes)
    # The scrape itself is in flight while the exposition is written.
    assert ("runstream_http_requests_in_flight", {}, 1.0) in got[
        "runstream_http_requests_in_flight"][1]


def test_the_worker_server_serves_its_registry_and_refuses_a_taken_port() -> None:
    from runstream.services.errors import ConfigurationError

    from tests.system import free_port

    port = free_port()
    stop = metrics.serve("127.0.0.1", port)
    try:
        r = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        assert r.status_code == 200 and "runstream_worker_slots_busy" in r.text
        assert "runstream_http_requests" not in r.text
        with pytest.raises(ConfigurationError, match=f"cannot serve metrics on 127.0.0.1:{port}"):
            metrics.serve("127.0.0.1", port)
    finally:
        stop()

