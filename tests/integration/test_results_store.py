"""ResultStore against a real broker: any id within retention, bounded memory, resumable."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from runstream.schemas.errors import BrokerUnavailable
from runstream.services.settings import Settings
from runstream.streams.results import ResultStore
from runstream.streams.topics import ensure_topics

pytestmark = pytest.mark.kafka


@pytest.fixture
async def settings(fresh_settings: Settings, tmp_path: Path) -> Settings:
    await ensure_topics(fresh_settings)
    return replace(fresh_settings, index_dir=str(tmp_path / "index"))


def result(exec_id: str, status: str = "ok", pad: int = 0) -> bytes:
    return orjson.dumps({"id": exec_id, "status": status, "pad": "x" * pad})


async def publish(producer: AIOKafkaProducer, settings: Settings, exec_id: str,
                  value: bytes) -> tuple[int, int]:
    meta = await asyncio.wait_for(
        producer.send_and_wait(settings.results_topic, value, key=exec_id.encode()), 10)
    return meta.partition, meta.offset


async def started(settings: Settings, name: str = "test-store") -> ResultStore:
    store = ResultStore(settings, name=name)
    await store.start(timeout_s=20)
    return store


async def test_an_id_finished_before_the_store_started_is_found(
        settings: Settings, producer: AIOKafkaProducer) -> None:
    await publish(producer, settings, "before", result("before"))
    store = await started(settings)
    try:
        assert await store.get("before", timeout_s=10) == result("before")
        assert await store.get("never", timeout_s=10) is None
    finally:
        await store.stop()


async def test_an_id_evicted_from_memory_is_read_back_from_kafka(
        settings: Settings, producer: AIOKafkaProducer) -> None:
    small = replace(settings, ingress_results_cache=3)
    ids = [f"evict-{n}" for n in range(20)]
    for exec_id in ids:
        await publish(producer, small, exec_id, result(exec_id, pad=100))
    store = await started(small)
    try:
        assert await store.caught_up(10)
        assert len(store.recent) == 3 and store.cached(ids[0]) is None
        for exec_id in (ids[0], ids[7], ids[0]):
            assert await store.get(exec_id, timeout_s=10) == result(exec_id, pad=100)
    finally:
        await store.stop()


async def test_a_restarted_store_resumes_instead_of_rereading(
        settings: Settings, producer: AIOKafkaProducer) -> None:
    for n in range(5):
        await publish(producer, settings, f"r{n}", result(f"r{n}"))
    first = await started(settings, name="resumer")
    seen: list[str] = []
    first.add_listener(lambda i, v: seen.append(i))
    try:
        assert await first.caught_up(10)
    finally:
        await first.stop()
    await publish(producer, settings, "r-late", result("r-late"))
    second = ResultStore(settings, name="resumer")
    again: list[str] = []
    second.add_listener(lambda i, v: again.append(i))
    await second.start(timeout_s=20)
    try:
        assert await second.caught_up(10)
        assert again == ["r-late"]  # only what was published while it was down
        assert await second.get("r2", timeout_s=10) == result("r2")  # from the index
    finally:
        await second.stop()
    other = await started(settings, name="newcomer")  # a new name reads all of retention
    try:
        assert await other.get("r0", timeout_s=10) == result("r0")
    finally:
        await other.stop()


async def test_the_newest_result_of_an_id_wins(
        settings: Settings, producer: AIOKafkaProducer) -> None:
    await publish(producer, settings, "twice", result("twice", "internal_error"))
    await publish(producer, settings, "twice", result("twice", "ok"))
    store = await started(settings)
    try:
        assert orjson.loads(await store.get("twice", timeout_s=10) or b"")["status"] == "ok"
        store.recent.pop("twice")  # the index must agree, not only the memory
        assert orjson.loads(await store.get("twice", timeout_s=10) or b"")["status"] == "ok"
        await publish(producer, settings, "twice", result("twice", "wrong_answer"))
        assert orjson.loads(await store.get("twice", timeout_s=10) or b"")["status"] == (
            "wrong_answer")
    finally:
        await store.stop()


async def test_get_waits_until_the_index_has_read_what_was_published_before_it(
        settings: Settings, producer: AIOKafkaProducer) -> None:
    store = await started(settings)
    try:
        for n in range(30):  # each get follows its publish at once: no sleep, no retry
            await publish(producer, settings, f"w{n}", result(f"w{n}"))
            assert await store.get(f"w{n}", timeout_s=10) == result(f"w{n}")
        heard: asyncio.Queue[str] = asyncio.Queue()
        store.add_listener(lambda i, v: heard.put_nowait(i))
        await publish(producer, settings, "heard", result("heard"))
        assert await asyncio.wait_for(heard.get(), 10) == "heard"
    finally:
        await store.stop()


async def test_a_look_up_ends_the_pause_of_a_store_that_reads_late(
        settings: Settings, producer: AIOKafkaProducer) -> None:
    # An ingress's (and a worker's) store pauses after each batch to read in fewer
    # fetches; a look-up must not wait for the pause. A minute's pause, 5 s bounds: only
    # the look-up ending it can pass.
    store = ResultStore(settings, name="late-store", lag_ms=60_000)
    await store.start(timeout_s=20)
    try:
        for n in range(3):  # each publish lands while the store pauses after the last one
            await publish(producer, settings, f"late{n}", result(f"late{n}"))
            assert await store.get(f"late{n}", timeout_s=5, exact=True) == result(f"late{n}")
    finally:
        await store.stop()


async def test_a_noted_result_is_known_before_it_is_read(settings: Settings) -> None:
    store = await started(settings)
    try:
        store.note("mine", result("mine"), 0, 10**6)
        assert store.cached("mine") == result("mine")
        store.recent.put("mine", result("mine", "stale"), 0, 5)  # an older record read late
        assert store.cached("mine") == result("mine")
    finally:
        await store.stop()


async def test_stop_is_bounded_when_the_broker_is_unreachable(settings: Settings) -> None:
    dead = replace(settings, bootstrap_servers="127.0.0.1:1")
    store = ResultStore(dead, name="dead")
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    with pytest.raises(BrokerUnavailable):
        await store.start(timeout_s=1.0)
    await store.stop()
    assert loop.time() - t0 < 15
