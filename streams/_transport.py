"""Faust's aiokafka transport with the two knobs Faust does not expose.

Faust hard-codes ``fetch_max_wait_ms=1500`` for the worker consumer and makes
its producer idempotent only inside transactions. runstream wants a short fetch
wait (a request must reach an idle worker in milliseconds, and an empty fetch
costs the broker little at this scale) and an idempotent ``acks=all`` producer
(a result must not be lost or duplicated by a producer retry).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # Read by AIOKafkaConsumer.start() when it builds its fetcher.
        consumer._fetch_max_wait_ms = getattr(self.app, "fetch_max_wait_ms", 1500)
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class _Producer(faust_aiokafka.Producer):
    def _settings_extra(self) -> Mapping[str, Any]:
        return {"acks": "all", "enable_idempotence": True}


class _Transport(faust_aiokafka.Transport):
    Consumer = _Consumer
    Producer = _Producer


class TunedApp(faust.App):
    """A Faust app whose Kafka transport has runstream's fetch wait and producer."""

    def __init__(self, *args: Any, fetch_max_wait_ms: int = 1500, **kwargs: Any) -> None:
        self.fetch_max_wait_ms = fetch_max_wait_ms
        super().__init__(*args, **kwargs)

    def _new_transport(self) -> Any:
        return _Transport(self.conf.broker_consumer, self)

    def _new_producer_transport(self) -> Any:
        return _Transport(self.conf.broker_producer, self)
