"""API keys at the ingress, in-process: the middleware in front of every route.

The app is the real one over the fake request channel of ``test_ingress_app`` (no broker)
and a key store whose Kafka side is replaced by records fed by hand: its
follower is covered on a real broker in ``tests/integration/test_keys_store.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from runstream.schemas.keys import KeyRecord, encode_record, format_key, new_key, revoke
from runstream.services.ingress.app import create_app
from runstream.services.ingress.auth import is_open, presented_key
from runstream.services.settings import Settings
from runstream.streams.api_keys import KeyStore
from starlette.applications import Starlette
from starlette.testclient import TestClient, WebSocketDenialResponse

from tests.unit.schemas.test_keys import NOW
from tests.unit.services.ingress.test_ingress_app import HELLO, FakeChannel, assert_problem, fake


class FakeKeys(KeyStore):
    """The store's records and lookups, fed by :meth:`put` instead of the keys topic."""

    async def start(self, timeout_s: float = 30.0) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def caught_up(self, timeout_s: float) -> bool:
        self.lookups = getattr(self, "lookups", 0) + 1
        return True

    def put(self, record: KeyRecord) -> None:
        self._apply(record.id.encode(), encode_record(record))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.from_env({}, index_dir=str(tmp_path), ingress_wait_s=5.0,
                             ingress_drain_s=0.2, auth_required=True)


@pytest.fixture
def keys(settings: Settings) -> FakeKeys:
    return FakeKeys(settings, name="test")


@pytest.fixture
async def app(settings: Settings, keys: FakeKeys) -> AsyncIterator[Starlette]:
    gateway = FakeChannel(settings)
    await gateway.start()
    try:
        yield create_app(settings, channel=gateway, keys=keys)
    finally:
        await gateway.stop()


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ingress") as c:
        yield c


def issue(keys: FakeKeys, **quotas: object) -> tuple[KeyRecord, str]:
    record, full = new_key("test", now=NOW, **quotas)  # type: ignore[arg-type]
    keys.put(record)
    return record, full


PROTECTED = [("POST", "/v1/executions"), ("GET", "/v1/executions/x1"),
             ("POST", "/lang/python"), ("GET", "/v1/languages"),
             ("POST", "/judge0/submissions"), ("GET", "/judge0/languages"),
             ("POST", "/api/v2/execute"), ("GET", "/api/v2/runtimes"),
             ("GET", "/judge0/no/such/route"), ("POST", "/anything/else")]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
async def test_every_route_but_the_open_ones_needs_a_key(
        client: httpx.AsyncClient, app: Starlette, method: str, path: str) -> None:
    r = await client.request(method, path, json=HELLO)
    doc = assert_problem(r, 401, "API key", "X-Auth-Token")
    assert doc["type"].endswith("/unauthorized")  # type: ignore[union-attr]
    assert r.headers["www-authenticate"] == 'Bearer realm="runstream"'
    assert fake(app).sent == []


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"])
async def test_probes_metrics_and_docs_stay_open(client: httpx.AsyncClient, path: str) -> None:
    r = await client.get(path)
    assert r.status_code == 200, (path, r.text)


@pytest.mark.parametrize("header", ["Authorization", "X-Api-Key", "X-Auth-Token"])
async def test_a_key_in_any_of_the_three_headers_is_accepted_and_stamped(
        client: httpx.AsyncClient, app: Starlette, keys: FakeKeys, header: str) -> None:
    record, full = issue(keys)
    value = f"Bearer {full}" if header == "Authorization" else full
    # The client's own key_id is overwritten by the key it authenticated with.
    r = await client.post("/v1/executions?wait=0", headers={header: value},
                          json={**HELLO, "key_id": "ffffffffffffffff"})
    assert r.status_code == 202, r.text
    assert fake(app).sent[-1].key_id == record.id


@pytest.mark.parametrize(("headers", "what"), [
    ({"X-Api-Key": "hello"}, "malformed"),
    ({"Authorization": "Basic dXNlcjpwYXNz"}, "malformed"),
    ({"X-Api-Key": "rs_0123456789abcdef_" + "A" * 43}, "unknown"),
    ({"X-Api-Key": "x" * 100_000}, "malformed"),
])
async def test_bad_keys_are_401_invalid_token(client: httpx.AsyncClient, app: Starlette,
                                              headers: dict[str, str], what: str) -> None:
    r = await client.post("/v1/executions", headers=headers, json=HELLO)
    assert_problem(r, 401, what)
    assert 'error="invalid_token"' in r.headers["www-authenticate"]
    assert fake(app).sent == []


async def test_a_wrong_secret_for_a_known_id_is_401(client: httpx.AsyncClient,
                                                    keys: FakeKeys) -> None:
    record, full = issue(keys)
    _, other = new_key("other", now=NOW)
    forged = format_key(record.id, other[-43:])  # a real secret, of another key
    assert_problem(await client.get("/v1/languages", headers={"X-Api-Key": forged}), 401)
    assert (await client.get("/v1/languages", headers={"X-Api-Key": full})).status_code == 200


async def test_an_unknown_id_is_looked_up_up_to_the_end_of_the_topic(
        client: httpx.AsyncClient, keys: FakeKeys) -> None:
    _, full = issue(keys)
    await client.get("/v1/languages", headers={"X-Api-Key": full})
    assert getattr(keys, "lookups", 0) == 0  # known: no broker round trip
    await client.get("/v1/languages", headers={"X-Api-Key": "rs_0123456789abcdef_" + "A" * 43})
    assert keys.lookups == 1


async def test_a_revoked_key_is_403(client: httpx.AsyncClient, app: Starlette,
                                    keys: FakeKeys) -> None:
    record, full = issue(keys)
    assert (await client.post("/v1/executions?wait=0", headers={"X-Api-Key": full},
                              json=HELLO)).status_code == 202
    keys.put(revoke(record, NOW))
    for method in ("POST", "GET"):
        r = await client.request(method, "/v1/executions", headers={"X-Api-Key": full},
                                 json=HELLO)
        assert assert_problem(r, 403, "revoked")["key_id"] == record.id
    assert len(fake(app).sent) == 1


async def test_a_language_the_key_may_not_run_is_403(client: httpx.AsyncClient, app: Starlette,
                                                     keys: FakeKeys) -> None:
    _, full = issue(keys, languages=("c",))
    r = await client.post("/v1/executions", headers={"X-Api-Key": full}, json=HELLO)
    assert_problem(r, 403, "python")
    r = await client.post("/lang/python", headers={"X-Api-Key": full}, content=b"print(1)")
    assert_problem(r, 403, "python")
    assert fake(app).sent == []


async def test_past_the_rate_is_429_with_retry_after_and_reads_are_not_counted(
        client: httpx.AsyncClient, app: Starlette, keys: FakeKeys) -> None:
    record, full = issue(keys, rate_per_s=0.01, burst=2)  # the next token in 100 s
    auth = {"Authorization": f"Bearer {full}"}
    for left in (1, 0):
        r = await client.post("/v1/executions?wait=0", headers=auth, json=HELLO)
        assert r.status_code == 202
        assert r.headers["x-ratelimit-limit"] == "2"
        assert r.headers["x-ratelimit-remaining"] == str(left)
    r = await client.post("/v1/executions?wait=0", headers=auth, json=HELLO)
    doc = assert_problem(r, 429, "rate limit")
    assert doc["quota"] == "rate" and doc["key_id"] == record.id
    assert 95 <= int(r.headers["retry-after"]) <= 100 and doc["retry_after"] == int(
        r.headers["retry-after"])
    # Polling for the results it was admitted for is never refused for the rate.
    exec_id = fake(app).sent[0].id
    for _ in range(5):
        r = await client.get(f"/v1/executions/{exec_id}", headers=auth)
        assert r.status_code == 202
    assert len(fake(app).sent) == 2


async def test_the_concurrency_quota_is_429_until_a_result_arrives(
        client: httpx.AsyncClient, app: Starlette, keys: FakeKeys) -> None:
    _, full = issue(keys, max_concurrent=1, rate_per_s=0)
    _, other = issue(keys, max_concurrent=1, rate_per_s=0)
    auth = {"X-Api-Key": full}
    gateway = fake(app)
    r = await client.post("/v1/executions?wait=0", headers=auth, json={**HELLO, "id": "c1"})
    assert r.status_code == 202
    # An idempotent retry of the execution in flight joins it: not a second one.
    r = await client.post("/v1/executions?wait=0", headers=auth, json={**HELLO, "id": "c1"})
    assert r.status_code == 202
    r = await client.post("/v1/executions?wait=0", headers=auth, json=HELLO)
    doc = assert_problem(r, 429, "concurrency")
    assert doc["quota"] == "concurrency" and int(r.headers["retry-after"]) >= 1
    r = await client.post("/lang/python", headers=auth, content=b"print(1)")
    assert_problem(r, 429, "concurrency")  # every route that produces counts
    # Another key has its own quota.
    assert (await client.post("/v1/executions?wait=0", headers={"X-Api-Key": other},
                              json=HELLO)).status_code == 202
    gateway.answer("c1")
    r = await client.post("/v1/executions?wait=0", headers=auth, json=HELLO)
    assert r.status_code == 202
    assert [req.id for req in gateway.sent].count("c1") == 1


async def test_with_auth_off_no_key_is_needed_and_none_is_stamped(tmp_path: Path) -> None:
    settings = Settings.from_env({}, index_dir=str(tmp_path), ingress_wait_s=5.0)
    gateway = FakeChannel(settings)
    await gateway.start()
    app = create_app(settings, channel=gateway, keys=FakeKeys(settings, name="unused"))
    assert app.state.keys is None
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ingress") as c:
        for headers in ({}, {"X-Api-Key": "garbage"}):
            r = await c.post("/v1/executions?wait=0", headers=headers,
                             json={**HELLO, "key_id": "ffffffffffffffff"})
            assert r.status_code == 202, r.text
            assert "x-ratelimit-limit" not in r.headers
    assert [req.key_id for req in gateway.sent] == [None, None]
    await gateway.stop()


def test_websockets_need_a_key_too(app: Starlette, keys: FakeKeys) -> None:
    client = TestClient(app)  # no `with`: the lifespan (Kafka) is not started
    with pytest.raises(WebSocketDenialResponse) as denied, client.websocket_connect(
            "/api/v2/connect"):
        pass
    assert denied.value.status_code == 401
    assert denied.value.headers["content-type"] == "application/problem+json"
    record, full = issue(keys)
    keys.put(revoke(record, NOW))
    with pytest.raises(WebSocketDenialResponse) as denied, client.websocket_connect(
            "/api/v2/connect", headers={"X-Api-Key": full}):
        pass
    assert denied.value.status_code == 403


@pytest.mark.parametrize(("headers", "expected"), [
    ([(b"Authorization", b"Bearer  a "), (b"X-Api-Key", b"b")], "a"),
    ([(b"authorization", b"bearer a")], "a"),
    ([(b"x-api-key", b"b"), (b"x-auth-token", b"c")], "b"),
    ([(b"x-auth-token", b"c"), (b"x-auth-token", b"d")], "c"),
    ([(b"authorization", b"Token t")], "Token t"),  # another scheme: refused as malformed
    ([(b"x-api-key", b"")], None),
    ([], None),
])
def test_which_header_is_read(headers: list[tuple[bytes, bytes]], expected: str | None) -> None:
    assert presented_key(headers) == expected


def test_open_paths_are_exact_or_under_an_open_folder() -> None:
    assert is_open("/docs/assets/app.js") and is_open("/") and is_open("/metrics")
    assert not is_open("/docsx") and not is_open("/metricsx")
    assert not is_open("/docs/../v1/executions") and not is_open("/assets/..")
    assert not is_open("/v1/executions") and not is_open("/judge0/about")
