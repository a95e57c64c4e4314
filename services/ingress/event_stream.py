"""``GET /v1/executions/{id}/events``: an execution's events as Server-Sent Events.

Any ingress serves any execution: each follows the results topic, and the
partitions of the events topic that hold the ids watched there
(``streams/event_feed.py``). A stream first reads what was written of its id so
far, sends it (after ``Last-Event-ID``), then each event as it is read, then
``finished`` with the stored result, and closes. The result decides the end, not
the events: events may be lost, the result is not. An execution finished before
the stream starts gets what was kept of it and ``finished`` at once. Each stream is
bounded in time (``RUNSTREAM_INGRESS_EVENTS_STREAM_S``) and in memory (its
subscription's queue); a reader too slow for its queue is closed and may resume.

Plain Starlette ``StreamingResponse`` rather than ``sse-starlette``: the loop that
waits for events, the result, the drain and the keep-alive timer is ours anyway,
the format is four lines, and the ingress's own drain (``serve.py``) ends streams
instead of a second shutdown hook.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import orjson
from runstream.schemas.errors import NotFound
from runstream.schemas.events import EventType, finished_with_result
from runstream.services.ingress.gateway import Channel
from runstream.services.ingress.problems import Overloaded
from runstream.services.settings import Settings
from runstream.streams.event_feed import Subscription
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

log = logging.getLogger(__name__)

MEDIA_TYPE = "text/event-stream"
#: Once the result is in but the worker's own "finished" event is not, how long
#: output still on its way may come before the stream ends.
TRAILING_S = 1.0
#: How soon a client's EventSource reconnects after the stream closes (ms).
RETRY_MS = 1000


def sse(data: bytes, event: str, event_id: int | None = None) -> bytes:
    """One SSE message; ``data`` is one line of JSON (orjson escapes newlines)."""
    head = b"id: %d\n" % event_id if event_id is not None else b""
    return head + b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"


def comment(text: str) -> bytes:
    return b": " + text.encode() + b"\n\n"


def last_event_id(request: Request) -> int | None:
    """Where to resume: the ``Last-Event-ID`` header (or ``?last_event_id=``); garbage: None."""
    raw = (request.headers.get("last-event-id")
           or request.query_params.get("last_event_id") or "").strip()
    if not raw.isascii() or not raw.isdigit() or len(raw) > 19:  # an offset is an int64
        return None
    return int(raw)


class EventStreams:
    """The events route, bound to one request channel."""

    def __init__(self, settings: Settings, gateway: Channel) -> None:
        self.settings = settings
        self.gateway = gateway
        self.open = 0

    async def stream(self, request: Request) -> Response:
        exec_id = request.path_params["id"]
        if self.open >= self.settings.ingress_events_max_streams:
            raise Overloaded(f"this ingress already serves {self.open} event streams; "
                             "retry later or on another instance", retry_after=1)
        feed = self.gateway.events
        if feed is not None:
            # This ingress reads an id's events only while someone here watches it: first
            # those written so far (bounded), for a stream that starts late and to tell
            # an unknown id from one queued or running elsewhere.
            await feed.caught_up_with(exec_id, self.settings.request_timeout_s)
        result = self.gateway.cached(exec_id)
        if result is None:
            # Queued or running, as far as any ingress can tell (events read up to now).
            going = self.gateway.is_pending(exec_id) or (feed is not None
                                                          and feed.known(exec_id))
            if not going or (feed is not None and feed.recent.finished(exec_id)):
                result = await self.gateway.find(exec_id)  # exact: reads the results up to now
                if result is None and not going:
                    raise NotFound(f"no execution {exec_id!r} is queued, running or finished "
                                   "within the results' retention")
        return StreamingResponse(
            self._events(exec_id, last_event_id(request), result), media_type=MEDIA_TYPE,
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def _events(self, exec_id: str, after: int | None,
                      result: bytes | None) -> AsyncIterator[bytes]:
        self.open += 1
        feed = self.gateway.events
        try:
            with self.gateway.waiters.waiting(exec_id) as future:
                sub = feed.subscribe(exec_id, after) if feed is not None else None
                try:
                    yield b"retry: %d\n\n" % RETRY_MS
                    result = result or self.gateway.cached(exec_id)
                    last: dict[str, Any] = {"attempt": None, "seq": -1}
                    if result is None:
                        # A worker already wrote events of it (this stream resumes, or
                        # starts mid-run): its trailing output is awaited after the result.
                        ran = after is not None or (feed is not None
                                                    and feed.recent.started(exec_id))
                        async for chunk in self._follow(sub, future, last, ran):
                            yield chunk
                        if future.done() and not future.cancelled():
                            result = future.result()
                    elif sub is not None and feed is not None and feed.recent.started(exec_id):
                        # Finished already: what is kept of the run, then the result. The
                        # worker's last events may still be on their way (they travel apart
                        # from the result): await its "finished" briefly, as a live stream does.
                        stored_result = asyncio.get_running_loop().create_future()
                        stored_result.set_result(result)
                        async for chunk in self._follow(sub, stored_result, last, True,
                                                        ended=feed.recent.finished(exec_id)):
                            yield chunk
                    if result is not None:
                        yield _finished(exec_id, result, last)
                finally:
                    if sub is not None and feed is not None:
                        feed.unsubscribe(sub)
        finally:
            self.open -= 1

    async def _follow(self, sub: Subscription | None, future: asyncio.Future[bytes],
                      last: dict[str, Any], ran: bool, ended: bool = False,
                      ) -> AsyncIterator[bytes]:
        """Events until the result is in (and the worker said finished), or a bound."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.ingress_events_stream_s
        keepalive = self.settings.ingress_events_keepalive_s
        # ``ran``: a worker's event was read; ``ended``: its "finished" was.
        result_at: float | None = None
        while True:
            for stored in sub.take() if sub is not None else ():
                event = stored.event
                if event.attempt is not None:
                    ran = True
                    last.update(attempt=event.attempt, seq=event.seq)
                if event.type is EventType.FINISHED:
                    ended = True  # the HTTP "finished" carries the result instead
                    continue
                yield sse(stored.payload, str(event.type), stored.offset)
            if sub is not None and sub.overflowed:
                yield comment("too slow for the event rate; resume with Last-Event-ID")
                return
            now = loop.time()
            if future.done():
                if future.cancelled() or ended or not ran:
                    return
                result_at = result_at if result_at is not None else now
                if now - result_at >= TRAILING_S:
                    return
            stopping = self.gateway.waiters.stopping
            if now >= deadline or (stopping is not None and stopping.done()):
                return  # the client reconnects, with Last-Event-ID
            waits: set[asyncio.Future[Any]] = {future} if not future.done() else set()
            if sub is not None:
                waits.add(sub.changed())
            if stopping is not None:
                waits.add(stopping)
            timeout = min(keepalive, deadline - now,
                          TRAILING_S - (now - result_at) if result_at is not None else keepalive)
            if not waits:  # nothing to wait for but the clock
                await asyncio.sleep(max(0.0, timeout))
                continue
            done, _ = await asyncio.wait(waits, timeout=max(0.0, timeout),
                                         return_when=asyncio.FIRST_COMPLETED)
            if not done:
                yield comment("keep-alive")


def _finished(exec_id: str, result: bytes, last: dict[str, Any]) -> bytes:
    try:
        doc = orjson.loads(result)
    except orjson.JSONDecodeError:  # not ours to repair; say what it is
        log.error("the stored result of %r is not JSON", exec_id)
        doc = {"id": exec_id, "status": "internal_error",
               "message": "the stored result could not be read"}
    return sse(finished_with_result(exec_id, doc, attempt=last["attempt"],
                                    seq=last["seq"] + 1), str(EventType.FINISHED))
