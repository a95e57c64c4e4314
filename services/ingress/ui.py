"""The web UI's routes: the playground and dashboard pages (``services/web``) and
``GET /v1/stats``, the dashboard's numbers.

``/v1/stats`` is computed here from what this ingress already follows: every
result on the results topic (a listener on the request channel's results feeds
:class:`~runstream.services.ingress.stats.Traffic`), and the worker group as the
group watch last polled it (members, assignments, lag per partition) with the
workers' announcements. Nothing here talks to Kafka on the request path.
"""

from __future__ import annotations

import time
from typing import Any

from runstream.services.ingress import stats
from runstream.services.ingress.gateway import Channel
from runstream.services.ingress.problems import json_response
from runstream.services.web import pages
from runstream.streams.worker_group import WORKER_CLIENT_PREFIX
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route


class StatsEndpoint:
    """``GET /v1/stats``: throughput, latency, verdicts, backlog and workers, as JSON."""

    def __init__(self, gateway: Channel) -> None:
        self.gateway = gateway
        self.traffic = stats.Traffic()
        gateway.on_result(self._on_result)

    def _on_result(self, exec_id: str, value: bytes) -> None:
        self.traffic.add(value, time.time())

    def document(self, now: float) -> dict[str, Any]:
        watch = self.gateway.watch
        members = list(watch.members) if watch is not None else []
        assigned = dict(watch.assigned) if watch is not None else {}
        lags = dict(watch.partition_lag) if watch is not None else {}
        workers = stats.workers_view(members, assigned, self.gateway.workers,
                                     WORKER_CLIENT_PREFIX)
        polled = watch.polled_at if watch is not None and watch.polled_at else None
        return {
            "now": round(now, 3),
            **self.traffic.snapshot(now),
            "backlog": stats.backlog_view(lags, self.gateway.settings.requests_topic,
                                          stats.owners_of(workers)),
            "group": {"state": watch.state if watch is not None else "",
                      "members": len(members),
                      "polled_s_ago": None if polled is None else round(
                          time.monotonic() - polled, 1),
                      "error": watch.error if watch is not None else None},
            "workers": workers,
            "slots": sum(w["slots"] or 0 for w in workers),
        }

    async def get(self, request: Request) -> Response:
        return json_response(self.document(time.time()),
                             headers={"Cache-Control": "no-store"})


def ui_routes(gateway: Channel) -> list[BaseRoute]:
    """The pages (``/``, ``/dashboard``, ``/static/...``) and ``GET /v1/stats``."""
    endpoint = StatsEndpoint(gateway)
    return [Route("/v1/stats", endpoint.get, methods=["GET"]), *pages.routes()]
