"""What the worker's consumer path costs per record: CPU of this process / records.

    python -m runstream.services.bench.consumer_cost [--records 3000] [--trickle-ms 0]
        [--monitor quiet|stock|prometheus]

Against the broker of ``RUNSTREAM_BOOTSTRAP_SERVERS`` (``./deploy.sh local`` runs one):
produces ``--records`` requests onto a topic of its own, then runs them through the
worker's Faust app (``streams/faust_app.py``: consumer thread, stream, agent, ledger,
commits) with a stand-in handler that answers at once, so that only the consumer path
is measured: no sandbox, no publishing. ``--trickle-ms N`` sends one record every N ms
while the app runs (records arrive one at a time, as they do under light load);
without it the records wait as a backlog and are read in batches. Prints the process's
CPU time (both threads) per record. The "What Faust costs" table of docs/faust.md came from it.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import replace

from aiokafka import AIOKafkaProducer
from faust.sensors.monitor import Monitor
from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from prometheus_client import CollectorRegistry
from runstream.services.settings import Settings
from runstream.streams import faust_app
from runstream.streams.agent import Agent
from runstream.streams.handling import Delivery
from runstream.streams.topics import ensure_topics

_BOUND_S = 300.0


class _Answered:
    """Answers every record at once; counts them."""

    def __init__(self) -> None:
        self.done = 0
        self.owns: Callable[[Delivery], object] | None = None

    async def handle(self, d: Delivery, release: Callable[[], None]) -> bool:
        release()
        self.done += 1
        return True


def _monitor(kind: str) -> Monitor | None:
    """Faust's sensors to measure: ours (None), stock's, or Faust's Prometheus sensor."""
    if kind == "stock":
        return Monitor()
    if kind == "prometheus":
        return PrometheusMonitor(metrics=FaustMetrics.create(CollectorRegistry(), "faust"))
    return None


async def measure(settings: Settings, records: int, trickle_ms: float,
                  monitor: str = "quiet") -> float:
    """CPU milliseconds of this process per record through the Faust app."""
    tag = uuid.uuid4().hex[:8]
    s = replace(settings, requests_topic=f"consumer-cost-{tag}",
                worker_group=f"consumer-cost-{tag}", worker_id=f"cost-{tag}")
    await ensure_topics(s)
    producer = AIOKafkaProducer(bootstrap_servers=s.bootstrap_servers, linger_ms=5)
    await producer.start()
    handler = _Answered()
    app = faust_app.build(s, Agent(s, handler), [s.requests_topic],  # type: ignore[arg-type]
                          _monitor(monitor))
    try:
        if not trickle_ms:
            for i in range(records):
                await producer.send(s.requests_topic, b"{}", key=f"k{i}".encode())
            await producer.flush()
        await asyncio.wait_for(app.start(), 60)
        started = time.process_time()
        async with asyncio.timeout(_BOUND_S):
            if trickle_ms:
                for i in range(records):
                    await producer.send_and_wait(s.requests_topic, b"{}", key=f"t{i}".encode())
                    await asyncio.sleep(trickle_ms / 1000)
            while handler.done < records:  # noqa: ASYNC110 -- a count, polled
                await asyncio.sleep(0.05)
        return 1000 * (time.process_time() - started) / records
    finally:
        await producer.stop()
        app.executions.stopping = True
        await asyncio.wait_for(app.stop(), 10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=3000)
    parser.add_argument("--trickle-ms", type=float, default=0.0)
    parser.add_argument("--monitor", choices=("quiet", "stock", "prometheus"), default="quiet",
                        help="Faust's sensors: the worker's quiet monitor (default), stock "
                        "Faust's monitor, or Faust's Prometheus sensor")
    args = parser.parse_args()
    settings = replace(Settings.from_env(), worker_concurrency=4)
    ms = asyncio.run(measure(settings, args.records, args.trickle_ms, args.monitor))
    how = f"one every {args.trickle_ms:g} ms" if args.trickle_ms else "a backlog"
    print(f"Faust worker consumer path, {args.monitor} monitor: {args.records} records ({how}): "
          f"{ms:.3f} ms CPU per record (this process, both threads)")


if __name__ == "__main__":
    main()
