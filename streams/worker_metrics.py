"""The worker's sampled metrics: slots in use and consumer lag, once a second.

Counters of executions are incremented where results are published
(``handling.py``); what is a level rather than an event (busy slots, records
waiting in the owned partitions) is sampled here, on the worker's event loop, so
the metrics server's thread only reads values.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from runstream.services import metrics
from runstream.services.logs import Throttled
from runstream.streams.agent import Agent

log = logging.getLogger(__name__)
_warn = Throttled(log)

SAMPLE_EVERY_S = 1.0
_POSITION_TIMEOUT_S = 0.5
_END_OFFSETS_TIMEOUT_S = 2.0


class Positions(Protocol):
    """What the lag sample asks of a consumer (Faust's, whose client is in its thread)."""

    def assignment(self) -> set[Any]: ...

    async def highwaters(self, *partitions: Any) -> Mapping[Any, int]: ...

    async def position(self, tp: Any) -> int | None: ...


async def sample(agent_of: Callable[[], Agent | None],
                 consumer_of: Callable[[], Positions | None],
                 every_s: float = SAMPLE_EVERY_S) -> None:
    """Sample the agent (once it exists) every ``every_s`` until cancelled."""
    while True:
        agent = agent_of()
        metrics.observe_alive(agent.membership.age() if agent is not None else None)
        if agent is not None:
            metrics.observe_slots(agent.slots, agent.slots - agent.free)
        consumer = consumer_of()
        if agent is not None and consumer is not None and not agent.stopping:
            try:  # (a stopping consumer is closing)
                metrics.observe_lag(await lags(consumer))
            except _NoSample:
                pass  # keep the last sample
            except Exception as e:  # metrics must never stop: say so, and go on sampling
                _warn.warning("lag", "sampling the consumer lag failed: %r", e)
        await asyncio.sleep(every_s)


async def lags(consumer: Positions) -> list[tuple[str, int, int]]:
    """(topic, partition, end offset - position) of each partition owned now.

    The end offsets are asked of the broker (one ListOffsets request): the high
    watermark the consumer saw last is stale while every partition is paused, which
    is exactly when requests queue up.
    """
    owned = list(consumer.assignment())
    if not owned:
        return []
    try:
        ends = await asyncio.wait_for(consumer.highwaters(*owned), _END_OFFSETS_TIMEOUT_S)
    except Exception as e:  # the broker restarts: keep the last sample
        log.debug("end offsets unavailable for the lag sample: %r", e)
        raise _NoSample from e
    out = []
    for tp in owned:
        # A partition moving in a rebalance has no position for a moment: skip it.
        with contextlib.suppress(Exception):
            position = await asyncio.wait_for(consumer.position(tp), _POSITION_TIMEOUT_S)
            if position is not None:
                out.append((tp.topic, tp.partition, max(0, ends[tp] - position)))
    return out


class _NoSample(Exception):
    """The lag could not be measured this time."""
