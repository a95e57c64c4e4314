"""End-to-end fixtures: an HTTP client on the session's running system."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.system import System


@pytest.fixture
async def client(system: System) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=system.url, timeout=90) as c:
        yield c
