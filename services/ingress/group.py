"""What the live worker group is doing, polled in the background.

Every ``POLL_S`` the watch asks Kafka for the worker group's members, its
committed offsets on the requests topic and that topic's end offsets. From
those it derives the live workers (for ``/readyz`` and ``/v1/languages``), the
lag (for admission control) and the live slots (announced ``concurrency`` of
live members). Request handlers read the last measurement; none waits on Kafka.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from aiokafka.errors import GroupCoordinatorNotAvailableError
from runstream.services.settings import Settings

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

    POLL_S = 0.5

    def __init__(self, settings: Settings, admin: AIOKafkaAdminClient,
                 consumer: AIOKafkaConsumer, announcements: dict[str, dict[str, Any]]) -> None:
        self.settings = settings
        self.admin = admin
        self.consumer = consumer
        self.announcements = announcements  # worker id -> its announcement (kept by the gateway)
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

    def start(self) -> None:
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
        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(predicate), timeout_s)
            except TimeoutError:
                return False
        return True

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
            await asyncio.sleep(max(0.05, self.POLL_S - (time.monotonic() - started)))

    async def _request_partitions(self) -> list[int]:
        # Partitions are rarely added: describe the topic once a minute, not every poll.
        at, parts = self._parts
        if not parts or time.monotonic() - at > 60:
            described = await self.admin.describe_topics([self.settings.requests_topic])
            parts = [p["partition"] for t in described if t["error_code"] == 0
                     for p in t["partitions"]]
            self._parts = (time.monotonic(), parts)
        return parts

    async def poll(self) -> None:
        s = self.settings
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

