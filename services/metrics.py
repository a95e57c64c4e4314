"""Prometheus metrics of the ingress and of the workers: every name, type and label.

Each process kind has its own registry (``INGRESS``, ``WORKER``), so an ingress's
``/metrics`` shows HTTP metrics and a worker's shows executions, each with the
process's CPU and memory. The hooks here are what the rest of the code calls, one
call per event (a finished execution, a sample of the slots): a few counter
increments, no I/O. Label values that come from requests (language, method) are
bounded, so hostile input cannot grow the number of series.

The worker serves its registry over HTTP with :func:`serve` (prometheus_client's
own server, in a daemon thread); the ingress serves its registry at ``/metrics``
of its HTTP API.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
    start_http_server,
)
from runstream.schemas.models import ExecutionResult
from runstream.services.errors import ConfigurationError

__all__ = ["CONTENT_TYPE_LATEST", "INGRESS", "WORKER", "exposition"]

INGRESS = CollectorRegistry()
WORKER = CollectorRegistry()
for _registry in (INGRESS, WORKER):
    ProcessCollector(registry=_registry)
    PlatformCollector(registry=_registry)

# Seconds: from a C hello-world in the sandbox (~10 ms) to the longest wait allowed (60 s).
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

# -- ingress -------------------------------------------------------------------------
HTTP_REQUESTS = Counter(
    "runstream_http_requests", "HTTP requests answered, by route template, method and status.",
    ["route", "method", "status"], registry=INGRESS)
HTTP_DURATION = Histogram(
    "runstream_http_request_duration_seconds",
    "Time from a request's arrival to the end of its answer (for POST /v1/executions: the "
    "end-to-end latency of an execution), by route template and method.",
    ["route", "method"], buckets=_LATENCY_BUCKETS, registry=INGRESS)
HTTP_IN_FLIGHT = Gauge(
    "runstream_http_requests_in_flight", "HTTP requests being answered now.", registry=INGRESS)
WAITING = Gauge(
    "runstream_ingress_executions_waiting",
    "Execution ids HTTP callers of this ingress are waiting for.", registry=INGRESS)
GROUP_LAG = Gauge(
    "runstream_worker_group_lag",
    "Requests queued for the worker group (end offsets minus its committed offsets), as this "
    "ingress last measured it for admission control.", registry=INGRESS)
GROUP_SLOTS = Gauge(
    "runstream_worker_group_slots",
    "Execution slots the live workers announced, as this ingress last saw them.",
    registry=INGRESS)

# -- worker --------------------------------------------------------------------------
EXECUTIONS = Counter(
    "runstream_executions", "Results published by this worker, by language and verdict.",
    ["language", "status"], registry=WORKER)
QUEUE_WAIT = Histogram(
    "runstream_execution_queue_wait_seconds",
    "Time from a request's production (enqueued) to the start of its execution.",
    ["language"], buckets=_LATENCY_BUCKETS, registry=WORKER)
SANDBOX_TIME = Histogram(
    "runstream_execution_sandbox_seconds",
    "Time an execution spent running (compile, run, every test), from started to finished.",
    ["language"], buckets=_LATENCY_BUCKETS, registry=WORKER)
LATENCY = Histogram(
    "runstream_execution_latency_seconds",
    "Time from a request's production (enqueued) to its result (finished): queue wait plus "
    "sandbox time, the pipeline's end-to-end latency without the HTTP hops.",
    ["language"], buckets=_LATENCY_BUCKETS, registry=WORKER)
COMPILE_CACHE = Counter(
    "runstream_compile_cache_lookups", "Compile steps looked up in the worker's compile cache "
    "(RUNSTREAM_COMPILE_CACHE_MB), by language and result: hit (the compiler did not run) or "
    "miss.", ["language", "result"], registry=WORKER)
SLOTS = Gauge("runstream_worker_slots", "Execution slots of this worker.", registry=WORKER)
SLOTS_BUSY = Gauge(
    "runstream_worker_slots_busy", "Execution slots of this worker in use now.", registry=WORKER)
SAMPLED = Gauge(
    "runstream_worker_sampled_timestamp_seconds", "When the worker's event loop last sampled "
    "its metrics (every second while it is alive; the container's health check reads it).",
    registry=WORKER)
MEMBERSHIP_AGE = Gauge(
    "runstream_worker_membership_age_seconds", "Seconds since the group coordinator last "
    "confirmed this worker (a heartbeat or a join); past the session timeout less one "
    "heartbeat it takes no new request (docs/guarantees.md).", registry=WORKER)
CONSUMER_LAG = Gauge(
    "runstream_worker_consumer_lag",
    "Records of a partition this worker owns that it has not taken yet (high watermark minus "
    "its position), sampled every second.", ["topic", "partition"], registry=WORKER)

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_MAX_LANGUAGES = 64


class _Bounded:
    """Label values as they come, up to ``cap`` distinct ones; ``other`` beyond."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: str | None) -> str:
        if not value:
            return "unknown"
        if value in self.seen:
            return value
        with self._lock:
            if len(self.seen) >= self.cap:
                return "other"
            self.seen.add(value)
        return value


_language = _Bounded(_MAX_LANGUAGES)


def method_label(method: str) -> str:
    """An HTTP method as a label: the standard ones, ``other`` for anything a client made up."""
    return method if method in _METHODS else "other"


# Children of labelled metrics, looked up once per label set (``labels()`` takes a lock
# and builds a tuple each call); their number is bounded as the label values are.
_http_count: dict[tuple[str, str, int], Any] = {}
_http_time: dict[tuple[str, str], Any] = {}
_per_language: dict[str, tuple[Any, Any, Any]] = {}
_verdicts: dict[tuple[str, str], Any] = {}
_cache_lookups: dict[tuple[str, str], Any] = {}
_CACHE_RESULTS = frozenset({"hit", "miss"})


def observe_http(route: str, method: str, status: int, seconds: float) -> None:
    """One answered HTTP request (``route`` is its template, never the raw path)."""
    method = method_label(method)
    count = _http_count.get((route, method, status))
    if count is None:
        count = _http_count[(route, method, status)] = HTTP_REQUESTS.labels(
            route, method, str(status))
    timing = _http_time.get((route, method))
    if timing is None:
        timing = _http_time[(route, method)] = HTTP_DURATION.labels(route, method)
    count.inc()
    timing.observe(seconds)


def observe_ingress(*, waiting: int, group_lag: int, group_slots: int) -> None:
    """What the ingress measured of itself and of the worker group, set before a scrape."""
    WAITING.set(waiting)
    GROUP_LAG.set(group_lag)
    GROUP_SLOTS.set(group_slots)


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max(0.0, (end - start).total_seconds())


def observe_result(result: ExecutionResult) -> None:
    """One result published by a worker: its verdict, queue wait, sandbox time, latency."""
    language = _language(result.language)
    status = str(result.status)
    verdict = _verdicts.get((language, status))
    if verdict is None:
        verdict = _verdicts[(language, status)] = EXECUTIONS.labels(language, status)
    verdict.inc()
    cache = result.compile.cache if result.compile is not None else None
    if cache is not None and cache in _CACHE_RESULTS:
        lookups = _cache_lookups.get((language, cache))
        if lookups is None:
            lookups = _cache_lookups[(language, cache)] = COMPILE_CACHE.labels(language, cache)
        lookups.inc()
    times = _per_language.get(language)
    if times is None:
        times = _per_language[language] = (QUEUE_WAIT.labels(language),
                                           SANDBOX_TIME.labels(language),
                                           LATENCY.labels(language))
    for histogram, start, end in ((times[0], result.enqueued, result.started),
                                  (times[1], result.started, result.finished),
                                  (times[2], result.enqueued, result.finished)):
        seconds = _seconds(start, end)
        if seconds is not None:
            histogram.observe(seconds)


def observe_slots(capacity: int, busy: int) -> None:
    SLOTS.set(capacity)
    SLOTS_BUSY.set(max(0, min(capacity, busy)))


def observe_alive(membership_age_s: float | None) -> None:
    """The event loop is sampling now; and how old the group membership's confirmation is."""
    SAMPLED.set_to_current_time()
    if membership_age_s is not None:
        MEMBERSHIP_AGE.set(membership_age_s)


_lag_series: set[tuple[str, str]] = set()


def observe_lag(lags: Iterable[tuple[str, int, int]]) -> None:
    """The lag of every partition owned now, as (topic, partition, lag); others are removed."""
    current = set()
    for topic, partition, lag in lags:
        key = (topic, str(partition))
        CONSUMER_LAG.labels(*key).set(max(0, lag))
        current.add(key)
    for gone in _lag_series - current:  # a partition that moved to another worker
        CONSUMER_LAG.remove(*gone)
    _lag_series.clear()
    _lag_series.update(current)


def exposition(registry: CollectorRegistry) -> bytes:
    """The registry in Prometheus's text format (``CONTENT_TYPE_LATEST``)."""
    return generate_latest(registry)


def serve(host: str, port: int, registry: CollectorRegistry = WORKER) -> Callable[[], None]:
    """Serve ``registry`` over HTTP (any path) on a daemon thread; returns the stop function."""
    try:
        # Its thread is a daemon: it ends with the process if stop() has not run by then.
        server, _ = start_http_server(port, addr=host, registry=registry)
    except OSError as e:
        raise ConfigurationError(f"cannot serve metrics on {host}:{port}: {e}; choose another "
                                 "RUNSTREAM_WORKER_METRICS_PORT (0 turns it off)") from e

    def close() -> None:
        server.shutdown()  # returns once serve_forever's next poll (0.5 s) has seen it
        server.server_close()

    def stop() -> None:
        # Off the caller's thread: a worker's stop must not wait for the server's poll.
        threading.Thread(target=close, name="metrics-stop", daemon=True).start()

    return stop
