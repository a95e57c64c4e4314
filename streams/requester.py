"""Request/reply over Kafka, the part every producer of requests shares.

A :class:`Requester` writes records through one renewing idempotent producer
(``streams/producer.py``: a lost sequence gets a new producer) within a bound,
and hands each caller the reply to its execution id from a
:class:`~runstream.streams.correlator.Correlator`. The ingress's request channel
(``streams/channel.py``) and the benchmark's Kafka target (a reply topic of the
run's own) are built on it.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka.errors import KafkaError
from runstream.schemas.errors import BrokerUnavailable
from runstream.services.settings import Settings
from runstream.streams.correlator import Correlator
from runstream.streams.kafka import SEQUENCE_LOST
from runstream.streams.producer import RenewingProducer

log = logging.getLogger(__name__)


class Requester:
    """One renewing producer and the correlator of the replies to what it sends."""

    def __init__(self, settings: Settings, replies: Correlator, *, client_id: str) -> None:
        self.settings = settings
        self.replies = replies
        #: What it sends with: the current producer, replaced when its sequence is lost.
        self.producer = RenewingProducer(settings, client_id=client_id)

    async def connect(self, timeout_s: float = 30.0) -> None:
        """Start the producer, retrying while the broker is not up (bounded)."""
        await self.producer.start(timeout_s)

    async def start(self, timeout_s: float = 30.0) -> None:
        """Start the producer, then follow the replies (each bounded by ``timeout_s``)."""
        await self.connect(timeout_s)
        await self.replies.start(timeout_s)

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Close the producer and stop following the replies, side by side (bounded)."""
        await asyncio.gather(self.producer.stop(timeout_s=timeout_s), self.replies.stop(),
                             return_exceptions=True)

    def expect(self, exec_id: str) -> asyncio.Future[bytes]:
        """The future of the reply to ``exec_id`` (ask before sending: none is missed)."""
        return self.replies.expect(exec_id)

    async def send(self, topic: str, key: str, value: bytes, *, refused: str,
                   timeout_s: float | None = None) -> None:
        """Write one record keyed by ``key``, acknowledged within the bound.

        Raises BrokerUnavailable (its cause: the Kafka error or the timeout) saying
        ``refused``, formatted with ``{bound}`` and ``{error}`` (the error's type). A
        producer whose sequence was lost is replaced first: a retry goes through a new one.
        """
        bound = self.settings.request_timeout_s if timeout_s is None else timeout_s
        producer = self.producer.producer
        try:
            await asyncio.wait_for(producer.send_and_wait(topic, value, key=key.encode()),
                                   bound)
        except (KafkaError, TimeoutError, OSError) as e:
            if isinstance(e, SEQUENCE_LOST):
                try:
                    await self.producer.renew(producer)
                except Exception as renew_error:  # the broker still away: the next failure asks
                    log.warning("a new producer could not start (%r)", renew_error)
            raise BrokerUnavailable(refused.format(bound=bound, error=type(e).__name__)) from e
