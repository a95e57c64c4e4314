"""Each fix of streams/faust_overrides.py, shown against stock Faust's behaviour.

The numbers are those of the module's docstring (and of issue 20). Every test runs
Faust's real consumer classes in-process, without a broker: nothing here connects.
Where a commit would reach the broker, ``_commit`` (the one method that talks to it)
is replaced by a recorder, and the consumer's assignment is set by hand; the same
paths run against a real broker in tests/integration/test_faust_worker.py, the
fencing test and the chaos suite.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import faust
import pytest
from aiokafka import TopicPartition
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from aiokafka.errors import KafkaConnectionError
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP as FaustTP
from runstream.services.settings import Settings
from runstream.streams import faust_app, faust_overrides
from runstream.streams.agent import Agent
from runstream.streams.handling import Delivery
from runstream.streams.membership import Membership

SETTINGS = Settings.from_env({}, worker_id="w-unit", worker_concurrency=4,
                             worker_fetch_max_wait_ms=500)
TP = TopicPartition("runstream.requests", 0)


class _Handler:
    """Runs nothing: answers at once, or when its gate opens, or fails as told."""

    def __init__(self) -> None:
        self.handled: list[int] = []
        self.gate: asyncio.Event | None = None
        #: Per offset, a gate of its own (else :attr:`gate`, if any).
        self.gates: dict[int, asyncio.Event] = {}
        self.fail = False
        self.owns: Callable[[Delivery], Any] | None = None

    async def handle(self, d: Delivery, release: Callable[[], None]) -> bool:
        self.handled.append(d.offset)
        gate = self.gates.get(d.offset, self.gate)
        if gate is not None:
            await gate.wait()
        release()
        if self.fail:
            raise RuntimeError("a bug")
        return True


@dataclass
class _Message:
    topic: str
    partition: int
    offset: int
    key: bytes | None = b"k"
    value: bytes | None = b"{}"
    timestamp: float | None = 1.0


@dataclass
class _Event:
    message: _Message


class _Acks:
    def __init__(self) -> None:
        self.acked: list[int] = []

    async def __call__(self, event: Any) -> bool:
        self.acked.append(event.message.offset)
        return True


@pytest.fixture
async def ours() -> AsyncIterator[tuple[faust_app.WorkerApp, Agent, _Handler]]:
    handler = _Handler()
    agent = Agent(SETTINGS, handler)  # type: ignore[arg-type]
    app = faust_app.build(SETTINGS, agent, [SETTINGS.requests_topic])
    agent.owned = frozenset({TP})
    yield app, agent, handler
    for task in list(agent.tasks):
        task.cancel()


@pytest.fixture
def stock() -> faust.App:
    return faust.App("stock-faust", broker="kafka://127.0.0.1:1", autodiscover=False)


class _Recorder:
    """Stands for the broker's offset commit (``Consumer._commit``)."""

    def __init__(self) -> None:
        self.commits: list[dict[Any, int]] = []

    async def __call__(self, offsets: dict[Any, int]) -> bool:
        self.commits.append(dict(offsets))
        return True


def _wire(consumer: Any, assignment: set[Any]) -> _Recorder:
    recorder = _Recorder()
    consumer._commit = recorder
    consumer.assignment = lambda: set(assignment)
    return recorder


async def _take(agent: Agent, acks: _Acks, *offsets: int) -> None:
    for offset in offsets:
        await agent.take(_Event(_Message(TP.topic, TP.partition, offset)), acks)


async def _settle(agent: Agent) -> None:
    if agent.tasks:
        await asyncio.wait(list(agent.tasks), timeout=5)


# 1. The commit rule (faust-streaming #606) ----------------------------------------

async def test_1_stock_faust_commits_past_a_running_offset(stock: faust.App) -> None:
    consumer = stock.consumer
    consumer._committed_offset[TP] = 2585  # 2585 is running; 2586-2589 are done
    consumer._acked[TP] = [2586, 2587, 2588, 2589]
    assert consumer._filter_committable_offsets([TP]) == {TP: 2590}  # the bug


async def test_1_ours_holds_the_commit_while_the_lowest_offset_runs(ours: Any) -> None:
    app, agent, handler = ours
    acks = _Acks()
    consumer = app.consumer
    consumer._committed_offset[TP] = 2585
    first = handler.gates[2585] = asyncio.Event()
    await _take(agent, acks, 2585, 2586, 2587, 2588, 2589)
    await asyncio.sleep(0)
    await _settle_except(agent, 1)
    # Faust's own ack list would allow 2590; the ledger says 2585 still runs.
    consumer._acked[TP] = [2586, 2587, 2588, 2589]
    assert consumer._filter_committable_offsets([TP]).get(TP, 2585) == 2585
    recorder = _wire(consumer, {TP})
    await consumer.commit()
    assert all(c[TP] <= 2585 for c in recorder.commits), recorder.commits
    recorder.commits.clear()
    first.set()
    await _settle(agent)
    await consumer.commit()
    assert recorder.commits == [{TP: 2590}]
    assert acks.acked.count(2585) == 1


async def _settle_except(agent: Agent, left: int) -> None:
    async with asyncio.timeout(5):
        while len(agent.tasks) > left:  # noqa: ASYNC110 -- tasks end by themselves
            await asyncio.sleep(0.01)


# 2. Revocation ------------------------------------------------------------------

async def test_2_stock_faust_drops_acks_of_revoked_partitions_uncommitted() -> None:
    async def noop(*_: Any) -> None:
        return None

    app = faust.App("stock-revoke", broker="kafka://127.0.0.1:1", autodiscover=False)
    consumer = app.transport.create_consumer(
        callback=noop, on_partitions_revoked=noop, on_partitions_assigned=noop)
    recorder = _wire(consumer, {TP})
    consumer._committed_offset[TP] = 10
    consumer._acked[TP] = [10, 11, 12]
    await consumer.on_partitions_revoked({TP})
    await consumer.commit()
    assert recorder.commits == []  # 10-12 were done, and will run again elsewhere


async def test_2_ours_commits_what_is_safe_before_letting_go(ours: Any) -> None:
    app, agent, _ = ours
    acks = _Acks()
    await _take(agent, acks, 10, 11, 12)
    await _settle(agent)

    async def noop(*_: Any) -> None:
        return None

    consumer = faust_overrides.Consumer(
        app.transport, callback=noop, on_partitions_revoked=noop,
        on_partitions_assigned=noop)
    recorder = _wire(consumer, {TP})
    await consumer.on_partitions_revoked({TP})
    assert recorder.commits == [{TP: 13}]


# 3. Rebalances do not wait for runs; re-deliveries are skipped --------------------

def test_3_stock_faust_waits_for_streams_on_rebalance(stock: faust.App) -> None:
    assert stock.conf.stream_wait_empty is True


async def test_3_ours_does_not_wait_and_skips_redeliveries(ours: Any) -> None:
    app, agent, handler = ours
    assert app.conf.stream_wait_empty is False
    acks = _Acks()
    handler.gate = asyncio.Event()
    await _take(agent, acks, 5, 6)
    # After a rebalance Faust seeks back to the committed offset and delivers 5 and 6
    # again while they run: neither runs a second time.
    await _take(agent, acks, 5, 6)
    handler.gate.set()
    await _settle(agent)
    assert handler.handled == [5, 6]


class _Seeks:
    """Stands for aiokafka's consumer: committed offsets, and the seeks made."""

    def __init__(self, committed: dict[Any, int | None]) -> None:
        self.committed = committed
        self.to_beginning: list[Any] = []

    async def seek_to_committed(self) -> dict[Any, int | None]:
        return dict(self.committed)

    async def seek_to_beginning(self, *tps: Any) -> None:
        self.to_beginning.extend(tps)


async def _seek_after_rebalance(app: faust.App) -> _Seeks:
    seeks = _Seeks({TP: None, TopicPartition(TP.topic, 1): 0, TopicPartition(TP.topic, 2): 7})
    app.consumer._thread._consumer = seeks
    await app.consumer._thread.seek_to_committed()
    return seeks


async def test_3_stock_leaves_a_partition_never_committed_where_it_was_read_to(
        stock: faust.App) -> None:
    # Stock's thread hands the call to aiokafka through its method queue; run in place.
    async def in_place(fun: Any, *args: Any, **kwargs: Any) -> Any:
        return await fun(*args, **kwargs)
    stock.consumer._thread.call_thread = in_place
    assert (await _seek_after_rebalance(stock)).to_beginning == []


async def test_3_ours_reads_a_partition_never_committed_again_from_its_start(
        ours: Any) -> None:
    app, _, _ = ours
    seeks = await _seek_after_rebalance(app)
    assert seeks.to_beginning == [TP, TopicPartition(TP.topic, 1)]


# 4. Cancelled or failed runs are never acked ---------------------------------------

def test_4_stock_stream_acks_by_default(stock: faust.App) -> None:
    assert stock.stream([]).enable_acks is True


async def test_4_ours_reads_a_noack_stream(ours: Any) -> None:
    app, _, _ = ours
    seen: list[bool] = []

    class _Stream:
        def noack(self) -> _Stream:
            seen.append(True)
            return self

        async def events(self) -> AsyncIterator[Any]:
            return
            yield

        async def ack(self, event: Any) -> bool:
            return True

    agent = next(iter(app.agents.values()))
    await agent.fun(_Stream())
    assert seen == [True]


async def test_4_ours_acks_only_stored_answers(ours: Any) -> None:
    _, agent, handler = ours
    acks = _Acks()
    await _take(agent, acks, 1)
    await _settle(agent)
    handler.fail = True
    await _take(agent, acks, 2)
    await _settle(agent)
    handler.fail = False
    handler.gate = asyncio.Event()
    await _take(agent, acks, 3)
    await asyncio.sleep(0)
    for task in list(agent.tasks):
        task.cancel()
    await asyncio.wait(list(agent.tasks) or [asyncio.sleep(0)], timeout=5)
    assert acks.acked == [1]
    assert agent.safe_offset(TP) == 2  # neither 2 nor 3 is ever committed over


async def test_4_a_record_delivered_after_the_drain_began_is_left_to_the_next_owner(
        ours: Any) -> None:
    _, agent, handler = ours
    acks = _Acks()
    await _take(agent, acks, 1)
    await _settle(agent)
    await agent.drain(1.0)
    # Fetched before the drain, delivered after it: a run the drain would not wait for.
    await _take(agent, acks, 2)
    assert not agent.tasks and handler.handled == [1] and acks.acked == [1]
    assert agent.safe_offset(TP) == 2  # the next owner reads it again


# 5. Fetch wait and the fixed sleep ---------------------------------------------------

async def test_5_stock_faust_hard_codes_a_fetch_wait_of_1500_ms(stock: faust.App) -> None:
    thread = stock.consumer._thread
    consumer = thread._create_worker_consumer(stock.transport)
    assert consumer._fetch_max_wait_ms == 1500


async def test_5_ours_takes_the_fetch_wait_from_the_settings(ours: Any) -> None:
    app, _, _ = ours
    consumer = app.consumer._thread._create_worker_consumer(app.transport)
    assert consumer._fetch_max_wait_ms == SETTINGS.worker_fetch_max_wait_ms == 500


async def test_5_stock_sleeps_a_fixed_second_with_nothing_assigned(stock: faust.App) -> None:
    consumer = stock.consumer
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)

    consumer.sleep = sleep
    consumer._active_partitions = set()
    await consumer._wait_next_records(1.0)
    assert slept == [1]


async def test_5_ours_wakes_on_a_membership_change_instead(ours: Any) -> None:
    app, agent, _ = ours
    consumer = app.consumer
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)

    async def touched() -> None:
        return None

    consumer.sleep = sleep
    consumer._thread.keep_poll_clock = touched
    consumer._active_partitions = set()
    waiting = asyncio.create_task(consumer._wait_next_records(30.0))
    await asyncio.sleep(0)
    agent.membership.changed()
    records, _ = await asyncio.wait_for(waiting, 5)
    assert records == {} and slept == []


# 6. Our assignor, read safely from the consumer's thread -----------------------------

async def test_6_stock_faust_never_uses_the_assignor_of_the_app(stock: faust.App) -> None:
    # Faust's own table assignor (standby replicas default to 1), else round robin.
    consumer = stock.consumer._thread._create_worker_consumer(stock.transport)
    assert consumer._partition_assignment_strategy == [stock.assignor]
    bare = faust.App("stock-no-standby", broker="kafka://127.0.0.1:1", autodiscover=False,
                     table_standby_replicas=0)
    consumer = bare.consumer._thread._create_worker_consumer(bare.transport)
    assert consumer._partition_assignment_strategy == [RoundRobinPartitionAssignor]


async def test_6_ours_uses_the_busy_sticky_assignor(ours: Any) -> None:
    app, agent, _ = ours
    consumer = app.consumer._thread._create_worker_consumer(app.transport)
    assert tuple(consumer._partition_assignment_strategy) == (agent.assignor,)
    assert agent.assignor.name == "runstream-busy-sticky"


async def test_6_the_assignor_reads_the_agent_from_another_thread(ours: Any) -> None:
    _, agent, handler = ours
    acks = _Acks()
    handler.gate = asyncio.Event()
    await _take(agent, acks, 7)
    seen: list[Any] = []
    reader = threading.Thread(target=lambda: seen.append(agent.placement_state()))
    reader.start()
    reader.join(5)
    assert seen == [({TP.topic: {0}}, {TP.topic: {0}})]
    handler.gate.set()
    await _settle(agent)


# 7. Flow control: fetch only for free slots --------------------------------------------

def _fetch_recorder(app: faust.App) -> tuple[Any, list[dict[str, Any]]]:
    """The app's consumer thread, with its fetches recorded, not run.

    Stock hands each fetch to its thread through ``call_thread``; ours awaits it on the
    app's loop (11, 12).
    """
    calls: list[dict[str, Any]] = []

    async def call_thread(fun: Any, *args: Any, **kwargs: Any) -> dict[Any, Any]:
        calls.append({"via": "method queue", **kwargs})
        return {}

    async def fetch_records(consumer: Any, active: Any, **kwargs: Any) -> dict[Any, Any]:
        calls.append({"thread": threading.current_thread().name, **kwargs})
        return {}

    thread = app.consumer._thread
    thread._consumer = thread._create_worker_consumer(app.transport)
    thread.call_thread = call_thread
    thread._fetch_records = fetch_records
    return thread, calls


async def test_7_stock_fetches_max_poll_records_whatever_is_free(stock: faust.App) -> None:
    thread, calls = _fetch_recorder(stock)
    await thread.getmany({TP}, 1.0)
    assert calls[0]["max_records"] == thread._consumer._max_poll_records


async def test_7_ours_fetches_only_as_many_records_as_free_slots(ours: Any) -> None:
    app, agent, handler = ours
    thread, calls = _fetch_recorder(app)
    handler.gate = asyncio.Event()
    await _take(agent, _Acks(), 1, 2, 3)
    await thread.getmany({TP}, 1.0)
    assert calls == [{"thread": threading.main_thread().name, "timeout": 1.0,
                      "max_records": 1}]
    handler.gate.set()
    await _settle(agent)


async def test_7_ours_fetches_nothing_while_every_slot_is_busy(ours: Any) -> None:
    app, agent, handler = ours
    consumer = app.consumer
    fetched: list[Any] = []

    async def getmany(**kwargs: Any) -> dict[Any, Any]:
        fetched.append(kwargs)
        return {}

    async def touched() -> None:
        return None

    consumer._getmany = getmany
    consumer._thread.keep_poll_clock = touched
    consumer._active_partitions = {FaustTP(TP.topic, TP.partition)}
    handler.gate = asyncio.Event()
    await _take(agent, _Acks(), 1, 2, 3, 4)
    assert agent.fetchable() == 0
    records, _ = await consumer._wait_next_records(0.05)
    assert records == {} and fetched == []
    handler.gate.set()
    await _settle(agent)
    await consumer._wait_next_records(0.05)
    assert len(fetched) == 1


# 8. Membership fencing across threads ---------------------------------------------------

async def test_8_a_heartbeat_in_another_thread_wakes_the_main_loop() -> None:
    membership = Membership(session_timeout_s=3.0, heartbeat_s=1.0)

    class _Coordinator:
        member_id = "m-1"

        async def _do_heartbeat(self) -> bool:
            return True

    class _Client:
        _coordinator = _Coordinator()

    client = _Client()
    membership.watch(client, loop=asyncio.get_running_loop())
    waiting = asyncio.create_task(membership.wait_change(30.0))
    await asyncio.sleep(0)
    beat = threading.Thread(target=lambda: asyncio.run(client._coordinator._do_heartbeat()))
    beat.start()
    beat.join(5)
    await asyncio.wait_for(waiting, 5)
    assert membership.current()


# 9. What a worker does not need is off ---------------------------------------------------

def test_9_the_worker_app_starts_no_web_server_producer_leader_or_directories(
        ours: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    app, _, _ = ours
    conf = app.conf
    assert conf.web_enabled is False
    assert conf.topic_allow_declare is False
    assert conf.topic_disable_leader is True
    assert app.boot_strategy.enable_kafka_producer is False
    assert app.boot_strategy.enable_web is False
    assert app.producer not in list(app.on_init_dependencies())
    monkeypatch.chdir(tmp_path)
    asyncio.run(app.on_first_start())
    assert list(tmp_path.iterdir()) == []


# The start-up check -----------------------------------------------------------------------

def test_the_check_passes_on_the_pinned_faust() -> None:
    faust_overrides.check()
    assert faust.__version__ == faust_overrides.FAUST_VERSION


def test_the_check_fails_loudly_on_another_faust(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(faust, "__version__", "0.99.0")
    with pytest.raises(faust_overrides.FaustMismatch, match=r"0\.99\.0"):
        faust_overrides.check()


def test_the_check_fails_loudly_on_another_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(faust_overrides, "MODE_VERSION", "0.0.1")
    with pytest.raises(faust_overrides.FaustMismatch, match=r"mode-streaming 0\.7\.1"):
        faust_overrides.check()


def test_the_check_fails_when_an_overridden_name_changes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    async def renamed(self: Any, timeout_s: float) -> Any:
        return None

    monkeypatch.setattr(faust_aiokafka.Consumer.__mro__[2], "_wait_next_records", renamed)
    with pytest.raises(faust_overrides.FaustMismatch, match="_wait_next_records"):
        faust_overrides.check()


# 10. A failed commit is no crash, and is tried again ------------------------------------

class _FailingCommits:
    """An aiokafka consumer whose offset commits fail (a coordinator moving)."""

    def __init__(self) -> None:
        self.tries = 0

    async def commit(self, offsets: Any) -> None:
        self.tries += 1
        raise KafkaConnectionError("injected: the group coordinator moved")


def _failing_thread(app: faust.App) -> tuple[Any, _FailingCommits, list[BaseException]]:
    """The app's consumer thread over failing commits, its crashes recorded."""
    thread = app.consumer._thread
    failing = thread._consumer = _FailingCommits()
    thread.assignment = lambda: {TP}
    crashed: list[BaseException] = []

    async def crash(exc: BaseException) -> None:
        crashed.append(exc)

    thread.crash = crash
    return thread, failing, crashed


async def test_10_stock_faust_crashes_the_app_on_a_failed_commit(stock: faust.App) -> None:
    thread, _, crashed = _failing_thread(stock)
    assert await thread._commit({TP: 5}) is False
    assert crashed and isinstance(crashed[0], KafkaConnectionError)


async def test_10_ours_logs_and_tries_again_at_the_next_commit(ours: Any) -> None:
    app, _, _ = ours
    thread, failing, crashed = _failing_thread(app)
    assert await thread._commit({TP: 5}) is False
    assert crashed == [] and failing.tries == 1


async def test_10_stock_never_retries_an_offset_whose_commit_failed(stock: faust.App) -> None:
    consumer = stock.consumer
    consumer.assignment = lambda: {TP}

    async def failed(offsets: Any) -> bool:
        return False

    consumer._commit = failed
    consumer._acked[TP] = [10, 11]
    await consumer.commit()
    recorder = _wire(consumer, {TP})
    consumer._acked[TP] = [10, 11]
    await consumer.commit()
    assert recorder.commits == []  # 12 was "committed" by the failed attempt


async def test_10_ours_commits_again_what_failed(ours: Any) -> None:
    app, agent, _ = ours
    acks = _Acks()
    await _take(agent, acks, 10, 11)
    await _settle(agent)
    consumer = app.consumer
    consumer.assignment = lambda: {TP}

    async def failed(offsets: Any) -> bool:
        return False

    consumer._commit = failed
    await consumer.commit()
    recorder = _wire(consumer, {TP})
    await consumer.commit()
    assert recorder.commits == [{TP: 12}]


# 11. What a record costs -------------------------------------------------------------

class _TaskCount:
    """Counts the tasks made on the running loop while it is installed."""

    def __init__(self) -> None:
        self.made = 0

    def __enter__(self) -> _TaskCount:
        loop = asyncio.get_running_loop()

        def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kw: Any) -> asyncio.Task[Any]:
            self.made += 1
            return asyncio.Task(coro, loop=loop, **kw)

        loop.set_task_factory(factory)  # type: ignore[arg-type]
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.get_running_loop().set_task_factory(None)


async def _deliver(value: str) -> str:
    return value


async def test_11_stock_makes_four_tasks_to_deliver_a_record(stock: faust.App) -> None:
    consumer = stock.consumer
    with _TaskCount() as count:
        result = await consumer.wait_first(_deliver("r"), consumer.suspend_flow.wait())
    assert result.results == ["r"] and not result.stopped
    assert count.made >= 4


async def test_11_ours_delivers_a_record_that_need_not_wait_without_a_task(ours: Any) -> None:
    app, _, _ = ours
    consumer = app.consumer
    with _TaskCount() as count:
        result = await consumer.wait_first(_deliver("r"), consumer.suspend_flow.wait())
    assert result.results == ["r"] and not result.stopped
    assert count.made == 0


async def test_11_ours_still_races_a_delivery_that_waits_against_a_rebalance(
        ours: Any) -> None:
    app, _, _ = ours
    consumer = app.consumer
    gate = asyncio.Event()
    cancelled = asyncio.Event()

    async def blocked() -> str:
        try:
            await gate.wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "late"

    racing = asyncio.create_task(consumer.wait_first(blocked(), consumer.suspend_flow.wait()))
    await asyncio.sleep(0)
    consumer.suspend_flow.set()  # a rebalance starts: the delivery is abandoned
    result = await asyncio.wait_for(racing, 5)
    consumer.suspend_flow.clear()
    assert result.results == [True] and not result.stopped
    await asyncio.wait_for(cancelled.wait(), 5)


async def test_11_ours_finishes_a_delivery_that_had_to_wait(ours: Any) -> None:
    app, _, _ = ours
    consumer = app.consumer
    gate = asyncio.Event()

    async def waits() -> str:
        await gate.wait()
        return "delivered"

    racing = asyncio.create_task(consumer.wait_first(waits(), consumer.suspend_flow.wait()))
    await asyncio.sleep(0)
    gate.set()
    result = await asyncio.wait_for(racing, 5)
    assert result.results == ["delivered"] and not result.stopped


async def test_11_ours_propagates_a_delivery_that_fails_in_its_first_step(ours: Any) -> None:
    app, _, _ = ours

    async def fails() -> None:
        raise ValueError("undecodable")

    with pytest.raises(ValueError, match="undecodable"):
        await app.consumer.wait_first(fails(), app.consumer.suspend_flow.wait())


async def test_11_stock_checks_every_partition_for_livelock(stock: faust.App) -> None:
    consumer = stock.consumer
    checked: list[Any] = []
    consumer.assignment = lambda: {FaustTP("t", 0), FaustTP("t", 1)}
    consumer.verify_event_path = lambda now, tp: checked.append(tp)
    await consumer.verify_all_partitions_active()
    assert len(checked) == 2


async def test_11_ours_has_no_livelock_check(ours: Any) -> None:
    app, _, _ = ours
    consumer = app.consumer
    checked: list[Any] = []
    consumer.assignment = lambda: {FaustTP("t", 0), FaustTP("t", 1)}
    consumer.verify_event_path = lambda now, tp: checked.append(tp)
    await consumer.verify_all_partitions_active()
    assert checked == []


# 12. The consumer's service on the app's loop -------------------------------------------

def test_12_stock_runs_the_consumer_on_a_loop_of_its_own(stock: faust.App) -> None:
    thread = stock.consumer._thread
    assert thread.thread_loop is not thread.parent_loop


async def test_12_ours_runs_the_consumer_on_the_apps_loop_in_no_thread(ours: Any) -> None:
    app, _, _ = ours
    thread = app.consumer._thread
    assert thread.thread_loop is thread.parent_loop is asyncio.get_running_loop()
    stopped: list[str] = []

    async def on_start() -> None:  # no broker here: the consumer itself is not started
        return None

    async def stop_consumer() -> None:
        stopped.append(threading.current_thread().name)

    thread.on_start = on_start
    thread._consumer = SimpleNamespace(stop=stop_consumer)
    threads = threading.active_count()
    await asyncio.wait_for(thread.start(), 5)
    assert thread._thread is None and threading.active_count() == threads
    assert await thread.call_thread(_in_thread) == threading.main_thread().name
    await asyncio.wait_for(thread.stop(), 5)
    assert stopped == [threading.main_thread().name]  # stopped as stock's thread ends
    assert thread._stopped.is_set() and thread.method_queue.should_stop


async def _in_thread() -> str:
    return threading.current_thread().name
