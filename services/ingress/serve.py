"""Running the ingress under uvicorn with a graceful, bounded stop.

On the first SIGTERM/SIGINT the ingress drains before uvicorn closes anything:
``/readyz`` answers 503 (a balancer stops sending), new POSTs answer 503 with
``Retry-After``, requests waiting for a result get it until
``RUNSTREAM_INGRESS_DRAIN_S`` and then ``202`` with their ``Location``; only then
does uvicorn stop listening and the Kafka clients close. A second signal exits
at once. The whole stop is bounded by about drain + ``GRACE_S`` + client closes.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from types import FrameType

import uvicorn
from runstream.services.ingress.app import Ingress, create_app
from runstream.services.process import EXIT_OK, StopSignals
from runstream.services.settings import Settings

log = logging.getLogger(__name__)

# After the drain, how long uvicorn may take to finish responses being written.
GRACE_S = 3


class DrainingServer(uvicorn.Server):
    """A uvicorn server whose first stop signal drains the ingress first.

    uvicorn installs its own handlers (``signal.signal``, restored after) and calls
    :meth:`handle_exit`; the process shell decides what a first and a second signal do.
    """

    def __init__(self, config: uvicorn.Config, ingress: Ingress) -> None:
        super().__init__(config)
        self.ingress = ingress
        self._drain: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.stop = StopSignals(self._start_drain, on_second=self._exit_now,
                                second="second stop signal: exiting now", log=log)

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.stop(sig)

    def _start_drain(self, sig: int) -> None:
        if self._loop is None or self.should_exit:
            self.stop.second(sig)  # not serving yet, or stopping already: nothing to drain
            return
        # Not added to uvicorn's captured signals, which it would raise again once
        # stopped: a stop that drained and closed in order is a clean exit (0), not
        # a death by SIGTERM (143, which compose and systemd report as a failure).
        # Signal handlers run between bytecodes of the loop's thread: schedule, do not await.
        self._drain = self._loop.create_task(self._drain_then_exit())

    def _exit_now(self, sig: int) -> None:
        # uvicorn closes at once and raises the signal again: a death by it, as asked.
        self.force_exit = True
        super().handle_exit(sig, None)  # uvicorn's reads no frame

    async def _drain_then_exit(self) -> None:
        try:
            await self.ingress.drain()
        except Exception:
            log.exception("draining failed; stopping anyway")
        finally:
            self.should_exit = True


def serve(settings: Settings) -> int:
    """Run the ingress until a stop signal; the stop is graceful and bounded."""
    app = create_app(settings)
    config = uvicorn.Config(app, host=settings.ingress_host, port=settings.ingress_port,
                            log_level=settings.log_level.lower(), access_log=False,
                            # uvicorn's lines go through runstream's handler (text or JSON).
                            log_config=None,
                            lifespan="on", timeout_graceful_shutdown=GRACE_S,
                            # A WebSocket message (Piston's init, a stdin chunk) is bounded
                            # like a request body; larger ones close the socket (1009).
                            ws_max_size=settings.ingress_max_body_bytes)
    server = DrainingServer(config, app.state.ingress)
    server.run()
    return EXIT_OK

