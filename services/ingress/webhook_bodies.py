"""What a webhook sends: the body in the callback's format, and the key that signs it.

Formats are a table from name to renderer. Judge0's body is rendered by
``judge0.wire.callback_body``, imported like any other module so that the import
contract sees the dependency (it was once named by a string and imported late).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import orjson
from runstream.schemas.errors import RunstreamError
from runstream.services.ingress.judge0.wire import callback_body as judge0_body
from runstream.services.settings import Settings

log = logging.getLogger(__name__)

Renderer = Callable[[dict[str, Any]], bytes]


class RenderError(RunstreamError):
    """The body of a webhook cannot be made (its format is unknown or its renderer failed)."""


def _as_is(result_doc: dict[str, Any]) -> bytes:
    return orjson.dumps(result_doc)


#: format -> renderer.
RENDERERS: dict[str, Renderer] = {
    "runstream": _as_is,
    "judge0": judge0_body,
}


def renderer(fmt: str, table: dict[str, Renderer] | None = None) -> Renderer:
    """The renderer of ``fmt``; RenderError for a format there is none of."""
    fn = (RENDERERS if table is None else table).get(fmt)
    if fn is None:
        raise RenderError(f"no webhook format {fmt!r}")
    return fn


def render(fmt: str, result_doc: dict[str, Any],
           table: dict[str, Renderer] | None = None) -> bytes:
    """The body of a webhook of format ``fmt`` for the result ``result_doc``."""
    fn = renderer(fmt, table)
    try:
        body = fn(result_doc)
    except Exception as e:  # another module's code: its failure is this webhook's reason
        raise RenderError(f"the {fmt!r} body could not be made: {e!r}") from e
    if not isinstance(body, bytes | bytearray):
        raise RenderError(f"the {fmt!r} renderer returned {type(body).__name__}, not bytes")
    return bytes(body)


#: Looks up an API key's own webhook secret (the key store), None when it has none.
KeySecrets = Callable[[str], bytes | str | None]


class Secrets:
    """``secret_for(key_id)``: the HMAC key of a webhook made for that API key.

    The key's own secret when API keys are on and it has one, else
    ``RUNSTREAM_CALLBACK_SECRET``; empty (``b""``) means: send it unsigned.
    """

    def __init__(self, settings: Settings, keys: KeySecrets | None = None) -> None:
        self.default = settings.callback_secret.encode()
        self.keys = keys

    def secret_for(self, key_id: str | None) -> bytes:
        if key_id and self.keys is not None:
            try:
                own = self.keys(key_id)
            except Exception:  # the key store is another component: fall back, say so
                log.exception("the webhook secret of key %s could not be read", key_id)
                own = None
            if own:
                return own.encode() if isinstance(own, str) else bytes(own)
        return self.default
