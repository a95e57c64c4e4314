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
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from runstream.schemas.errors import BrokerUnavailable, InvalidRequest
from runstream.schemas.keys import KeyRecord, decode_record, encode_record, new_key, revoke
from runstream.services.settings import Settings
from runstream.streams import kafka
from runstream.streams.follower import Follower

log = logging.getLogger(__name__)

Listener = Callable[[str, KeyRecord | None], None]


class KeyStore(Follower):
    """Every API key record, in memory, kept current by following the keys topic.

    ``name`` names the Kafka client (unique per process, for the broker's logs).
    Also what the webhook deliverer asks for a key's signing secret.
    """

    fetch_hold_ms = kafka.HOLD_MS  # every partition, from start to stop

    def __init__(self, settings: Settings, *, name: str) -> None:
        super().__init__(settings, settings.keys_topic,
                         client_id=f"runstream-{name}-keys", auto_offset_reset="earliest")
        self.name = name
        self.records: dict[str, KeyRecord] = {}
        self._listeners: list[Listener] = []
        self._start_s = 30.0

    async def start(self, timeout_s: float = 30.0) -> None:
        """Connect, read every record there is, then keep following.

        Raises BrokerUnavailable if the topic does not exist or cannot be read to
        its end within ``timeout_s``: an ingress must not refuse valid keys because
        it has not read them yet.
        """
        self._start_s = timeout_s
        await super().start(timeout_s)
        log.info("%s: %d API key(s) read from %s", self.name, len(self.records), self.topic)

    async def _assign(self, consumer: AIOKafkaConsumer, deadline: float) -> None:
        tps = await kafka.assign_all(consumer, self.topic, self.settings, deadline)
        first = await asyncio.wait_for(self.offsets.beginning_offsets(tps),
                                       max(1.0, deadline - time.monotonic()))
        for tp in tps:
            consumer.seek(tp, first[tp])
        self._set_positions(tps, {tp.partition: first[tp] for tp in tps})

    async def _ready(self, deadline: float) -> None:
        if not await self.caught_up(max(1.0, deadline - time.monotonic())):
            raise BrokerUnavailable(f"could not read {self.topic} to its end within "
                                    f"{self._start_s:g}s")

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

    # -- following -------------------------------------------------------------
    def _on_record(self, record: Any) -> None:
        self._apply(record.key, record.value)

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
