"""Who writes live events: by default the runs whose client asked (RUNSTREAM_EVENTS_PRODUCE
requested); with RUNSTREAM_EVENTS_PRODUCE=always, every run."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.test_events import collect, output, submit
from tests.system import System, launch_system

pytestmark = [pytest.mark.kafka, pytest.mark.sandbox]


@pytest.fixture(scope="module")
def always_system(kafka: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    with launch_system(kafka, tmp_path_factory.mktemp("events-always"), ingresses=2,
                       workers=1, extra_env={"RUNSTREAM_EVENTS_PRODUCE": "always"}) as s:
        yield s


async def test_a_run_nobody_asked_to_stream_writes_no_events_and_streams_its_result(
        system: System) -> None:
    async with httpx.AsyncClient(timeout=60) as c:
        exec_id, r = await _post_plain(c, system.url, "ev-quiet")
        for url in system.urls:
            events = await collect(c, f"{url}/v1/executions/{exec_id}/events")
            assert [m["event"] for m in events] == ["finished"]
            assert events[-1]["data"]["result"] == r.json()


@pytest.mark.parametrize("how", ["wait=0", "flag"])
async def test_a_run_asked_to_stream_writes_its_events_for_every_ingress(
        system: System, how: str) -> None:
    body = {"language": "python", "source": "print(42)"}
    async with httpx.AsyncClient(timeout=60) as c:
        if how == "wait=0":  # the playground's way: submit, then follow
            exec_id = await submit(c, system.url, body)
            r = await c.get(f"{system.url}/v1/executions/{exec_id}", params={"wait": 30})
            assert r.status_code == 200, r.text
        else:  # a synchronous POST that says so
            exec_id = f"ev-flag-{uuid.uuid4().hex[:8]}"
            r = await c.post(f"{system.url}/v1/executions",
                             json={"id": exec_id, "events": True, **body})
            assert r.status_code == 200, r.text
        for url in system.urls:
            events = await collect(c, f"{url}/v1/executions/{exec_id}/events")
            # What every ingress read of the run, then the result.
            assert [m["event"] for m in events] == ["queued", "started", "stdout",
                                                    "finished"], events
            assert output(events) == "42\n"


async def test_always_writes_the_events_of_a_run_nobody_asked_to_stream(
        always_system: System) -> None:
    async with httpx.AsyncClient(timeout=60) as c:
        exec_id, r = await _post_plain(c, always_system.url, "ev-always")
        for url in always_system.urls:
            events = await collect(c, f"{url}/v1/executions/{exec_id}/events")
            assert [m["event"] for m in events] == ["queued", "started", "stdout",
                                                    "finished"], events
            assert output(events) == "42\n"
            assert events[-1]["data"]["result"] == r.json()


async def _post_plain(c: httpx.AsyncClient, url: str, prefix: str) -> tuple[str, httpx.Response]:
    """A synchronous POST of a python hello that does not ask for events."""
    exec_id = f"{prefix}-{uuid.uuid4().hex[:8]}"
    r = await c.post(f"{url}/v1/executions",
                     json={"id": exec_id, "language": "python", "source": "print(42)"})
    assert r.status_code == 200, r.text
    return exec_id, r
