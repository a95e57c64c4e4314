"""The Piston v2 routes under ``/api/v2``: thin Starlette over the ingress.

An execute is one synchronous run through the same path as ``POST
/v1/executions`` (admission, body budget, validation, Kafka, bounded wait).
Every answer, errors included, is Piston's JSON: ``{"message": ...}`` for a
refusal, never problem+json, since Piston clients read ``message``.

The interactive WebSocket ``/api/v2/connect`` is ``session.py`` (a plain HTTP
request there is answered ``426 Upgrade Required``). Not served: installing
or removing packages (languages come with the deployment): a clear refusal.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import orjson
from runstream.schemas.errors import RunstreamError
from runstream.schemas.models import ExecutionRequest
from runstream.services.execution.languages import Registry
from runstream.services.ingress.piston import errors
from runstream.services.ingress.piston.limits import Ceilings
from runstream.services.ingress.piston.request import PistonJob, body_kind, build, parse_body
from runstream.services.ingress.piston.response import render
from runstream.services.ingress.piston.runtimes import Runtime, packages, runtimes
from runstream.services.ingress.piston.session import SessionHost, Sessions
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, WebSocketRoute

log = logging.getLogger(__name__)

NO_UPGRADE = ("/api/v2/connect is Piston's interactive WebSocket: connect to "
              "ws://HOST/api/v2/connect (a WebSocket handshake), not with a plain HTTP request")
NO_INSTALL = ("packages are installed with the deployment (services/languages.toml and "
              "the workers' toolchains), not at run time; GET /api/v2/packages lists them")


class Host(SessionHost, Protocol):
    """What the routes need of the ingress (``services/ingress/app.py``'s Ingress)."""

    registry: Registry

    async def submit_and_wait(self, request: Request,
                              build: Callable[[bytes], tuple[ExecutionRequest, bool]],
                              wait_s: float) -> tuple[str, bytes | None]: ...


def piston_json(doc: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(doc), status_code=status, headers=headers,
                    media_type="application/json")


def message(text: str, status: int, headers: dict[str, str] | None = None) -> Response:
    return piston_json({"message": text}, status, headers)


Handler = Callable[[Request], Awaitable[Response]]
# Starlette's default for a function route is GET alone; these answer every method.
ANY = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def _answers_errors(handler: Handler) -> Handler:
    """Every error as Piston's ``{"message"}``, never the native problem+json."""
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except RunstreamError as e:
            status, text, headers = errors.answer(e)
            if status >= 500:
                log.warning("%s %s -> %d: %s", request.method, request.url.path, status,
                            e.message)
            return message(text, status, headers)
        except Exception:
            log.exception("unexpected error on %s %s", request.method, request.url.path)
            return message("an unexpected error; it is logged", 500)
    return wrapped


class PistonAPI:
    """The handlers, bound to one ingress."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self.ceilings = Ceilings.of(host.settings)

    def available(self) -> list[Runtime]:
        return runtimes(self.host.registry, self.host.channel.language_versions())

    async def runtimes(self, request: Request) -> Response:
        return piston_json([rt.describe() for rt in self.available()])

    async def packages(self, request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            return message(NO_INSTALL, 405, {"Allow": "GET"})
        if request.path_params.get("rest"):
            return message("Not Found", 404)
        return piston_json(packages(self.available()))

    async def execute(self, request: Request) -> Response:
        kind = body_kind(request.headers.get("content-type"))  # Piston: 415 before all else
        available = self.available()
        jobs: list[PistonJob] = []

        def to_request(body: bytes) -> tuple[ExecutionRequest, bool]:
            job = build(parse_body(body, kind), available, self.ceilings)
            jobs.append(job)
            return job.request, False

        wait_s = self.host.settings.ingress_wait_s
        exec_id, result = await self.host.submit_and_wait(request, to_request, wait_s)
        if result is None:
            return message(f"no result within {wait_s:g}s (the service is busy or stopping); "
                           f"GET /v1/executions/{exec_id} later", 503, {"Retry-After": "1"})
        status, body = render(orjson.loads(result), jobs[0])
        return piston_json(body, status)

    async def connect(self, request: Request) -> Response:
        # Not a handshake: 426 names the protocol this path speaks (RFC 9110 15.5.22).
        return message(NO_UPGRADE, 426, {"Upgrade": "websocket", "Connection": "Upgrade"})

    async def not_found(self, request: Request) -> Response:
        return message("Not Found", 404)


def piston_routes(host: Host) -> list[BaseRoute]:
    """The routes to mount at ``/api/v2``: every path under it answers in Piston's shape."""
    api = PistonAPI(host)
    sessions = Sessions(host, api.available, api.ceilings)
    return [
        Route("/runtimes", _answers_errors(api.runtimes), methods=["GET"]),
        Route("/execute", _answers_errors(api.execute), methods=["POST"]),
        Route("/packages", _answers_errors(api.packages), methods=ANY),
        Route("/packages/{rest:path}", _answers_errors(api.packages), methods=ANY),
        Route("/connect", _answers_errors(api.connect), methods=ANY),
        WebSocketRoute("/connect", sessions.serve),
        # Last: an unknown path, or a known one with another method, is Piston's 404.
        Route("/{rest:path}", _answers_errors(api.not_found), methods=ANY),
    ]
