"""Reading request bodies within a memory budget.

A single body over ``RUNSTREAM_INGRESS_MAX_BODY_BYTES`` is refused with 413.
All bodies being read at once share ``RUNSTREAM_INGRESS_BODY_BUDGET_BYTES``: a
request that does not fit is answered 429 at once, before its body is read, so
a flood of large bodies cannot grow the ingress's memory (the server stops
reading a socket whose body nobody asked for).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from runstream.schemas.errors import PayloadTooLarge
from runstream.services.ingress.problems import Overloaded
from starlette.requests import Request


class BodyBudget:
    """Bytes of request bodies held at once, reserved before reading and released after."""

    def __init__(self, max_bytes: int, max_body: int) -> None:
        self.max_body = max_body
        self.max_bytes = max(max_bytes, max_body)  # one largest body always fits
        self.held = 0

    @contextlib.asynccontextmanager
    async def read(self, request: Request) -> AsyncIterator[bytes]:
        """The body, held within the budget until the block ends."""
        declared = request.headers.get("content-length")
        size = int(declared) if declared is not None and declared.isdigit() else None
        if size is not None and size > self.max_body:
            raise PayloadTooLarge(f"the body is {size} bytes; the maximum is {self.max_body} "
                                  "bytes", maximum=self.max_body)
        # Unknown length (chunked): reserve the most it may be; a lie is caught below.
        reserve = self.max_body if size is None else size
        if self.held + reserve > self.max_bytes:
            raise Overloaded(f"this ingress is already reading {self.held} bytes of request "
                             "bodies; retry after the Retry-After delay", retry_after=1)
        self.held += reserve
        try:
            chunks: list[bytes] = []
            got = 0
            async for chunk in request.stream():
                got += len(chunk)
                if got > min(reserve, self.max_body):
                    if got > self.max_body:
                        raise PayloadTooLarge(f"the body is over the maximum of {self.max_body} "
                                              "bytes", maximum=self.max_body)
                    raise PayloadTooLarge(f"the body is longer than its Content-Length "
                                          f"({reserve} bytes)", maximum=self.max_body)
                chunks.append(chunk)
            body = b"".join(chunks)
            chunks.clear()
            yield body
        finally:
            self.held -= reserve
