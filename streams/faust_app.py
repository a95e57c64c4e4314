"""Where Faust is configured: the worker group as a ``faust.App`` with one agent.

The app consumes the shared requests topic and the language topics of the languages
this worker runs, in one consumer group (``RUNSTREAM_WORKER_GROUP``). Faust owns the
consumer, the group membership, the agent's stream and the app's life cycle; what
Faust does wrong for us is fixed in ``faust_overrides.py`` (the ``runstream://``
transport), and what each record becomes is ``agent.py``'s.

What a worker does not need is off: the web server (the worker's ``/metrics`` is
ours), Faust's producer (results go through our idempotent producer, which renews a
lost sequence: ``publish.py``), topic declaration (``runstream topics`` creates
them), the leader topic and the data directory (there are no tables).
"""

from __future__ import annotations

from typing import Any

import faust
from faust.app.base import BootStrategy
from faust.sensors.monitor import Monitor
from runstream.services.settings import Settings
from runstream.streams import faust_overrides
from runstream.streams.agent import Agent


class _Boot(BootStrategy):
    """Start the consumer, the agents and the conductor; no web server, no producer."""

    enable_web = False
    enable_kafka_producer = False


class _Quiet(Monitor):
    """Faust's monitor without its per-record bookkeeping: the worker's metrics are ours.

    Stock Faust times every message and stream event into deques; nothing reads them
    here (no Faust web server, no sensor export).
    """

    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        """Not recorded."""

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> None:
        """Not recorded."""

    def on_stream_event_out(self, tp: Any, offset: int, stream: Any, event: Any,
                            state: Any = None) -> None:
        """Not recorded."""

    def on_message_out(self, tp: Any, offset: int, message: Any) -> None:
        """Not recorded."""

    def track_tp_end_offset(self, tp: Any, offset: int) -> None:
        """Not recorded."""


class WorkerApp(faust.App):
    """The worker group's Faust app; :attr:`executions` runs what its agent reads."""

    BootStrategy = _Boot

    def __init__(self, settings: Settings, agent: Agent, topics: list[str],
                 monitor: Monitor | None = None) -> None:
        first = settings.bootstrap_servers.split(",")[0].strip()
        super().__init__(
            settings.worker_group,
            broker=f"{faust_overrides.SCHEME}://{first}",
            broker_client_id=f"runstream-worker-{settings.worker_id}",
            autodiscover=False,
            web_enabled=False,
            topic_allow_declare=False,
            topic_disable_leader=True,
            # 3: a rebalance never waits for running executions.
            stream_wait_empty=False,
            stream_recovery_delay=0.0,
            # 7: what may wait in this process is bounded by the slots.
            stream_buffer_maxsize=max(1, settings.worker_concurrency),
            broker_max_poll_records=max(1, settings.worker_concurrency),
            broker_commit_interval=settings.worker_commit_interval_s,
            broker_session_timeout=settings.worker_session_timeout_s,
            broker_heartbeat_interval=settings.worker_heartbeat_s,
            broker_request_timeout=max(settings.request_timeout_s, 40.0),
            consumer_auto_offset_reset="earliest",
            monitor=monitor if monitor is not None else _Quiet(),
        )
        self.executions = agent
        channel = self.topic(*topics, key_type=bytes, value_type=bytes,
                             key_serializer="raw", value_serializer="raw",
                             allow_empty=True, acks=True)

        async def execute(stream: Any) -> None:
            # 4: no acks by the stream; the agent acks each event once its answer is stored.
            events = stream.noack()
            await agent.consume(events.events(), events.ack)

        self.agent(channel, name="runstream.execute", concurrency=1)(execute)

    async def on_first_start(self) -> None:
        """No data directory: the worker has no tables (stock Faust creates three)."""


def build(settings: Settings, agent: Agent, topics: list[str],
          monitor: Monitor | None = None) -> WorkerApp:
    """The worker's Faust app, after checking that the installed Faust fits our overrides.

    ``monitor`` replaces the quiet one only to measure what Faust's own sensors cost
    (``services/bench/consumer_cost.py --monitor``).
    """
    faust_overrides.check()
    return WorkerApp(settings, agent, topics, monitor)
