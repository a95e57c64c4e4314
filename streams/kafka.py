"""The one place Kafka clients are built: every producer, consumer and admin client.

Each factory applies the settings every client of runstream shares (bootstrap
servers, security, request timeout, message size) and the role's own defaults;
callers pass only what is particular to them (a group, a client id, an offset
reset policy). A managed Kafka (SASL/SSL) is then configured once, in Settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Callable
from typing import Any, TypeAlias

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import (
    InvalidProducerEpoch,
    KafkaError,
    OutOfOrderSequenceNumber,
    UnknownProducerId,
)
from runstream.schemas.errors import BrokerUnavailable
from runstream.services.errors import ConfigurationError
from runstream.services.logs import Throttled
from runstream.services.settings import Settings

log = logging.getLogger(__name__)

Client: TypeAlias = AIOKafkaProducer | AIOKafkaConsumer | AIOKafkaAdminClient


def common(settings: Settings) -> dict[str, Any]:
    """Connection and security settings shared by every client."""
    conf: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "security_protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        conf["ssl_context"] = _ssl_context(settings)
    if settings.kafka_security_protocol.startswith("SASL_"):
        conf.update(sasl_mechanism=settings.kafka_sasl_mechanism,
                    sasl_plain_username=settings.kafka_sasl_username,
                    sasl_plain_password=settings.kafka_sasl_password)
    return conf


def _ssl_context(settings: Settings) -> ssl.SSLContext:
    """TLS to the brokers: their CA (or the system's), and a client certificate if set."""
    try:
        context = ssl.create_default_context(cafile=settings.kafka_ssl_cafile or None)
        if settings.kafka_ssl_certfile:
            context.load_cert_chain(settings.kafka_ssl_certfile,
                                    settings.kafka_ssl_keyfile or None)
    except (OSError, ssl.SSLError) as e:
        raise ConfigurationError(
            f"Kafka TLS files (RUNSTREAM_KAFKA_SSL_CAFILE={settings.kafka_ssl_cafile!r}, "
            f"RUNSTREAM_KAFKA_SSL_CERTFILE={settings.kafka_ssl_certfile!r}, "
            f"RUNSTREAM_KAFKA_SSL_KEYFILE={settings.kafka_ssl_keyfile!r}) cannot be used: "
            f"{e}") from e
    return context


def _timeout_ms(settings: Settings) -> int:
    # A produce waits for acks=all; below ~5 s a busy broker's fsync trips it.
    return max(int(settings.request_timeout_s * 1000), 5000)


def producer(settings: Settings, *, client_id: str, **overrides: Any) -> AIOKafkaProducer:
    """An idempotent ``acks=all`` producer: a retry can neither lose nor duplicate a record."""
    conf = common(settings) | {
        "client_id": client_id, "acks": "all", "enable_idempotence": True, "linger_ms": 0,
        "max_request_size": settings.message_max_bytes,
        "request_timeout_ms": _timeout_ms(settings),
    }
    return AIOKafkaProducer(**(conf | overrides))


#: The idempotent producer's sequence for a partition no longer matches the broker's.
#: aiokafka counts a batch it gave up on (a broker restarting, say) as sent and, unlike
#: Kafka's Java client, never resets: every later record to that partition meets
#: OutOfOrderSequenceNumber, for ever. Only a new producer (a new id) gets past it.
SEQUENCE_LOST = (OutOfOrderSequenceNumber, UnknownProducerId, InvalidProducerEpoch)

#: How long the broker may hold an empty fetch of a consumer that follows a topic's end.
#: It answers as soon as a record arrives (``fetch.min.bytes`` is 1), so this bounds
#: only how often an idle consumer asks, not how late it sees a record; Kafka's own
#: default. Waits of 20 to 200 ms here cost the idle workers ~7 % of a core each.
FOLLOW_MAX_WAIT_MS = 500

#: The same for a follower whose partitions stay the same while it runs and are read
#: whole (never some paused, others not): an ingress's results index, the API keys,
#: live stdin, the worker announcements, a correlator of a fixed replies partition.
#: Idle, each asked twice a second, and the broker spends ~1.3 ms of CPU per empty
#: fetch. A longer hold costs such a follower nothing: a record ends it at once, and
#: its questions about offsets go through a client of their own (``Follower.offsets``).
#: What it does delay, by up to its length, is the first fetch (and offset reset) of a
#: new assignment: the broker answers a connection's requests in order. Hence not for
#: what moves on a rebalance (the worker's requests and results, the ingresses' replies
#: partitions), nor for the events feed, which resumes one partition at a time.
HOLD_MS = 5000


def consumer(settings: Settings, *topics: str, client_id: str,
             **overrides: Any) -> AIOKafkaConsumer:
    """A consumer that never commits by itself and can fetch the largest message."""
    conf = common(settings) | {
        "client_id": client_id, "enable_auto_commit": False,
        "fetch_max_wait_ms": FOLLOW_MAX_WAIT_MS,
        "max_partition_fetch_bytes": settings.message_max_bytes,
        "fetch_max_bytes": settings.message_max_bytes * 2,
        "request_timeout_ms": max(_timeout_ms(settings), 40000),
    }
    return AIOKafkaConsumer(*topics, **(conf | overrides))


def admin(settings: Settings, *, client_id: str = "runstream-admin",
          timeout_s: float | None = None) -> AIOKafkaAdminClient:
    """An admin client whose calls are bounded by ``timeout_s`` (default: the request bound)."""
    timeout_ms = int((timeout_s or settings.request_timeout_s) * 1000)
    return AIOKafkaAdminClient(**common(settings), client_id=client_id,
                               request_timeout_ms=timeout_ms)


async def start(client: Client, settings: Settings, *, timeout_s: float = 30.0,
                retry: bool = True) -> None:
    """Start ``client``, retrying while the broker is not reachable yet, up to ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            await asyncio.wait_for(client.start(), max(1.0, deadline - time.monotonic()))
            return
        except (KafkaError, OSError, TimeoutError) as e:
            if not retry or time.monotonic() >= deadline:
                with contextlib.suppress(Exception):
                    await close(client, timeout_s=2.0)
                raise BrokerUnavailable(
                    f"Kafka at {settings.bootstrap_servers} did not answer: {e!r}") from e
            log.warning("Kafka at %s not reachable yet (%r); retrying",
                        settings.bootstrap_servers, e)
            await asyncio.sleep(1.0)


async def close(client: Client | None, *, timeout_s: float = 10.0) -> None:
    """Stop or close ``client`` within ``timeout_s``; a broker that is gone cannot hold it."""
    if client is None:
        return
    stop = client.close() if isinstance(client, AIOKafkaAdminClient) else client.stop()
    try:
        await asyncio.wait_for(stop, timeout_s)
    except (TimeoutError, KafkaError, OSError) as e:
        log.warning("closing %s took too long or failed (%r); abandoned",
                    type(client).__name__, e)


async def follow(consumer: AIOKafkaConsumer, on_record: Callable[[Any], None], *,
                 what: str, max_records: int = 500) -> None:
    """Hand every record the consumer reads to ``on_record``, until cancelled.

    Read errors (a broker restarting) are retried every half second and logged
    once per ten seconds, so a follower survives anything but cancellation.
    """
    warn = Throttled(log)
    while True:
        try:
            batches = await consumer.getmany(timeout_ms=1000, max_records=max_records)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            warn.warning(what, "reading %s failed (%r); retrying", what, e)
            await asyncio.sleep(0.5)
            continue
        for records in batches.values():
            for record in records:
                on_record(record)


async def partitions_of(consumer: AIOKafkaConsumer, topic: str, settings: Settings,
                        deadline: float) -> list[TopicPartition]:
    """Every partition of ``topic``, in order.

    Waits for the topic's metadata until ``deadline`` (monotonic); a topic that
    does not exist by then is BrokerUnavailable naming the command that creates it.
    """
    while not (parts := consumer.partitions_for_topic(topic)):
        if time.monotonic() > deadline:
            raise BrokerUnavailable(f"topic {topic} does not exist; "
                                    "create it with `runstream topics`")
        with contextlib.suppress(KafkaError, TimeoutError):
            await asyncio.wait_for(consumer._client.force_metadata_update(),
                                   settings.request_timeout_s)
        await asyncio.sleep(0.2)
    return [TopicPartition(topic, p) for p in sorted(parts)]


async def assign_all(consumer: AIOKafkaConsumer, topic: str, settings: Settings,
                     deadline: float) -> list[TopicPartition]:
    """Assign every partition of ``topic`` to ``consumer`` (no group), in order."""
    tps = await partitions_of(consumer, topic, settings, deadline)
    consumer.assign(tps)
    return tps


async def assign_since(consumer: AIOKafkaConsumer, topic: str, settings: Settings,
                       back_s: float, deadline: float) -> dict[TopicPartition, int]:
    """Assign every partition of ``topic`` and seek each to its first record of the
    last ``back_s`` seconds (its end when it has none); the positions, by partition.

    The offsets are asked for before the assignment: once assigned, the consumer
    fetches, and the broker answers its connection's next requests only after a fetch
    it holds (up to the consumer's ``fetch_max_wait_ms``: a worker's start waited 5 s).
    """
    tps = await partitions_of(consumer, topic, settings, deadline)
    positions = await offsets_since(consumer, tps, time.time() - back_s,
                                    max(1.0, deadline - time.monotonic()))
    consumer.assign(tps)
    for tp in tps:
        consumer.seek(tp, positions[tp])
    return positions


async def offsets_since(consumer: AIOKafkaConsumer, tps: list[TopicPartition], since: float,
                        timeout_s: float) -> dict[TopicPartition, int]:
    """The offset of each partition's first record written at or after ``since`` (a Unix
    time), its end when it has none; within ``timeout_s``."""
    # The ends first: a record written between the two requests is then found by the
    # second (it is newer than ``since``) rather than skipped by an end read after it.
    ends: dict[TopicPartition, int] = await asyncio.wait_for(consumer.end_offsets(tps),
                                                             timeout_s)
    since_ms = int(since * 1000)
    found = await asyncio.wait_for(consumer.offsets_for_times({tp: since_ms for tp in tps}),
                                   timeout_s)
    return {tp: at.offset if (at := found.get(tp)) is not None else ends[tp] for tp in tps}


class EndOffsets:
    """End offsets fetched after a call began; concurrent callers share one fetch.

    A flood of lookups (unknown key ids, re-delivered requests) thus costs one
    request to the broker at a time, not one each.
    """

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._started = 0  # snapshots started
        self._last: tuple[int, dict[int, int]] = (0, {})  # (its number, partition -> end)

    async def fetch(self, consumer: AIOKafkaConsumer, tps: list[TopicPartition],
                    timeout_s: float) -> dict[int, int]:
        needed = self._started + 1  # a snapshot that starts after now
        async with asyncio.timeout(timeout_s), self._lock:
            done, ends = self._last
            if done >= needed:
                return ends
            self._started += 1
            number = self._started
            got = await consumer.end_offsets(tps)
            ends = {tp.partition: off for tp, off in got.items()}
            self._last = (number, ends)
            return ends
