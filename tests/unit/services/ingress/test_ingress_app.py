"""The ingress's HTTP layer in-process, over a fake request channel (no broker): fast.

Covers the answers a client can act on (problem+json, 413, 429 + Retry-After,
503 while draining) and every order of GETs and POSTs of one id.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from runstream.schemas.models import ExecutionRequest
from runstream.schemas.stdin import StdinMessage
from runstream.services.ingress.app import Ingress, create_app
from runstream.services.ingress.gateway import Channel, Gateway
from runstream.services.settings import Settings
from runstream.streams.event_feed import EventFeed
from runstream.streams.waiters import Waiters
from runstream.streams.worker_group import WorkerGroup
from starlette.applications import Starlette

PROBLEM = "application/problem+json"
HELLO = {"language": "python", "source": "print(1)"}


class TickingWaiters(Waiters):
    """The real waiters, telling the test whenever someone starts waiting."""

    def __init__(self, tick: asyncio.Event) -> None:
        super().__init__()
        self.tick = tick

    @contextlib.contextmanager
    def waiting(self, exec_id: str) -> Iterator[asyncio.Future[bytes]]:
        with super().waiting(exec_id) as future:
            self.tick.set()
            yield future


class FakeChannel:
    """A request channel (the ingress's :class:`Channel` protocol) over lists and dicts.

    Waiting is the real bookkeeping (``streams/waiters.py``); producing appends to
    ``sent``; results are ``stored`` or given by :meth:`answer`.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.name = "ingress-fake"
        self.tick = asyncio.Event()  # set whenever someone starts waiting for an id
        self.waiters: Waiters = TickingWaiters(self.tick)
        self.events = EventFeed(settings, name=self.name) if settings.events_enabled else None
        self.group = WorkerGroup(settings, client_id="fake")  # never connected
        self.workers = self.group.workers
        self.watch = self.group.watch
        self.sent: list[ExecutionRequest] = []
        self.stored: dict[str, bytes] = {}
        self.results: dict[str, bytes] = {}  # answered: what cached() finds
        self.produced_ids: set[str] = set()
        self.produced_event = asyncio.Event()
        self._producing: dict[str, asyncio.Task[None]] = {}
        self._answered: list[Callable[[str], None]] = []
        self._results: list[Callable[[str, bytes], None]] = []

    async def start(self, timeout_s: float = 30.0) -> None:
        self.waiters.open()

    async def stop(self) -> None:
        self.waiters.release()

    def produced(self, exec_id: str) -> bool:
        return exec_id in self.produced_ids

    async def submit(self, req: ExecutionRequest) -> None:
        task = self._producing.get(req.id)
        if task is None:  # concurrent submits of one id share one produce, as the real one
            task = self._producing[req.id] = asyncio.create_task(self._produce(req))
            task.add_done_callback(lambda _: self._producing.pop(req.id, None))
        await asyncio.shield(task)

    async def _produce(self, req: ExecutionRequest) -> None:
        await asyncio.sleep(0)  # a real produce yields: let concurrent callers interleave
        self.sent.append(req)
        self.produced_ids.add(req.id)
        self.produced_event.set()

    async def send_stdin(self, items: list[StdinMessage]) -> None:
        raise AssertionError("no interactive session expected")

    def cached(self, exec_id: str) -> bytes | None:
        return self.results.get(exec_id)

    async def find(self, exec_id: str) -> bytes | None:
        return self.stored.get(exec_id) or self.results.get(exec_id)

    def is_pending(self, exec_id: str) -> bool:
        return exec_id in self.produced_ids or exec_id in self._producing

    def on_answer(self, fn: Callable[[str], None]) -> None:
        self._answered.append(fn)

    def on_result(self, fn: Callable[[str, bytes], None]) -> None:
        self._results.append(fn)

    def language_versions(self) -> dict[str, list[str]]:
        return self.group.language_versions()

    def reply_assigned(self) -> bool:
        return True

    def worker_count(self) -> int:
        return 1

    def group_status(self) -> dict[str, Any]:
        return {"state": "", "partitions": {}}

    def answer(self, exec_id: str, status: str = "ok") -> bytes:
        """A worker's reply to ``exec_id``."""
        value = orjson.dumps({"id": exec_id, "status": status})
        self.reply(exec_id, value)
        return value

    def reply(self, exec_id: str, value: bytes) -> None:
        """``value`` arrives as the reply to ``exec_id``."""
        self.results[exec_id] = value
        self.produced_ids.discard(exec_id)
        for fn in self._answered:
            fn(exec_id)
        self.waiters.resolve(exec_id, value)


def test_the_fake_is_a_channel(settings: Settings) -> None:
    channel: Channel = FakeChannel(settings)  # mypy checks the protocol
    assert channel.worker_count() == 1


@contextlib.asynccontextmanager
async def in_process(settings: Settings,
                     channel: FakeChannel) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the real app over ``channel``, which is started and stopped here."""
    await channel.start()
    try:
        transport = httpx.ASGITransport(app=create_app(settings, channel=channel))
        async with httpx.AsyncClient(transport=transport, base_url="http://ingress") as c:
            yield c
    finally:
        await channel.stop()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.from_env({}, index_dir=str(tmp_path), ingress_wait_s=5.0,
                             ingress_drain_s=0.2)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Starlette]:
    channel = FakeChannel(settings)
    await channel.start()
    try:
        yield create_app(settings, channel=channel)
    finally:
        await channel.stop()


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ingress") as c:
        yield c


def fake(app: Starlette) -> FakeChannel:
    channel = app.state.channel
    assert isinstance(channel, FakeChannel)
    return channel


def admission(app: Starlette) -> Gateway:
    gateway = app.state.gateway
    assert isinstance(gateway, Gateway)
    return gateway


async def until(gateway: FakeChannel, predicate: Callable[[], bool],
                timeout_s: float = 5.0) -> None:
    """Until ``predicate()`` holds, re-checked whenever a request starts waiting."""
    async with asyncio.timeout(timeout_s):
        while not predicate():
            gateway.tick.clear()
            await gateway.tick.wait()


def assert_problem(r: httpx.Response, status: int, *words: str) -> dict[str, object]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM
    doc = r.json()
    assert doc["status"] == status and doc["detail"] and doc["type"].startswith("https://")
    for word in words:
        assert word in doc["detail"], doc
    return doc  # type: ignore[no-any-return]


# -- validation ----------------------------------------------------------------
async def test_malformed_json_is_400_problem(client: httpx.AsyncClient) -> None:
    assert_problem(await client.post("/v1/executions", content=b"{nope"), 400)


async def test_unknown_language_names_the_supported_ones(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/executions", json={"language": "klingon", "source": "x"})
    assert_problem(r, 400, "python")


async def test_wrong_type_is_422_naming_the_field(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/executions", json={"language": "python", "source": 5})
    assert assert_problem(r, 422)["field"] == "source"


async def test_limit_above_maximum_is_422(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/executions", json={**HELLO, "limits": {"wall_ms": 10**9}})
    assert_problem(r, 422)


async def test_oversize_body_is_413_by_declared_and_by_streamed_length(
        client: httpx.AsyncClient, settings: Settings) -> None:
    big = b"x" * (settings.ingress_max_body_bytes + 1)
    assert_problem(await client.post("/v1/executions", content=big), 413)

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it streams
        for _ in range(3):
            yield b"y" * (settings.ingress_max_body_bytes // 2)

    assert_problem(await client.post("/v1/executions", content=chunks()), 413)


# -- admission -----------------------------------------------------------------
async def test_backlog_over_the_bound_is_429_with_retry_after_in_milliseconds(
        client: httpx.AsyncClient, app: Starlette) -> None:
    gateway, backlog = fake(app), admission(app).backlog
    backlog.on_poll(lag=200, slots=2)  # 200 x 1 s / 2 slots = 100 s > 30 s
    t0 = time.perf_counter()
    r = await client.post("/v1/executions", json=HELLO)
    elapsed = time.perf_counter() - t0
    doc = assert_problem(r, 429, "Retry-After")
    assert int(r.headers["retry-after"]) >= 70 and doc["retry_after"] >= 70
    assert elapsed < 0.1 and gateway.sent == []
    backlog.on_poll(lag=0, slots=2)
    r = await client.post("/v1/executions?wait=0", json=HELLO)
    assert r.status_code == 202 and len(gateway.sent) == 1


async def test_bodies_over_the_budget_are_429_before_being_read(
        client: httpx.AsyncClient, app: Starlette) -> None:
    ingress: Ingress = app.state.ingress
    ingress.bodies.held = ingress.bodies.max_bytes  # others are being read right now
    r = await client.post("/v1/executions", json=HELLO)
    assert_problem(r, 429, "bodies")
    assert r.headers["retry-after"] == "1"
    ingress.bodies.held = 0
    assert (await client.post("/v1/executions?wait=0", json=HELLO)).status_code == 202
    assert ingress.bodies.held == 0  # released once produced


# -- deadlines -----------------------------------------------------------------
async def test_a_request_without_deadline_gets_the_default_one(
        client: httpx.AsyncClient, app: Starlette, settings: Settings) -> None:
    await client.post("/v1/executions?wait=0", json=HELLO)
    await client.post("/v1/executions?wait=0",
                      json={**HELLO, "deadline": "2031-01-01T00:00:00Z"})
    default, given = fake(app).sent
    assert default.deadline is not None and given.deadline is not None
    assert abs(default.deadline.timestamp() - time.time() - settings.ingress_deadline_s) < 5
    assert given.deadline.year == 2031


# -- GET / POST interleavings ----------------------------------------------------
async def test_get_before_post_does_not_swallow_the_post(
        client: httpx.AsyncClient, app: Starlette) -> None:
    gateway = fake(app)
    r = await client.get("/v1/executions/g1?wait=0.05")
    assert_problem(r, 404, "g1")
    r = await client.post("/v1/executions?wait=0", json={**HELLO, "id": "g1"})
    assert r.status_code == 202 and r.headers["location"] == "/v1/executions/g1"
    assert [s.id for s in gateway.sent] == ["g1"]
    assert (await client.get("/v1/executions/g1")).status_code == 202  # produced here
    gateway.answer("g1")
    assert (await client.get("/v1/executions/g1")).json()["status"] == "ok"


async def test_a_waiting_get_and_a_post_of_the_same_id_both_get_the_result(
        client: httpx.AsyncClient, app: Starlette) -> None:
    gateway = fake(app)
    get = asyncio.create_task(client.get("/v1/executions/g2?wait=5"))
    await until(gateway, lambda: "g2" in gateway.waiters)
    post = asyncio.create_task(client.post("/v1/executions", json={**HELLO, "id": "g2"}))
    await asyncio.wait_for(gateway.produced_event.wait(), 5)
    gateway.answer("g2")
    got, posted = await asyncio.wait_for(asyncio.gather(get, post), 5)
    assert got.status_code == posted.status_code == 200
    assert got.json() == posted.json() == {"id": "g2", "status": "ok"}
    assert [s.id for s in gateway.sent] == ["g2"] and not gateway.waiters


async def test_concurrent_posts_of_one_id_produce_once_and_all_get_the_answer(
        client: httpx.AsyncClient, app: Starlette) -> None:
    gateway = fake(app)
    posts = [asyncio.create_task(client.post("/v1/executions", json={**HELLO, "id": "p1"}))
             for _ in range(5)]
    await asyncio.wait_for(gateway.produced_event.wait(), 5)
    await until(gateway, lambda: "p1" in gateway.waiters and gateway.waiters.count("p1") == 5)
    gateway.answer("p1")
    answers = await asyncio.wait_for(asyncio.gather(*posts), 5)
    assert {r.status_code for r in answers} == {200}
    assert [s.id for s in gateway.sent] == ["p1"]


async def test_a_retry_of_a_finished_id_is_answered_from_the_store_not_rerun(
        client: httpx.AsyncClient, app: Starlette) -> None:
    gateway = fake(app)
    gateway.stored["old"] = orjson.dumps({"id": "old", "status": "wrong_answer"})
    r = await client.post("/v1/executions", json={**HELLO, "id": "old"})
    assert r.json()["status"] == "wrong_answer" and gateway.sent == []
    assert (await client.get("/v1/executions/old")).json()["status"] == "wrong_answer"


async def test_post_get_post_after_timeout_joins_the_request_in_flight(
        client: httpx.AsyncClient, app: Starlette) -> None:
    gateway = fake(app)
    assert (await client.post("/v1/executions?wait=0.05",
                              json={**HELLO, "id": "slow"})).status_code == 202
    assert (await client.get("/v1/executions/slow?wait=0.05")).status_code == 202
    again = asyncio.create_task(client.post("/v1/executions", json={**HELLO, "id": "slow"}))
    await until(gateway, lambda: "slow" in gateway.waiters)
    gateway.answer("slow")
    assert (await asyncio.wait_for(again, 5)).status_code == 200
    assert [s.id for s in gateway.sent] == ["slow"]


# -- stopping ----------------------------------------------------------------------
async def test_draining_fails_readyz_refuses_posts_and_releases_waiters_with_202(
        client: httpx.AsyncClient, app: Starlette) -> None:
    gateway = fake(app)
    ingress: Ingress = app.state.ingress
    assert (await client.get("/readyz")).status_code == 200
    answered = asyncio.create_task(client.post("/v1/executions", json={**HELLO, "id": "d1"}))
    stuck = asyncio.create_task(client.post("/v1/executions", json={**HELLO, "id": "d2"}))
    await until(gateway, lambda: {"d1", "d2"} <= set(gateway.waiters))
    drain = asyncio.create_task(ingress.drain())
    await asyncio.sleep(0)  # drain() marks draining before it first awaits
    assert ingress.draining
    assert_problem(await client.get("/readyz"), 503, "draining")
    r = await client.post("/v1/executions", json=HELLO)
    assert_problem(r, 503, "stopping")
    assert r.headers["retry-after"] == "1"
    gateway.answer("d1")
    assert (await asyncio.wait_for(answered, 5)).status_code == 200
    r = await asyncio.wait_for(stuck, 5)  # past the drain bound (0.2 s)
    assert r.status_code == 202 and r.headers["location"] == "/v1/executions/d2"
    await asyncio.wait_for(drain, 5)


async def test_languages_list_only_live_workers(app: Starlette,
                                                client: httpx.AsyncClient) -> None:
    gateway = fake(app)
    gateway.workers.update({"w1": {"concurrency": 2, "languages": {"python": "3.11.2"}},
                            "dead": {"concurrency": 2, "languages": {"python": "3.9.0",
                                                                     "ruby": "3.1"}}})
    watch = gateway.watch
    watch.members = ["runstream-worker-w1"]
    doc = (await client.get("/v1/languages")).json()
    by_name = {lang["name"]: lang for lang in doc["languages"]}
    assert by_name["python"]["versions"] == ["3.11.2"]
    assert by_name["ruby"]["versions"] == []
    assert watch.slots == 2


async def test_bodies_read_at_once_share_a_budget_and_the_excess_is_refused_unread(
        tmp_path: Path) -> None:
    settings = Settings.from_env({}, index_dir=str(tmp_path), ingress_max_body_bytes=1024 * 1024,
                                 ingress_body_budget_bytes=2 * 1024 * 1024)
    gateway = FakeChannel(settings)
    await gateway.start()
    app = create_app(settings, channel=gateway)
    ingress: Ingress = app.state.ingress
    release, both_reading = asyncio.Event(), asyncio.Event()
    reading: list[int] = []
    body = orjson.dumps({**HELLO, "stdin": "z" * (1024 * 1024 - 100)})

    async def slow() -> AsyncIterator[bytes]:  # a client that sends its 1 MiB slowly
        yield body[:10]
        reading.append(1)  # the ingress asked for more: it has reserved this body
        if len(reading) == 2:
            both_reading.set()
        await release.wait()
        yield body[10:]

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ingress") as c:
        headers = {"content-length": str(len(body))}
        slow_posts = [asyncio.create_task(c.post("/v1/executions?wait=0", content=slow(),
                                                 headers=headers)) for _ in range(2)]
        await asyncio.wait_for(both_reading.wait(), 5)
        assert ingress.bodies.held == 2 * len(body)
        t0 = time.perf_counter()
        r = await c.post("/v1/executions?wait=0", content=body)
        assert_problem(r, 429, "bodies")
        assert time.perf_counter() - t0 < 0.1 and r.headers["retry-after"] == "1"
        release.set()
        assert [p.status_code for p in await asyncio.gather(*slow_posts)] == [202, 202]
        assert ingress.bodies.held == 0
    await gateway.stop()
