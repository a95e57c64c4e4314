"""The ingress's Prometheus metrics: an ASGI middleware that counts and times every
HTTP request, and the ``/metrics`` endpoint.

Requests are labelled by their route *template* (``/v1/executions/{id}``), never by
the raw path, so a client (or a fuzzer) cannot grow the number of series; a path
no route matches is ``(unmatched)``.
"""

from __future__ import annotations

import time

from runstream.services import metrics
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNMATCHED = "(unmatched)"


def route_label(scope: Scope) -> str:
    """The template of the route that answered ``scope`` (set by Starlette's router).

    A request refused before routing (an API key check) is matched here against the
    app's routes, so that it is counted under the route it asked for.
    """
    route = scope.get("route")
    if route is None:
        return _match(scope)
    root = str(scope.get("root_path", ""))
    if isinstance(route, Mount):  # its root_path already ends with the mount's own path
        return f"{root}/{{path}}"
    return root + str(getattr(route, "path", ""))


def _match(scope: Scope) -> str:
    router = getattr(scope.get("app"), "router", None)
    for route in getattr(router, "routes", ()):
        match, _ = route.matches(scope)
        if match is not Match.NONE:
            path = str(getattr(route, "path", ""))
            return f"{path}/{{path}}" if isinstance(route, Mount) else path
    return UNMATCHED


class HttpMetrics:
    """Counts, times and tracks in flight every HTTP request (a pure ASGI middleware)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers if the app raises before responding

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        metrics.HTTP_IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, sending)
        finally:
            metrics.HTTP_IN_FLIGHT.dec()
            metrics.observe_http(route_label(scope), str(scope.get("method", "")), status,
                                 time.perf_counter() - started)


async def metrics_endpoint(request: Request) -> Response:
    """``GET /metrics``: this ingress's registry in Prometheus's text format."""
    channel = request.app.state.channel
    watch = getattr(channel, "watch", None)
    metrics.observe_ingress(
        waiting=len(getattr(channel, "waiters", ())),
        group_lag=int(getattr(watch, "lag", 0) or 0),
        group_slots=int(getattr(watch, "slots", 0) or 0) if watch is not None else 0)
    return Response(metrics.exposition(metrics.INGRESS), media_type=metrics.CONTENT_TYPE_LATEST)
