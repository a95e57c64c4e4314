"""Publishing execution events: fire-and-forget, bounded, never in an execution's way.

An :class:`EventPublisher` (one per process) owns its own producer (``acks=1``,
not idempotent: a lost or repeated event is acceptable, the ``seq`` of each
event lets readers drop repeats) and a bounded queue drained by one task.
:meth:`EventPublisher.emit` only appends to the queue: it never waits for
Kafka and never raises. Past the queue's byte bound output chunks are dropped;
the small control events (queued, started, compile, finished) are kept up to a
count bound. A broker that is slow or gone therefore costs events, never a
result: results go through the worker's own producer (``streams/publish.py``).

:class:`ExecutionEvents` is what the executor is told while it runs one
execution (``services/execution/progress.py``): it cuts output into bounded
chunks (``streams/chunking.py``) on the event loop's clock and emits them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from runstream.schemas import events
from runstream.schemas.events import Event
from runstream.schemas.models import ExecutionRequest, Limits, PhaseResult, TestResult
from runstream.services.execution.languages import Language
from runstream.services.execution.sandbox.base import PhaseOutput
from runstream.services.logs import Throttled
from runstream.services.settings import Settings
from runstream.streams import kafka
from runstream.streams.chunking import Chunk, ChunkPolicy, Coalescer

log = logging.getLogger(__name__)

#: Control events queued at most, whatever their bytes (each is ~200 bytes).
MAX_QUEUED_CONTROL = 10_000


def wants_events(settings: Settings, request: ExecutionRequest) -> bool:
    """Whether the run of ``request`` writes live events (docs/events.md)."""
    return (settings.events_produce == "always" or request.events
            or request.interactive)  # a WebSocket session's output comes as events


def chunk_policy(settings: Settings, output_bytes: int) -> ChunkPolicy:
    return ChunkPolicy(interval_s=settings.events_chunk_ms / 1000,
                       max_bytes=settings.events_chunk_bytes, cap_bytes=output_bytes,
                       max_chunks=settings.events_max_chunks)


class EventPublisher:
    """Writes events to the events topic in the background, in order, within a bound."""

    def __init__(self, settings: Settings, *, client_id: str) -> None:
        self.settings = settings
        self.client_id = client_id
        self.max_bytes = settings.events_queue_kb * 1024
        self._queue: deque[tuple[bytes, bytes, bool]] = deque()
        self._bytes = 0
        self._wake = asyncio.Event()
        self._empty = asyncio.Event()  # set while nothing is queued
        self._empty.set()
        self._producer: AIOKafkaProducer | None = None
        self._task: asyncio.Task[None] | None = None
        self._warn = Throttled(log)
        self.sent = 0
        self.dropped = 0
        self.failed = 0

    async def start(self, timeout_s: float = 30.0) -> None:
        s = self.settings
        # linger: under load, the events of many executions share one produce request
        # (fewer requests for the broker and this process); 5 ms is below what a
        # person watching the output notices.
        self._producer = kafka.producer(s, client_id=self.client_id, acks=1,
                                        enable_idempotence=False, linger_ms=5)
        await kafka.start(self._producer, s, timeout_s=timeout_s)
        self._task = asyncio.create_task(self._send_loop(), name="events")

    async def stop(self, timeout_s: float = 2.0) -> None:
        """Send what is queued for up to ``timeout_s``, then close (bounded)."""
        if self._task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._empty.wait(), timeout_s)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._task, 1.0)
        await kafka.close(self._producer, timeout_s=timeout_s)  # sends what it holds

    def emit(self, event: Event) -> None:
        """Queue ``event``; never blocks or raises. Dropped when the queue is full."""
        try:
            value = events.encode_event(event)
        except Exception:  # a bug of ours must not reach the execution
            log.exception("event %s of %s could not be encoded", event.type, event.id)
            return
        control = event.type not in events.OUTPUT
        full = (len(self._queue) >= MAX_QUEUED_CONTROL if control
                else self._bytes + len(value) > self.max_bytes)
        if full or self._task is None:
            self.dropped += 1
            self._warn.warning("drop", "events queue full (%d queued, %d bytes): dropped "
                               "events so far: %d", len(self._queue), self._bytes, self.dropped)
            return
        self._queue.append((event.id.encode(), value, control))
        self._bytes += len(value)
        self._empty.clear()
        self._wake.set()

    def execution(self, exec_id: str) -> ExecutionEvents:
        """The progress sink of one execution attempt."""
        return ExecutionEvents(self, exec_id, self.settings.worker_id,
                               chunk_policy(self.settings, self.settings.default_limits
                                            .output_bytes))

    async def _send_loop(self) -> None:
        assert self._producer is not None
        topic, bound = self.settings.events_topic, self.settings.request_timeout_s
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                key, value, _ = self._queue.popleft()
                self._bytes -= len(value)
                try:
                    # send() returns once the record is in the producer's batch; the
                    # delivery is not awaited: the next event follows at once, in order.
                    fut = await asyncio.wait_for(self._producer.send(topic, value, key=key),
                                                 bound)
                    fut.add_done_callback(self._delivered)
                except asyncio.CancelledError:
                    raise
                except (KafkaError, TimeoutError, OSError) as e:
                    self.failed += 1
                    self._warn.warning("send", "an event could not be sent to %s (%r); "
                                       "failed so far: %d", topic, e, self.failed)
            self._empty.set()

    def _delivered(self, fut: asyncio.Future[object]) -> None:
        if fut.cancelled() or fut.exception() is not None:
            self.failed += 1
            self._warn.warning("deliver", "an event was not stored on %s (%r); failed so "
                               "far: %d", self.settings.events_topic,
                               None if fut.cancelled() else fut.exception(), self.failed)
        else:
            self.sent += 1


def _never_raises(method: Callable[..., None]) -> Callable[..., None]:
    """A failure of ours while reporting progress stops the reports, never the run."""
    @functools.wraps(method)
    def guarded(self: ExecutionEvents, *args: Any, **kwargs: Any) -> None:
        if self.closed:
            return
        try:
            method(self, *args, **kwargs)
        except Exception:
            log.exception("events of %s stop: reporting %s failed", self.exec_id,
                          method.__name__)
            self.close()
    return guarded


class ExecutionEvents:
    """One execution attempt's events: started, bounded output chunks, compile, finished.

    Implements ``services.execution.progress.Progress``; lives on the event loop.
    """

    def __init__(self, publisher: EventPublisher, exec_id: str, worker: str,
                 policy: ChunkPolicy) -> None:
        self.publisher = publisher
        self.exec_id = exec_id
        self.worker = worker
        self.attempt = secrets.token_hex(6)  # a run again after a crash has another
        self.seq = 0
        self.coalescer = Coalescer(policy)
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._ended: set[tuple[str, int | None]] = set()
        self.closed = False

    def _next(self) -> int:
        seq, self.seq = self.seq, self.seq + 1
        return seq

    @_never_raises
    def started(self, language: Language, limits: Limits) -> None:
        # Streaming stops at the run's output cap, as the run's own capture does.
        self.coalescer = Coalescer(replace(self.coalescer.policy,
                                           cap_bytes=limits.output_bytes))
        self.publisher.emit(events.started(
            self.exec_id, self.attempt, self._next(), datetime.now(UTC), worker=self.worker,
            language=language.name, version=language.version))

    def output(self, phase: str, test: int | None) -> PhaseOutput:
        return partial(self._write, phase, test)

    @_never_raises
    def phase_ended(self, phase: str, test: int | None, result: PhaseResult | None) -> None:
        self._ended.add((phase, test))
        capped = () if result is None else tuple(
            name for name, cut in (("stdout", result.stdout_truncated),
                                   ("stderr", result.stderr_truncated)) if cut)
        self._send(self.coalescer.flush(phase, test, capped))
        self._arm()

    @_never_raises
    def compiled(self, result: PhaseResult, *, failed: bool) -> None:
        self.publisher.emit(events.compiled(self.exec_id, self.attempt, self._next(),
                                            datetime.now(UTC), result, failed=failed))

    @_never_raises
    def tested(self, result: TestResult) -> None:
        # The run's phase_ended flushed its output: the verdict comes after it.
        self.publisher.emit(events.tested(self.exec_id, self.attempt, self._next(),
                                          datetime.now(UTC), result))

    @_never_raises
    def finished(self, status: str) -> None:
        """The result is stored: say so (after any output still pending) and stop."""
        self._send(self.coalescer.flush())
        self.publisher.emit(events.finished(self.exec_id, self.attempt, self._next(),
                                            datetime.now(UTC), status))
        self.close()

    def close(self) -> None:
        """No more events from this attempt (the run ended or was cancelled)."""
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    @_never_raises
    def _write(self, phase: str, test: int | None, stream: str, data: bytes) -> None:
        if (phase, test) in self._ended:
            return  # a straggler of a phase already flushed
        self._send(self.coalescer.feed(phase, test, stream, data, self._loop.time()))
        self._arm()

    def _send(self, chunks: list[Chunk]) -> None:
        at = datetime.now(UTC)
        for c in chunks:
            self.publisher.emit(events.output(
                self.exec_id, self.attempt, self._next(), at, stream=c.stream, phase=c.phase,
                test=c.test, data=c.data, position=c.position, truncated=c.truncated))

    def _arm(self) -> None:
        """Keep one timer, at the moment the oldest pending byte is due."""
        due = None if self.closed else self.coalescer.next_due()
        if self._timer is not None and (due is None or self._timer.when() != due):
            self._timer.cancel()
            self._timer = None
        if due is not None and self._timer is None:
            self._timer = self._loop.call_at(due, self._tick)

    @_never_raises
    def _tick(self) -> None:
        self._timer = None
        self._send(self.coalescer.due(self._loop.time()))
        self._arm()
