"""/docs and /openapi.json in-process: shipped assets only, and answers as documented."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from runstream.services.ingress.app import create_app
from runstream.services.ingress.docs import ASSETS
from runstream.services.settings import Settings

from tests.unit.services.ingress.test_ingress_app import FakeChannel


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings.from_env({}, index_dir=str(tmp_path))
    gateway = FakeChannel(settings)
    await gateway.start()
    transport = httpx.ASGITransport(app=create_app(settings, channel=gateway))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://ingress") as c:
            yield c
    finally:
        await gateway.stop()


async def test_the_page_loads_only_shipped_assets(client: httpx.AsyncClient) -> None:
    page = await client.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    urls = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert {"docs/assets/swagger-ui-bundle.js", "docs/assets/swagger-ui.css",
            "docs/assets/runstream-docs.js"} <= set(urls)
    assert not [u for u in urls if "//" in u], urls  # no other host, no CDN
    for url in urls:
        asset = await client.get("/" + url)
        assert asset.status_code == 200, url
        assert len(asset.content) == (ASSETS / url.rsplit("/", 1)[1]).stat().st_size
    init = (await client.get("/docs/assets/runstream-docs.js")).text
    assert 'url: "openapi.json"' in init and "validatorUrl: null" in init
    spec = await client.get("/openapi.json")
    assert spec.status_code == 200 and spec.json()["openapi"].startswith("3.1")


def test_the_assets_are_package_data() -> None:
    pyproject = (Path(__file__).parents[4] / "pyproject.toml").read_text()
    assert '"runstream.services.ingress" = ["static/*"]' in pyproject
    assert ASSETS.name == "static" and (ASSETS / "swagger-ui-bundle.js").stat().st_size > 10**6
    assert (ASSETS / "swagger-ui.LICENSE").is_file()


async def test_a_method_a_route_does_not_take_is_405_with_allow(
        client: httpx.AsyncClient) -> None:
    """RFC 9110: a 405 lists the methods the route takes (the fuzzer found it missing)."""
    r = await client.request("TRACE", "/v1/executions")
    assert r.status_code == 405 and r.headers["content-type"] == "application/problem+json"
    assert r.headers["allow"] == "POST"
    allow = (await client.delete("/healthz")).headers["allow"]
    assert set(allow.split(", ")) == {"GET", "HEAD"}
