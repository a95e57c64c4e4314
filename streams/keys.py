"""API key records on the compacted keys topic: followed by every ingress, written by the CLI.

A :class:`KeyStore` reads the whole keys topic from its beginning when it
starts (a few hundred bytes per key), then follows it live with a short fetch
wait, so that a key created or revoked anywhere is seen by every process within
about the fetch wait (0.1 s, plus the produce). A key id it does not know is
looked up exactly: the store first reads up to the topic's end offsets as of the
lookup (concurrent lookups share one end-offsets request), so a key used right
after ``runstream keys create`` returned is found.

The records are the key's latest state (schema ``key.v1.json``): a revocation is
a new record for the same id, a tombstone deletes the key.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from runstream.schemas.errors import BrokerUnavailable, InvalidRequest
from runstream.schemas.keys import KeyRecord, decode_record, encode_record, new_key, revoke
from runstream.services.logs import Throttled
from runstream.services.settings import Settings
from runstream.streams import kafka

log = logging.getLogger(__name__)
_warn = Throttled(log)

Listener = Callable[[str, KeyRecord | None], None]


class KeyStore:
    """Every API key record, in memory, kept current by following the keys topic.

    ``name`` names the Kafka client (unique per process, for the broker's logs).
    Also what the webhook deliverer asks for a key's signing secret.
    """

    def __init__(self, settings: Settings, *, name: str) -> None:
        self.settings = settings
        self.name = name
        self.records: dict[str, KeyRecord] = {}
        self._listeners: list[Listener] = []
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._tps: list[TopicPartition] = []
        self._positions: dict[int, int] = {}  # next offset to read, per partition
        self._progress = asyncio.Condition()
        self._ends = kafka.EndOffsets()  # shared snapshots of the topic's end offsets

    # -- lifecycle -------------------------------------------------------------
    async def start(self, timeout_s: float = 30.0) -> None:
        """Connect, read every record there is, then keep following.

        Raises BrokerUnavailable if the topic does not exist or cannot be read to
        its end within ``timeout_s``: an ingress must not refuse valid keys because
        it has not read them yet.
        """
        s = self.settings
        self._consumer = kafka.consumer(s, client_id=f"runstream-{self.name}-keys",
                                        auto_offset_reset="earliest")
        deadline = time.monotonic() + timeout_s
        try:
            await kafka.start(self._consumer, s, timeout_s=timeout_s)
            await self._assign(deadline)
        except BaseException:
            await self.stop()
            raise
        self._task = asyncio.create_task(self._follow(), name=f"keys-{self.name}")
        if not await self.caught_up(max(1.0, deadline - time.monotonic())):
            await self.stop()
            raise BrokerUnavailable(f"could not read {s.keys_topic} to its end within "
                                    f"{timeout_s:g}s")
        log.info("%s: %d API key(s) read from %s", self.name, len(self.records), s.keys_topic)

    async def _assign(self, deadline: float) -> None:
        assert self._consumer is not None
        s = self.settings
        self._tps = await kafka.assign_all(self._consumer, s.keys_topic, s, deadline)
        first = await asyncio.wait_for(self._consumer.beginning_offsets(self._tps),
                                       max(1.0, deadline - time.monotonic()))
        for tp in self._tps:
            self._consumer.seek(tp, first[tp])
            self._positions[tp.partition] = first[tp]

    async def stop(self) -> None:
        """Stop following and close the consumer (bounded)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._task, 5)
            self._task = None
        await kafka.close(self._consumer, timeout_s=5)
        self._consumer = None

    # -- lookups ---------------------------------------------------------------
    def get(self, key_id: str) -> KeyRecord | None:
        """The latest record of ``key_id`` read so far; no I/O."""
        return self.records.get(key_id)

    def webhook_secret(self, key_id: str) -> bytes | None:
        """HMAC key of ``key_id``'s webhooks; None if the key is unknown or deleted.

        A revoked key still has one: its executions admitted before the revocation
        are still delivered, signed.
        """
        record = self.records.get(key_id)
        return record.webhook_key() if record is not None else None

    async def lookup(self, key_id: str, timeout_s: float) -> KeyRecord | None:
        """The record of ``key_id``; an id not seen yet is looked up up to the topic's end."""
        record = self.records.get(key_id)
        if record is None and await self.caught_up(timeout_s):
            record = self.records.get(key_id)
        return record

    def add_listener(self, fn: Listener) -> None:
        """Call ``fn(key_id, record)`` for every record read (record None: deleted)."""
        self._listeners.append(fn)

    async def wait_for(self, key_id: str, check: Callable[[KeyRecord | None], bool],
                       timeout_s: float) -> bool:
        """Until ``check(record of key_id)`` holds; False after ``timeout_s``."""
        async with self._progress:
            try:
                await asyncio.wait_for(
                    self._progress.wait_for(lambda: check(self.records.get(key_id))), timeout_s)
            except TimeoutError:
                return False
        return True

    async def caught_up(self, timeout_s: float) -> bool:
        """Snapshot the end offsets now and wait until the store has read up to them."""
        deadline = time.monotonic() + timeout_s
        try:
            ends = await self._end_offsets(timeout_s)
        except (KafkaError, TimeoutError, OSError) as e:
            _warn.warning("keys-ends", "end offsets of %s unavailable: %r",
                          self.settings.keys_topic, e)
            return False
        async with self._progress:
            try:
                await asyncio.wait_for(self._progress.wait_for(lambda: all(
                    self._positions.get(p, 0) >= end for p, end in ends.items())),
                    max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                return False
        return True

    async def _end_offsets(self, timeout_s: float) -> dict[int, int]:
        """End offsets fetched after this call began; concurrent callers share one fetch.

        A flood of unknown key ids therefore costs one request to the broker at a
        time, not one each.
        """
        assert self._consumer is not None
        return await self._ends.fetch(self._consumer, self._tps, timeout_s)

    # -- following -------------------------------------------------------------
    async def _follow(self) -> None:
        assert self._consumer is not None
        while True:
            try:
                batches = await self._consumer.getmany(timeout_ms=500, max_records=1000)
                for records in batches.values():
                    for r in records:
                        self._apply(r.key, r.value)
                async with asyncio.timeout(self.settings.request_timeout_s * 5):
                    positions = {tp.partition: await self._consumer.position(tp)
                                 for tp in self._tps}
                async with self._progress:
                    self._positions = positions
                    self._progress.notify_all()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # keep following through broker restarts
                _warn.warning("keys-follow", "reading %s failed (%r); retrying",
                              self.settings.keys_topic, e)
                await asyncio.sleep(0.5)

    def _apply(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        key_id = key.decode("utf-8", "replace")
        record: KeyRecord | None = None
        if value is None:
            self.records.pop(key_id, None)
        else:
            try:
                record = decode_record(value)
            except InvalidRequest as e:
                log.warning("ignoring an invalid key record under %r: %s", key_id, e.message)
                return
            if record.id != key_id:
                log.warning("ignoring key record %r filed under another id %r", record.id, key_id)
                return
            self.records[key_id] = record
        for fn in self._listeners:
            try:
                fn(key_id, record)
            except Exception:
                log.exception("a keys listener failed on %r", key_id)


async def publish(settings: Settings, record: KeyRecord, *, timeout_s: float = 30.0) -> None:
    """Write ``record`` to the keys topic (acks=all), keyed by its id."""
    producer = kafka.producer(settings, client_id="runstream-keys-admin")
    try:
        await kafka.start(producer, settings, timeout_s=timeout_s)
        await asyncio.wait_for(producer.send_and_wait(
            settings.keys_topic, encode_record(record), key=record.id.encode()), timeout_s)
    except (KafkaError, TimeoutError, OSError) as e:
        raise BrokerUnavailable(f"could not write key {record.id} to {settings.keys_topic}: "
                                f"{e!r}") from e
    finally:
        await kafka.close(producer)


async def create_key(settings: Settings, name: str, **quotas: Any) -> tuple[KeyRecord, str]:
    """A new key, stored; returns its record and the full key (to be shown once)."""
    record, full_key = new_key(name, now=datetime.now(UTC), **quotas)
    await publish(settings, record)
    return record, full_key


async def read_keys(settings: Settings, *, timeout_s: float = 30.0) -> list[KeyRecord]:
    """Every key record, oldest first."""
    store = KeyStore(settings, name="keys-admin")
    await store.start(timeout_s)
    try:
        return sorted(store.records.values(), key=lambda r: (r.created_at, r.id))
    finally:
        await store.stop()


async def revoke_key(settings: Settings, key_id: str, *,
                     timeout_s: float = 30.0) -> KeyRecord | None:
    """Revoke ``key_id``; returns the revoked record, or None if there is no such key."""
    store = KeyStore(settings, name="keys-admin")
    await store.start(timeout_s)
    try:
        record = store.get(key_id)
        if record is None or record.revoked:
            return record
        revoked = revoke(record, datetime.now(UTC))
        await publish(settings, revoked, timeout_s=timeout_s)
        return revoked
    finally:
        await store.stop()
