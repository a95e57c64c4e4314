"""The ingress's side of the request channel: what it needs of Kafka, and admission.

The Kafka half is ``streams/channel.py``'s
:class:`~runstream.streams.channel.RequestChannel`; the ingress depends only on the
:class:`Channel` protocol it implements (the in-process tests give it a fake).
A :class:`Gateway` stands in front of a channel and admits each request it
produces: the caller's API key stamped and its language list and concurrency
quota enforced (``caller.py``, 403 and 429), and the backlog estimate kept up to
date from the worker group's polls and the results read (``admission.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from runstream.schemas.errors import BrokerUnavailable
from runstream.schemas.models import ExecutionRequest
from runstream.schemas.stdin import StdinMessage
from runstream.services.ingress.admission import Backlog, execution_seconds
from runstream.services.ingress.key_admission import admit
from runstream.services.ingress.quotas import InFlight
from runstream.services.settings import Settings
from runstream.streams.event_feed import EventFeed
from runstream.streams.waiters import Waiters
from runstream.streams.worker_group import GroupWatch


class Channel(Protocol):
    """What the ingress uses of Kafka: submit, wait, find, stdin, events, the worker group."""

    settings: Settings
    name: str
    #: Who waits for which result; released all at once when the ingress stops.
    waiters: Waiters

    @property
    def events(self) -> EventFeed | None: ...

    @property
    def watch(self) -> GroupWatch: ...

    @property
    def workers(self) -> dict[str, dict[str, Any]]: ...

    async def start(self, timeout_s: float = 30.0) -> None: ...

    async def stop(self) -> None: ...

    def produced(self, exec_id: str) -> bool: ...

    async def submit(self, req: ExecutionRequest) -> None: ...

    async def send_stdin(self, items: list[StdinMessage]) -> None: ...

    def cached(self, exec_id: str) -> bytes | None: ...

    async def find(self, exec_id: str) -> bytes | None: ...

    def is_pending(self, exec_id: str) -> bool: ...

    def on_answer(self, fn: Callable[[str], None]) -> None: ...

    def on_result(self, fn: Callable[[str, bytes], None]) -> None: ...

    def language_versions(self) -> dict[str, list[str]]: ...

    def reply_assigned(self) -> bool: ...

    def worker_count(self) -> int: ...

    def group_status(self) -> dict[str, Any]: ...


class Gateway:
    """Admission in front of one channel: quotas per API key and the backlog bound."""

    def __init__(self, settings: Settings, channel: Channel) -> None:
        self.settings = settings
        self.channel = channel
        self.backlog = Backlog(settings.ingress_max_backlog_s)
        self.inflight = InFlight()  # each API key's executions not finished yet (its quota)
        channel.on_answer(self.inflight.release)
        channel.on_result(self._on_result)
        channel.watch.on_poll_start.append(self.backlog.poll_started)
        channel.watch.on_poll.append(lambda w: self.backlog.on_poll(w.lag, w.slots))

    async def submit(self, req: ExecutionRequest) -> None:
        """Admit ``req`` and produce it, unless this ingress already produced it.

        Raises Forbidden or QuotaExceeded (the caller's key), BrokerUnavailable when
        Kafka does not acknowledge within the bound.
        """
        if self.channel.produced(req.id):
            return  # an idempotent retry of an id in flight joins it
        self.channel.watch.active()  # the backlog is measured at the busy pace
        # The caller's API key (auth.py): its id stamped, its languages and concurrency
        # quota enforced (403, 429), for every route that produces.
        req = admit(req, self.inflight, self.settings, self.backlog.mean_exec_s)
        try:
            await self.channel.submit(req)
        except BrokerUnavailable:
            self.inflight.release(req.id)  # not produced: it holds no slot
            raise

    def _on_result(self, exec_id: str, value: bytes) -> None:
        seconds = execution_seconds(value)
        if seconds is not None:
            self.backlog.on_execution(seconds)
