"""Piston's interactive WebSocket ``/api/v2/connect``: one session, end to end (the I/O).

A session is an ordinary execution (admission, validation, the caller's API key
and its quotas, Kafka), marked ``interactive``: its stdin is live. The client's
``data``, ``eof`` and ``signal`` messages are written, in order, to the stdin topic
keyed by the execution id, where the worker running it reads them
(``streams/stdin_feed.py``); what the program does comes back as the events any
ingress follows (``streams/event_feed.py``), then the result, which ends the session.

Whatever ends a session other than the program's own end (the client closing
the socket or going away, a protocol error, the session's time bound, the
ingress stopping, the worker dying mid-run) sends a ``hangup`` on the stdin
topic: the program is killed, so it holds no worker slot past that.
The frames and the protocol's rules are ``connect.py`` (pure).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson
from runstream.schemas.errors import RunstreamError
from runstream.schemas.limits import resolve_limits
from runstream.schemas.models import ExecutionRequest
from runstream.schemas.stdin import StdinKind, StdinMessage, data_items
from runstream.services.ingress.gateway import Channel
from runstream.services.ingress.piston import connect, errors
from runstream.services.ingress.piston.connect import Close, Conversation, Refuse, WorkerLost
from runstream.services.ingress.piston.limits import Ceilings
from runstream.services.ingress.piston.request import PistonJob, build
from runstream.services.ingress.piston.runtimes import Runtime
from runstream.services.settings import Settings
from runstream.streams.event_feed import Subscription
from starlette.websockets import WebSocket, WebSocketDisconnect

log = logging.getLogger(__name__)

#: Once the result is in but the worker's own "finished" event is not, how long
#: output still on its way may come (as the SSE stream waits).
TRAILING_S = 1.0
#: Beyond the request's deadline and its compile and run limits, how long a
#: session may wait for its result.
MARGIN_S = 15.0
#: Bound on telling the worker the client is gone.
HANGUP_TIMEOUT_S = 5.0
#: Bound on one frame reaching a client that does not read (then it counts as gone).
SEND_TIMEOUT_S = 30.0


class SessionHost(Protocol):
    """What a session needs of the ingress (``services/ingress/app.py``'s Ingress)."""

    settings: Settings
    channel: Channel

    def admit(self) -> None: ...

    def validate(self, req: ExecutionRequest) -> ExecutionRequest: ...

    def submitted(self, req: ExecutionRequest,
                  named: bool = False) -> contextlib.AbstractAsyncContextManager[Submitted]: ...


class Submitted(Protocol):
    """A request handed to Kafka (``app.py``'s Submission): its result to come."""

    @property
    def future(self) -> asyncio.Future[bytes]: ...


class Gone(Exception):
    """The client went away (or the socket broke): nothing more can be sent."""


@dataclass
class StdinWriter:
    """One session's live stdin, in order, within its byte budget."""

    channel: Channel
    exec_id: str
    budget: int
    seq: int = 0
    sent: int = 0

    async def data(self, data: bytes) -> None:
        if self.sent + len(data) > self.budget:
            raise errors.PistonRefusal(
                f"stdin over this server's limit of {self.budget // 1024} KiB per session "
                "(RUNSTREAM_INTERACTIVE_STDIN_KB); the program was stopped")
        items = data_items(self.exec_id, self.seq, data)
        self.seq += len(items)
        self.sent += len(data)
        await self.channel.send_stdin(items)

    async def control(self, kind: StdinKind, signal: str | None = None) -> None:
        item = StdinMessage(self.exec_id, self.seq, kind, signal=signal)
        self.seq += 1
        await self.channel.send_stdin([item])

    async def hangup(self) -> None:
        """Tell the worker the client is gone (best effort, bounded)."""
        try:
            await asyncio.wait_for(self.control(StdinKind.HANGUP), HANGUP_TIMEOUT_S)
        except (RunstreamError, TimeoutError) as e:
            log.warning("id=%s: the hang-up could not be written (%s); the program runs "
                        "to its limits", self.exec_id, e)


class Sessions:
    """The ``/api/v2/connect`` WebSocket route, bound to one ingress."""

    def __init__(self, host: SessionHost, available: Callable[[], Sequence[Runtime]],
                 ceilings: Ceilings) -> None:
        self.host = host
        self.available = available
        self.ceilings = ceilings
        self.open = 0

    async def serve(self, websocket: WebSocket) -> None:
        await websocket.accept()
        if self.open >= self.host.settings.ingress_max_sessions:
            with contextlib.suppress(Gone):
                await self._end(websocket, Refuse(connect.NOTIFIED_ERROR, (
                    f"this server already runs {self.open} interactive sessions; retry later")))
            return
        self.open += 1
        try:
            await self._session(websocket)
        except Gone:
            pass
        finally:
            self.open -= 1

    # -- the session -----------------------------------------------------------
    async def _session(self, ws: WebSocket) -> None:
        init = await self._init(ws)
        if init is None:
            return
        try:
            job = build({**init.doc, "stdin": None}, self.available(), self.ceilings)
            self.host.admit()
            req = self.host.validate(replace(job.request, stdin=b"", interactive=True))
        except RunstreamError as e:
            await self._end(ws, Refuse(connect.NOTIFIED_ERROR, errors.answer(e)[1]))
            return
        channel = self.host.channel
        writer = StdinWriter(channel, req.id, self.host.settings.interactive_stdin_kb * 1024)
        feed = channel.events
        async with contextlib.AsyncExitStack() as stack:
            # Subscribed before the request is produced: no event of it is missed.
            sub = feed.subscribe(req.id) if feed is not None else None
            if sub is not None and feed is not None:
                stack.callback(feed.unsubscribe, sub)
            try:
                submission = await stack.enter_async_context(self.host.submitted(req))
            except RunstreamError as e:
                await self._end(ws, Refuse(connect.NOTIFIED_ERROR, errors.answer(e)[1]))
                return
            log.info("id=%s: interactive session of %s started", req.id, req.language)
            reader = asyncio.create_task(self._read(ws, writer), name=f"ws-{req.id}")
            ending: Refuse | None = None
            try:
                await self._send(ws, connect.runtime(job.runtime.language,
                                                     job.runtime.version, req.id))
                ending = await self._follow(ws, job, req, sub, submission.future, reader)
            finally:
                reader.cancel()
                await asyncio.wait({reader}, timeout=HANGUP_TIMEOUT_S)
                log.info("id=%s: interactive session ends: %s", req.id,
                         "the client left" if ending is None else
                         f"{ending.close.code} {ending.message or ending.close.reason}")
                if ending is None or ending.close != connect.JOB_COMPLETED:
                    await writer.hangup()  # the program must not outlive its session
            if ending is not None:
                await self._end(ws, ending)

    async def _init(self, ws: WebSocket) -> connect.Init | None:
        """The init message within Piston's second; None once the socket is closed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + connect.INIT_TIMEOUT_S
        while True:
            try:
                raw = await asyncio.wait_for(_receive(ws), max(0.0, deadline - loop.time()))
            except TimeoutError:
                await self._end(ws, Refuse(connect.INIT_TIMEOUT))
                return None
            message = connect.parse(raw, initialized=False)
            if isinstance(message, connect.Init):
                return message
            if isinstance(message, Refuse):
                await self._end(ws, message)
                return None

    async def _read(self, ws: WebSocket, writer: StdinWriter) -> Refuse | None:
        """The client's messages to the stdin topic; how the session ends (None: gone)."""
        while True:
            try:
                raw = await _receive(ws)
            except Gone:
                return None
            message = connect.parse(raw, initialized=True)
            try:
                if isinstance(message, Refuse):
                    return message
                if isinstance(message, connect.Init):
                    return Refuse(connect.ALREADY_INITIALIZED)
                if isinstance(message, connect.Stdin):
                    await writer.data(message.data)
                elif isinstance(message, connect.Signal):
                    await writer.control(StdinKind.SIGNAL, message.name)
                elif isinstance(message, connect.EndOfInput):
                    await writer.control(StdinKind.EOF)
            except RunstreamError as e:
                return Refuse(connect.NOTIFIED_ERROR, errors.answer(e)[1])

    async def _follow(self, ws: WebSocket, job: PistonJob, req: ExecutionRequest,
                      sub: Subscription | None, future: asyncio.Future[bytes],
                      reader: asyncio.Task[Refuse | None]) -> Refuse | None:
        """Frames from the events, then from the result; how the session ends."""
        s = self.host.settings
        loop = asyncio.get_running_loop()
        limits = resolve_limits(req.limits, s.default_limits, s.max_limits)
        waits_s = ((req.deadline - datetime.now(UTC)).total_seconds() if req.deadline else
                   s.ingress_deadline_s)
        bound_s = max(0.0, waits_s) + (s.compile_wall_ms + limits.wall_ms) / 1000 + MARGIN_S
        deadline = loop.time() + bound_s
        talk = Conversation(compiled=job.runtime.lang.compiled)
        result_at: float | None = None
        while True:
            for stored in sub.take() if sub is not None else ():
                try:
                    frames = talk.on_event(stored.event)
                except WorkerLost as e:
                    return Refuse(connect.NOTIFIED_ERROR, str(e))
                for frame in frames:
                    await self._send(ws, frame)
            if reader.done():
                return reader.result()
            now = loop.time()
            if future.done() and not future.cancelled():
                result_at = now if result_at is None else result_at
                if talk.ended or not talk.started or now - result_at >= TRAILING_S:
                    frames, close = talk.on_result(_result_doc(future.result()))
                    for frame in frames:
                        await self._send(ws, frame)
                    return Refuse(close)
            stopping = self.host.channel.waiters.stopping
            if future.cancelled() or (stopping is not None and stopping.done()):
                return Refuse(connect.NOTIFIED_ERROR, "this server is stopping; the program "
                                                      "was stopped")
            if now >= deadline:
                return Refuse(connect.NOTIFIED_ERROR, f"no result within {bound_s:.0f}s; "
                              "the program was stopped")
            waits: set[asyncio.Future[Any]] = {reader}
            if not future.done():
                waits.add(future)
            if sub is not None:
                waits.add(sub.changed())
            if stopping is not None:
                waits.add(stopping)
            timeout = deadline - now
            if result_at is not None:
                timeout = min(timeout, TRAILING_S - (now - result_at))
            await asyncio.wait(waits, timeout=max(0.0, timeout),
                               return_when=asyncio.FIRST_COMPLETED)

    # -- the socket ------------------------------------------------------------
    async def _send(self, ws: WebSocket, frame: dict[str, Any]) -> None:
        try:
            await asyncio.wait_for(ws.send_text(connect.frame_text(frame)), SEND_TIMEOUT_S)
        except (WebSocketDisconnect, OSError, RuntimeError, TimeoutError) as e:
            raise Gone() from e

    async def _end(self, ws: WebSocket, ending: Refuse) -> None:
        """The error frame (if any), then the close."""
        if ending.message is not None:
            await self._send(ws, connect.error(ending.message))
        await _close(ws, ending.close)


async def _receive(ws: WebSocket) -> str | bytes:
    """The next text or binary message; Gone when the client closed or went away."""
    while True:
        try:
            message = await ws.receive()
        except (WebSocketDisconnect, OSError, RuntimeError) as e:
            raise Gone() from e
        if message["type"] == "websocket.disconnect":
            raise Gone()
        text = message.get("text")
        if text is not None:
            return str(text)
        data = message.get("bytes")
        if data is not None:
            return bytes(data)


async def _close(ws: WebSocket, close: Close) -> None:
    try:
        await asyncio.wait_for(ws.close(close.code, close.reason), SEND_TIMEOUT_S)
    except (WebSocketDisconnect, OSError, RuntimeError, TimeoutError) as e:
        raise Gone() from e


def _result_doc(raw: bytes) -> dict[str, Any]:
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        doc = None
    if not isinstance(doc, dict):
        return {"status": "internal_error", "message": "the stored result could not be read"}
    return doc

