"""The ingress as a real process, with a stand-in worker group in the test.

The stand-in joins the worker group under a worker's client id, announces its
slots, and answers requests after a fixed time (ids starting ``hold-`` never),
so these tests depend on the ingress alone, not on the real worker's behaviour:

- overload: a flood gets ``429`` + ``Retry-After`` quickly, and every accepted
  request is answered;
- graceful stop: SIGTERM fails ``/readyz`` first, waiting requests get their
  result or ``202`` + ``Location``, and the process exits within the bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import pytest
from aiokafka import ConsumerRebalanceListener
from runstream.schemas.codec import decode_request
from runstream.services.settings import Settings
from runstream.streams import kafka
from runstream.streams.topics import ensure_topics

from tests.system import _spawn, base_env, free_port, stop

pytestmark = pytest.mark.kafka


@dataclass
class StandIn:
    """A worker group of one member that answers after ``exec_s`` (``hold-`` ids: never)."""

    settings: Settings
    slots: int
    exec_s: float
    seen: dict[str, asyncio.Event] = field(default_factory=dict)
    answered: list[str] = field(default_factory=list)

    def saw(self, exec_id: str) -> asyncio.Event:
        return self.seen.setdefault(exec_id, asyncio.Event())

    async def run(self, joined: asyncio.Event) -> None:
        s = self.settings
        producer = kafka.producer(s, client_id="stand-in-producer")
        consumer = kafka.consumer(s, client_id="runstream-worker-stand-in", group_id=s.worker_group,
                                  auto_offset_reset="earliest", max_poll_records=self.slots)
        await kafka.start(producer, s)
        await kafka.start(consumer, s)

        class Joined(ConsumerRebalanceListener):  # type: ignore[misc]
            async def on_partitions_revoked(self, revoked: object) -> None:
                pass

            async def on_partitions_assigned(self, assigned: object) -> None:
                joined.set()

        try:
            await producer.send_and_wait(s.workers_topic, orjson.dumps(
                {"worker": "stand-in", "concurrency": self.slots,
                 "languages": {"python": "3.11.2"}}), key=b"stand-in")
            consumer.subscribe([s.requests_topic], listener=Joined())
            while True:
                batches = await consumer.getmany(timeout_ms=200)
                records = [r for rs in batches.values() for r in rs]
                await asyncio.gather(*(self._answer(producer, r.key, r.value) for r in records))
                if records:
                    await consumer.commit()
        finally:
            await kafka.close(consumer)
            await kafka.close(producer)

    async def _answer(self, producer: object, key: bytes, value: bytes) -> None:
        req = decode_request(value, key=key)
        self.saw(req.id).set()
        if req.id.startswith("hold-"):
            return
        started = datetime.now(UTC)
        await asyncio.sleep(self.exec_s)  # the stand-in's "execution"
        doc = {"id": req.id, "status": "ok", "run": {"stdout": "1\n"}, "worker": "stand-in",
               "timestamps": {"started": started.isoformat(),
                              "finished": datetime.now(UTC).isoformat()}}
        assert req.reply_to is not None
        p = producer
        await p.send_and_wait(req.reply_to.topic, orjson.dumps(doc), key=key,  # type: ignore[attr-defined]
                              partition=req.reply_to.partition)
        await p.send_and_wait(self.settings.results_topic, orjson.dumps(doc), key=key)  # type: ignore[attr-defined]
        self.answered.append(req.id)


@dataclass
class Running:
    url: str
    proc: subprocess.Popen[bytes]
    worker: StandIn
    log: Path


@contextlib.contextmanager
def _ingress(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    proc = _spawn(env, ["ingress"], log)
    try:
        yield proc
    finally:
        stop(proc, grace_s=30)


@contextlib.asynccontextmanager
async def running(kafka_addr: str, tmp_path: Path, *, slots: int, exec_s: float,
                  **extra: str) -> AsyncIterator[Running]:
    env = base_env(kafka_addr, uuid.uuid4().hex[:8]) | {
        "RUNSTREAM_INGRESS_PORT": str(free_port()), "RUNSTREAM_INDEX_DIR": str(tmp_path / "ix"),
        **{f"RUNSTREAM_{k.upper()}": v for k, v in extra.items()}}
    settings = Settings.from_env(env)
    await ensure_topics(settings)
    worker = StandIn(settings, slots, exec_s)
    joined = asyncio.Event()
    task = asyncio.create_task(worker.run(joined))
    log = tmp_path / "ingress.log"
    url = f"http://127.0.0.1:{settings.ingress_port}"
    try:
        await asyncio.wait_for(joined.wait(), 60)
        with _ingress(env, log) as proc:
            await _ready(url, proc, log)
            yield Running(url, proc, worker, log)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(task, 15)


async def _ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Until /readyz answers 200 (each try is a real request, bounded by the deadline)."""
    async with httpx.AsyncClient(timeout=2) as c, asyncio.timeout(90):
        while True:
            if proc.poll() is not None:
                tail = await asyncio.to_thread(log.read_text)
                pytest.fail(f"ingress exited {proc.returncode}:\n{tail[-3000:]}")
            try:
                if (await c.get(f"{url}/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            # Between tries, wait on the process itself (it must not exit), bounded.
            with contextlib.suppress(subprocess.TimeoutExpired):
                await asyncio.to_thread(proc.wait, 0.2)


async def test_a_flood_is_shed_with_429_and_every_accepted_request_is_answered(
        kafka: str, tmp_path: Path) -> None:
    async with running(kafka, tmp_path, slots=2, exec_s=2.0,
                       ingress_max_backlog_s="2") as sys_:
        async with httpx.AsyncClient(base_url=sys_.url, timeout=60,
                                     limits=httpx.Limits(max_connections=200)) as c:
            async def post(n: int | str) -> tuple[str, httpx.Response, float]:
                exec_id = f"flood-{n}"
                t0 = time.perf_counter()
                r = await c.post("/v1/executions?wait=45",
                                 json={"id": exec_id, "language": "python",
                                       "source": "print(1)"})
                return exec_id, r, time.perf_counter() - t0

            flood = asyncio.gather(*(post(n) for n in range(120)))
            # While the accepted ones run (2 s each on 2 slots), one client alone is refused:
            # that latency is the ingress's, not the flood's.
            await asyncio.wait_for(sys_.worker.saw("flood-0").wait(), 20)
            alone = [await post(f"alone-{n}") for n in range(10)]
            answers = [*await flood, *alone]
        alone_ms = sorted(dt * 1000 for _, r, dt in alone if r.status_code == 429)
        assert alone_ms, [r.status_code for _, r, _ in alone]
        median = alone_ms[len(alone_ms) // 2]
        print(f"\n429 latency for a lone client during overload: median {median:.1f} ms, "
              f"max {alone_ms[-1]:.1f} ms ({len(alone_ms)} of 10 refused)")
        shed = [(i, r, dt) for i, r, dt in answers if r.status_code == 429]
        accepted = [(i, r) for i, r, _ in answers if r.status_code != 429]
        assert shed and accepted, [r.status_code for _, r, _ in answers]
        for _, r, _ in shed:
            assert r.headers["content-type"] == "application/problem+json"
            assert int(r.headers["retry-after"]) >= 1 and "Retry-After" in r.json()["detail"]
        # Every accepted request answered with its own result; nothing refused was produced.
        for exec_id, r in accepted:
            assert r.status_code == 200 and r.json()["id"] == exec_id, r.text
        assert not {i for i, _, _ in shed} & set(sys_.worker.seen)
        slowest = max(dt for _, _, dt in shed)
        print(f"{len(shed)} of {len(answers)} shed with 429; slowest 429 "
              f"{slowest * 1000:.0f} ms (under a concurrent flood of 120); "
              f"{len(accepted)} accepted, all answered")
        assert slowest < 2.0 and median < 200


async def test_sigterm_drains_then_exits_within_the_bound(kafka: str, tmp_path: Path) -> None:
    drain_s = 4.0
    async with running(kafka, tmp_path, slots=4, exec_s=2.0,
                       ingress_drain_s=str(drain_s)) as sys_:
        async with httpx.AsyncClient(base_url=sys_.url, timeout=60) as c:
            quick = asyncio.create_task(c.post("/v1/executions", json={
                "id": "quick-1", "language": "python", "source": "print(1)"}))
            held = asyncio.create_task(c.post("/v1/executions", json={
                "id": "hold-1", "language": "python", "source": "print(1)"}))
            polling = asyncio.create_task(c.get("/v1/executions/hold-1?wait=60"))
            for exec_id in ("quick-1", "hold-1"):
                await asyncio.wait_for(sys_.worker.saw(exec_id).wait(), 20)
            t0 = time.monotonic()
            sys_.proc.send_signal(signal.SIGTERM)
            async with asyncio.timeout(5):
                while (r := await c.get("/readyz")).status_code != 503:
                    pass  # each iteration is a request to a process being signalled
            assert r.json()["type"].endswith("/draining")
            refused = await c.post("/v1/executions", json={"language": "python",
                                                           "source": "print(1)"})
            assert refused.status_code == 503 and refused.headers["retry-after"]
            got_quick = await asyncio.wait_for(quick, drain_s + 5)
            got_held = await asyncio.wait_for(held, drain_s + 5)
            got_poll = await asyncio.wait_for(polling, drain_s + 5)
        assert got_quick.status_code == 200 and got_quick.json()["id"] == "quick-1"
        for r in (got_held, got_poll):
            assert r.status_code == 202 and r.headers["location"] == "/v1/executions/hold-1"
        code = await asyncio.to_thread(sys_.proc.wait, drain_s + 15)
        took = time.monotonic() - t0
        print(f"\ningress stopped in {took:.1f}s (drain bound {drain_s}s), exit {code}")
        assert took < drain_s + 10
        assert code == 0, "a graceful stop is a clean exit"
