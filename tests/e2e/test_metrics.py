"""/metrics of a running ingress and worker: Prometheus text, every metric, real values.

A real system (one ingress, one worker with two slots and its metrics port) runs a
few programs, then five slow ones at once so that slots are busy, requests queue
in Kafka and HTTP callers wait; both endpoints are scraped (and parsed with
prometheus_client's own parser) until each of those levels has been seen above 0.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.system import System, free_port, launch_system

WORKER = "e2e-worker-1"


@dataclass
class Metered:
    """A running system whose worker serves its metrics on ``port``."""

    system: System
    port: int

    @property
    def worker_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/metrics"


@pytest.fixture(scope="module")
def metered(kafka: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Metered]:
    port = free_port()
    # JSON logs too (docs/logs.md), checked by the last test of this file.
    with launch_system(kafka, tmp_path_factory.mktemp("metrics-logs"), ingresses=1,
                       workers=0, extra_env={"RUNSTREAM_LOG_FORMAT": "json"}) as system:
        system.workers = [WORKER]
        system.start_worker(WORKER, {"RUNSTREAM_WORKER_METRICS_PORT": str(port)})
        system.wait_ready()
        yield Metered(system, port)


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(client: httpx.AsyncClient, url: str) -> tuple[Samples, dict[str, str]]:
    """Every sample of the endpoint, and each family's type, as the parser reads them."""
    r = await client.get(url)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    types = {}
    for family in text_string_to_metric_families(r.text):
        types[family.name] = family.type
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples, types


def total(samples: Samples, name: str, **labels: str) -> float:
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


async def test_ingress_and_worker_show_every_metric(metered: Metered) -> None:
    worker_url = metered.worker_url
    async with httpx.AsyncClient(base_url=metered.system.url, timeout=90) as client:
        ok = await client.post("/v1/executions", json={"language": "python",
                                                       "source": "print(6*7)"})
        failed = await client.post("/v1/executions", json={"language": "python",
                                                           "source": "raise SystemExit(3)"})
        raw = await client.post("/lang/python", content=b"print('hi')")
        assert (ok.status_code, failed.status_code, raw.status_code) == (200, 200, 200)
        assert failed.json()["status"] == "runtime_error"

        # Five runs of 2 s on two slots: busy slots, a queue in Kafka, callers waiting.
        slow = [asyncio.create_task(client.post("/v1/executions", json={
            "language": "python", "source": "import time; time.sleep(2)"}))
            for _ in range(5)]
        seen = {"busy": 0.0, "lag": 0.0, "waiting": 0.0, "group_lag": 0.0}
        deadline = time.monotonic() + 30
        while min(seen.values()) == 0 and time.monotonic() < deadline:
            worker, _ = await scrape(client, worker_url)
            ingress, _ = await scrape(client, "/metrics")
            for key, value in (
                    ("busy", total(worker, "runstream_worker_slots_busy")),
                    ("lag", total(worker, "runstream_worker_consumer_lag")),
                    ("waiting", total(ingress, "runstream_ingress_executions_waiting")),
                    ("group_lag", total(ingress, "runstream_worker_group_lag"))):
                seen[key] = max(seen[key], value)
            await asyncio.sleep(0.2)  # a poll interval between scrapes, not a synchronisation
        answers = await asyncio.gather(*slow)
        assert [a.status_code for a in answers] == [200] * 5
        assert seen["busy"] >= 1 and seen["lag"] >= 1, seen
        assert seen["waiting"] >= 1 and seen["group_lag"] >= 1, seen

        # A worker counts a result just after its reply is acknowledged: the answer can
        # reach the client first. Scrape until all eight are counted (bounded).
        deadline = time.monotonic() + 10
        while True:
            worker, worker_types = await scrape(client, worker_url)
            counted = total(worker, "runstream_executions_total", language="python")
            if counted >= 8 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        ingress, ingress_types = await scrape(client, "/metrics")

    assert {"runstream_executions": "counter",
            "runstream_execution_queue_wait_seconds": "histogram",
            "runstream_execution_sandbox_seconds": "histogram",
            "runstream_execution_latency_seconds": "histogram",
            "runstream_worker_slots": "gauge", "runstream_worker_slots_busy": "gauge",
            "runstream_worker_consumer_lag": "gauge",
            "runstream_worker_sampled_timestamp_seconds": "gauge",
            "runstream_worker_membership_age_seconds": "gauge"}.items() <= worker_types.items()
    # Alive and in its group: sampled within the last seconds, confirmed by a heartbeat.
    assert time.time() - total(worker, "runstream_worker_sampled_timestamp_seconds") < 10
    assert 0 <= total(worker, "runstream_worker_membership_age_seconds") < 5
    assert total(worker, "runstream_executions_total", language="python", status="ok") == 7
    assert total(worker, "runstream_executions_total", language="python",
                 status="runtime_error") == 1
    for name in ("queue_wait", "sandbox", "latency"):
        count = total(worker, f"runstream_execution_{name}_seconds_count", language="python")
        assert count >= 8, name
    assert total(worker, "runstream_execution_sandbox_seconds_sum", language="python") >= 10
    assert total(worker, "runstream_worker_slots") == 2
    assert total(worker, "process_resident_memory_bytes") > 0

    assert {"runstream_http_requests": "counter",
            "runstream_http_request_duration_seconds": "histogram",
            "runstream_http_requests_in_flight": "gauge",
            "runstream_ingress_executions_waiting": "gauge",
            "runstream_worker_group_lag": "gauge",
            "runstream_worker_group_slots": "gauge"}.items() <= ingress_types.items()
    assert total(ingress, "runstream_http_requests_total", route="/v1/executions",
                 method="POST", status="200") == 7
    assert total(ingress, "runstream_http_requests_total", route="/lang/{language}",
                 status="200") == 1
    assert total(ingress, "runstream_http_request_duration_seconds_count",
                 route="/v1/executions") == 7
    # The five slow runs waited their turn: some answers took over two seconds.
    assert total(ingress, "runstream_http_request_duration_seconds_sum",
                 route="/v1/executions") > 10
    assert total(ingress, "runstream_http_requests_in_flight") >= 1  # this scrape
    assert total(ingress, "runstream_worker_group_slots") == 2


def test_a_taken_metrics_port_stops_the_worker_with_a_clear_message(
        metered: Metered) -> None:
    proc = metered.system.start_worker(
        "e2e-worker-clash", {"RUNSTREAM_WORKER_METRICS_PORT": str(metered.port)})
    assert proc.wait(60) == 2
    log = (metered.system.logs / "e2e-worker-clash.log").read_text()
    assert f"cannot serve metrics on 127.0.0.1:{metered.port}" in log


async def test_json_logs_have_one_line_per_execution_with_its_id(metered: Metered) -> None:
    async with httpx.AsyncClient(base_url=metered.system.url, timeout=90) as client:
        r = await client.post("/v1/executions", json={"id": "json-log-1", "language": "python",
                                                      "source": "print(1)"})
    assert r.status_code == 200
    path = metered.system.logs / f"{WORKER}.log"
    deadline = time.monotonic() + 10
    while True:  # the worker logs the execution just after replying (bounded poll)
        lines = [json.loads(line) for line in path.read_text().splitlines()
                 if line.startswith("{")]
        mine = [line for line in lines if line.get("execution_id") == "json-log-1"]
        if any(m["message"].startswith("execution id=json-log-1") for m in mine):
            break
        assert time.monotonic() < deadline, mine
        await asyncio.sleep(0.1)
    assert [m["message"].startswith("execution id=") for m in mine].count(True) == 1
    assert all({"ts", "level", "logger", "message"} <= set(line) for line in lines)
    text = path.read_text().splitlines()
    assert len(lines) == len(text), [t for t in text if not t.startswith("{")][:3]
