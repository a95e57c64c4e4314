"""The web UI's server side in-process: the committed bundle, the pages, /v1/stats."""

from __future__ import annotations

import gzip
import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import jsonschema
import orjson
import pytest
from runstream.services.execution.languages import Registry
from runstream.services.ingress.openapi_paths import SCHEMAS
from runstream.services.ingress.problems import HANDLERS
from runstream.services.ingress.ui import ui_routes
from runstream.services.settings import Settings
from runstream.services.web import bundle, pages
from runstream.streams.channel import RequestChannel
from runstream.streams.worker_group import WORKER_CLIENT_PREFIX
from starlette.applications import Starlette

WEB = Path(bundle.__file__).parent


def test_the_committed_bundle_was_built_from_the_sources_as_they_are() -> None:
    assert bundle.stale_reason() is None, (
        "services/web changed since static/ was built: cd services/web && npm ci && "
        "node build.mjs (./deploy.sh does it when npm is there)")


def test_the_digest_follows_every_source_file(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.js").write_text("1")
    (tmp_path / "package.json").write_text("{}")
    before = bundle.inputs_digest(tmp_path)
    (tmp_path / "src" / "a.js").write_text("2")
    assert bundle.inputs_digest(tmp_path) != before
    assert bundle.stale_reason(tmp_path) is not None  # no manifest there


def test_every_language_has_a_sample_and_a_grammar() -> None:
    modes = (WEB / "src" / "modes.js").read_text(encoding="utf-8")
    loaders = set(re.findall(r"^  (\w+): ", modes, flags=re.M))
    for lang in Registry.load():
        assert lang.sample.strip(), f"{lang.name} has no sample in languages.toml"
        names = {re.sub(r"[^a-z0-9]", "", n.lower()) for n in (lang.name, *lang.aliases)}
        assert names & loaders, f"{lang.name}: no grammar in services/web/src/modes.js"


def test_languages_describe_serves_the_sample() -> None:
    described = {d["name"]: d for d in Registry.load().describe()}
    assert "Hello" in described["python"]["sample"]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.from_env({}, index_dir=str(tmp_path))


@pytest.fixture
async def gateway(settings: Settings) -> RequestChannel:
    """A request channel that is never started: the stats read only what it holds."""
    # No broker: the watch's last poll is set by hand (its Kafka clients are never used).
    return RequestChannel(settings)


@pytest.fixture
async def client(gateway: RequestChannel) -> AsyncIterator[httpx.AsyncClient]:
    app = Starlette(routes=ui_routes(gateway), exception_handlers=dict(HANDLERS))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ingress") as c:
        yield c


@pytest.mark.parametrize("url,title", [("/", "playground"), ("/dashboard", "dashboard")])
async def test_pages_are_served_with_a_strict_policy(client: httpx.AsyncClient, url: str,
                                                     title: str) -> None:
    r = await client.get(url)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert f"runstream {title}" in r.text
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-eval" not in csp
    assert "http" not in r.text.replace('href="/', "").split("<body")[0], "no other host"
    for src in re.findall(r'(?:src|href)="(/static/[^"]+)"', r.text):
        asset = await client.get(src)
        assert asset.status_code == 200, src
        assert "immutable" in asset.headers["cache-control"]


async def test_assets_are_gzipped_for_clients_that_accept_it(client: httpx.AsyncClient) -> None:
    name = next(n for n in pages.asset_table() if n.endswith(".js"))
    plain = (pages.STATIC / name).read_bytes()
    r = await client.get(f"/static/{name}", headers={"Accept-Encoding": "gzip"})
    assert r.headers["content-encoding"] == "gzip"
    assert r.content == plain  # httpx decoded it
    assert int(r.headers["content-length"]) == len(gzip.compress(plain, 9, mtime=0))
    r = await client.get(f"/static/{name}", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in r.headers and r.content == plain


@pytest.mark.parametrize("path", ["/static/nope.js", "/static/../pages.py",
                                  "/static/%2e%2e/pages.py", "/static/assets/../../bundle.py",
                                  "/static/index.html"])
async def test_only_files_of_the_bundle_are_served(client: httpx.AsyncClient, path: str) -> None:
    r = await client.get(path)
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"


async def test_stats_aggregate_results_workers_and_backlog(client: httpx.AsyncClient,
                                                           gateway: RequestChannel,
                                                           settings: Settings) -> None:
    now = datetime.now(UTC).timestamp()
    stamp = datetime.fromtimestamp(now - 1, UTC).isoformat()
    for status in ("ok", "ok", "runtime_error"):
        gateway.store._tell("id", orjson.dumps({  # what the results follower does per record
            "status": status, "timestamps": {"enqueued": stamp, "started": stamp,
                                             "finished": stamp}}))
    gateway.store._tell("junk", b"\xff not json")
    gateway.workers["w1"] = {"concurrency": 3, "backend": "bwrap",
                             "languages": {"python": "3.11.2", "<b>x</b>": "1"}}
    watch = gateway.watch
    assert watch is not None
    watch.members = [f"{WORKER_CLIENT_PREFIX}w1"]
    watch.assigned = {f"{WORKER_CLIENT_PREFIX}w1": [0, 1]}
    watch.partition_lag = {(settings.requests_topic, 0): 4, (settings.requests_topic, 1): 0}
    watch.polled_at = time.monotonic()
    watch.state = "Stable"
    r = await client.get("/v1/stats")
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    doc = r.json()
    assert doc["results"]["in_window"] == 3
    assert doc["verdicts"] == {"ok": 2, "runtime_error": 1}
    assert doc["backlog"]["total"] == 4
    assert doc["backlog"]["partitions"][0] == {"topic": settings.requests_topic, "partition": 0,
                                               "lag": 4, "owner": "w1"}
    [worker] = doc["workers"]
    assert worker["id"] == "w1" and worker["slots"] == 3 and worker["partitions"] == [0, 1]
    assert {"name": "<b>x</b>", "version": "1"} in worker["languages"]  # data, escaped by the page
    assert doc["slots"] == 3 and doc["group"]["state"] == "Stable"
    jsonschema.Draft202012Validator(SCHEMAS["Stats"]).validate(doc)  # as /openapi.json says


async def test_stats_answer_before_the_group_was_ever_polled(settings: Settings) -> None:
    gateway = RequestChannel(settings)
    app = Starlette(routes=ui_routes(gateway), exception_handlers=dict(HANDLERS))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://ingress") as c:
        doc = (await c.get("/v1/stats")).json()
    assert doc["workers"] == [] and doc["backlog"]["total"] == 0
    assert doc["throughput"]["per_s"] == 0
    jsonschema.Draft202012Validator(SCHEMAS["Stats"]).validate(doc)
