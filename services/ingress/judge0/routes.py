"""The Judge0 routes: thin Starlette handlers over the ingress and its request channel.

Mounted under ``/judge0`` by :func:`runstream.services.ingress.app.create_app`.
Judge0's own errors (400 ``{"error"}``, 422 field errors, 404) are answered in
Judge0's body shapes; the ingress's refusals (429 overload, 413, 503) stay
problem+json, as on every other route.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import platform
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import orjson
from runstream.schemas.codec import parse_json_object
from runstream.schemas.errors import InvalidRequest
from runstream.schemas.models import ExecutionRequest
from runstream.services.execution.languages import Registry
from runstream.services.ingress.bodies import BodyBudget
from runstream.services.ingress.gateway import Channel, Gateway
from runstream.services.ingress.judge0 import catalog as cat
from runstream.services.ingress.judge0 import config as cfg
from runstream.services.ingress.judge0.errors import (
    BadParameter,
    FieldErrors,
    Judge0Error,
    NotFoundJudge0,
    NotUtf8,
)
from runstream.services.ingress.judge0.statuses import statuses
from runstream.services.ingress.judge0.submission import build_request
from runstream.services.ingress.judge0.tokens import new_token, recently_issued
from runstream.services.ingress.judge0.wire import (
    parse_fields,
    pending_doc,
    submission_doc,
)
from runstream.services.settings import Settings
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

log = logging.getLogger(__name__)

Handler = Callable[[Request], Awaitable[Response]]
Build = Callable[[bytes], tuple[ExecutionRequest, bool]]


class IngressLike(Protocol):
    """What the Judge0 routes use of :class:`~runstream.services.ingress.app.Ingress`."""

    settings: Settings
    registry: Registry
    gateway: Gateway
    channel: Channel
    bodies: BodyBudget

    def admit(self) -> None: ...

    def validate(self, req: ExecutionRequest) -> ExecutionRequest: ...

    async def lookup(self, exec_id: str, named: bool = True) -> bytes | None: ...

    async def submit_and_wait(self, request: Request, build: Build,
                              wait_s: float) -> tuple[str, bytes | None]: ...


def _json(doc: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(doc), status_code=status, media_type="application/json")


def _answer(e: Judge0Error) -> Response:
    if e.body is None:
        return Response(b"", status_code=e.http_status)
    return _json(e.body, e.http_status)


def _judge0(handler: Handler) -> Handler:
    """Judge0's errors in Judge0's shapes; every other error goes to the app's handlers."""
    @functools.wraps(handler)
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except Judge0Error as e:
            return _answer(e)
    return wrapped


def _flag(request: Request, name: str) -> bool:
    """Judge0 turns a flag on only for the exact string ``true``."""
    return request.query_params.get(name) == "true"


def _params(request: Request, body: bytes) -> dict[str, Any]:
    """The submission's attributes: the body (JSON or form) over the query, as Rails merges."""
    params: dict[str, Any] = dict(request.query_params)
    if not body.strip():
        return params
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/x-www-form-urlencoded":
        params.update(urllib.parse.parse_qsl(body.decode("utf-8", "replace"),
                                             keep_blank_values=True))
    else:
        params.update(parse_json_object(body))
    return params


def _host_facts() -> dict[str, str]:
    """What Judge0's /system_info reports (lscpu, free), for this ingress's host."""
    facts = {"Architecture": platform.machine(), "CPU(s)": str(os.cpu_count() or 1)}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    facts["Model name"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo", encoding="utf-8") as f:
            mem = {k: v.split()[0] for k, v in (ln.split(":", 1) for ln in f if ":" in ln)}
        for row, key in (("Mem", "MemTotal"), ("Swap", "SwapTotal")):
            if key in mem:
                facts[row] = f"{int(mem[key]) / 1024 / 1024:.1f}Gi"
    except OSError as e:  # not Linux: report what platform knows
        log.debug("no /proc facts: %s", e)
    return facts


class Judge0Api:
    """Judge0 CE 1.13.1's endpoints over one ingress."""

    def __init__(self, ingress: IngressLike) -> None:
        self.ingress = ingress
        self.channel = ingress.channel
        self.settings = ingress.settings
        self.gateway = ingress.gateway
        self.config = cfg.Judge0Config.from_settings(self.settings)
        # How long after issuing a token its result may still be on its way: a
        # worker answers `expired` by the deadline, later if the queue is long.
        self.pending_window_s = (self.settings.ingress_deadline_s
                                 + self.settings.ingress_max_backlog_s + 60)

    def catalog(self) -> cat.Catalog:
        return cat.Catalog.build(self.ingress.registry, self.channel.language_versions())

    def _build(self, request: Request, token: str, b64: bool,
               languages: cat.Catalog) -> Build:
        def build(body: bytes) -> tuple[ExecutionRequest, bool]:
            req = build_request(_params(request, body), token, base64_encoded=b64,
                                languages=languages.by_id, config=self.config)
            return req, False  # a fresh token has no stored result to look for
        return build

    def _render(self, token: str, result: bytes | None, fields: tuple[str, ...], b64: bool,
                languages: cat.Catalog) -> dict[str, Any] | None:
        if result is not None:
            stored = orjson.loads(result)
            return submission_doc(stored if isinstance(stored, dict) else {}, fields,
                                  base64_encoded=b64, catalog=languages)
        if self.channel.is_pending(token) or recently_issued(token, self.pending_window_s):
            return pending_doc(token, fields)
        return None

    # -- submissions -----------------------------------------------------------
    async def create(self, request: Request) -> Response:
        b64, wait = _flag(request, "base64_encoded"), _flag(request, "wait")
        fields = parse_fields(request.query_params.get("fields")) if wait else ("token",)
        languages = self.catalog()
        token = new_token()
        exec_id, result = await self.ingress.submit_and_wait(
            request, self._build(request, token, b64, languages),
            self.settings.ingress_wait_s if wait else 0.0)
        if not wait:
            return _json({"token": exec_id}, 201)
        try:
            doc = self._render(exec_id, result, fields, b64, languages)
        except NotUtf8 as e:  # Judge0 still answers 201: the submission exists
            return _json({"token": exec_id, "error": e.body["error"]}, 201)
        return _json(doc, 201)

    async def get(self, request: Request) -> Response:
        token = request.path_params["token"]
        fields = parse_fields(request.query_params.get("fields"))
        doc = self._render(token, await self.ingress.lookup(token), fields,
                           _flag(request, "base64_encoded"), self.catalog())
        if doc is None:
            raise NotFoundJudge0(f"no submission {token!r}")
        return _json(doc)

    async def create_batch(self, request: Request) -> Response:
        b64 = _flag(request, "base64_encoded")
        languages = self.catalog()
        self.ingress.admit()
        async with self.ingress.bodies.read(request) as body:
            items = parse_json_object(body).get("submissions")
            if not isinstance(items, list) or not items:
                raise BadParameter("there should be at least one submission in a batch")
            if len(items) > cfg.MAX_BATCH:
                raise BadParameter("number of submissions in a batch should be less than or "
                                   f"equal to {cfg.MAX_BATCH}")
            answers: list[dict[str, Any]] = []
            requests: list[ExecutionRequest] = []
            for item in items:
                try:
                    req = build_request(item if isinstance(item, dict) else {}, new_token(),
                                        base64_encoded=b64, languages=languages.by_id,
                                        config=self.config)
                    req = self.ingress.validate(req)
                except FieldErrors as e:
                    answers.append(e.errors)
                    continue
                except InvalidRequest as e:  # the native contract refused it
                    answers.append({e.field or "base": [e.message]})
                    continue
                requests.append(req)
                answers.append({"token": req.id})
            for _ in requests[1:]:  # admit() above counted the first
                self.gateway.backlog.admit()
            await asyncio.gather(*(self.gateway.submit(r) for r in requests))
        return _json(answers, 201 if requests else 422)

    async def get_batch(self, request: Request) -> Response:
        raw = request.query_params.get("tokens") or request.headers.get("tokens") or ""
        tokens = [t.strip() for t in raw.split(",") if t.strip()]
        if not tokens:
            raise BadParameter("there should be at least one submission in a batch")
        if len(tokens) > cfg.MAX_BATCH:
            raise BadParameter("number of submissions in a batch should be less than or "
                               f"equal to {cfg.MAX_BATCH}")
        fields = parse_fields(request.query_params.get("fields"))
        b64 = _flag(request, "base64_encoded")
        languages = self.catalog()
        results = await asyncio.gather(*(self.ingress.lookup(t) for t in tokens))
        try:
            docs = [self._render(t, r, fields, b64, languages) for t, r in zip(tokens, results,
                                                                               strict=True)]
        except NotUtf8 as e:
            raise NotUtf8(many=True) from e
        return _json({"submissions": docs})

    async def needs_authorization(self, request: Request) -> Response:
        """The list and DELETE need X-Auth-User; no authorization token is configured: 403."""
        return Response(b"", status_code=403)

    # -- read-only -------------------------------------------------------------
    async def statuses(self, request: Request) -> Response:
        return _json(statuses())

    async def languages(self, request: Request) -> Response:
        return _json(self.catalog().listing())

    async def languages_all(self, request: Request) -> Response:
        return _json(self.catalog().listing_all())

    async def language(self, request: Request) -> Response:
        return _json(self.catalog().detail(request.path_params["id"],
                                           self.settings.default_limits))

    async def about(self, request: Request) -> Response:
        return _json(cfg.about())

    async def version(self, request: Request) -> Response:
        return PlainTextResponse(cfg.JUDGE0_VERSION)

    async def config_info(self, request: Request) -> Response:
        return _json(cfg.config_info(self.config))

    async def system_info(self, request: Request) -> Response:
        return _json(cat.system_info(_host_facts()))

    async def workers(self, request: Request) -> Response:
        watch = self.channel.watch
        lag, slots = watch.lag, watch.slots
        return _json(cat.workers(lag, slots))

    async def empty(self, request: Request) -> Response:
        return Response(b"", status_code=200)


def judge0_routes(ingress: IngressLike) -> list[BaseRoute]:
    """The routes to mount under ``/judge0``."""
    api = Judge0Api(ingress)
    table: list[tuple[str, Handler, list[str]]] = [
        ("/", api.empty, ["GET"]),
        ("/submissions", api.create, ["POST"]),
        ("/submissions", api.needs_authorization, ["GET"]),
        ("/submissions/batch", api.create_batch, ["POST"]),
        ("/submissions/batch", api.get_batch, ["GET"]),
        ("/submissions/{token}", api.get, ["GET"]),
        ("/submissions/{token}", api.needs_authorization, ["DELETE"]),
        ("/statuses", api.statuses, ["GET"]),
        ("/languages", api.languages, ["GET"]),
        ("/languages/all", api.languages_all, ["GET"]),
        ("/languages/{id}", api.language, ["GET"]),
        ("/about", api.about, ["GET"]),
        ("/version", api.version, ["GET"]),
        ("/config_info", api.config_info, ["GET"]),
        ("/system_info", api.system_info, ["GET"]),
        ("/workers", api.workers, ["GET"]),
        ("/authenticate", api.empty, ["POST"]),
        ("/authorize", api.needs_authorization, ["POST"]),
    ]
    return [Route(path, _judge0(handler), methods=methods) for path, handler, methods in table]
