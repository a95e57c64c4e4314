"""Publishing results: the results topic, the requester's reply address, the dead letters.

Failures are classified. A permanent one (a reply topic that does not exist, a
partition out of range, a record the broker refuses) is answered at once and
never retried; a transient one (a broker restarting, a leader moving) is
retried, each attempt bounded, with back-off, until it succeeds or the worker
stops. Retrying happens outside the execution slots, so it never holds up
unrelated requests; the offset stays uncommitted until the result is stored.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    InvalidTopicError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordTooLargeError,
    TopicAuthorizationFailedError,
    UnknownTopicOrPartitionError,
)
from aiokafka.structs import RecordMetadata
from runstream.schemas.models import ReplyTo
from runstream.services.logs import Throttled
from runstream.services.settings import Settings
from runstream.streams.kafka import SEQUENCE_LOST
from runstream.streams.producer import Renewable

log = logging.getLogger(__name__)

#: Errors that the same record to the same topic would meet again.
PERMANENT = (InvalidTopicError, MessageSizeTooLargeError, RecordTooLargeError,
             TopicAuthorizationFailedError, UnknownTopicOrPartitionError)
_METADATA_TTL_S = 10.0
_BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 5.0)


class PermanentPublishError(Exception):
    """The record can never be written where it was going."""


class Publisher:
    """Writes records with bounded attempts and knows which topics exist.

    ``producers`` is the started :class:`~.producer.RenewingProducer` (or any
    :class:`~.producer.Renewable`) it sends with: a producer whose sequence was lost
    (SEQUENCE_LOST) is replaced by it, once however many sends saw it fail.
    """

    def __init__(self, settings: Settings, producers: Renewable) -> None:
        self.settings = settings
        self.producers = producers
        self._partitions: dict[str, int] = {}
        self._checked = 0.0
        self._refresh_lock = asyncio.Lock()
        self._warn = Throttled(log)

    async def check_reply_to(self, reply_to: ReplyTo) -> str | None:
        """Why ``reply_to`` cannot be written to, or None if it can."""
        count = self._partitions.get(reply_to.topic)
        stale = time.monotonic() - self._checked > _METADATA_TTL_S
        if stale or count is None or (reply_to.partition is not None
                                      and reply_to.partition >= count):
            if not await self._refresh_metadata():
                return None  # unknown, not wrong: publishing retries or classifies it
            count = self._partitions.get(reply_to.topic)
        if count is None:
            return f"reply_to.topic: the topic {reply_to.topic!r} does not exist"
        if reply_to.partition is not None and reply_to.partition >= count:
            return (f"reply_to.partition: {reply_to.partition} is out of range; "
                    f"{reply_to.topic!r} has partitions 0..{count - 1}")
        return None

    @property
    def producer(self) -> AIOKafkaProducer:
        """The producer sent with now."""
        return self.producers.producer

    async def _renew(self, failed: AIOKafkaProducer) -> None:
        """A new producer in place of ``failed`` (once, however many sends saw it fail)."""
        try:
            await self.producers.renew(failed)
        except Exception as e:  # the broker still away: the next attempt asks again
            self._warn.warning("renew", "a new producer could not start (%r)", e)
            await asyncio.sleep(_BACKOFF_S[-1])

    async def _refresh_metadata(self) -> bool:
        """Read every topic's partition count; False if the broker did not answer."""
        async with self._refresh_lock:
            if time.monotonic() - self._checked < 1.0:
                return True  # another caller refreshed it just now
            try:
                cluster = await asyncio.wait_for(self.producer.client.fetch_all_metadata(),
                                                 self.settings.request_timeout_s * 2)
            except (KafkaError, TimeoutError, OSError) as e:
                self._warn.warning("metadata", "topic metadata could not be read: %r", e)
                return False
            self._partitions = {t: len(cluster.partitions_for_topic(t) or ())
                                for t in cluster.topics()}
            self._checked = time.monotonic()
            return True

    async def send(self, topic: str, key: bytes | None, value: bytes, *,
                   partition: int | None = None,
                   headers: list[tuple[str, bytes]] | None = None,
                   what: str = "record") -> RecordMetadata:
        """Write one record; retries transient failures until it is stored.

        Raises PermanentPublishError at once for a failure that cannot pass. The
        retries end with the task: a worker's drain bound cancels it, leaving the
        offset uncommitted.
        """
        attempt = 0
        while True:
            attempt += 1
            producer = self.producer
            try:
                fut = await asyncio.wait_for(
                    producer.send(topic, value, key=key, partition=partition,
                                  headers=headers),
                    self.settings.worker_publish_attempt_s)
                meta: RecordMetadata = await asyncio.wait_for(
                    fut, self.settings.worker_publish_attempt_s)
                return meta
            except PERMANENT as e:
                raise PermanentPublishError(f"{topic}: {type(e).__name__}: {e}") from e
            except SEQUENCE_LOST as e:
                # A record that was in fact written before may be written again: a
                # duplicate of the same id and content, which every reader tolerates.
                self._warn.warning("sequence", "the producer lost its sequence on %s (%r); "
                                   "starting a new one", topic, e)
                await self._renew(producer)
            except (KafkaError, TimeoutError, OSError) as e:
                # A topic deleted since it was checked looks like a broker that is slow
                # to answer (aiokafka waits for its metadata): ask, or it is retried forever.
                if await self._refresh_metadata() and topic not in self._partitions:
                    raise PermanentPublishError(f"{topic}: the topic does not exist") from e
                self._warn.warning(f"publish:{topic}",
                                   "writing a %s to %s failed (attempt %d), retrying: %r",
                                   what, topic, attempt, e)
                await asyncio.sleep(_BACKOFF_S[min(attempt, len(_BACKOFF_S)) - 1])
