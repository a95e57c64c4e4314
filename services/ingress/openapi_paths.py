"""Every path of ``/openapi.json``: the one place to add a path to the document.

To document a new route: add an :class:`~.openapi.Operation` to a tuple here (or a
tuple of your own module, added to ``OPERATIONS``), naming the status codes the
route really answers; HTTP-only body shapes go in ``SCHEMAS``, response headers in
``HEADERS``, auth in ``SECURITY_SCHEMES``. Wire documents (request, result,
event...) are never described here: they come from the JSON Schema files.
"""

from __future__ import annotations

import functools
from dataclasses import replace
from importlib import metadata
from typing import Any

from runstream.services.ingress import openapi_compat
from runstream.services.ingress.auth import READS, is_open
from runstream.services.ingress.openapi import (
    JSON,
    PROBLEM,
    TEXT,
    Operation,
    Reply,
    build,
    problem,
    ref,
)

_RETRY = ("Retry-After",)

HEADERS: dict[str, Any] = {
    "Retry-After": {"description": "Seconds to wait before retrying (the same id is safe).",
                    "schema": {"type": "string", "pattern": "^[0-9]+$"}},
    "Location": {"description": "Where to poll for the result.",
                 "schema": {"type": "string"}},
    "X-Runstream-Status": {"description": "The verdict (a result's status).",
                           "schema": ref("ResultV1/properties/status")},
    "X-Runstream-Id": {"description": "The execution id, for GET /v1/executions/{id}.",
                       "schema": {"type": "string"}},
    "WWW-Authenticate": {"description": "Bearer realm=\"runstream\" (with error="
                                        "\"invalid_token\" when a key was sent).",
                         "schema": {"type": "string"}},
    "X-RateLimit-Limit": {"description": "The key's burst (API keys on, a request that took "
                                         "a token of its rate limit).",
                          "schema": {"type": "string", "pattern": "^[0-9]+$"}},
    "X-RateLimit-Remaining": {"description": "Tokens left in the key's bucket.",
                              "schema": {"type": "string", "pattern": "^[0-9]+$"}},
    **openapi_compat.HEADERS,
}

# Bodies that only HTTP has (not on a topic, so not in schemas/).
SCHEMAS: dict[str, Any] = {
    "Pending": {
        "type": "object", "required": ["id", "status", "location"],
        "description": "Accepted, no result yet: poll location (GET, with ?wait=S to long-poll).",
        "properties": {"id": {"type": "string"}, "status": {"const": "pending"},
                       "location": {"type": "string"}}},
    "Languages": {
        "type": "object", "required": ["languages"],
        "properties": {"languages": {"type": "array", "items": {
            "type": "object", "required": ["name", "aliases", "versions"],
            "properties": {
                "name": {"type": "string"},
                "aliases": {"type": "array", "items": {"type": "string"}},
                "version": {"type": ["string", "null"],
                            "description": "The newest version a live worker serves; null "
                                           "when no live worker serves the language."},
                "versions": {"type": "array", "items": {"type": "string"}},
                "compiled": {"type": "boolean"},
                "entry": {"type": "string", "description": "The entry point's file name."},
                "sample": {"type": "string", "description": "A hello world that reads one "
                                                           "line of stdin (the playground's)."},
            }}}}},
    # GET /v1/stats (services/ingress/stats.py; docs/playground.md).
    "Stats": {
        "type": "object",
        "required": ["now", "throughput", "latency_ms", "verdicts", "results", "series",
                     "backlog", "group", "workers", "slots"],
        "properties": {
            "now": {"type": "number", "description": "Epoch seconds of this answer."},
            "throughput": {"type": "object", "properties": {
                "per_s": {"type": "number"}, "over_s": {"type": "integer"}}},
            "latency_ms": {"type": "object", "description": "Queued to finished (run_*: "
                           "started to finished) over the last 60 s; null without results.",
                           "additionalProperties": {"type": ["number", "null"]}},
            "verdicts": {"type": "object", "additionalProperties": {"type": "integer"}},
            "results": {"type": "object", "additionalProperties": {"type": "integer"}},
            "series": {"type": "object", "description": "Per second, last 120 s.",
                       "properties": {"t": {"type": "array", "items": {"type": "integer"}}}},
            "backlog": {"type": "object", "properties": {
                "total": {"type": "integer"},
                "partitions": {"type": "array", "items": {"type": "object", "properties": {
                    "topic": {"type": "string"}, "partition": {"type": "integer"},
                    "lag": {"type": "integer"}, "owner": {"type": ["string", "null"]}}}}}},
            "group": {"type": "object"},
            "workers": {"type": "array", "items": {"type": "object", "properties": {
                "id": {"type": "string"}, "slots": {"type": ["integer", "null"]},
                "partitions": {"type": "array", "items": {"type": "integer"}},
                "languages": {"type": "array", "items": {"type": "object"}}}}},
            "slots": {"type": "integer"}}},
    "Alive": {"type": "object", "required": ["status"],
              "properties": {"status": {"const": "alive"}}},
    "Ready": {
        "type": "object", "required": ["status", "workers", "group"],
        "properties": {
            "status": {"const": "ready"},
            "workers": {"type": "integer", "minimum": 1,
                        "description": "Members of the worker group."},
            "group": {"type": "object", "properties": {
                "state": {"type": "string", "description": "e.g. Stable"},
                "partitions": {"type": "object", "description": "Worker id -> the partitions "
                               "of the requests topic it owns.",
                               "additionalProperties": {"type": "array",
                                                        "items": {"type": "integer"}}}}}}},
}

_KEY_NOTE = (" Checked only when RUNSTREAM_AUTH_REQUIRED is on "
             "(docs/keys.md); with it off no key is read. Keys read rs_<id>_<secret>.")
SECURITY_SCHEMES: dict[str, Any] = {
    "bearerKey": {"type": "http", "scheme": "bearer",
                  "description": "Authorization: Bearer <key>." + _KEY_NOTE},
    "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-Api-Key",
                     "description": "X-Api-Key: <key>." + _KEY_NOTE},
    "authTokenHeader": {"type": "apiKey", "in": "header", "name": "X-Auth-Token",
                        "description": "X-Auth-Token: <key> (Judge0's header)." + _KEY_NOTE},
}
#: Any one of the three headers (OpenAPI: the entries of ``security`` are alternatives).
KEYED: tuple[dict[str, list[str]], ...] = tuple({name: []} for name in SECURITY_SCHEMES)

_WAIT = {"name": "wait", "in": "query", "required": False,
         "description": "Seconds to wait for the result (at most RUNSTREAM_INGRESS_WAIT_S, "
                        "the default); 0 or false answers 202 at once.",
         "schema": {"type": "number", "minimum": 0}}
_EXEC_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"},
            "description": "The execution id (the request's id, or the one the ingress gave)."}
_LANGUAGE = {"name": "language", "in": "path", "required": True, "schema": {"type": "string"},
             "example": "python",
             "description": "A language name or alias (GET /v1/languages)."}

_RESULT = {JSON: ref("ResultV1")}
_PENDING = Reply(202, "No result yet: poll the Location.", {JSON: ref("Pending")},
                 ("Location", "Retry-After"))
_TOO_MANY = problem(429, "Overloaded: the queued work (or the bodies being read) is over this "
                    "ingress's bound; retry after Retry-After.", _RETRY)
_TOO_LARGE = problem(413, "The body is over RUNSTREAM_INGRESS_MAX_BODY_BYTES.")
_VERDICT = ("X-Runstream-Status", "X-Runstream-Id")

NATIVE: tuple[Operation, ...] = (
    Operation(
        "POST", "/v1/executions", "createExecution", "Run a program",
        description="Runs the program and answers with its result, waiting up to `wait` "
                    "seconds; past that, 202 with a Location to poll. The id is the "
                    "idempotency key: a known id is answered from its stored result.",
        parameters=(_WAIT,), body={JSON: ref("RequestV1")},
        body_description="An execution request (schema runstream.request.v1).",
        body_example={"language": "python", "source": "print(6*7)"},
        replies=(
            Reply(200, "The result.", _RESULT),
            _PENDING,
            problem(400, "The body is not a JSON object, or the language is unknown."),
            _TOO_LARGE,
            problem(422, "A field has the wrong type or value, or a limit is above the "
                    "server's maximum (field names it)."),
            _TOO_MANY,
            problem(503, "Kafka did not accept the request in time, or this ingress is "
                    "stopping; retry with the same id.", _RETRY),
        )),
    Operation(
        "GET", "/v1/executions/{id}", "getExecution", "The result of an execution",
        description="Any ingress answers for any id within the results' retention; "
                    "`wait` long-polls.",
        parameters=(_EXEC_ID, _WAIT),
        replies=(
            Reply(200, "The result.", _RESULT),
            _PENDING,
            problem(404, "Unknown id, not finished yet, or past the results' retention."),
            problem(503, "The results could not be read from Kafka in time."),
        )),
    Operation(
        "POST", "/lang/{language}", "runRaw", "Run a program, braindrill's way",
        description="braindrill's API: the raw body is the code (whatever its Content-Type) "
                    "and the answer is plain text (docs/http-api.md). The verdict and the id "
                    "are in headers; limits are braindrill's (2 s, 50 MiB).",
        tag="braindrill", parameters=(_LANGUAGE,),
        body={TEXT: {"type": "string"}}, body_description="The program's source code.",
        body_example='print("hi")',
        replies=(
            Reply(200, "The program ran to its end: its stdout, or its stderr when stdout "
                  "is empty.", {TEXT: {"type": "string"}}, _VERDICT),
            Reply(400, "Unsupported language.", {TEXT: {"type": "string"}}),
            _TOO_LARGE,
            Reply(422, "The code was stopped (time, memory, output), did not compile, or "
                  "was rejected: one sentence saying why (text/plain, with the verdict "
                  "headers).", {TEXT: {"type": "string"}, PROBLEM: ref("ProblemV1")},
                  _VERDICT),
            _TOO_MANY,
            Reply(500, "The code could not be run because of an internal error.",
                  {TEXT: {"type": "string"}}, _VERDICT),
            Reply(503, "Not run: it waited past its deadline (text/plain), or no result in "
                  "time, Kafka unavailable, or the ingress is stopping (problem+json).",
                  {TEXT: {"type": "string"}, PROBLEM: ref("ProblemV1")}, _RETRY),
        )),
    Operation(
        "GET", "/v1/languages", "listLanguages", "Languages, aliases and versions",
        tag="service",
        replies=(Reply(200, "Every language of the deployment.", {JSON: ref("Languages")}),)),
    Operation(
        "GET", "/v1/stats", "stats", "Throughput, latency, verdicts, backlog and workers",
        description="What the dashboard (/dashboard) draws; computed by this ingress from the "
                    "results topic and the worker group (docs/playground.md).",
        tag="service",
        replies=(Reply(200, "The system as this ingress sees it now.", {JSON: ref("Stats")}),)),
    Operation(
        "GET", "/healthz", "healthz", "The process is alive", tag="service",
        replies=(Reply(200, "Alive.", {JSON: ref("Alive")}),)),
    Operation(
        "GET", "/readyz", "readyz", "Ready to take work", tag="service",
        description="200 when the broker answers, the reply consumer is assigned and at "
                    "least one worker is in the group.",
        replies=(Reply(200, "Ready.", {JSON: ref("Ready")}),
                 problem(503, "Not ready, or stopping (draining).", _RETRY))),
    Operation(
        "GET", "/metrics", "metrics", "Prometheus metrics of this ingress", tag="service",
        replies=(Reply(200, "Prometheus text exposition format (docs/metrics.md).",
                       {TEXT: {"type": "string"}}),)),
    Operation(
        "GET", "/openapi.json", "openapi", "This document", tag="service",
        replies=(Reply(200, "OpenAPI 3.1.", {JSON: {"type": "object"}}),)),
    Operation(
        "GET", "/v1/executions/{id}/deliveries", "getDeliveries",
        "The webhook deliveries of an execution",
        description="Its callback, state and every attempt (docs/webhooks.md); any ingress "
                    "answers.",
        parameters=(_EXEC_ID,),
        replies=(
            Reply(200, "The deliveries.", {JSON: ref("DeliveryV1")}),
            problem(404, "None: no callback, not finished yet, or past the retention."),
            problem(503, "The deliveries could not be read from Kafka in time."),
        )),
    Operation(
        "GET", "/v1/executions/{id}/events", "streamEvents",
        "Live events of an execution (Server-Sent Events)",
        description="text/event-stream: `retry:`, then one message per event (`id:` its "
                    "offset, `event:` its type, `data:` one line of JSON, an EventV1), "
                    "`: keep-alive` comments, and last `finished` with the stored result "
                    "in `result`; then the stream closes (also after "
                    "RUNSTREAM_INGRESS_EVENTS_STREAM_S: reconnect with Last-Event-ID).",
        parameters=(_EXEC_ID,
                    {"name": "Last-Event-ID", "in": "header", "required": False,
                     "schema": {"type": "string"},
                     "description": "Resume after this event id."},
                    {"name": "last_event_id", "in": "query", "required": False,
                     "schema": {"type": "string"},
                     "description": "The same, for clients that cannot set headers."}),
        replies=(
            Reply(200, "The event stream.", {"text/event-stream": {"type": "string"}},
                  item_schemas={"text/event-stream": ref("EventV1")}),
            problem(404, "Not queued, running or finished within the results' retention."),
            problem(429, "This ingress serves RUNSTREAM_INGRESS_EVENTS_MAX_STREAMS streams "
                    "already.", _RETRY),
            problem(503, "The results could not be read from Kafka in time."),
        )),
)

_AUTH_401 = problem(401, "API keys on: no key, a malformed one, or an unknown one.",
                    ("WWW-Authenticate",))
_AUTH_403 = problem(403, "API keys on: the key was revoked, or may not run the request's "
                    "language.")
_AUTH_429 = problem(429, "API keys on: the key's rate limit (`quota: rate`) or concurrency "
                    "quota (`quota: concurrency`) is used up.", _RETRY)


def _merge(a: Reply, b: Reply) -> Reply:
    """One reply for a status two sources answer (e.g. overload and a key's quota)."""
    return Reply(a.status, f"{a.description} Or: {b.description}",
                 {**b.content, **a.content}, tuple(dict.fromkeys((*a.headers, *b.headers))),
                 a.item_schemas)


def keyed(op: Operation) -> Operation:
    """``op`` as it is with API keys on: its security and the answers of auth.py.

    The open paths (``auth.is_open``) need no key; a request that may create work
    (not GET) can also be refused for the key's quota. The document is the same
    whether keys are on or off.
    """
    if is_open(op.path):
        return op
    replies = {r.status: r for r in op.replies}
    ratelimited = ("X-RateLimit-Limit", "X-RateLimit-Remaining")
    extra = [_AUTH_401, _AUTH_403]
    if op.method not in READS:
        extra.append(_AUTH_429)
        replies = {s: replace(r, headers=(*r.headers, *ratelimited)) if s < 300 else r
                   for s, r in replies.items()}
    for reply in extra:
        own = replies.get(reply.status)
        # A route's own body-less answer (Judge0's 403) keeps its shape; the key check's
        # problem+json is named in the description.
        replies[reply.status] = reply if own is None else (
            replace(own, description=f"{own.description} Or: {reply.description} "
                                     "(problem+json)") if not own.content
            else _merge(own, reply))
    return replace(op, replies=tuple(sorted(replies.values(), key=lambda r: r.status)),
                   security=KEYED)


#: Every documented operation. Add a tuple of your own here.
OPERATIONS: tuple[Operation, ...] = tuple(
    keyed(op) for op in (*NATIVE, *openapi_compat.OPERATIONS))

TAGS = (
    {"name": "native", "description": "runstream's own API (docs/http-api.md)."},
    {"name": "braindrill", "description": "braindrill's plain-text API."},
    {"name": "service", "description": "Health, readiness, languages, metrics."},
    *openapi_compat.TAGS,
)

_DESCRIPTION = (
    "A remote code execution engine on Apache Kafka. Every error of the native API is "
    "application/problem+json (RFC 9457); the Judge0 (/judge0) and Piston (/api/v2) APIs "
    "answer their own error bodies. The request and result bodies are the public "
    "JSON Schemas `request.v1.json` and `result.v1.json` (components RequestV1, ResultV1), "
    "the same files that Kafka producers of other teams use. API keys: the operations "
    "with a security requirement need one only when RUNSTREAM_AUTH_REQUIRED is on "
    "(then also 401, 403 and, for those that create work, 429); the others are open "
    "whatever the setting.")


@functools.cache
def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the ingress (built once per process)."""
    try:
        version = metadata.version("runstream")
    except metadata.PackageNotFoundError:  # running from a tree that is not installed
        version = "0"
    return build(OPERATIONS, title="runstream", version=version, description=_DESCRIPTION,
                 schemas={**SCHEMAS, **openapi_compat.SCHEMAS}, headers=HEADERS, tags=TAGS,
                 security_schemes=SECURITY_SCHEMES)
