"""Every change runstream makes to Faust, and every private Faust or aiokafka name it uses.

Stock faust-streaming is wrong for a code runner in known ways (docs/faust.md).
Each fix is a subclass here, selected through Faust's own extension point:
the transport is chosen by the broker URL's scheme (``runstream://``, registered in the
``faust.transports`` entry-point group by ``pyproject.toml``), and ``Transport.Consumer``
is a class attribute. The numbers are those of docs/faust.md's table and of the tests in
``tests/unit/streams/test_faust_overrides.py``:

1. **The commit rule.** Stock ``Consumer._new_offset`` commits past a running offset
   (faust-streaming #606: its head-gap guard is off by one and skipped when the committed
   offset is None or 0). Ours returns the ledger's safe offset: every earlier offset of
   the partition has its answer stored.
2. **Revocation.** Stock ``Consumer.on_partitions_revoked`` drops the ack state of the
   revoked partitions before anything is committed; ours commits what is safe first.
3. **Rebalances do not wait for runs**: ``stream_wait_empty=False`` (``faust_app.py``);
   the re-delivery of records of partitions this worker keeps is skipped by the ledger.
4. **Acks** only when the answer is stored: the agent reads a ``noack()`` stream
   (``agent.py``), and the commit never depends on acks anyway (1).
5. **Fetch wait and fixed sleeps.** Stock hard-codes ``fetch_max_wait_ms=1500``
   (``AIOKafkaConsumerThread._create_worker_consumer``) and sleeps 1 s in
   ``Consumer._wait_next_records`` while nothing is assigned. Ours builds the consumer
   from our settings and waits for an event, bounded.
6. **Our assignor.** Stock silently uses round robin unless the app has tables; ours
   passes :class:`~runstream.streams.assignor.BusyStickyAssignor`, which reads the
   agent's state under a lock (it runs in Faust's consumer thread).
7. **Flow control.** The consumer fetches only while a slot is free, at most as many
   records as there are free slots, and never pauses a partition in the middle of a
   fetched batch (stock skips those records and counts them as a gap it commits over).
8. **Membership fencing.** The heartbeat watch (``membership.py``) is installed on the
   consumer that this thread starts; confirmations wake the main loop thread-safely.
10. **A failed commit is no crash, and is tried again.** Stock
    ``AIOKafkaConsumerThread._commit`` crashes the app on any commit error (a coordinator
    moving), and ``Consumer._commit_offsets`` records the offsets as committed even when
    the commit failed, so they were never tried again. Ours logs, returns False, and
    compares with what the broker accepted (``_should_commit``). (9, what a worker does
    not need turned off, is in ``faust_app.py``.)
11. **What a record costs.** Stock delivers each record through ``wait_first`` (four
    tasks per record), fetches through mode's method queue (three more per fetch), and
    checks every partition for "livelock" with a task each, every 1.25 s. Ours delivers
    in the record's first step when it need not wait, awaits a fetch directly, and has
    no livelock check (its warnings come from the monitor this worker turns off).
12. **No second thread.** Stock runs the consumer's service in a thread with an event
    loop of its own; ours runs it on the app's loop (a worker's loop never blocks), so
    a fetch or a commit is not handed across threads and the threads do not take turns
    at the GIL.

:func:`check` runs at start-up: the Faust version must be the pinned one, and each name
overridden or used here must exist with the expected parameters, so an upgrade fails
loudly instead of silently weakening a guarantee.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import inspect
import logging
from collections.abc import Iterator
from time import monotonic
from typing import Any, cast

import aiokafka
import faust
from aiokafka.structs import OffsetAndMetadata, TopicPartition
from faust.transport import consumer as faust_consumer
from faust.transport.drivers import aiokafka as faust_aiokafka
from mode.services import Service, WaitResults
from mode.threads import QueueServiceThread, ServiceThread
from mode.utils.futures import maybe_async
from runstream.schemas.errors import RunstreamError
from runstream.services.logs import Throttled
from runstream.streams import _eager, kafka
from runstream.streams.agent import Agent

log = logging.getLogger(__name__)
_warn = Throttled(log)

#: The faust-streaming release every override here was read against and tested with.
FAUST_VERSION = "0.15.3"
#: The mode-streaming release (Faust's services) that rows 11 and 12 were read against.
MODE_VERSION = "0.7.1"
#: The URL scheme that selects :class:`Transport` (entry point ``faust.transports``).
SCHEME = "runstream"


class FaustMismatch(RunstreamError):
    """The installed Faust or aiokafka is not the one runstream's overrides were written for."""


def agent_of(app: Any) -> Agent:
    """The execution agent of a runstream worker app (``faust_app.WorkerApp``)."""
    agent = getattr(app, "executions", None)
    if not isinstance(agent, Agent):
        raise FaustMismatch("the runstream transport needs a runstream WorkerApp")
    return agent


class Consumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer with runstream's commit rule and flow control."""

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    # 1. The commit rule -----------------------------------------------------------
    def _new_offset(self, tp: Any) -> int | None:
        safe = agent_of(self.app).safe_offset(tp)
        if safe is not None:
            # Faust's own ack and gap records below the safe offset are done with:
            # drop them, so that they stay bounded (they no longer decide anything).
            acked = self._acked.get(tp)
            if acked:
                acked[:] = [o for o in acked if o >= safe]
                self._acked_index[tp].intersection_update(acked)
            gap = self._gap.get(tp)
            if gap:
                gap.chop(0, safe)
        return safe

    def _should_commit(self, tp: Any, offset: int) -> bool:
        # Stock compares with the offsets it recorded as committed, also after a commit
        # that failed (``_commit_offsets`` records them either way): a failed commit was
        # then never tried again. Ours: what the broker accepted.
        return agent_of(self.app).should_commit(tp, offset)

    async def _commit_offsets(self, offsets: Any, start_new_transaction: bool = True) -> bool:
        done = await super()._commit_offsets(offsets, start_new_transaction=start_new_transaction)
        if done:
            agent_of(self.app).committed(dict(offsets))
        return done

    def _filter_tps_with_pending_acks(self, topics: Any = None) -> Iterator[Any]:
        return (tp for tp in agent_of(self.app).progressed()
                if topics is None or tp in topics or tp.topic in topics)

    # 2. Revocation ----------------------------------------------------------------
    async def on_partitions_revoked(self, revoked: set[Any]) -> None:
        try:
            await asyncio.wait_for(self.commit(revoked), _commit_bound_s(agent_of(self.app)))
        except Exception as e:  # the next owner re-reads what was not committed
            log.warning("committing the revoked partitions failed (%r)", e)
        await super().on_partitions_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[Any], generation_id: int = 0) -> None:
        async def ends(tps: list[Any]) -> dict[Any, int]:
            return dict(await self.highwaters(*tps))

        await agent_of(self.app).assigned(set(assigned), ends)
        await super().on_partitions_assigned(assigned, generation_id)

    # 11. What a record costs -------------------------------------------------------
    async def wait_first(self, *coros: Any, timeout: Any = None) -> Any:  # noqa: ASYNC109
        # Stock ``_drain_messages`` delivers each record with
        # ``wait_first(callback(message), suspend_flow.wait())``: four tasks per record
        # (the delivery, the flow, stop, crash), three of them cancelled again. Ours runs
        # the delivery's first step at once; it almost always finishes there (the stream
        # buffer has room), and then there is nothing to race. A delivery that has to
        # wait, or a consumer already stopping, gets stock's race, unchanged.
        first = coros[0] if coros else None
        if (timeout is None and asyncio.iscoroutine(first) and not self.suspend_flow.is_set()
                and not self._stopped.is_set() and not self._crashed.is_set()):
            try:
                finished, outcome = _eager.start(first)
            except BaseException:
                _close(coros[1:])
                raise
            if finished:
                _close(coros[1:])
                return WaitResults([first], [outcome], False)
            coros = (outcome.resume(), *coros[1:])
        return await super().wait_first(*coros, timeout=timeout)

    async def verify_all_partitions_active(self) -> None:
        # Stock's livelock detector looks at every assigned partition every 2.5 commit
        # intervals, with a task per partition, and logs "slow processing" errors from
        # Faust's monitor, which this worker turns off (``faust_app._Quiet``): a run that
        # lasts, or a partition left unfetched while every slot is busy, is normal here.
        # A stuck worker is seen by its heartbeat and the group (``membership.py``).
        return None

    # 5 and 7. Flow control, no fixed sleeps ---------------------------------------
    async def _wait_next_records(self, timeout: float) -> tuple[Any, Any]:  # noqa: ASYNC109
        if not self.flow_active:
            await self.wait(self.can_resume_flow)  # type: ignore[arg-type]
        agent = agent_of(self.app)
        try:
            self.not_waiting_next_records.set()
            active = self._get_active_partitions()
            if not active or not await agent.wait_fetchable(timeout):
                # Nothing assigned, or every slot busy: fetch nothing, but keep the
                # consumer's poll clock going (aiokafka leaves the group of a consumer
                # that has not fetched for max_poll_interval_ms).
                if not active:
                    await agent.membership.wait_change(min(timeout, _NOTHING_ASSIGNED_WAIT_S))
                await cast(ConsumerThread, self._thread).keep_poll_clock()
                return {}, active
            records = await self._getmany(active_partitions=active, timeout=timeout)
            return records, active
        finally:
            self.not_waiting_next_records.set()


_NOTHING_ASSIGNED_WAIT_S = 0.25


def _close(coros: tuple[Any, ...]) -> None:
    for coro in coros:
        if asyncio.iscoroutine(coro):
            coro.close()  # never awaited, on purpose: the race it was for is not run


def _commit_bound_s(agent: Agent) -> float:
    return float(agent.settings.request_timeout_s) * 2


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's consumer service, built from runstream's settings, run on the app's loop.

    12. Stock runs it in a thread of its own with a second event loop: every fetch and
    every commit is handed across (a wake-up of each loop), and the two threads take
    turns at the GIL. A worker's loop never blocks (the sandboxes are subprocesses
    awaited), which is what the thread protects against, so ours is a plain service
    of the app's loop, as our own aiokafka loop was before Faust.
    """

    wait_for_shutdown = False  # stock waits for its thread to say it has shut down

    def __init__(self, consumer: Any, **kwargs: Any) -> None:
        # The "thread's" loop is the app's own: aiokafka's tasks run beside the agent.
        super().__init__(consumer, thread_loop=kwargs.get("loop"), **kwargs)

    async def start(self) -> None:
        # Stock starts a thread that starts the service there; ours starts it here.
        self._thread_started.set()
        await self._default_start()
        await self.on_thread_started()

    def _stopped_set(self) -> None:
        self._stopped.set()

    async def _stop_children(self) -> None:
        # What stock's thread does as it ends (``ServiceThread._shutdown_thread``).
        await self.on_thread_stop()
        await self._default_stop_children()

    async def _stop_futures(self) -> None:
        await self._default_stop_futures()

    async def _stop_exit_stacks(self) -> None:
        await self._default_stop_exit_stacks()

    @Service.task
    async def _thread_keepalive(self) -> None:
        return None  # stock wakes its own loop every second; there is no other loop here

    async def call_thread(self, fun: Any, *args: Any, **kwargs: Any) -> Any:
        # Stock hands each call to its thread through mode's method queue.
        return await maybe_async(fun(*args, **kwargs))

    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        agent = agent_of(self.app)
        s = agent.settings
        self._assignor = agent.assignor  # 6: ours, never round robin
        return kafka.consumer(
            s, client_id=f"runstream-worker-{s.worker_id}", group_id=s.worker_group,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=s.worker_fetch_max_wait_ms,  # 5: not Faust's 1500
            session_timeout_ms=int(s.worker_session_timeout_s * 1000),
            heartbeat_interval_ms=int(s.worker_heartbeat_s * 1000),
            # Rebalances never wait for runs (3), so they are quick.
            rebalance_timeout_ms=int(max(s.worker_session_timeout_s, 10.0) * 1000),
            max_poll_interval_ms=300_000, max_poll_records=max(1, s.worker_concurrency),
            partition_assignment_strategy=(agent.assignor,))

    async def on_start(self) -> None:
        agent = agent_of(self.app)
        consumer = self._consumer = self._create_consumer(loop=self.thread_loop)
        self.time_started = monotonic()
        # Started like every client of ours: retried while the broker is not up yet.
        await kafka.start(consumer, agent.settings)
        # 8: heartbeats are seen here, in the consumer's thread; waiters live in the app's.
        agent.membership.watch(consumer, loop=self.app.loop)

    async def getmany(self, active_partitions: Any, timeout: float) -> Any:  # noqa: ASYNC109
        # 7: at most as many records as there are free slots.
        consumer = self._ensure_consumer()
        fetch = self._fetch_records(consumer, active_partitions, timeout=timeout,
                                    max_records=max(1, agent_of(self.app).fetchable()))
        # 11, 12: awaited here, on the loop the consumer runs on. Stock goes through
        # mode's method queue to its thread, whose worker makes three more tasks per
        # call; a fetch is the one call made for every record.
        return await fetch

    async def seek_to_committed(self) -> Any:
        # 3: after a rebalance Faust re-reads each kept partition from its committed
        # offset; a delivery the rebalance cut short counts as read (Faust's read offset)
        # and comes again only through that seek. aiokafka seeks only partitions with a
        # committed offset above 0 and leaves the others where they were fetched up to,
        # so the first records of a partition never committed were skipped, and the
        # ledger then committed over them (a chaos row lost one). Ours: from the start.
        consumer = self._ensure_consumer()
        committed = await consumer.seek_to_committed()
        unsought = [tp for tp, offset in committed.items() if not offset or offset < 0]
        if unsought:
            await consumer.seek_to_beginning(*unsought)
        return committed

    async def _commit(self, offsets: Any) -> bool:
        # 10: stock crashes the whole app on any commit error (a coordinator moving, a
        # broker restarting). The offsets stay uncommitted and the next interval tries
        # again: what is re-read meanwhile is answered from the result store.
        consumer = self._ensure_consumer()
        agent = agent_of(self.app)
        owned = self.assignment()
        offsets = {TopicPartition(tp.topic, tp.partition): OffsetAndMetadata(offset, "")
                   for tp, offset in offsets.items() if tp in owned}
        if not offsets:
            return False
        try:
            await asyncio.wait_for(consumer.commit(offsets), _commit_bound_s(agent))
        except asyncio.CancelledError:
            raise
        except Exception as e:
            _warn.warning("commit", "committing %d offsets failed (%r); tried again at the "
                          "next commit", len(offsets), e)
            return False
        return True

    async def keep_poll_clock(self) -> None:
        """Count as a fetch for aiokafka's max_poll_interval_ms, without taking records."""
        await self.call_thread(self._touch_poll_clock)

    async def _touch_poll_clock(self) -> None:
        consumer = self._consumer
        if consumer is not None and not consumer._closed:
            with consumer._fetcher._subscriptions.fetch_context():
                pass


class Transport(faust_aiokafka.Transport):
    """The ``runstream://`` transport: Faust's aiokafka transport with our consumer."""

    Consumer = Consumer


# -- the start-up check --------------------------------------------------------------

#: (owner, name, parameter names) of every Faust or aiokafka name overridden or used.
_NAMES: tuple[tuple[Any, str, tuple[str, ...] | None], ...] = (
    (faust_consumer.Consumer, "_new_offset", ("self", "tp")),
    (faust_consumer.Consumer, "_filter_tps_with_pending_acks", ("self", "topics")),
    (faust_consumer.Consumer, "_should_commit", ("self", "tp", "offset")),
    (faust_consumer.Consumer, "_commit_offsets", ("self", "offsets", "start_new_transaction")),
    (faust_aiokafka.AIOKafkaConsumerThread, "_commit", ("self", "offsets")),
    (faust_aiokafka.AIOKafkaConsumerThread, "assignment", ("self",)),
    (faust_consumer.Consumer, "on_partitions_revoked", ("self", "revoked")),
    (faust_consumer.Consumer, "on_partitions_assigned",
     ("self", "assigned", "generation_id")),
    (faust_consumer.Consumer, "_wait_next_records", ("self", "timeout")),
    (Service, "wait_first", ("self", "coros", "timeout")),
    (faust_consumer.Consumer, "verify_all_partitions_active", ("self",)),
    (faust_consumer.Consumer, "_getmany", ("self", "active_partitions", "timeout")),
    (faust_consumer.Consumer, "_get_active_partitions", ("self",)),
    (faust_consumer.Consumer, "highwaters", ("self", "partitions")),
    (faust_aiokafka.Consumer, "_new_consumer_thread", ("self",)),
    (faust_aiokafka.AIOKafkaConsumerThread, "_create_worker_consumer", ("self", "transport")),
    (faust_aiokafka.AIOKafkaConsumerThread, "_create_consumer", ("self", "loop")),
    (faust_aiokafka.AIOKafkaConsumerThread, "on_start", ("self",)),
    (faust_aiokafka.AIOKafkaConsumerThread, "getmany",
     ("self", "active_partitions", "timeout")),
    (faust_aiokafka.AIOKafkaConsumerThread, "_fetch_records",
     ("self", "consumer", "active_partitions", "timeout", "max_records")),
    (faust_aiokafka.AIOKafkaConsumerThread, "_ensure_consumer", ("self",)),
    (faust_aiokafka.AIOKafkaConsumerThread, "seek_to_committed", ("self",)),
    (faust_consumer.Consumer, "perform_seek", ("self",)),
    (faust_aiokafka.AIOKafkaConsumerThread, "call_thread", ("self", "fun", "args", "kwargs")),
    (faust_aiokafka.Transport, "Consumer", None),
    (ServiceThread, "__init__", ("self", "executor", "loop", "thread_loop", "Worker", "kwargs")),
    (ServiceThread, "start", ("self",)),
    (ServiceThread, "wait_for_shutdown", None),
    (ServiceThread, "_stopped_set", ("self",)),
    (ServiceThread, "_stop_children", ("self",)),
    (ServiceThread, "_stop_futures", ("self",)),
    (ServiceThread, "_stop_exit_stacks", ("self",)),
    (ServiceThread, "_thread_keepalive", None),
    (Service, "_default_start", ("self",)),
    (Service, "_default_stop_children", ("self",)),
    (Service, "_default_stop_futures", ("self",)),
    (Service, "_default_stop_exit_stacks", ("self",)),
    (QueueServiceThread, "on_thread_started", ("self",)),
    (faust_aiokafka.AIOKafkaConsumerThread, "on_thread_stop", ("self",)),
    (aiokafka.consumer.subscription_state.SubscriptionState, "fetch_context", ("self",)),
)
#: Attributes of Faust's consumer state that :class:`Consumer` reads or trims.
_STATE = ("_acked", "_acked_index", "_gap", "not_waiting_next_records", "flow_active",
          "can_resume_flow", "_thread", "suspend_flow")
#: Attributes of mode's Service that ``Consumer.wait_first`` reads, as stock's does.
_SERVICE_STATE = ("_stopped", "_crashed")
#: Attributes of mode's ServiceThread that :class:`ConsumerThread` sets or reads (12).
_THREAD_STATE = ("_thread_started", "parent_loop", "thread_loop")
#: The call of stock ``_drain_messages`` that ``Consumer.wait_first`` makes cheaper.
_DELIVERY = "self.wait_first(callback(message),self.suspend_flow.wait())"


def check() -> None:
    """Fail loudly unless every override here still fits the installed Faust."""
    if faust.__version__ != FAUST_VERSION:
        raise FaustMismatch(
            f"faust-streaming {faust.__version__} is installed, but runstream's overrides "
            f"(streams/faust_overrides.py) were written for {FAUST_VERSION}: read "
            "docs/faust.md before changing the pin")
    installed_mode = importlib.metadata.version("mode-streaming")
    if installed_mode != MODE_VERSION:
        raise FaustMismatch(
            f"mode-streaming {installed_mode} is installed, but runstream's overrides of its "
            f"services (streams/faust_overrides.py, rows 11 and 12) were written for "
            f"{MODE_VERSION}: read docs/faust.md before changing the pin")
    for owner, name, params in _NAMES:
        attr = inspect.getattr_static(owner, name, None)
        if attr is None:
            raise FaustMismatch(f"{owner.__module__}.{owner.__qualname__}.{name} is gone")
        if params is not None:
            found = tuple(inspect.signature(getattr(owner, name)).parameters)
            if found != params:
                raise FaustMismatch(
                    f"{owner.__qualname__}.{name}{found} no longer has the parameters "
                    f"{params} that runstream's override expects")
    source = inspect.getsource(faust_consumer)
    drain = "".join(inspect.getsource(faust_consumer.Consumer._drain_messages).split())
    if _DELIVERY not in drain:
        raise FaustMismatch("Faust's Consumer._drain_messages no longer delivers records "
                            "with wait_first(callback(message), suspend_flow.wait())")
    for attr_name in _STATE:
        if f"self.{attr_name}" not in source:
            raise FaustMismatch(f"Faust's Consumer no longer has {attr_name}")
    service = inspect.getsource(Service)
    for attr_name in _SERVICE_STATE:
        if f"self.{attr_name}" not in service:
            raise FaustMismatch(f"mode's Service no longer has {attr_name}")
    thread = inspect.getsource(ServiceThread)
    for attr_name in _THREAD_STATE:
        if f"self.{attr_name}" not in thread:
            raise FaustMismatch(f"mode's ServiceThread no longer has {attr_name}")
    registered = faust.transport.by_name(SCHEME)
    if registered is not Transport:
        raise FaustMismatch(
            f"the {SCHEME}:// transport resolves to {registered!r}: reinstall runstream "
            "(its faust.transports entry point)")
