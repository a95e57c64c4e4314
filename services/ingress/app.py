"""The HTTP ingress: Starlette routes over the Kafka gateway.

This is the only layer that turns runstream errors into HTTP responses
(``application/problem+json``, RFC 9457).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import orjson
from runstream.schemas.codec import parse_json_object, request_from_doc
from runstream.schemas.errors import (
    NotFound,
    NotReady,
    PayloadTooLarge,
    RunstreamError,
)
from runstream.schemas.limits import resolve_limits
from runstream.schemas.models import ExecutionRequest, SourceFile
from runstream.services.ingress.gateway import Gateway
from runstream.services.languages import Registry
from runstream.services.settings import Settings
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

log = logging.getLogger(__name__)

JSON = "application/json"
PROBLEM = "application/problem+json"


def json_response(doc: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(doc), status_code=status, media_type=JSON, headers=headers)


def problem(status: int, kind: str, title: str, detail: str, **extra: Any) -> Response:
    doc = {"type": f"https://runstream.dev/problems/{kind}", "title": title, "status": status,
           "detail": detail, **extra}
    return Response(orjson.dumps(doc), status_code=status, media_type=PROBLEM)


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to be over ``limit``."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the body is {declared} bytes; the maximum is {limit} bytes",
                              maximum=limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body is over the maximum of {limit} bytes",
                                  maximum=limit)
        chunks.append(chunk)
    return b"".join(chunks)


class Ingress:
    """Route handlers bound to one gateway, registry and settings."""

    def __init__(self, settings: Settings, registry: Registry, gateway: Gateway) -> None:
        self.settings = settings
        self.registry = registry
        self.gateway = gateway

    def validate(self, req: ExecutionRequest) -> ExecutionRequest:
        """Refuse what no worker would run: unknown language, limits above maxima."""
        lang = self.registry.resolve(req.language, req.version)
        resolve_limits(req.limits, self.settings.default_limits, self.settings.max_limits)
        return req if req.language == lang.name else replace(req, language=lang.name)

    async def _wait(self, req: ExecutionRequest, wait_s: float) -> bytes | None:
        cached = self.gateway.lookup(req.id)
        if cached is not None:
            return cached  # an idempotent retry of a finished id is not re-run
        fut = await self.gateway.submit(req)
        if wait_s <= 0:
            return None
        try:
            return await asyncio.wait_for(asyncio.shield(fut), wait_s)
        except TimeoutError:
            return None

    async def create_execution(self, request: Request) -> Response:
        body = await read_body(request, self.settings.ingress_max_body_bytes)
        req = self.validate(request_from_doc(parse_json_object(body)))
        wait_s = _wait_param(request, self.settings.ingress_wait_s)
        result = await self._wait(req, wait_s)
        if result is None:
            location = f"/v1/executions/{req.id}"
            return json_response({"id": req.id, "status": "pending", "location": location},
                                 status=202, headers={"Location": location, "Retry-After": "1"})
        return Response(result, media_type=JSON)

    async def get_execution(self, request: Request) -> Response:
        """The result by id; ``?wait=S`` long-polls up to S seconds for it to arrive."""
        exec_id = request.path_params["id"]
        result = self.gateway.lookup(exec_id)
        wait_s = _wait_param(request, self.settings.ingress_wait_s) if (
            "wait" in request.query_params) else 0.0
        pending = self.gateway.is_pending(exec_id)
        if result is None and wait_s > 0:
            fut = self.gateway.watch(exec_id)
            try:
                result = await asyncio.wait_for(asyncio.shield(fut), wait_s)
            except TimeoutError:
                if not pending:
                    fut.cancel()  # nobody else waits on a watch we opened
        if result is not None:
            return Response(result, media_type=JSON)
        if pending:
            return json_response({"id": exec_id, "status": "pending"}, status=202,
                                 headers={"Retry-After": "1"})
        raise NotFound(f"no result for execution {exec_id!r} (unknown id, or not finished yet)")

    async def run_raw(self, request: Request) -> Response:
        """braindrill's API: the body is the code; the answer is the program's output."""
        body = await read_body(request, self.settings.ingress_max_body_bytes)
        lang = self.registry.resolve(request.path_params["language"])
        req = replace(request_from_doc({"language": lang.name, "source": ""}),
                      files=(SourceFile(name=None, content=body),))
        result = await self._wait(req, self.settings.ingress_wait_s)
        if result is None:
            raise NotReady(f"no result within {self.settings.ingress_wait_s}s; "
                           f"GET /v1/executions/{req.id} later")
        doc = orjson.loads(result)
        phase = doc.get("run") or doc.get("compile") or {}
        text = phase.get("stdout") or phase.get("stderr") or doc.get("message") or ""
        return PlainTextResponse(text, headers={"X-Runstream-Status": doc["status"],
                                                "X-Runstream-Id": req.id})

    async def languages(self, request: Request) -> Response:
        served = self.gateway.language_versions()
        languages = []
        for lang in self.registry.describe():
            versions = served.get(lang["name"], [])
            languages.append({**lang, "version": versions[-1] if versions else None,
                              "versions": versions})
        return json_response({"languages": languages})

    async def healthz(self, request: Request) -> Response:
        return json_response({"status": "alive"})

    async def readyz(self, request: Request) -> Response:
        if not self.gateway.reply_assigned():
            raise NotReady("the reply consumer has no partition assigned yet")
        workers = await self.gateway.worker_count()
        if workers < 1:
            raise NotReady(f"no worker is in the consumer group {self.settings.worker_group!r}")
        return json_response({"status": "ready", "workers": workers})


def _wait_param(request: Request, default: float) -> float:
    raw = request.query_params.get("wait")
    if raw is None:
        return default
    if raw.lower() in ("false", "no", "0"):
        return 0.0
    try:
        return max(0.0, min(float(raw), default))
    except ValueError:
        return default


async def _runstream_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RunstreamError)
    extra = {k: v for k, v in exc.extra.items() if v is not None}
    if exc.http_status >= 500:
        log.warning("%s %s -> %d: %s", request.method, request.url.path, exc.http_status,
                    exc.message)
    return problem(exc.http_status, exc.problem_type, exc.title, exc.message, **extra)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return problem(exc.status_code, "http-error", str(exc.detail), str(exc.detail))


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return problem(500, "internal-error", "Internal error", "an unexpected error; it is logged")


def create_app(settings: Settings, registry: Registry | None = None) -> Starlette:
    """The ingress ASGI app; Kafka connects in the lifespan, not at import."""
    registry = registry or Registry.load(settings.languages_file or None)
    gateway = Gateway(settings)
    ingress = Ingress(settings, registry, gateway)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await gateway.start()
        try:
            yield
        finally:
            await gateway.stop()

    routes = [
        Route("/v1/executions", ingress.create_execution, methods=["POST"]),
        Route("/v1/executions/{id}", ingress.get_execution, methods=["GET"]),
        Route("/lang/{language}", ingress.run_raw, methods=["POST"]),
        Route("/v1/languages", ingress.languages, methods=["GET"]),
        Route("/healthz", ingress.healthz, methods=["GET"]),
        Route("/readyz", ingress.readyz, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={RunstreamError: _runstream_error, HTTPException: _http_error,
                            Exception: _unexpected},
    )
    app.state.gateway = gateway
    app.state.ingress = ingress
    return app
