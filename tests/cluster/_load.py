"""Steady load through the cluster's balancer, as a careful client sends it.

Each request has its own id (the idempotency key). The client POSTs with
``?wait=``; on ``202`` it long-polls ``GET /v1/executions/{id}?wait=``; on a refused
connection, a reset, a ``5xx`` or a ``429`` it tries again with the **same id**; on
``404`` from an ingress that does not know the id yet it POSTs again. A request is
*lost* when it has no answer within its bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class Sent:
    """One request and what its client saw."""

    id: str
    phase: str
    at: float
    answered_at: float | None = None
    result: dict[str, Any] | None = None
    tries: int = 0


@dataclass
class Load:
    """Requests at a fixed rate until stopped; every answer timestamped."""

    url: str
    headers: dict[str, str]
    rate_per_s: float = 3.0
    answer_bound_s: float = 300.0
    run: str = field(default_factory=lambda: f"cc{int(time.time())}")
    phase: str = "warm-up"
    sent: list[Sent] = field(default_factory=list)
    answers: list[float] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def send(self, stop: asyncio.Event) -> None:
        """Start one request every 1/rate seconds until ``stop`` is set."""
        async with httpx.AsyncClient(headers=self.headers,
                                     timeout=httpx.Timeout(40, connect=3)) as client:
            n = 0
            t0 = time.monotonic()
            while not stop.is_set():
                req = Sent(f"{self.run}-{n:05d}", self.phase, time.monotonic())
                self.sent.append(req)
                self._tasks.append(asyncio.create_task(self._one(client, req, n)))
                n += 1
                with_next = t0 + n / self.rate_per_s - time.monotonic()
                if with_next > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), with_next)
            # Every request ends within its bound: answered or counted lost.
            await asyncio.gather(*self._tasks)

    async def _one(self, client: httpx.AsyncClient, req: Sent, n: int) -> None:
        body = {"id": req.id, "language": "python",
                "source": f"import time\ntime.sleep(0.2)\nprint({n})"}
        deadline = req.at + self.answer_bound_s
        post = True
        while time.monotonic() < deadline:
            req.tries += 1
            try:
                if post:
                    r = await client.post(f"{self.url}/v1/executions?wait=20", json=body)
                else:
                    r = await client.get(f"{self.url}/v1/executions/{req.id}?wait=20")
            except httpx.HTTPError:
                await asyncio.sleep(0.5)  # the balancer, or everything, is restarting
                post = True
                continue
            if r.status_code == 200:
                req.result = r.json()
                req.answered_at = time.monotonic()
                self.answers.append(req.answered_at)
                return
            if r.status_code == 202:
                post = False  # accepted: poll for it
                continue
            if r.status_code == 404:
                post = True  # this ingress has not seen it: ask again, same id
                continue
            # 429, 5xx (a draining ingress, a broker that moved): again, same id.
            await asyncio.sleep(min(float(r.headers.get("retry-after", "0.5") or 0.5), 2.0))
            post = True


def longest_pause(answers: list[float], start: float, end: float) -> float:
    """The largest gap between consecutive answers within [start, end]."""
    times = sorted(t for t in answers if start <= t <= end)
    edges = [start, *times, end]
    return max((b - a for a, b in itertools.pairwise(edges)), default=0.0)
