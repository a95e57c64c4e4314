"""Request/reply over Kafka: follow one reply partition, hand each waiter its result by id.

Used by the HTTP ingress (its own partition of the replies topic) and by the
benchmark's Kafka target (a reply topic of the run's own). A reply that arrives
twice (a re-run after a worker crash) finds its future resolved already: the
waiter gets exactly one answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from runstream.services.settings import Settings
from runstream.streams import kafka

log = logging.getLogger(__name__)

Listener = Callable[[str, bytes], None]


class Correlator:
    """Futures by execution id, resolved by the first record with that key on one partition."""

    def __init__(self, settings: Settings, topic: str, partition: int, *, client_id: str,
                 from_beginning: bool = False) -> None:
        self.settings = settings
        self.tp = TopicPartition(topic, partition)
        self.client_id = client_id
        self.from_beginning = from_beginning
        self.waiting: dict[str, asyncio.Future[bytes]] = {}
        self._listeners: list[Listener] = []
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self, timeout_s: float = 30.0) -> None:
        """Connect and follow the partition (from its end: only replies to come matter)."""
        self._consumer = kafka.consumer(self.settings, client_id=self.client_id,
                                        fetch_max_wait_ms=100, auto_offset_reset="earliest")
        await kafka.start(self._consumer, self.settings, timeout_s=timeout_s)
        self._consumer.assign([self.tp])
        if not self.from_beginning:
            await asyncio.wait_for(self._consumer.seek_to_end(self.tp), timeout_s)
        self._task = asyncio.create_task(
            kafka.follow(self._consumer, self._on_record, what=f"{self.tp}"),
            name=f"replies-{self.tp}")

    async def stop(self) -> None:
        """Stop following; waiters still waiting are cancelled."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        for fut in self.waiting.values():
            if not fut.done():
                fut.cancel()
        await kafka.close(self._consumer)

    def assigned(self) -> bool:
        return self._consumer is not None and bool(self._consumer.assignment())

    def expect(self, exec_id: str) -> asyncio.Future[bytes]:
        """The future of ``exec_id``'s result (one per id, shared by every waiter)."""
        fut = self.waiting.get(exec_id)
        if fut is None:
            fut = asyncio.get_running_loop().create_future()
            self.waiting[exec_id] = fut
            fut.add_done_callback(lambda _: self._drop(exec_id, fut))
        return fut

    def _drop(self, exec_id: str, fut: asyncio.Future[bytes]) -> None:
        if self.waiting.get(exec_id) is fut:
            del self.waiting[exec_id]

    def add_listener(self, fn: Listener) -> None:
        """Call ``fn(id, value)`` for every reply read."""
        self._listeners.append(fn)

    def resolve(self, exec_id: str, value: bytes) -> None:
        """Hand ``value`` to whoever waits for ``exec_id`` (a result learnt elsewhere)."""
        fut = self.waiting.get(exec_id)
        if fut is not None and not fut.done():
            fut.set_result(value)

    def _on_record(self, record: Any) -> None:
        if record.key is None or record.value is None:
            return
        exec_id = record.key.decode("utf-8", "replace")
        for fn in self._listeners:
            fn(exec_id, record.value)
        self.resolve(exec_id, record.value)
