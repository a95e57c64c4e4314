"""What the pipeline adds: hello-world latency over HTTP vs. the same sandbox run direct.

    runstream bench latency [--url http://127.0.0.1:8080] [--requests 300] [--language python]

One request at a time. The direct figure runs the worker's own executor and
sandbox in this process (no Kafka, no HTTP); the end-to-end figure goes through
a running ingress, Kafka and a worker. Both are measured in the same run, in
alternating blocks so that drift of the machine hits both alike. Needs root
(the bwrap sandbox), like a worker.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import orjson
from runstream.schemas.codec import request_from_doc
from runstream.services.execution.executor import start_executor
from runstream.services.settings import Settings

# Hello-world per language: every program prints exactly "hello, world\n".
HELLO = {
    "python": 'print("hello, world")',
    "javascript": 'console.log("hello, world")',
    "ruby": 'puts "hello, world"',
    "c": '#include <stdio.h>\nint main(void) { puts("hello, world"); return 0; }',
    "java": 'public class Main { public static void main(String[] a) '
            '{ System.out.println("hello, world"); } }',
}


def percentile(samples: list[float], q: float) -> float:
    """The q-th percentile (0..100) by nearest rank."""
    ordered = sorted(samples)
    rank = max(1, round(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


class HttpClient:
    """A minimal HTTP/1.1 keep-alive client: the figure is the server's, not a library's."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes, timeout_s: float = 30) -> tuple[int, bytes]:
        """POST ``body`` as JSON; (status, response body).

        A kept-alive connection that the server closed while idle is reopened
        and the request sent once more (safe: execution ids are idempotency keys).
        """
        status, _, payload = await self.exchange(path, body, timeout_s)
        return status, payload

    async def exchange(self, path: str, body: bytes,
                       timeout_s: float = 30) -> tuple[int, dict[str, str], bytes]:
        """POST ``body`` as JSON; (status, headers with lower-case names, response body)."""
        async with asyncio.timeout(timeout_s):
            reused = self._writer is not None
            try:
                return await self._exchange(path, body)
            except (ConnectionError, asyncio.IncompleteReadError, IndexError, ValueError):
                await self.close()
                if not reused:
                    raise
                return await self._exchange(path, body)

    async def _exchange(self, path: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
        if self._writer is None or self._reader is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        head = (f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
        self._writer.write(head.encode() + body)
        status_line = await self._reader.readline()
        status = int(status_line.split()[1])  # IndexError/ValueError: closed or garbled
        headers: dict[str, str] = {}
        while (line := await self._reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        payload = await self._reader.readexactly(int(headers.get("content-length", 0)))
        return status, headers, payload

    async def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def _timed(n: int, call: Callable[[], Awaitable[None]]) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        await call()
        out.append((time.perf_counter() - t0) * 1000)
    return out


async def main(settings: Settings, argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="runstream bench latency", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", nargs="?", default="latency", choices=["latency"])
    parser.add_argument("--url", default=f"http://{settings.ingress_host}:"
                        f"{settings.ingress_port}")
    parser.add_argument("--requests", type=int, default=300, help="per target, after warm-up")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--language", default="python", choices=sorted(HELLO))
    args = parser.parse_args(argv)
    if args.requests < 10:
        parser.error("--requests must be at least 10")

    executor = await start_executor(settings)
    sandbox = executor.sandbox
    body = {"language": args.language, "source": HELLO[args.language]}
    try:
        client = HttpClient(args.url)
        payload = orjson.dumps(body)
        try:
            async def over_http() -> None:
                status, answer = await client.post("/v1/executions", payload)
                if status != 200 or orjson.loads(answer)["status"] != "ok":
                    raise SystemExit(f"end-to-end run failed: {status} {answer[:300]!r}")

            async def direct() -> None:
                result = await executor.execute(request_from_doc(body))
                if result.status != "ok":
                    raise SystemExit(f"direct run failed: {result.status} {result.message}")

            await _timed(args.warmup, over_http)
            await _timed(args.warmup, direct)
            e2e: list[float] = []
            bare: list[float] = []
            block = 25
            while len(e2e) < args.requests:
                n = min(block, args.requests - len(e2e))
                e2e += await _timed(n, over_http)
                bare += await _timed(n, direct)
        finally:
            await client.close()
    finally:
        await sandbox.stop()

    rows = [("end-to-end (HTTP+Kafka+worker)", e2e), ("direct sandbox (same executor)", bare)]
    print(f"\n{args.language} hello-world, {args.requests} requests each, one at a time, "
          f"sandbox={sandbox.name}\n")
    print(f"{'path':34} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
    for name, samples in rows:
        print(f"{name:34} {percentile(samples, 50):8.1f} {percentile(samples, 90):8.1f} "
              f"{percentile(samples, 99):8.1f} {statistics.fmean(samples):8.1f}")
    print(f"{'pipeline overhead':34} {percentile(e2e, 50) - percentile(bare, 50):8.1f} "
          f"{percentile(e2e, 90) - percentile(bare, 90):8.1f} "
          f"{percentile(e2e, 99) - percentile(bare, 99):8.1f} "
          f"{statistics.fmean(e2e) - statistics.fmean(bare):8.1f}")
    return 0
