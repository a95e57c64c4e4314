"""Workers with different languages: a request reaches a worker that runs its language.

Worker "no-ruby" has a registry in which ruby's runtime cannot be found (so it
does not serve ruby, as on a host without it); worker "full" runs everything.
Ruby requests land on either worker's partitions of the shared requests topic;
"no-ruby" forwards its share to runstream.requests.ruby, which only "full" reads.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import httpx
import pytest

from tests.system import System, launch_system

pytestmark = [pytest.mark.kafka, pytest.mark.sandbox]

RUBY_VERSION = 'version = ["/usr/bin/ruby", "--version"]'


def _without_ruby(folder: Path) -> Path:
    text = resources.files("runstream.services").joinpath("languages.toml").read_text()
    assert RUBY_VERSION in text
    path = folder / "languages-no-ruby.toml"
    path.write_text(text.replace(RUBY_VERSION, 'version = ["/nonexistent/ruby", "--version"]'))
    return path


async def _ruby_versions(c: httpx.AsyncClient) -> list[str]:
    langs = (await c.get("/v1/languages")).json()["languages"]
    versions: list[str] = next(lang for lang in langs if lang["name"] == "ruby")["versions"]
    return versions


@pytest.fixture
def mixed(kafka: str, tmp_path: Path) -> Iterator[System]:
    with launch_system(kafka, tmp_path, ingresses=1, workers=0) as system:
        system.start_worker("no-ruby", {"RUNSTREAM_LANGUAGES_FILE": str(_without_ruby(tmp_path))})
        system.start_worker("full")
        system.wait_ready(workers=2)
        yield system


async def test_every_ruby_request_reaches_the_worker_that_runs_ruby(mixed: System) -> None:
    async with httpx.AsyncClient(base_url=mixed.url, timeout=60) as c:
        # Announcements arrive on their own topic a moment after a worker joins:
        # another process's state, polled (bounded).
        for _ in range(100):
            if await _ruby_versions(c):
                break
            await asyncio.sleep(0.2)
        else:
            pytest.fail("/v1/languages never listed ruby, which worker 'full' runs")
        # Enough ids that both workers' partitions get some (12 partitions, 2 workers).
        ids = [f"ruby-{n}-{uuid.uuid4().hex[:6]}" for n in range(16)]
        answers = await asyncio.gather(*(
            c.post("/v1/executions", json={"id": i, "language": "ruby",
                                           "source": f'puts "{i}"'}) for i in ids))
        docs = [r.json() for r in answers]
        assert [r.status_code for r in answers] == [200] * len(ids), docs
        assert all(d["status"] == "ok" and d["worker"] == "full" for d in docs), docs
        assert [d["run"]["stdout"] for d in docs] == [f"{i}\n" for i in ids]
        # Python is served by both: the shared topic spreads it as before.
        py = await asyncio.gather(*(c.post("/v1/executions", json={
            "language": "python", "source": "print(1)"}) for _ in range(16)))
        assert {r.json()["worker"] for r in py} == {"full", "no-ruby"}
    log = (mixed.logs / "no-ruby.log").read_text()
    assert "not serving ruby" in log and "forwarded to" in log
