"""What the live worker group is doing: its announcements, and its state polled in the background.

A :class:`WorkerGroup` follows the workers topic (each worker's announcement:
its languages and concurrency; a tombstone when it leaves for good) and runs a
:class:`GroupWatch`. Every ``POLL_S`` while requests come (every ``IDLE_POLL_S`` when
none came for ``ACTIVE_S``) the watch asks Kafka for the worker group's members, its
committed offsets on the requests topic and that topic's end offsets. From
those it derives the live workers (for ``/readyz`` and ``/v1/languages``), the
lag (for the ingress's admission control) and the live slots (announced ``concurrency`` of
live members). Request handlers read the last measurement; none waits on Kafka.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from aiokafka.errors import GroupCoordinatorNotAvailableError
from runstream.schemas.errors import BrokerUnavailable, NotReady
from runstream.services.settings import Settings
from runstream.streams import kafka

log = logging.getLogger(__name__)

WORKER_CLIENT_PREFIX = "runstream-worker-"


def live_worker_ids(client_ids: list[str], announced: set[str]) -> set[str]:
    """Announced worker ids whose worker is a group member (its client id names it)."""
    live = set()
    for cid in client_ids:
        if not cid.startswith(WORKER_CLIENT_PREFIX):
            continue
        wid = cid[len(WORKER_CLIENT_PREFIX):]
        if wid in announced:
            live.add(wid)
            continue
        # A client library may append its own suffix to the id we gave it.
        live.update(a for a in announced if wid.startswith(a + "-"))
    return live


def assigned_partitions(assignment: bytes, topic: str) -> list[int]:
    """The partitions of ``topic`` in a member's assignment (as DescribeGroups gives it)."""
    if not assignment:
        return []  # a rebalance is in progress: nothing assigned yet
    try:
        decoded = ConsumerProtocolMemberAssignment.decode(assignment)
    except Exception:  # another client's protocol: its assignment is not ours to read
        return []
    return sorted(p for t, parts in decoded.assignment if t == topic for p in parts)


class GroupWatch:
    """The last known members, lag and slots of the worker group."""

    #: Between polls while requests come, or a backlog or a waiter is there.
    POLL_S = 0.5
    #: Between polls of an idle ingress: each poll is six requests to the broker (two
    #: coordinator look-ups, members, committed offsets, end and first offsets), which
    #: every 0.5 s were a third of an idle system's requests. Well inside the bound
    #: past which a measurement is stale (``WorkerGroup.worker_count``: 5 s at least).
    IDLE_POLL_S = 2.0
    #: How long after the last request the watch still polls every ``POLL_S``.
    ACTIVE_S = 10.0

    def __init__(self, settings: Settings, announcements: dict[str, dict[str, Any]]) -> None:
        self.settings = settings
        # The Kafka clients it polls with, given by start().
        self.admin: AIOKafkaAdminClient | None = None
        self.consumer: AIOKafkaConsumer | None = None
        self.announcements = announcements  # worker id -> its announcement (a WorkerGroup's)
        self.members: list[str] = []  # client ids of the group's members
        #: The group's state as the coordinator reports it ("Stable" once a rebalance is over).
        self.state = ""
        #: Per member client id, the partitions of the requests topic it was assigned.
        self.assigned: dict[str, list[int]] = {}
        self.lag = 0
        #: The same lag per (topic, partition): the dashboard's backlog per partition.
        self.partition_lag: dict[tuple[str, int], int] = {}
        self.polled_at = 0.0  # monotonic time of the last successful poll (0: never)
        self.error: str | None = None
        self.on_poll: list[Callable[[GroupWatch], None]] = []
        self.on_poll_start: list[Callable[[], None]] = []
        self._task: asyncio.Task[None] | None = None
        self._polled = asyncio.Event()
        self._changed = asyncio.Condition()
        self._parts: tuple[float, list[int]] = (0.0, [])
        self._active_at: float | None = None  # monotonic time of the last active()
        self._waiting = 0  # until() calls under way
        self._woken = asyncio.Event()  # ends an idle wait at once

    def start(self, admin: AIOKafkaAdminClient, consumer: AIOKafkaConsumer) -> None:
        """Poll in the background with these (started) clients.

        ``consumer`` asks for offsets only: one that fetches too would hold each of its
        questions behind a fetch the broker keeps open while nothing is written.
        """
        self.admin, self.consumer = admin, consumer
        self._task = asyncio.create_task(self._run(), name="group-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._task, 5)

    async def first_poll(self, timeout_s: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._polled.wait(), timeout_s)
        return self._polled.is_set()

    async def until(self, predicate: Callable[[], bool], timeout_s: float) -> bool:
        """Wait (re-checking after each poll) until ``predicate()`` holds; False on timeout."""
        self._waiting += 1
        self._woken.set()  # someone waits: poll at the busy pace from now
        try:
            async with self._changed:
                try:
                    await asyncio.wait_for(self._changed.wait_for(predicate), timeout_s)
                except TimeoutError:
                    return False
            return True
        finally:
            self._waiting -= 1

    def active(self) -> None:
        """A request is being produced: poll at the busy pace (at once, if it was idle)."""
        was_idle = not self.busy()
        self._active_at = time.monotonic()
        if was_idle:
            self._woken.set()

    def busy(self) -> bool:
        """Requests came within ``ACTIVE_S``, or a backlog or a waiter is there."""
        return bool(self._waiting or self.lag or (
            self._active_at is not None and time.monotonic() - self._active_at < self.ACTIVE_S))

    def pace(self) -> float:
        """Seconds from the start of one poll to the next."""
        return self.POLL_S if self.busy() else self.IDLE_POLL_S

    @property
    def live_workers(self) -> set[str]:
        return live_worker_ids(self.members, set(self.announcements))

    @property
    def slots(self) -> int:
        """Parallel executions the live workers announced (1 for a member not announced)."""
        live = self.live_workers
        announced = sum(int(self.announcements[w].get("concurrency") or 1) for w in live)
        unannounced = sum(1 for c in self.members if c.startswith(WORKER_CLIENT_PREFIX)) - len(live)
        return announced + max(0, unannounced)

    async def _run(self) -> None:
        while True:
            started = time.monotonic()
            for fn in self.on_poll_start:
                fn()
            try:
                async with asyncio.timeout(self.settings.request_timeout_s * 2):
                    await self.poll()
                self.polled_at = time.monotonic()
                self.error = None
                self._polled.set()
                for cb in self.on_poll:
                    cb(self)
                async with self._changed:
                    self._changed.notify_all()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # the broker restarts; keep the last measurement
                if self.error is None:
                    log.warning("polling worker group %s failed: %r", self.settings.worker_group, e)
                self.error = f"{type(e).__name__}: {e}"
            self._woken.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(),
                                       max(0.05, self.pace() - (time.monotonic() - started)))

    async def _request_partitions(self) -> list[int]:
        # Partitions are rarely added: describe the topic once a minute, not every poll.
        assert self.admin is not None, "start() first"
        at, parts = self._parts
        if not parts or time.monotonic() - at > 60:
            described = await self.admin.describe_topics([self.settings.requests_topic])
            parts = [p["partition"] for t in described if t["error_code"] == 0
                     for p in t["partitions"]]
            self._parts = (time.monotonic(), parts)
        return parts

    async def poll(self) -> None:
        s = self.settings
        assert self.admin is not None and self.consumer is not None, "start() first"
        try:
            described = await self.admin.describe_consumer_groups([s.worker_group])
            groups = [g for r in described for g in r.to_object()["groups"]]
            self.members = [m["client_id"] for g in groups for m in g["members"]]
            self.state = next((g["state"] for g in groups), "")
            self.assigned = {m["client_id"]: assigned_partitions(m["member_assignment"],
                                                                 s.requests_topic)
                             for g in groups for m in g["members"]}
            committed = await self.admin.list_consumer_group_offsets(s.worker_group)
        except GroupCoordinatorNotAvailableError:
            self.members, committed = [], {}  # no worker has ever joined
            self.state, self.assigned = "", {}
        # Every partition the group committed (the shared topic and any per-language
        # topic requests are forwarded to) and every partition of the requests topic.
        tps = set(committed) | {TopicPartition(s.requests_topic, p)
                                for p in await self._request_partitions()}
        ends = await self.consumer.end_offsets(list(tps)) if tps else {}
        missing = [tp for tp in tps if tp not in committed or committed[tp].offset < 0]
        # A partition the group never committed is queued from its first offset.
        firsts = await self.consumer.beginning_offsets(missing) if missing else {}
        lags: dict[tuple[str, int], int] = {}
        for tp in tps:
            done = committed[tp].offset if tp in committed and committed[tp].offset >= 0 else (
                firsts.get(tp, 0))
            lags[(tp.topic, tp.partition)] = max(0, ends.get(tp, done) - done)
        self.lag = sum(lags.values())
        self.partition_lag = lags



class WorkerGroup:
    """The worker group as a producer of requests sees it: announcements and the watch."""

    def __init__(self, settings: Settings, *, client_id: str) -> None:
        self.settings = settings
        self.client_id = client_id
        self.workers: dict[str, dict[str, Any]] = {}  # worker id -> its announcement
        self.watch = GroupWatch(settings, self.workers)
        self._announcements: AIOKafkaConsumer | None = None
        self._offsets: AIOKafkaConsumer | None = None  # the watch's: never fetches
        self._admin: AIOKafkaAdminClient | None = None
        self._task: asyncio.Task[None] | None = None

    async def connect(self, topics: list[str], timeout_s: float) -> None:
        """Start the clients; wait until ``topics`` exist (BrokerUnavailable if they do not).

        ``topics`` name the workers topic too: its partitions are the ones followed.
        """
        s = self.settings
        self._announcements = kafka.consumer(s, client_id=f"{self.client_id}-workers",
                                             auto_offset_reset="earliest",
                                             fetch_max_wait_ms=kafka.HOLD_MS)
        self._offsets = kafka.consumer(s, client_id=f"{self.client_id}-offsets")
        self._admin = kafka.admin(s, client_id=f"{self.client_id}-admin")
        for client in (self._announcements, self._offsets, self._admin):
            await kafka.start(client, s, timeout_s=timeout_s)
        parts = await self._existing(topics, timeout_s)
        self._announcements.assign([TopicPartition(s.workers_topic, p)
                                    for p in range(parts[s.workers_topic])])

    async def _existing(self, names: list[str], timeout_s: float) -> dict[str, int]:
        s = self.settings
        assert self._admin is not None
        # Fresh topics take a moment to appear in metadata: ask again for a while.
        deadline = time.monotonic() + max(timeout_s, 10 * s.request_timeout_s)
        while True:
            described = await asyncio.wait_for(self._admin.describe_topics(names),
                                               s.request_timeout_s * 5)
            parts = {t["topic"]: len(t["partitions"]) for t in described
                     if t["error_code"] == 0}
            missing = [n for n in names if not parts.get(n)]
            if not missing:
                return parts
            if time.monotonic() > deadline:
                raise BrokerUnavailable(f"topics {', '.join(missing)} do not exist; "
                                        "create them with `runstream topics`")
            await asyncio.sleep(0.2)

    async def follow(self) -> None:
        """Follow the announcements and poll the group (after :meth:`connect`).

        Returns after the first poll, or a bound past which it goes on polling.
        """
        assert (self._admin is not None and self._announcements is not None
                and self._offsets is not None), "connect() first"
        s = self.settings
        self.watch.start(self._admin, self._offsets)
        self._task = asyncio.create_task(
            kafka.follow(self._announcements, lambda r: self.announce(r.key, r.value),
                         what=s.workers_topic), name="announcements")
        await self.watch.first_poll(s.request_timeout_s * 2)

    async def stop(self) -> None:
        """Stop following and polling, then close the clients (bounded)."""
        await self.watch.stop()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._task, 5)
        # Side by side: a broker that is gone costs one close timeout, not one per client.
        await asyncio.gather(*(kafka.close(c, timeout_s=5)
                               for c in (self._announcements, self._offsets, self._admin)),
                             return_exceptions=True)

    def announce(self, key: bytes | None, value: bytes | None) -> None:
        """One record of the workers topic: an announcement, or a tombstone."""
        if key is None:
            return
        try:
            doc = orjson.loads(value) if value else None
        except orjson.JSONDecodeError:
            log.warning("ignoring an undecodable worker announcement under %r", key)
            return
        if isinstance(doc, dict):
            self.workers[key.decode("utf-8", "replace")] = doc
        else:  # a tombstone: the worker left for good
            self.workers.pop(key.decode("utf-8", "replace"), None)

    def language_versions(self) -> dict[str, list[str]]:
        """Versions each language is served at by the live members of the worker group."""
        versions: dict[str, set[str]] = {}
        for wid in self.watch.live_workers:
            for name, version in (self.workers[wid].get("languages") or {}).items():
                if isinstance(version, str):
                    versions.setdefault(name, set()).add(version)
        return {name: sorted(v) for name, v in versions.items()}

    def worker_count(self) -> int:
        """Members of the worker group at the last poll; NotReady if it is stale."""
        w = self.watch
        stale_s = max(5.0, self.settings.request_timeout_s * 3)
        if not w.polled_at or time.monotonic() - w.polled_at > stale_s:
            why = w.error if w.error else "not polled yet"
            raise NotReady(f"the worker group {self.settings.worker_group!r} could not be "
                           f"described: {why}")
        return len(w.members)

    def status(self) -> dict[str, Any]:
        """The worker group as last polled: its state and each worker's partitions."""
        w = self.watch
        return {"state": w.state,
                "partitions": {cid.removeprefix(WORKER_CLIENT_PREFIX): parts
                               for cid, parts in sorted(w.assigned.items())}}
