"""Retries and GETs of finished ids work after every cache forgot them (issue 7, item 4).

The issue's reproduction: with RUNSTREAM_INGRESS_RESULTS_CACHE=50, run id X, run
80 others, then POST X again and GET X; and a GET on an ingress that started
after X finished. Both are answered from the results topic through the index.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.system import System, launch_system

pytestmark = [pytest.mark.kafka, pytest.mark.sandbox]


@pytest.fixture
def forgetful(kafka: str, tmp_path: Path) -> Iterator[System]:
    with launch_system(kafka, tmp_path, ingresses=1, workers=2,
                       extra_env={"RUNSTREAM_INGRESS_RESULTS_CACHE": "50"}) as system:
        yield system


async def test_a_finished_id_is_answered_after_the_caches_evicted_it(forgetful: System) -> None:
    x = f"x-{uuid.uuid4().hex}"
    async with httpx.AsyncClient(base_url=forgetful.url, timeout=60) as c:
        first = await c.post("/v1/executions", json={"id": x, "language": "python",
                                                       "source": "print('x')"})
        assert first.status_code == 200 and first.json()["run"]["stdout"] == "x\n"
        others = await asyncio.gather(*(c.post("/v1/executions", json={
            "language": "python", "source": f"print({n})"}) for n in range(80)))
        assert all(r.status_code == 200 for r in others)
        again = await c.post("/v1/executions", json={"id": x, "language": "python",
                                                       "source": "print('x')"})
        assert again.status_code == 200, again.text
        assert again.json() == first.json()  # the stored answer, not a second run
        got = await c.get(f"/v1/executions/{x}")
        assert got.status_code == 200 and got.json() == first.json()
    # An ingress that starts after X finished finds it too.
    url = forgetful.start_ingress(1)
    forgetful.wait_ready()
    async with httpx.AsyncClient(base_url=url, timeout=60) as c:
        late = await c.get(f"/v1/executions/{x}")
        assert late.status_code == 200, late.text
        assert late.json() == first.json()
