"""Where a benchmark sends its requests: ``http`` (an ingress), ``kafka`` (straight onto
runstream.requests, see kafka_target.py), ``lang`` (an ingress's braindrill API,
as braindrill's load simulator sends, see lang_target.py) or ``direct`` (the
worker's executor and sandbox in this process: no Kafka, no HTTP; the baseline;
needs root).

Each target turns a request document into a result document or raises
:class:`TargetError` with a short kind (``http 503``, ``timeout``, ...) that the
report counts.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import quote

import orjson
from runstream.services.bench.kafka_target import KafkaTarget
from runstream.services.bench.lang_target import code_of, result_of
from runstream.services.bench.latency import HttpClient
from runstream.services.bench.target import Target, TargetError, now_iso
from runstream.services.settings import Settings

log = logging.getLogger(__name__)
TARGETS = ("http", "kafka", "direct", "lang")


class HttpTarget:
    """POST /v1/executions on an ingress, over a bounded pool of keep-alive connections."""

    name = "http"

    def __init__(self, url: str, *, max_connections: int = 256, timeout_s: float = 90.0) -> None:
        self.url = url.rstrip("/")
        self.max_connections = max_connections
        self.timeout_s = timeout_s
        self._idle: asyncio.Queue[HttpClient] = asyncio.Queue()
        self._open = 0

    async def start(self) -> None:
        return None

    async def _client(self) -> HttpClient:
        if self._idle.empty() and self._open < self.max_connections:
            self._open += 1
            return HttpClient(self.url)
        try:
            return await asyncio.wait_for(self._idle.get(), self.timeout_s)
        except TimeoutError as e:
            raise TargetError("no free connection") from e

    async def post(self, path: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
        """POST ``body`` (labelled JSON) on a pooled connection: status, headers, body."""
        client = await self._client()
        healthy = False
        try:
            answer = await client.exchange(path, body, timeout_s=self.timeout_s)
            healthy = True
        except TimeoutError as e:
            raise TargetError("timeout") from e
        except (OSError, asyncio.IncompleteReadError, IndexError, ValueError) as e:
            raise TargetError(f"connection: {type(e).__name__}") from e
        finally:
            if healthy:
                self._idle.put_nowait(client)
            else:
                self._open -= 1
                await client.close()
        return answer

    async def execute(self, payload: dict[str, Any]) -> dict[str, Any]:
        status, _, body = await self.post("/v1/executions", orjson.dumps(payload))
        if status != 200:
            raise TargetError(f"http {status}")
        doc: dict[str, Any] = orjson.loads(body)
        return doc

    async def stop(self) -> None:
        while not self._idle.empty():
            await self._idle.get_nowait().close()

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "url": self.url, "max_connections": self.max_connections}


class LangTarget(HttpTarget):
    """braindrill's API on an ingress: raw code labelled JSON, verdict from the header."""

    name = "lang"

    async def execute(self, payload: dict[str, Any]) -> dict[str, Any]:
        code = code_of(payload).encode()
        language = quote(str(payload.get("language", "")), safe="")
        status, headers, body = await self.post(f"/lang/{language}", code)
        if "x-runstream-status" not in headers:
            # No verdict: refused before running (unsupported language, 429, 503, ...).
            raise TargetError(f"http {status}")
        return result_of(payload, headers, body)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "path": "/lang/{language}",
                "content_type": "application/json"}


class DirectTarget:
    """The worker's Executor and sandbox in this process, ``slots`` runs at a time."""

    name = "direct"

    def __init__(self, settings: Settings, slots: int | None = None) -> None:
        self.settings = settings
        self.slots = slots or settings.worker_concurrency
        self._sem = asyncio.Semaphore(self.slots)
        self._sandbox: Any = None
        self._executor: Any = None

    async def start(self) -> None:
        # Imported here: the other targets must not need the sandbox's dependencies.
        from runstream.services.execution.executor import start_executor

        self._executor = await start_executor(self.settings)
        self._sandbox = self._executor.sandbox

    async def execute(self, payload: dict[str, Any]) -> dict[str, Any]:
        from runstream.schemas.codec import request_from_doc, result_to_doc
        from runstream.schemas.errors import RunstreamError

        try:
            # Queue wait of the baseline = waiting for a free slot, as in a worker.
            req = request_from_doc({**payload, "enqueued_at": now_iso()})
        except RunstreamError as e:
            raise TargetError(f"invalid request: {e.message}") from e
        async with self._sem:
            result = await self._executor.execute(req)
        return result_to_doc(result)

    async def stop(self) -> None:
        if self._sandbox is not None:
            await self._sandbox.stop()

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "slots": self.slots,
                "sandbox": self.settings.sandbox_backend}


def create_target(kind: str, settings: Settings, *, url: str | None = None,
                  slots: int | None = None, run_id: str = "") -> Target:
    """The named target, configured from the settings and flags."""
    if kind == "http":
        return HttpTarget(url or f"http://{settings.ingress_host}:{settings.ingress_port}")
    if kind == "direct":
        return DirectTarget(settings, slots)
    if kind == "kafka":
        return KafkaTarget(settings, run_id)
    if kind == "lang":
        return LangTarget(url or f"http://{settings.ingress_host}:{settings.ingress_port}")
    raise ValueError(f"unknown target {kind!r}; one of {', '.join(TARGETS)}")
