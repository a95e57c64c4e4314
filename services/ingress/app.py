"""The HTTP ingress: Starlette routes over the request channel (``streams/channel.py``).

This is the only layer that turns runstream errors into HTTP responses
(``application/problem+json``, RFC 9457).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import orjson
from runstream.schemas.codec import parse_json_object, request_from_doc
from runstream.schemas.errors import InvalidRequest, NotFound, NotReady
from runstream.schemas.limits import resolve_limits
from runstream.schemas.models import ExecutionRequest, SourceFile
from runstream.services.execution.languages import Registry
from runstream.services.ingress import braindrill
from runstream.services.ingress.auth import ApiKeyAuth
from runstream.services.ingress.bodies import BodyBudget
from runstream.services.ingress.docs import docs_routes
from runstream.services.ingress.event_stream import EventStreams
from runstream.services.ingress.gateway import Channel, Gateway
from runstream.services.ingress.http_metrics import HttpMetrics, metrics_endpoint
from runstream.services.ingress.judge0.routes import judge0_routes
from runstream.services.ingress.piston.routes import piston_routes
from runstream.services.ingress.problems import HANDLERS, JSON, Draining, json_response
from runstream.services.ingress.ui import ui_routes
from runstream.services.ingress.webhooks import Webhooks
from runstream.services.logs import bind_execution
from runstream.services.settings import Settings
from runstream.streams.api_keys import KeyStore
from runstream.streams.channel import RequestChannel
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute

log = logging.getLogger(__name__)

# How a body becomes a request, and whether the client named its id.
Build = Callable[[bytes], tuple[ExecutionRequest, bool]]


def _from_json(body: bytes) -> tuple[ExecutionRequest, bool]:
    doc = parse_json_object(body)
    return request_from_doc(doc), "id" in doc


def _streamed_from_json(body: bytes) -> tuple[ExecutionRequest, bool]:
    req, named = _from_json(body)
    return replace(req, events=True), named


@dataclass(frozen=True, slots=True)
class Submission:
    """A request handed to Kafka (or already answered): its id, its result to come."""

    exec_id: str
    future: asyncio.Future[bytes]
    #: The result already known (stored or cached): nothing was produced.
    result: bytes | None


class Ingress:
    """Route handlers bound to one gateway (admission over the request channel)."""

    def __init__(self, settings: Settings, registry: Registry, gateway: Gateway) -> None:
        self.settings = settings
        self.registry = registry
        self.gateway = gateway
        self.channel = gateway.channel
        self.bodies = BodyBudget(settings.ingress_body_budget_bytes,
                                 settings.ingress_max_body_bytes)
        self.draining = False

    def validate(self, req: ExecutionRequest) -> ExecutionRequest:
        """Refuse what no worker would run: unknown language, limits above maxima."""
        lang = self.registry.resolve(req.language, req.version)
        resolve_limits(req.limits, self.settings.default_limits, self.settings.max_limits)
        if req.deadline is None:  # a client long gone must not cost a sandbox run
            req = replace(req, deadline=datetime.now(UTC) + timedelta(
                seconds=self.settings.ingress_deadline_s))
        return req if req.language == lang.name else replace(req, language=lang.name)

    def admit(self) -> None:
        """Refuse new work at once when stopping (503) or overloaded (429), before reading it."""
        if self.draining:
            raise Draining("this ingress is stopping; retry after the Retry-After delay "
                           "(another instance, or this one restarted, will answer)")
        self.gateway.backlog.admit()

    async def lookup(self, exec_id: str, named: bool = True) -> bytes | None:
        """The result of ``exec_id`` if it is known: in memory, or stored (``named``)."""
        result = self.channel.cached(exec_id)
        if result is None and named:  # a generated id cannot have a stored result
            result = await self.channel.find(exec_id)
        return result

    @contextlib.asynccontextmanager
    async def submitted(self, req: ExecutionRequest,
                        named: bool = False) -> AsyncIterator[Submission]:
        """Wait for ``req``'s result within the block; produce it unless it is known.

        ``req`` has passed :meth:`admit` and :meth:`validate`; the caller's quota is
        checked as it is produced (``gateway.py``). Interest is registered before the
        lookup, so a result arriving in between is not missed; ``named``: the client
        chose the id, so a stored result may exist. Raises what producing raises.
        Used by :meth:`submit_and_wait` and by Piston's interactive session.
        """
        exec_id = req.id
        with self.channel.waiters.waiting(exec_id) as future:
            result = await self.lookup(exec_id, named)
            if result is None:
                await self.gateway.submit(req)
            del req
            yield Submission(exec_id, future, result)

    async def submit_and_wait(self, request: Request, build: Build,
                              wait_s: float) -> tuple[str, bytes | None]:
        """Read, validate, produce (unless finished or in flight) and wait for one request.

        The one way every front end (native, braindrill, Judge0, Piston) runs a request
        from a body. The body counts against the body budget until Kafka has it; only
        the id is kept while waiting for the result (None after ``wait_s``).
        """
        self.admit()
        async with contextlib.AsyncExitStack() as stack:
            async with self.bodies.read(request) as body:
                req, named = build(body)
                req = self.validate(req)
                bind_execution(req.id)  # JSON log lines of this request carry it
                submission = await stack.enter_async_context(self.submitted(req, named))
                del body, req
            result = submission.result
            if result is None:
                result = await self.channel.waiters.wait(submission.future, wait_s)
        return submission.exec_id, result

    async def create_execution(self, request: Request) -> Response:
        wait_s = _wait_param(request, self.settings.ingress_wait_s)
        # ?wait=0: the client follows the run some other way, maybe its events (the
        # playground streams them): ask for them (by default only runs asked for write
        # events: RUNSTREAM_EVENTS_PRODUCE, docs/events.md).
        build = _from_json if wait_s > 0 else _streamed_from_json
        exec_id, result = await self.submit_and_wait(request, build, wait_s)
        if result is None:
            return _pending(exec_id)
        return Response(result, media_type=JSON)

    async def get_execution(self, request: Request) -> Response:
        """The result by id; ``?wait=S`` long-polls up to S seconds for it to arrive."""
        exec_id = request.path_params["id"]
        bind_execution(exec_id)
        wait_s = _wait_param(request, self.settings.ingress_wait_s) if (
            "wait" in request.query_params) else 0.0
        with self.channel.waiters.waiting(exec_id) as future:
            result = await self.lookup(exec_id)
            if result is None and wait_s > 0:
                result = await self.channel.waiters.wait(future, wait_s)
        if result is not None:
            return Response(result, media_type=JSON)
        if self.channel.is_pending(exec_id):
            return _pending(exec_id)
        raise NotFound(f"no result for execution {exec_id!r} (unknown id, not finished yet, "
                       "or older than the results' retention)")

    async def run_raw(self, request: Request) -> Response:
        """braindrill's API: the body is the code; the answer is what braindrill answered.

        The body is the code whatever its content type (braindrill's load simulator
        labels it application/json). The verdict and the id are in headers.
        """
        name = request.path_params["language"]
        try:
            lang = self.registry.resolve(name)
            # The shared rules for a language string ("python\n" resolves, yet no
            # control character is a language's name).
            request_from_doc({"language": name, "source": ""})
        except InvalidRequest:
            # braindrill's sentence, not problem+json: its clients show the body as is.
            return _braindrill_response(braindrill.unsupported())
        # braindrill's limits: its API has no way to ask for others.
        limits = {"wall_ms": self.settings.ingress_lang_wall_ms,
                  "memory_mb": self.settings.ingress_lang_memory_mb}

        def build(body: bytes) -> tuple[ExecutionRequest, bool]:
            req = request_from_doc({"language": lang.name, "source": "", "limits": limits})
            return replace(req, files=(SourceFile(name=None, content=body),)), False

        exec_id, result = await self.submit_and_wait(request, build, self.settings.ingress_wait_s)
        if result is None:
            if self.draining:
                return _pending(exec_id)
            raise NotReady(f"no result within {self.settings.ingress_wait_s}s; "
                           f"GET /v1/executions/{exec_id} later")
        doc = orjson.loads(result)
        return _braindrill_response(braindrill.answer(doc), {
            "X-Runstream-Status": str(doc.get("status")), "X-Runstream-Id": exec_id})

    async def languages(self, request: Request) -> Response:
        served = self.channel.language_versions()
        languages = []
        for lang in self.registry.describe():
            versions = served.get(lang["name"], [])
            languages.append({**lang, "version": versions[-1] if versions else None,
                              "versions": versions})
        return json_response({"languages": languages})

    async def healthz(self, request: Request) -> Response:
        return json_response({"status": "alive"})

    async def readyz(self, request: Request) -> Response:
        if self.draining:
            raise Draining("draining: this ingress is stopping and takes no new work")
        if not self.channel.reply_assigned():
            raise NotReady("the reply consumer has no partition assigned yet")
        workers = self.channel.worker_count()
        if workers < 1:
            raise NotReady(f"no worker is in the consumer group {self.settings.worker_group!r}")
        return json_response({"status": "ready", "workers": workers,
                              "group": self.channel.group_status()})

    async def drain(self) -> None:
        """Take no new work; let waiters finish within the drain bound; release the rest."""
        self.draining = True
        waiting = len(self.channel.waiters)
        log.info("draining: %d request(s) waiting; up to %gs", waiting,
                 self.settings.ingress_drain_s)
        if not await self.channel.waiters.idle(self.settings.ingress_drain_s):
            log.info("drain bound reached: %d request(s) answered 202",
                     len(self.channel.waiters))
        self.channel.waiters.release()
        # Released handlers answer 202 at once; let them write before the server closes.
        await self.channel.waiters.idle(1.0)


def _braindrill_response(answer: braindrill.Answer,
                         headers: dict[str, str] | None = None) -> Response:
    return Response(answer.body, status_code=answer.status, headers=headers,
                    media_type="text/plain; charset=utf-8")


def _pending(exec_id: str) -> Response:
    location = f"/v1/executions/{exec_id}"
    return json_response({"id": exec_id, "status": "pending", "location": location},
                         status=202, headers={"Location": location, "Retry-After": "1"})


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


def _mount(path: str, routes: list[BaseRoute]) -> Mount:
    """A mount whose paths may hold any character, a newline (``%0A``) too.

    Starlette's ``{x:path}`` (and so every mount) is ``.*``, which stops at a
    newline: such a path fell out of the Judge0 or Piston routes to the native
    problem+json 404, which their clients do not read (found by the fuzzer).
    """
    mount = Mount(path, routes=routes)
    for route in (mount, *routes):
        if isinstance(route, Route | WebSocketRoute | Mount):
            route.path_regex = re.compile(route.path_regex.pattern, re.DOTALL)
    return mount


def create_app(settings: Settings, registry: Registry | None = None,
               channel: Channel | None = None, *, keys: KeyStore | None = None) -> Starlette:
    """The ingress ASGI app; Kafka connects in the lifespan, not at import.

    ``channel``: the request channel (default: ``streams/channel.py``'s, over Kafka).
    With ``settings.auth_required`` every route but the open ones needs an API key
    (``auth.py``); ``keys`` is the key store to use (default: one following the
    keys topic). Without it, ``keys`` is ignored.
    """
    registry = registry or Registry.from_settings(settings)
    channel = channel or RequestChannel(settings)
    gateway = Gateway(settings, channel)
    ingress = Ingress(settings, registry, gateway)
    if not settings.auth_required:  # docs/keys.md
        keys = None
    elif keys is None:
        keys = KeyStore(settings, name=channel.name)
    # docs/webhooks.md: signed with the caller's key's own secret when keys are on.
    webhooks = Webhooks(settings, name=channel.name,
                        keys=keys.webhook_secret if keys is not None else None)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await channel.start()
        try:
            if keys is not None:  # every key read before the first request is served
                await keys.start()
            await webhooks.start()
            yield
        finally:
            if keys is not None:
                await keys.stop()
            await asyncio.gather(webhooks.stop(), channel.stop())

    routes = [
        Route("/v1/executions", ingress.create_execution, methods=["POST"]),
        Route("/v1/executions/{id}", ingress.get_execution, methods=["GET"]),
        Route("/v1/executions/{id}/deliveries", webhooks.deliveries_of, methods=["GET"]),
        # Live events as Server-Sent Events (docs/events.md).
        Route("/v1/executions/{id}/events", EventStreams(settings, channel).stream,
              methods=["GET"]),
        Route("/lang/{language}", ingress.run_raw, methods=["POST"]),
        Route("/v1/languages", ingress.languages, methods=["GET"]),
        Route("/healthz", ingress.healthz, methods=["GET"]),
        Route("/readyz", ingress.readyz, methods=["GET"]),
        # docs/openapi.md, docs/metrics.md.
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        *docs_routes(),
        # Judge0 CE 1.13.1's API (services/ingress/judge0, docs/judge0.md).
        _mount("/judge0", judge0_routes(ingress)),
        # Piston v2's API (services/ingress/piston, docs/piston.md).
        _mount("/api/v2", piston_routes(ingress)),
        # The playground, the dashboard and /v1/stats (docs/playground.md).
        *ui_routes(channel),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers=dict(HANDLERS),
        # Metrics first, so that they count what the API keys refuse (docs/keys.md:
        # the key check runs in front of every route).
        middleware=[Middleware(HttpMetrics), Middleware(ApiKeyAuth, keys=keys, settings=settings)],
    )
    app.state.keys = keys  # None when auth is off
    app.state.channel = channel
    app.state.gateway = gateway
    app.state.ingress = ingress
    app.state.webhooks = webhooks
    return app
