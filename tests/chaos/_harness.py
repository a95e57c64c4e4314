"""What every chaos scenario shares: clients that behave like real ones, and the ledger.

Two kinds of client send the load:

- :class:`HttpClients` behave as a careful HTTP client does: POST with a client-chosen
  id; on ``202`` long-poll ``GET /v1/executions/{id}?wait=``; on a refused connection
  or a ``5xx`` retry the *same id* against the next ingress (POST is idempotent by id);
  on ``404`` from an ingress that does not know the id yet, POST it again. Every loop
  is bounded by a deadline and an attempt count.
- :class:`KafkaDirect` is another team's Kafka producer: it produces requests straight
  onto the requests topic with ``reply_to`` naming a private reply topic, and an
  independent consumer of that topic counts the results per id.

The :class:`Ledger` of a scenario records every request, every answer (with the time
it arrived) and the window of the fault, and turns them into one :class:`Row` of the
chaos table: sent, answered, lost, answered twice to an HTTP client, results per id
seen by the ``reply_to`` consumer, and the longest pause clients saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from aiokafka.partitioner import murmur2

from tests.system import System, children

# -- partitions ------------------------------------------------------------------


def partition_of(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2 of the key) picks for ``key``."""
    return int(murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def ids_on_partition(prefix: str, partition: int, partitions: int, count: int) -> list[str]:
    """``count`` fresh ids whose messages land on ``partition`` (bounded search)."""
    found: list[str] = []
    tag = uuid.uuid4().hex[:6]
    for n in range(200 * partitions * count):  # each try hits with probability 1/partitions
        candidate = f"{prefix}-{tag}-{n}"
        if partition_of(candidate, partitions) == partition:
            found.append(candidate)
            if len(found) == count:
                return found
    raise AssertionError(f"no {count} ids on partition {partition} of {partitions}")


# -- processes ---------------------------------------------------------------------


async def poll_until(check: Callable[[], bool], timeout_s: float, step_s: float = 0.1) -> bool:
    """True as soon as ``check()`` is; False after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(step_s)


# -- the ledger --------------------------------------------------------------------


def identity(doc: dict[str, Any]) -> tuple[Any, ...]:
    """What tells two results of one id apart: a re-run differs, a replayed copy does not."""
    stamps = doc.get("timestamps") or {}
    return (doc.get("status"), doc.get("worker"), stamps.get("started"),
            stamps.get("finished"))


def content(doc: dict[str, Any]) -> tuple[Any, ...]:
    """What a duplicate on a reply topic must repeat: the verdict and the output."""
    run = doc.get("run") or {}
    return (doc.get("status"), run.get("stdout"), run.get("exit_code"))


@dataclass
class Tracked:
    """One request as its client saw it."""

    id: str
    channel: str  # "http" or "kafka"
    sent: float
    expect_stdout: str | None = None
    accepted: bool = False
    refused: bool = False  # answered 429 and not retried (overload): not accepted
    answers: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def answered(self) -> bool:
        return bool(self.answers)

    @property
    def distinct(self) -> int:
        return len({identity(doc) for _, doc in self.answers})


@dataclass
class Row:
    """One line of the chaos table."""

    fault: str
    sent: int = 0
    answered: int = 0
    lost: int = 0
    http_twice: int = 0
    refused_429: int = 0
    kafka_ids: int = 0
    kafka_dup_ids: int = 0
    kafka_dup_mismatch: int = 0
    longest_pause_s: float = 0.0
    slowest_s: float = 0.0
    seconds: float = 0.0
    verdict: str = "?"
    note: str = ""

    HEADER = ("fault", "sent", "answered", "lost", "answered twice (HTTP)", "429",
              "reply_to ids", "ids with ≥2 results (same content)", "longest pause s",
              "slowest answer s", "row s", "verdict")

    def cells(self) -> tuple[str, ...]:
        dups = f"{self.kafka_dup_ids} ({self.kafka_dup_ids - self.kafka_dup_mismatch})"
        return (self.fault, str(self.sent), str(self.answered), str(self.lost),
                str(self.http_twice), str(self.refused_429), str(self.kafka_ids), dups,
                f"{self.longest_pause_s:.1f}", f"{self.slowest_s:.1f}", f"{self.seconds:.0f}",
                self.verdict)


ROWS: list[Row] = []


class Ledger:
    """Every request and answer of one scenario, and the fault's window."""

    def __init__(self, fault: str) -> None:
        self.fault = fault
        self.started = time.monotonic()
        self.requests: dict[str, Tracked] = {}
        self.fault_start: float | None = None
        self.fault_end: float | None = None
        self.notes: list[str] = []

    def track(self, exec_id: str, channel: str, expect_stdout: str | None = None) -> Tracked:
        t = Tracked(exec_id, channel, time.monotonic(), expect_stdout)
        self.requests[exec_id] = t
        return t

    def fault_begins(self) -> None:
        self.fault_start = time.monotonic()

    def fault_ends(self) -> None:
        self.fault_end = time.monotonic()

    def note(self, text: str) -> None:
        self.notes.append(text)

    def of(self, channel: str) -> list[Tracked]:
        return [t for t in self.requests.values() if t.channel == channel]

    def lost(self) -> list[Tracked]:
        """Requests that were not refused (429) and have no answer."""
        return [t for t in self.requests.values() if not t.refused and not t.answered]

    def http_twice(self) -> list[Tracked]:
        """HTTP requests whose client saw two different results for the one id."""
        return [t for t in self.of("http") if t.distinct > 1]

    def kafka_duplicates(self) -> tuple[list[Tracked], list[Tracked]]:
        """reply_to ids with two or more results, and those whose copies differ."""
        dups = [t for t in self.of("kafka") if len(t.answers) > 1]
        mismatched = [t for t in dups if len({content(d) for _, d in t.answers}) > 1]
        return dups, mismatched

    def wrong_output(self) -> list[Tracked]:
        """Answers whose stdout is not what the request's program prints."""
        return [t for t in self.requests.values() if t.answered and t.expect_stdout is not None
                and (t.answers[0][1].get("run") or {}).get("stdout") != t.expect_stdout]

    def longest_pause(self) -> float:
        """Largest gap between consecutive answers while the fault is active.

        The window runs from the fault's start to the last answer after it; with no
        answer at all, to the fault's end (or now): a stalled system pauses all along.
        """
        if self.fault_start is None:
            return 0.0
        times = sorted(t for r in self.requests.values() for t, _ in r.answers[:1]
                       if t >= self.fault_start)
        if not times:
            return (self.fault_end or time.monotonic()) - self.fault_start
        points = [self.fault_start, *times]
        return max(b - a for a, b in itertools.pairwise(points))

    def slowest(self) -> float:
        return max((r.answers[0][0] - r.sent for r in self.requests.values() if r.answers),
                   default=0.0)

    def row(self) -> Row:
        dups, mismatched = self.kafka_duplicates()
        answered = sum(1 for t in self.requests.values() if t.answered)
        return Row(
            fault=self.fault, sent=len(self.requests), answered=answered,
            lost=len(self.lost()), http_twice=len(self.http_twice()),
            refused_429=sum(1 for t in self.requests.values() if t.refused),
            kafka_ids=len(self.of("kafka")), kafka_dup_ids=len(dups),
            kafka_dup_mismatch=len(mismatched), longest_pause_s=self.longest_pause(),
            slowest_s=self.slowest(), seconds=time.monotonic() - self.started,
            note="; ".join(self.notes))

    def assert_promise(self) -> None:
        """The delivery promise of every row: 0 lost, 0 answered twice to an HTTP client,
        duplicates on a reply topic only with the same content, and the right outputs."""
        lost = self.lost()
        assert not lost, (f"{len(lost)} of {len(self.requests)} lost, e.g. "
                          f"{[(t.id, t.channel, t.errors[-3:]) for t in lost[:5]]}")
        twice = self.http_twice()
        assert not twice, f"{len(twice)} ids answered twice to HTTP clients: " + str(
            [(t.id, [identity(d) for _, d in t.answers]) for t in twice[:3]])
        _, mismatched = self.kafka_duplicates()
        assert not mismatched, f"reply_to duplicates that differ: {[t.id for t in mismatched]}"
        wrong = self.wrong_output()
        assert not wrong, "wrong outputs: " + str(
            [(t.id, t.answers[0][1].get("status"), (t.answers[0][1].get("run") or {})
              .get("stdout"), t.expect_stdout) for t in wrong[:3]])


# -- HTTP clients ------------------------------------------------------------------


@dataclass
class Refusal:
    """One 429 as a client saw it."""

    seconds: float
    retry_after: str | None
    content_type: str


class HttpClients:
    """Real HTTP clients of one scenario; see the module's docstring for their rules."""

    def __init__(self, system: System, ledger: Ledger, *, wait_s: float = 20.0,
                 deadline_s: float = 90.0, retry_429: bool = True) -> None:
        self.system = system
        self.ledger = ledger
        self.wait_s = wait_s
        self.deadline_s = deadline_s
        self.retry_429 = retry_429
        self.refusals: list[Refusal] = []
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(wait_s + 15, connect=3),
            limits=httpx.Limits(max_connections=1000, max_keepalive_connections=200))

    async def close(self) -> None:
        await self.client.aclose()

    async def run(self, exec_id: str, body: dict[str, Any], *, expect_stdout: str | None = None,
                  first: int = 0) -> Tracked:
        """Send one request until it is answered, refused (429) or the deadline passes."""
        t = self.ledger.track(exec_id, "http", expect_stdout)
        try:
            await self._run(t, body, first)
        except asyncio.CancelledError:
            t.errors.append("gave up: the row's bound")
            raise
        return t

    async def _run(self, t: Tracked, body: dict[str, Any], first: int) -> None:
        exec_id = t.id
        deadline = time.monotonic() + self.deadline_s
        at = first
        posted = False
        for _attempt in range(500):
            if time.monotonic() >= deadline:
                t.errors.append("deadline")
                return
            url = self.system.urls[at % len(self.system.urls)]
            t0 = time.monotonic()
            try:
                if posted:
                    r = await self.client.get(f"{url}/v1/executions/{exec_id}",
                                              params={"wait": self.wait_s})
                else:
                    r = await self.client.post(f"{url}/v1/executions",
                                               params={"wait": self.wait_s},
                                               json={**body, "id": exec_id})
            except httpx.TransportError as e:
                # That ingress is gone (or restarting): the same id, on the next one.
                t.errors.append(type(e).__name__)
                at += 1
                await asyncio.sleep(0.2)
                continue
            if r.status_code == 200:
                t.accepted = True
                t.answers.append((time.monotonic(), r.json()))
                return
            if r.status_code == 202:
                t.accepted = True
                posted = True
                continue
            if r.status_code == 429:
                self.refusals.append(Refusal(time.monotonic() - t0, r.headers.get("retry-after"),
                                             r.headers.get("content-type", "")))
                if not self.retry_429:
                    t.refused = True
                    return
                await asyncio.sleep(min(5.0, float(r.headers.get("retry-after") or 1)))
                continue
            if r.status_code == 404 and posted:
                # This ingress has not seen the id (it restarted, or it is another one):
                # POST it again, which is idempotent by id.
                posted = False
                continue
            t.errors.append(f"{r.status_code} {r.text[:200]}")
            if r.status_code >= 500:
                at += 1
                await asyncio.sleep(0.3)
                continue
            return  # a 4xx other than 404/429: the request itself is wrong
        t.errors.append("attempts")
        return

    async def verify(self) -> None:
        """Ask every ingress once for every answered id: a different result is a second answer.

        A client that retried, or asked another ingress later, would have seen it.
        """
        sem = asyncio.Semaphore(64)

        async def check(t: Tracked, url: str) -> None:
            async with sem:
                with contextlib.suppress(httpx.HTTPError):
                    r = await self.client.get(f"{url}/v1/executions/{t.id}",
                                              params={"wait": 0}, timeout=10)
                    if r.status_code == 200:
                        t.answers.append((t.answers[0][0], r.json()))

        await asyncio.gather(*(check(t, url) for t in self.ledger.of("http") if t.answered
                               for url in list(self.system.urls)))


# -- Kafka producers of other teams ------------------------------------------------


class KafkaDirect:
    """A producer onto the requests topic and a consumer of its own private reply topic."""

    def __init__(self, system: System, ledger: Ledger, *, deadline_s: float = 90.0) -> None:
        env = system.env
        self.bootstrap = env["RUNSTREAM_BOOTSTRAP_SERVERS"]
        self.requests = env["RUNSTREAM_REQUESTS_TOPIC"]
        self.results_topic = env["RUNSTREAM_RESULTS_TOPIC"]
        self.reply_topic = f"chaos-{uuid.uuid4().hex[:8]}.reply"
        self.ledger = ledger
        self.deadline_s = deadline_s
        self.producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all",
                                         enable_idempotence=True, request_timeout_ms=5000)
        self.consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap,
                                         enable_auto_commit=False, fetch_max_wait_ms=100,
                                         max_partition_fetch_bytes=16 * 1024 * 1024,
                                         fetch_max_bytes=32 * 1024 * 1024)
        self.unknown: list[str] = []  # results for ids this client never sent
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=10000)
        await asyncio.wait_for(admin.start(), 30)
        try:
            await asyncio.wait_for(admin.create_topics(
                [NewTopic(self.reply_topic, 1, 1,
                          topic_configs={"max.message.bytes": str(16 * 1024 * 1024)})]), 30)
        finally:
            await admin.close()
        await asyncio.wait_for(self.producer.start(), 30)
        await asyncio.wait_for(self.consumer.start(), 30)
        tp = TopicPartition(self.reply_topic, 0)
        self.consumer.assign([tp])
        await asyncio.wait_for(self.consumer.seek_to_beginning(tp), 30)
        self._task = asyncio.create_task(self._follow(), name="reply-consumer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        for client in (self.producer, self.consumer):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.stop(), 10)

    async def _follow(self) -> None:
        while True:
            try:
                batches = await self.consumer.getmany(timeout_ms=500, max_records=500)
            except KafkaError:
                await asyncio.sleep(0.5)  # the broker restarts: keep following
                continue
            now = time.monotonic()
            for records in batches.values():
                for rec in records:
                    doc = orjson.loads(rec.value) if rec.value else {}
                    exec_id = (rec.key or b"").decode() or doc.get("id", "")
                    t = self.ledger.requests.get(exec_id)
                    if t is None or t.channel != "kafka":
                        self.unknown.append(exec_id)
                    else:
                        t.answers.append((now, doc))

    def request(self, exec_id: str, body: dict[str, Any], *,
                reply_to: dict[str, Any] | None = None) -> bytes:
        """The request document as another team would produce it."""
        doc = {**body, "id": exec_id,
               "reply_to": reply_to or {"topic": self.reply_topic, "partition": 0}}
        return orjson.dumps(doc)

    async def send(self, exec_id: str, body: dict[str, Any], *, expect_stdout: str | None = None,
                   partition: int | None = None, reply_to: dict[str, Any] | None = None,
                   track: bool = True) -> Tracked | None:
        """Produce one request, retrying the same id while the broker is away (bounded)."""
        t = self.ledger.track(exec_id, "kafka", expect_stdout) if track else None
        value = self.request(exec_id, body, reply_to=reply_to)
        deadline = time.monotonic() + self.deadline_s
        for _attempt in range(100):
            try:
                await asyncio.wait_for(self.producer.send_and_wait(
                    self.requests, value, key=exec_id.encode(), partition=partition), 10)
                if t is not None:
                    t.accepted = True
                return t
            except (KafkaError, TimeoutError) as e:
                if t is not None:
                    t.errors.append(type(e).__name__)
                if time.monotonic() >= deadline:
                    return t
                await asyncio.sleep(0.5)
        return t


async def read_results(bootstrap: str, topic: str, partitions: int, ids: Iterable[str],
                       timeout_s: float) -> dict[str, list[dict[str, Any]]]:
    """Every result on the results topic for ``ids`` (from the start), until each has one
    and nothing more arrives for a moment, or ``timeout_s``."""
    wanted = set(ids)
    found: dict[str, list[dict[str, Any]]] = {i: [] for i in wanted}
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest", fetch_max_wait_ms=100,
                                max_partition_fetch_bytes=16 * 1024 * 1024,
                                fetch_max_bytes=32 * 1024 * 1024)
    await asyncio.wait_for(consumer.start(), 30)
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await asyncio.wait_for(consumer.seek_to_beginning(*tps), 30)
        deadline = time.monotonic() + timeout_s
        quiet_since: float | None = None
        while time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=300, max_records=1000)
            for records in batches.values():
                for rec in records:
                    key = (rec.key or b"").decode()
                    if key in wanted and rec.value:
                        found[key].append(orjson.loads(rec.value))
            if all(found.values()):
                # Everything has an answer: a little longer, to catch a late duplicate.
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since > 1.0:
                    break
    finally:
        await asyncio.wait_for(consumer.stop(), 10)
    return found


# -- load --------------------------------------------------------------------------


def sleeper(seconds: float, marker: str) -> tuple[dict[str, Any], str]:
    """A request body that sleeps and prints ``marker``, and the stdout it must give."""
    source = f"import time\ntime.sleep({seconds})\nprint({marker!r})"
    return ({"language": "python", "source": source,
             "limits": {"wall_ms": int(seconds * 1000) + 10000}}, f"{marker}\n")


async def steady_load(http: HttpClients, kafka: KafkaDirect | None, *, rate: float,
                      duration_s: float, run_s: float, prefix: str,
                      kafka_every: int = 4) -> list[asyncio.Task[Any]]:
    """:func:`load_until` for ``duration_s``, every request running ``run_s`` seconds."""
    return await load_until(http, kafka, asyncio.Event(), rate=rate, max_s=duration_s,
                            runs=(run_s,), prefix=prefix, kafka_every=kafka_every)


async def settle(ledger: Ledger, tasks: list[asyncio.Task[Any]], timeout_s: float) -> None:
    """Wait, ``timeout_s`` in all, for the clients to finish and every reply_to answer."""
    deadline = time.monotonic() + timeout_s
    if tasks:
        done, pending = await asyncio.wait(tasks, timeout=timeout_s)
        for task in pending:
            task.cancel()
        for task in done:
            error = task.exception()
            if error is not None:  # a client's own bug must fail loudly, not count as lost
                raise error
    kafka = [t for t in ledger.of("kafka") if t.accepted]
    await poll_until(lambda: all(t.answered for t in kafka),
                     max(0.0, deadline - time.monotonic()))


# -- the worker group and an open-ended load (scale-up and rolling-restart rows) -----

#: Workers name their Kafka clients ``runstream-worker-<worker id>``.
_WORKER_CLIENT = "runstream-worker-"


class GroupProbe:
    """The worker group as the broker describes it: each member's partitions.

    Members are named by worker id (from their client id); the partitions are those
    of the requests topic in the member's current assignment.
    """

    def __init__(self, system: System) -> None:
        self.bootstrap = system.env["RUNSTREAM_BOOTSTRAP_SERVERS"]
        self.group = system.env["RUNSTREAM_WORKER_GROUP"]
        self.topic = system.env["RUNSTREAM_REQUESTS_TOPIC"]
        self.admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap,
                                         request_timeout_ms=5000)
        self.ends = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, request_timeout_ms=5000)

    async def start(self) -> None:
        await asyncio.wait_for(self.admin.start(), 30)
        await asyncio.wait_for(self.ends.start(), 30)

    async def close(self) -> None:
        for client in (self.admin, self.ends):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.close() if client is self.admin
                                       else client.stop(), 10)

    async def lag(self) -> int:
        """Records of the requests topic the group has not committed (not answered yet)."""
        committed = await asyncio.wait_for(self.admin.list_consumer_group_offsets(self.group),
                                           10)
        parts = self.ends.partitions_for_topic(self.topic) or set()
        if not parts:
            await asyncio.wait_for(self.ends.topics(), 10)  # fetches the metadata
            parts = self.ends.partitions_for_topic(self.topic) or set()
        tps = [TopicPartition(self.topic, p) for p in sorted(parts)]
        ends = await asyncio.wait_for(self.ends.end_offsets(tps), 10)
        done = {tp: max(0, meta.offset) for tp, meta in committed.items()}
        return sum(max(0, end - done.get(tp, 0)) for tp, end in ends.items())

    async def wait_idle(self, timeout_s: float) -> None:
        """Until every request on the requests topic is committed: nothing is running or
        queued (a run going anywhere holds its offset back). Fails at the timeout."""
        deadline = time.monotonic() + timeout_s
        last: int | str = "?"
        while True:
            with contextlib.suppress(KafkaError, TimeoutError):
                last = await self.lag()
                if last == 0:
                    return
            if time.monotonic() >= deadline:
                raise AssertionError(f"the worker group still has {last} requests "
                                     f"uncommitted after {timeout_s}s")
            await asyncio.sleep(0.2)

    async def describe(self) -> tuple[str, list[tuple[str, list[int]]]]:
        """The group's state and (worker id, partitions) of every member."""
        from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment

        described = await asyncio.wait_for(self.admin.describe_consumer_groups([self.group]), 10)
        state, members = "", []
        for response in described:
            for group in response.to_object()["groups"]:
                state = group["state"]
                for m in group["members"]:
                    wid = m["client_id"].removeprefix(_WORKER_CLIENT)
                    parts: list[int] = []
                    if m["member_assignment"]:
                        assignment = ConsumerProtocolMemberAssignment.decode(
                            m["member_assignment"])
                        parts = sorted(p for topic, ps in assignment.assignment
                                       if topic == self.topic for p in ps)
                    members.append((wid, parts))
        return state, members

    async def wait_for(self, workers: Iterable[str], timeout_s: float) -> dict[str, list[int]]:
        """Until the group is stable with exactly ``workers`` as members, each owning
        partitions of the requests topic; returns their partitions (fails at timeout)."""
        want = set(workers)
        deadline = time.monotonic() + timeout_s
        last: tuple[str, list[tuple[str, list[int]]]] = ("", [])
        while True:
            with contextlib.suppress(KafkaError, TimeoutError):
                last = await self.describe()
            state, members = last
            owned = dict(members)
            if (state == "Stable" and len(members) == len(want) and set(owned) == want
                    and all(owned.values())):
                return owned
            if time.monotonic() >= deadline:
                raise AssertionError(f"the worker group did not become {sorted(want)} in "
                                     f"{timeout_s}s: {state} {members}")
            await asyncio.sleep(0.1)


def worker_log_mark(system: System, name: str) -> int:
    """Bytes in the worker's log now: :func:`worker_log_since` reads what comes after."""
    path = system.logs / f"{name}.log"
    return path.stat().st_size if path.exists() else 0


def worker_log_since(system: System, name: str, mark: int = 0) -> str:
    """The worker's log from byte ``mark`` on (a restarted worker appends to it)."""
    path = system.logs / f"{name}.log"
    if not path.exists():
        return ""
    with path.open("rb") as f:
        f.seek(mark)
        return f.read().decode(errors="replace")


def process_group_left(pgid: int) -> list[int]:
    """Processes still alive (not zombies) in process group or session ``pgid``."""
    alive = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        state, pgrp, session = fields[0], int(fields[2]), int(fields[3])
        if state != "Z" and pgid in (pgrp, session):
            alive.append(int(entry.name))
    return alive


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` now (children, their children, ...)."""
    found, todo = [], [pid]
    for _ in range(10_000):  # bounded walk of the tree
        if not todo:
            break
        kids = children(todo.pop())
        found += kids
        todo += kids
    return found


def still_running(pids: Iterable[int]) -> list[int]:
    """Those of ``pids`` still alive (not zombies). A reused pid counts: rare, and loud."""
    alive = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.append(pid)
    return alive


def longest_gap(ledger: Ledger, start: float, end: float) -> float:
    """Largest gap between first answers in [start, end] (bounded by the window's ends)."""
    times = sorted(t for r in ledger.requests.values() for t, _ in r.answers[:1]
                   if start <= t <= end)
    points = [start, *times, end]
    return max(b - a for a, b in itertools.pairwise(points))


async def load_until(http: HttpClients, kafka: KafkaDirect | None, stop: asyncio.Event, *,
                     rate: float, max_s: float, runs: tuple[float, ...], prefix: str,
                     kafka_every: int = 4) -> list[asyncio.Task[Any]]:
    """Start ``rate`` requests per second until ``stop`` is set (at most ``max_s``): every
    ``kafka_every``-th straight onto Kafka, the rest over HTTP (alternating ingresses);
    request ``n`` runs ``runs[n % len(runs)]`` seconds. Returns the requests' tasks."""
    tasks: list[asyncio.Task[Any]] = []
    t0 = time.monotonic()
    for n in range(int(rate * max_s)):
        delay = t0 + n / rate - time.monotonic()
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)  # the load's own schedule
        if stop.is_set():
            break
        exec_id = f"{prefix}-{n}-{uuid.uuid4().hex[:6]}"
        body, out = sleeper(runs[n % len(runs)], exec_id)
        coro: Awaitable[Any]
        if kafka is not None and kafka_every and n % kafka_every == kafka_every - 1:
            coro = kafka.send(exec_id, body, expect_stdout=out)
        else:
            coro = http.run(exec_id, body, expect_stdout=out, first=n)
        tasks.append(asyncio.ensure_future(coro))
    return tasks


@contextlib.asynccontextmanager
async def clients(system: System, book: Ledger, *, wait_s: float, deadline_s: float,
                  retry_429: bool = False) -> AsyncIterator[tuple[HttpClients, KafkaDirect]]:
    """A row's HTTP clients and Kafka producer/reply reader, closed whatever happens."""
    http = HttpClients(system, book, wait_s=wait_s, deadline_s=deadline_s,
                       retry_429=retry_429)
    kafka = KafkaDirect(system, book, deadline_s=deadline_s)
    await kafka.start()
    try:
        yield http, kafka
    finally:
        await kafka.stop()
        await http.close()


async def conclude(book: Ledger, http: HttpClients) -> None:
    """End the fault window, ask every ingress again for every id, check the promise."""
    book.fault_ends()
    await http.verify()
    book.assert_promise()
