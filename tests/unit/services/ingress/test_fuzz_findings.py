"""Bugs the schema-driven fuzzer (tests/e2e/test_openapi_fuzz.py) found, one test each.

Each fails without its fix; the fuzzer's request is the test's input.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from runstream.services.settings import Settings

from tests.unit.services.ingress.test_ingress_app import FakeChannel, in_process


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings.from_env({}, index_dir=str(tmp_path), ingress_wait_s=1.0)
    async with in_process(settings, FakeChannel(settings)) as c:
        yield c


@pytest.mark.parametrize("path", ["/judge0/submissions/%C3%9B%C2%B0%2B%0A%17",
                                  "/judge0/languages/7%0A1"])
async def test_judge0_answers_a_path_with_a_newline_in_its_own_404(
        client: httpx.AsyncClient, path: str) -> None:
    """A token with %0A fell out of the /judge0 mount (its regex's `.` stops at a newline)
    and got the native problem+json 404, which no Judge0 client reads."""
    r = await client.get(path)
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"status": 404, "error": "Not Found"}


@pytest.mark.parametrize("path", ["/api/v2/a%0Ab", "/api/v2/packages/x%0Ay"])
async def test_piston_answers_a_path_with_a_newline_in_its_own_404(
        client: httpx.AsyncClient, path: str) -> None:
    r = await client.get(path)
    assert r.status_code == 404
    assert r.json() == {"message": "Not Found"}
