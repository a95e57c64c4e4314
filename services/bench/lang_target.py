"""What the ``lang`` target (targets.py) sends and reads: braindrill's API, as its simulator.

braindrill's simulator (Ghurtchu/braindrill, simulator/Simulator.scala) posts the
raw program as the body, labelled ``Content-Type: application/json``, and reads
nothing but the status line and the timing. This target sends the same bytes
with the same label and reads the verdict from the ``X-Runstream-Status`` header
(the body is braindrill's text: the output, or one sentence). The result it
hands the report has the verdict, the id and the body as the run's stdout; it
has no timestamps or phase times, so the queue/sandbox/overhead split of a
``lang`` run is empty. A request that carries more than one program (stdin,
args, tests, more files) cannot be said through this API: it is an error of
kind ``not expressible at /lang``, not silently cut down.
"""

from __future__ import annotations

from typing import Any

from runstream.services.bench.target import TargetError

# What braindrill's API cannot carry; a request with any of them is not sent.
_UNSAYABLE = ("stdin", "args", "tests")


def code_of(payload: dict[str, Any]) -> str:
    """The program of a request document, or TargetError if /lang cannot carry the request."""
    if any(payload.get(k) for k in _UNSAYABLE) or len(payload.get("files") or ()) > 1:
        raise TargetError("not expressible at /lang")
    if payload.get("files"):
        return str(payload["files"][0].get("content", ""))
    return str(payload.get("source", ""))


def result_of(payload: dict[str, Any], headers: dict[str, str], body: bytes) -> dict[str, Any]:
    """A result document from braindrill's answer: verdict and id from headers, body as stdout."""
    return {"id": headers.get("x-runstream-id", str(payload.get("id", ""))),
            "status": headers["x-runstream-status"], "language": payload.get("language"),
            "run": {"stdout": body.decode("utf-8", "replace"), "stderr": ""}}
