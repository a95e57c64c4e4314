"""One idempotent producer per purpose, replaced when its sequence is lost.

aiokafka counts a batch it gave up on as sent and never resets its idempotence
sequence, so after a lost sequence (``OutOfOrderSequenceNumber``, seen after a broker
restart) every later record to that partition fails with the same error. The cure is
a new producer (a new producer id). Every producer of runstream that writes records
which must arrive (results, requests, webhook deliveries) is one of these: the worker's
publisher, the ingress's gateway and the webhook deliverer share this one renewal.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer
from runstream.services.settings import Settings
from runstream.streams import kafka

log = logging.getLogger(__name__)

_CLOSE_S = 3.0

#: Builds and starts a producer within a timeout (the default: :func:`.kafka.producer`).
Factory = Callable[[float], Awaitable[AIOKafkaProducer]]


class Renewable(Protocol):
    """A producer to send with now, and the way to replace it once its sequence is lost."""

    @property
    def producer(self) -> AIOKafkaProducer: ...

    async def renew(self, failed: AIOKafkaProducer) -> AIOKafkaProducer: ...


class RenewingProducer:
    """Holds the current producer; :meth:`renew` replaces a failed one, once per failure.

    ``factory`` builds and starts each producer (tests pass a fake); by default an
    idempotent producer of :func:`.kafka.producer` with ``overrides``.
    """

    def __init__(self, settings: Settings, *, client_id: str, factory: Factory | None = None,
                 **overrides: Any) -> None:
        self.settings = settings
        self.client_id = client_id
        self._overrides = overrides
        self._factory = factory if factory is not None else self._started
        self.current: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()
        self._closing: set[asyncio.Task[None]] = set()

    @property
    def producer(self) -> AIOKafkaProducer:
        """The producer to send with now (after :meth:`start`)."""
        assert self.current is not None, "start() first"
        return self.current

    async def start(self, timeout_s: float = 30.0) -> AIOKafkaProducer:
        """Start the first producer, retrying while the broker is not up (bounded)."""
        self.current = await self._factory(timeout_s)
        return self.current

    async def renew(self, failed: AIOKafkaProducer) -> AIOKafkaProducer:
        """A new producer in place of ``failed``; ``failed`` is closed in the background.

        Many sends may meet the same lost sequence: only the first renews, the others
        get the producer it started. Raises what starting a producer raises (bounded).
        """
        async with self._lock:
            if self.current is not failed and self.current is not None:
                return self.current
            fresh = await self._factory(self.settings.request_timeout_s)
            self.current = fresh
            log.warning("%s: the producer lost its sequence; a new one took over",
                        self.client_id)
            closing = asyncio.create_task(kafka.close(failed, timeout_s=_CLOSE_S))
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)
            return fresh

    async def stop(self, timeout_s: float = _CLOSE_S) -> None:
        """Close the current producer and those being closed; bounded."""
        await kafka.close(self.current, timeout_s=timeout_s)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    async def _started(self, timeout_s: float) -> AIOKafkaProducer:
        producer = kafka.producer(self.settings, client_id=self.client_id, **self._overrides)
        await kafka.start(producer, self.settings, timeout_s=timeout_s)
        return producer
