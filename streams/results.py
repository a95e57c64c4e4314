"""Every result within the results topic's retention, findable by execution id.

A :class:`ResultStore` follows the partitions of the compacted results topic
(all of them, or a chosen set: :meth:`ResultStore.follow`, for a worker that needs
only the results of the request partitions it owns, see ``streams/copartition.py``)
with one group-less consumer and keeps two things:

- an on-disk index (SQLite, WAL) from execution id to the (partition, offset)
  of its latest result, together with the positions read so far, so that a
  restarted process resumes where it stopped instead of re-reading the topic;
- an LRU of recent result bytes, bounded in count and bytes.

A lookup that the LRU misses but the index knows reads that one record back
from Kafka with a second, assigned consumer. Memory is therefore bounded by the
LRU and SQLite's page cache whatever the retention; disk costs about 100 bytes
per id (``python -m runstream.streams.results --bench 1000000`` measures it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import logging
import re
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from runstream.schemas.errors import BrokerUnavailable
from runstream.services.settings import Settings
from runstream.streams import kafka
from runstream.streams.copartition import partition_for
from runstream.streams.follower import STOP_S, Follower

log = logging.getLogger(__name__)

Listener = Callable[[str, bytes], None]
T = TypeVar("T")
# SQLite's page cache per index: what the index costs in memory, whatever its size.
INDEX_CACHE_KIB = 8192


class RecentResults:
    """Result bytes by id, bounded in count and bytes; the least recently used go first.

    Each entry remembers where it was read (partition, offset) so that a record
    read late (the follower catching up) never replaces a newer one.
    """

    def __init__(self, max_items: int, max_bytes: int) -> None:
        self._items: OrderedDict[str, tuple[bytes, int | None, int | None]] = OrderedDict()
        self._bytes = 0
        self.max_items = max_items
        self.max_bytes = max_bytes

    def get(self, exec_id: str) -> bytes | None:
        item = self._items.get(exec_id)
        if item is None:
            return None
        self._items.move_to_end(exec_id)
        return item[0]

    def put(self, exec_id: str, value: bytes, partition: int | None = None,
            offset: int | None = None) -> None:
        old = self._items.get(exec_id)
        if (old is not None and offset is not None and old[2] is not None
                and old[1] == partition and old[2] > offset):
            return  # we already hold a newer record of this id
        self.pop(exec_id)
        self._items[exec_id] = (value, partition, offset)
        self._bytes += len(value)
        while self._items and (len(self._items) > self.max_items or self._bytes > self.max_bytes):
            _, (dropped, _, _) = self._items.popitem(last=False)
            self._bytes -= len(dropped)

    def pop(self, exec_id: str) -> None:
        old = self._items.pop(exec_id, None)
        if old is not None:
            self._bytes -= len(old[0])

    def __len__(self) -> int:
        return len(self._items)


class ResultIndex:
    """id -> (partition, offset) and the positions read, in one SQLite file.

    Not thread-safe: :class:`ResultStore` calls it from one thread only.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")  # a lost tail is re-read from Kafka
        self.db.execute(f"PRAGMA cache_size=-{INDEX_CACHE_KIB}")
        self.db.execute("CREATE TABLE IF NOT EXISTS ids (id TEXT PRIMARY KEY, part INTEGER "
                        "NOT NULL, off INTEGER NOT NULL) WITHOUT ROWID")
        self.db.execute("CREATE TABLE IF NOT EXISTS positions (part INTEGER PRIMARY KEY, "
                        "next INTEGER NOT NULL)")

    def write(self, rows: Iterable[tuple[str, int, int]], deleted: Iterable[str],
              positions: dict[int, int]) -> None:
        """One transaction per fetched batch: the ids and the positions move together."""
        with self._transaction():
            self.db.executemany("INSERT OR REPLACE INTO ids VALUES (?, ?, ?)", rows)
            self.db.executemany("DELETE FROM ids WHERE id = ?", ((i,) for i in deleted))
            self.db.executemany("INSERT OR REPLACE INTO positions VALUES (?, ?)",
                                positions.items())

    def find(self, exec_id: str) -> tuple[int, int] | None:
        row = self.db.execute("SELECT part, off FROM ids WHERE id = ?", (exec_id,)).fetchone()
        return None if row is None else (int(row[0]), int(row[1]))

    def forget(self, exec_id: str) -> None:
        self.db.execute("DELETE FROM ids WHERE id = ?", (exec_id,))

    def positions(self) -> dict[int, int]:
        return {int(p): int(n) for p, n in self.db.execute("SELECT part, next FROM positions")}

    def prune(self, beginnings: dict[int, int]) -> int:
        """Drop ids whose records retention has deleted (a full scan: run it rarely)."""
        with self._transaction():
            return sum(self.db.execute("DELETE FROM ids WHERE part = ? AND off < ?",
                                       (p, b)).rowcount for p, b in beginnings.items() if b > 0)

    def reset(self) -> None:
        with self._transaction():
            self.db.execute("DELETE FROM ids")
            self.db.execute("DELETE FROM positions")

    def close(self) -> None:
        self.db.close()

    @contextlib.contextmanager
    def _transaction(self):  # type: ignore[no-untyped-def]
        self.db.execute("BEGIN")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")


def index_path(settings: Settings, name: str) -> Path:
    """One file per process name, topic and cluster: two clusters never share offsets."""
    cluster = hashlib.sha1(settings.bootstrap_servers.encode()).hexdigest()[:8]
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", f"{name}.{settings.results_topic}.{cluster}")
    return Path(settings.index_dir).expanduser() / f"{safe}.sqlite"


class ResultStore(Follower):
    """The latest result of every id within the results topic's retention, in bounded memory.

    Used by the ingress (GET, idempotent retries) and by workers (deduplication).
    ``name`` must be unique per running process: it names the Kafka clients and
    the index file.
    """

    PRUNE_EVERY_S = 3600.0
    #: Its round awaits the index write between reading a batch and noting the
    #: positions: :meth:`caught_up` compares what the round noted.
    positions_from_consumer = False
    max_records = 2000

    def __init__(self, settings: Settings, *, name: str, lag_ms: int = 0,
                 partitions: Iterable[int] | None = None, moves: bool = False) -> None:
        super().__init__(settings, settings.results_topic,
                         client_id=f"runstream-{name}-results",
                         isolation_level="read_committed", auto_offset_reset="earliest")
        self.name = name
        #: How far behind the topic the follower may read, to read it in fewer, larger
        #: fetches under load; 0: each result as soon as it is written. After a batch the
        #: follower pauses this long, unless a look-up waits (:meth:`get` reads up to
        #: the end first); idle, its fetch waits for the next record, so the lag costs no
        #: fetches while nothing is written.
        self.lag_ms = lag_ms
        self._hurried = asyncio.Event()  # a look-up waits: end the pause
        #: ``moves``: the partitions followed change while it runs (a worker's, with
        #: :meth:`follow` on each rebalance); otherwise the broker may hold its fetch long.
        if not moves and partitions is None:
            self.fetch_hold_ms = kafka.HOLD_MS
        self._wanted: frozenset[int] | None = None if partitions is None else frozenset(
            partitions)
        self._changes: list[asyncio.Future[None]] = []  # follow() calls not applied yet
        self._changed = asyncio.Event()  # wakes a follower that follows no partition
        self._all: list[TopicPartition] = []  # every partition of the topic
        self.recent = RecentResults(settings.ingress_results_cache,
                                    settings.results_cache_mb * 1024 * 1024)
        self._listeners: list[Listener] = []
        self._db = ThreadPoolExecutor(1, thread_name_prefix=f"index-{name}")
        self._index: ResultIndex | None = None
        self._reader: AIOKafkaConsumer | None = None
        self._reader_lock = asyncio.Lock()
        self._pruned_at = 0.0

    # -- lifecycle -------------------------------------------------------------
    async def start(self, timeout_s: float = 30.0) -> None:
        """Connect and start following; the index catches up in the background."""
        s = self.settings
        self._index = await self._run(ResultIndex, index_path(s, self.name))
        self._reader = kafka.consumer(s, client_id=f"runstream-{self.name}-results-reader",
                                      fetch_max_wait_ms=100, isolation_level="read_committed",
                                      auto_offset_reset="earliest")
        try:
            await kafka.start(self._reader, s, timeout_s=timeout_s)
        except BaseException:
            await self.stop()
            raise
        await super().start(timeout_s)

    async def _assign(self, consumer: AIOKafkaConsumer, deadline: float) -> None:
        self._all = await kafka.partitions_of(consumer, self.topic, self.settings, deadline)
        await self._apply(self._wanted, max(1.0, deadline - time.monotonic()))
        # The first prune waits a minute: at start-up, catching up comes first.
        self._pruned_at = time.monotonic() - self.PRUNE_EVERY_S + 60

    async def _apply(self, wanted: frozenset[int] | None, wait: float) -> None:
        """Assign the wanted partitions, each from where this index stopped reading it.

        Runs while no batch is being read (at start, or between two of ``_follow``'s
        fetches): the positions stored with the index are those of every record indexed.
        """
        assert self._consumer is not None and self._index is not None
        s = self.settings
        tps = [tp for tp in self._all if wanted is None or tp.partition in wanted]
        first = await asyncio.wait_for(self.offsets.beginning_offsets(tps), wait) if tps else {}
        end = await asyncio.wait_for(self.offsets.end_offsets(tps), wait) if tps else {}
        saved = await self._run(self._index.positions)
        if any(saved.get(tp.partition, 0) > end[tp] for tp in tps):
            # Positions beyond the end: the topic was re-created. Nothing indexed is valid.
            log.warning("index %s is ahead of %s; rebuilding it", self._index.path, s.results_topic)
            await self._run(self._index.reset)
            saved = {}
        self._consumer.assign(tps)
        positions = {}
        for tp in tps:
            positions[tp.partition] = max(saved.get(tp.partition, 0), first[tp])
            self._consumer.seek(tp, positions[tp.partition])
        self._tps = tps
        await self._advance(positions)
        log.info("results index %s follows %s from %s (end %s)", self._index.path,
                 "every partition" if wanted is None else sorted(wanted), positions,
                 {tp.partition: end[tp] for tp in tps})

    @property
    def followed(self) -> frozenset[int] | None:
        """The partitions followed (or to be, once a :meth:`follow` is applied); None: all."""
        return self._wanted

    async def follow(self, partitions: Iterable[int] | None, *, timeout_s: float = 10.0) -> None:
        """From now on follow only ``partitions`` of the results topic (None: every one).

        For a worker, on each rebalance: the results partitions of the request partitions
        it was assigned (:func:`~runstream.streams.copartition.co_partitions`). A partition
        followed again resumes where this index stopped reading it. Returns once the
        follower reads the new set (the change waits for the batch being read); a lookup
        of an id in a partition not followed follows it too (:meth:`get`). Raises
        TimeoutError past ``timeout_s``; the change is applied anyway, later.
        """
        self._wanted = None if partitions is None else frozenset(partitions)
        if self._task is None:
            return  # start() assigns what is wanted
        done = asyncio.get_running_loop().create_future()
        self._changes.append(done)
        self._changed.set()
        await asyncio.wait_for(asyncio.shield(done), timeout_s)

    async def _follow_partition_of(self, exec_id: str, timeout_s: float) -> None:
        """Follow the partition of ``exec_id`` too, unless it is read already.

        "Read" is what the follower was assigned, not what was asked for: a follow()
        asked a moment ago (a worker's rebalance) is applied between two batches, and
        until then :meth:`caught_up` would not wait for that partition, so a lookup would
        say "not stored" of a result that is (and a re-delivery would run twice).
        """
        if not self._all:
            return
        part = partition_for(exec_id.encode(), len(self._all))
        if any(tp.partition == part for tp in self._tps) and not self._changes:
            return
        wanted = self._wanted
        if wanted is not None and part not in wanted:
            log.info("results index %s: %r is in partition %d, not followed: following it",
                     self.name, exec_id, part)
        await self.follow(None if wanted is None else wanted | {part}, timeout_s=timeout_s)

    async def stop(self, timeout_s: float = STOP_S) -> None:
        """Stop following and close everything; bounded whatever the broker does."""
        await asyncio.gather(super().stop(timeout_s), kafka.close(self._reader,
                                                                  timeout_s=timeout_s))
        if self._index is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._run(self._index.close), 5)
            self._index = None
        self._db.shutdown(wait=False)

    # -- lookups ---------------------------------------------------------------
    def cached(self, exec_id: str) -> bytes | None:
        """The result if it is in memory; no I/O."""
        return self.recent.get(exec_id)

    async def get(self, exec_id: str, *, timeout_s: float, exact: bool = False) -> bytes | None:
        """The latest stored result of ``exec_id``, or None.

        Waits (up to ``timeout_s``) until the index has read the topic up to its
        end as of this call; past that, answers from what it has read so far, or,
        when ``exact``, raises BrokerUnavailable (None must then mean "not stored").
        Raises BrokerUnavailable if the record the index points to cannot be read.
        """
        deadline = time.monotonic() + timeout_s
        with contextlib.suppress(TimeoutError):
            await self._follow_partition_of(exec_id, timeout_s)
        # Results are keyed by id: only the id's partition can hold its result.
        mine = {partition_for(exec_id.encode(), len(self._all))} if self._all else None
        if not await self.caught_up(max(0.0, deadline - time.monotonic()), mine):
            if exact:
                raise BrokerUnavailable(
                    f"the results index of {self.name} has not read {self.settings.results_topic}"
                    f" up to its end within {timeout_s:.1f}s")
            log.warning("results index of %s still catching up after %.1fs; answering %r "
                        "from what it has read", self.name, timeout_s, exec_id)
        value = self.recent.get(exec_id)
        if value is not None or self._index is None:
            return value
        where = await self._run(self._index.find, exec_id)
        if where is None:
            return None
        return await self._read(exec_id, *where, max(0.5, deadline - time.monotonic()))

    async def _read(self, exec_id: str, partition: int, offset: int,
                    timeout_s: float) -> bytes | None:
        """Read back the record at (partition, offset), or the next one of that key."""
        assert self._reader is not None and self._index is not None
        tp = TopicPartition(self.settings.results_topic, partition)
        key = exec_id.encode()
        async with self._reader_lock:  # one assigned consumer, one fetch at a time
            try:
                async with asyncio.timeout(timeout_s):
                    if self._reader.assignment() != {tp}:
                        self._reader.assign([tp])
                    self._reader.seek(tp, offset)
                    self._reader.resume(tp)
                    while True:
                        got = await self._reader.getmany(tp, timeout_ms=500, max_records=1)
                        records = got.get(tp, [])
                        if records:
                            record = records[0]
                            break
            except (KafkaError, TimeoutError, OSError) as e:
                raise BrokerUnavailable(f"could not read the result of {exec_id!r} back from "
                                        f"{tp.topic}[{partition}]@{offset}: {e!r}") from e
            finally:
                # Between reads the reader fetches nothing (it would ask 10 times a second).
                with contextlib.suppress(Exception):
                    self._reader.pause(tp)
        if record.key != key or record.value is None:
            # Retention deleted it (the next record is another id's) or it was tombstoned.
            await self._run(self._index.forget, exec_id)
            return None
        self.recent.put(exec_id, record.value, partition, record.offset)
        return bytes(record.value)

    def note(self, exec_id: str, value: bytes, partition: int | None = None,
             offset: int | None = None) -> None:
        """A result this process published itself, known before the follower reads it."""
        self.recent.put(exec_id, value, partition, offset)

    def _hurry(self) -> None:
        self._hurried.set()

    def add_listener(self, fn: Listener) -> None:
        """Call ``fn(id, value)`` for every result record read from the topic."""
        self._listeners.append(fn)

    # -- following -------------------------------------------------------------
    async def _round(self) -> None:
        assert self._consumer is not None
        paused: list[TopicPartition] = []
        try:
            if self._changes:
                await self._apply_changes()
            if not self._tps:  # nothing to read until a follow()
                self._changed.clear()
                await self._changed.wait()
                return
            if time.monotonic() - self._pruned_at > self.PRUNE_EVERY_S:
                self._pruned_at = time.monotonic()
                await self._prune()
            batches = await self._consumer.getmany(timeout_ms=self.fetch_wait_ms,
                                                   max_records=self.max_records)
            count = sum(len(records) for records in batches.values())
            if self.lag_ms and 0 < count < self.max_records:
                # At once, before the consumer's background task sends its next fetch:
                # the next batch is read lag_ms from now (not after a full batch: then
                # the index is catching up, as fast as it can).
                paused = list(self._tps)
                self._consumer.pause(*paused)
                resume_at = time.monotonic() + self.lag_ms / 1000
                self._hurried.clear()
            await self._index_batch(batches)
            if paused:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._hurried.wait(),
                                           max(0.0, resume_at - time.monotonic()))
        finally:
            if paused:
                with contextlib.suppress(Exception):  # unassigned since: nothing to resume
                    self._consumer.resume(*paused)

    async def _index_batch(self, batches: dict[TopicPartition, list[Any]]) -> None:
        assert self._index is not None
        rows: list[tuple[str, int, int]] = []
        deleted: list[str] = []
        for tp, records in batches.items():
            for r in records:
                if r.key is None:
                    continue
                exec_id = r.key.decode("utf-8", "replace")
                if r.value is None:
                    deleted.append(exec_id)
                    self.recent.pop(exec_id)
                    continue
                rows.append((exec_id, tp.partition, r.offset))
                self.recent.put(exec_id, r.value, tp.partition, r.offset)
                self._tell(exec_id, r.value)
        positions = await self._read_positions()
        if rows or deleted or positions != self._positions:
            await self._run(self._index.write, rows, deleted, positions)
        await self._advance(positions)

    async def _apply_changes(self) -> None:
        """Apply what :meth:`follow` asked for, between two batches."""
        changes, self._changes = self._changes, []
        try:
            await self._apply(self._wanted, self.settings.request_timeout_s * 5)
        except BaseException:
            self._changes[:0] = changes  # tried again on the next round
            raise
        for done in changes:
            if not done.done():
                done.set_result(None)

    def _tell(self, exec_id: str, value: bytes) -> None:
        for fn in self._listeners:
            try:
                fn(exec_id, value)
            except Exception:
                log.exception("a results listener failed on %r", exec_id)

    async def _prune(self) -> None:
        assert self._consumer is not None and self._index is not None
        first = await asyncio.wait_for(self.offsets.beginning_offsets(self._tps),
                                       self.settings.request_timeout_s * 5)
        dropped = await self._run(self._index.prune, {tp.partition: o for tp, o in first.items()})
        if dropped:
            log.info("results index: %d ids past retention dropped", dropped)

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        # Every SQLite call runs on the store's one thread: no lock, no blocked loop.
        return await asyncio.get_running_loop().run_in_executor(self._db, fn, *args)


def bench(count: int, folder: Path) -> dict[str, float]:
    """Index ``count`` ids the way the follower does; what it costs on disk and in memory."""
    import resource
    import uuid

    path = folder / "bench.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    index = ResultIndex(path)
    t0 = time.perf_counter()
    ids = [str(uuid.uuid4()) for _ in range(min(count, 1000))]
    batch = 2000
    for start in range(0, count, batch):
        rows = [(str(uuid.uuid4()), n % 12, n // 12)
                for n in range(start, min(count, start + batch))]
        if start == 0:
            rows[: len(ids)] = [(i, 0, n) for n, i in enumerate(ids)]
        index.write(rows, [], {0: start + batch})
    insert_s = time.perf_counter() - t0
    index.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    t1 = time.perf_counter()
    for i in ids:
        assert index.find(i) is not None
    lookup_us = (time.perf_counter() - t1) / len(ids) * 1e6
    index.close()
    disk = sum(Path(f"{path}{s}").stat().st_size for s in ("", "-wal", "-shm")
               if Path(f"{path}{s}").exists())
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"ids": count, "disk_bytes_per_million": disk / count * 1e6,
            "disk_bytes_per_id": disk / count, "page_cache_bytes": INDEX_CACHE_KIB * 1024,
            "peak_rss_growth_bytes": (rss1 - rss0) * 1024, "inserts_per_s": count / insert_s,
            "lookup_us": lookup_us}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runstream.streams.results")
    parser.add_argument("--bench", type=int, metavar="IDS", required=True,
                        help="index this many random ids and print the cost")
    parser.add_argument("--dir", default="/tmp/runstream-index-bench")
    args = parser.parse_args(argv)
    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    for k, v in bench(args.bench, folder).items():
        print(f"{k:28} {v:,.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
