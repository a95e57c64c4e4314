"""Schemathesis fuzzes a running system from its own /openapi.json.

Every documented operation gets a bounded number of generated requests (valid and
invalid bodies, odd path and query values) against real processes over HTTP; each
answer must not be a 5xx, must use a status code, content type and headers the
document declares for that operation, and must match the declared schema; a
method the document does not list must get 405 with an Allow header (not on
/api/v2: Piston answers any other method or path 404 {"message"}, and so do we).

API keys are on (RUNSTREAM_AUTH_REQUIRED, as in the compose cluster): every
generated request carries a key with no rate or concurrency limit, so the routes
behind the key check are fuzzed; the check's own 401/403 answers are held to the
document by tests/unit/services/ingress/test_openapi.py (the real middleware, every operation).

Not fuzzed: GET /v1/executions/{id}/events. It is an open Server-Sent Events
stream (up to RUNSTREAM_INGRESS_EVENTS_STREAM_S per request) that a generated
request would keep open, and schemathesis cannot check a stream's items;
tests/e2e/test_events.py drives it.

Bounded: EXAMPLES generated requests per operation (plus the documented examples)
keep the file about two minutes on the 2-core machine while other suites run (122 s
at load 13, the system's start included; 1 min of CPU).
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st
from runstream.services.ingress.openapi_paths import document
from schemathesis import GenerationMode, checks

from tests.system import System, launch_system

# Per operation: ~35 operations x this. RUNSTREAM_FUZZ_EXAMPLES=200 for a deeper run;
# RUNSTREAM_FUZZ_RANDOM=1 for other examples than CI's (by default the same every run).
EXAMPLES = int(os.environ.get("RUNSTREAM_FUZZ_EXAMPLES", "20"))
DERANDOMIZE = not os.environ.get("RUNSTREAM_FUZZ_RANDOM")

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]
# An undocumented method: 405 with Allow. Not under /api/v2 (Piston's 404, above).
UNSUPPORTED_METHOD = checks.unsupported_method
# The one 5xx the document promises: Piston's interactive WebSocket is not served, and a
# plain HTTP request to it (any method) is told so with 501 Not Implemented (docs/piston.md).
# Its status, content type and body are still checked.
NOT_IMPLEMENTED = "/api/v2/connect"

# The document the ingress serves is built by a pure function: load it here so that
# schemathesis can make one test per operation at collection time, and check below
# that the running ingress serves exactly this document. A copy: schemathesis
# annotates the dict it is given, and document() is cached.
EVENTS = "/v1/executions/{id}/events"
KEY_HEADERS = {"authorization", "x-api-key", "x-auth-token"}
schema = schemathesis.openapi.from_dict(copy.deepcopy(document())).exclude(path=EVENTS)


# Waits and limits short enough that no generated request can hold the run: a GET of
# an unknown id long-polls up to the wait bound, a generated program runs up to the
# largest limit a request may ask for.
FAST = {
    "RUNSTREAM_INGRESS_WAIT_S": "2",
    "RUNSTREAM_MAX_WALL_MS": "2000", "RUNSTREAM_DEFAULT_WALL_MS": "1000",
    "RUNSTREAM_MAX_CPU_MS": "2000", "RUNSTREAM_DEFAULT_CPU_MS": "1000",
    "RUNSTREAM_INGRESS_LANG_WALL_MS": "1000",
}


@pytest.fixture(scope="module")
def fuzzed(kafka: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    with launch_system(kafka, tmp_path_factory.mktemp("fuzz-logs"), ingresses=1, workers=1,
                       extra_env=FAST | {"RUNSTREAM_AUTH_REQUIRED": "true"}) as running:
        yield running


@pytest.fixture(scope="module")
def key(fuzzed: System) -> str:
    """A key of the fuzzed system with no rate or concurrency limit (`runstream keys`)."""
    out = subprocess.run(
        [sys.executable, "-m", "runstream.services.cli", "keys", "create", "--name", "fuzz",
         "--rate", "0", "--concurrency", "0", "--json"],
        env=fuzzed.env, check=True, timeout=60, capture_output=True, text=True).stdout
    full: str = json.loads(out)["key"]
    return full


def test_the_events_stream_is_left_out_of_the_fuzz_run_only() -> None:
    fuzzed_paths = {result.ok().path for result in schema.get_all_operations()}
    assert fuzzed_paths == set(document()["paths"]) - {EVENTS}


def test_the_running_ingress_serves_this_document(fuzzed: System) -> None:
    served = httpx.get(f"{fuzzed.url}/openapi.json", timeout=10)
    assert served.status_code == 200 and served.json() == document()


def test_the_docs_page_and_its_assets_come_from_the_ingress(fuzzed: System) -> None:
    """Offline: the page names only its own relative assets, and the ingress serves them."""
    page = httpx.get(f"{fuzzed.url}/docs", timeout=10)
    assert page.status_code == 200 and "swagger-ui" in page.text
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert len(assets) == 3 and not [a for a in assets if "//" in a], assets
    for asset in assets:
        r = httpx.get(f"{fuzzed.url}/{asset}", timeout=10)
        assert r.status_code == 200 and len(r.content) > 500, asset
        kind = "text/css" if asset.endswith(".css") else "javascript"
        assert kind in r.headers["content-type"], (asset, r.headers["content-type"])


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=DERANDOMIZE,
          phases=[Phase.explicit, Phase.generate],
          suppress_health_check=list(HealthCheck))
def test_no_answer_breaks_the_document(case: schemathesis.Case, fuzzed: System,
                                       key: str) -> None:
    # schemathesis fills the documented key headers with made-up values (all 401): the
    # key check is tested elsewhere; here the routes behind it are, with a real key.
    sent = {k: v for k, v in (case.headers or {}).items() if k.lower() not in KEY_HEADERS}
    case.headers = {**sent, "X-Api-Key": key}
    response = case.call(base_url=fuzzed.url, timeout=30)
    assert response.status_code != 401, response.text
    piston = case.operation.path.startswith("/api/v2/")
    chosen = CHECKS + ([] if piston else [UNSUPPORTED_METHOD])
    if case.operation.path == NOT_IMPLEMENTED and response.status_code == 501:
        chosen = [c for c in chosen if c is not checks.not_a_server_error]
    case.validate_response(response, checks=chosen)


# -- control characters in the strings that reach a process (issue 23) ---------------------
EXECUTIONS = "/v1/executions"
# Generated requests of the native API that break the schema in their body (schemathesis
# writes NUL and other control characters into the patterned strings): no 5xx, and each
# is refused (4xx), never run. The query is fixed at ?wait=0 (what is accepted is answered
# 202 at once): a ?wait below its minimum is read as 0, lenient, and not about strings.
@given(data=st.data())
@settings(max_examples=EXAMPLES * 3, deadline=None, database=None, derandomize=DERANDOMIZE,
          suppress_health_check=list(HealthCheck))
def test_requests_whose_body_breaks_the_schema_are_refused_never_run(
        data: st.DataObject, fuzzed: System, key: str) -> None:
    operation = schema[EXECUTIONS]["POST"]
    case = data.draw(operation.as_strategy(generation_mode=GenerationMode.NEGATIVE,
                                              query={"wait": 0}))
    case.headers = {**(case.headers or {}), "X-Api-Key": key}
    response = case.call(base_url=fuzzed.url, timeout=30)
    case.validate_response(response, checks=[
        checks.not_a_server_error, checks.status_code_conformance,
        checks.content_type_conformance, checks.negative_data_rejection])


# Control characters: C0 and DEL, and C1 (refused in names and URLs, kept in arguments).
C0_DEL = [chr(c) for c in (*range(0x20), 0x7F)]
C1 = [chr(c) for c in range(0x80, 0xA0)]
ARGUMENT_SAFE = "\t\n\r"
# The strings a schema-valid request is given back, clean, before one gets a control char.
PROCESS_STRINGS = ("id", "language", "version", "args", "files", "source", "callback",
                   "reply_to", "key_id")


def _inject(field: str, text: str) -> dict[str, object]:
    """``field`` of a request holding ``text`` (which holds the control character)."""
    if field == "args.0":
        return {"args": [text]}
    if field == "files.0.name":
        return {"files": [{"name": f"m{text}", "content": "print(1)"}]}
    if field == "callback":
        return {"callback": f"https://example.com/{text}"}
    if field == "id":
        return {"id": f"i{text}"}
    return {field: text}


@given(data=st.data())
@settings(max_examples=EXAMPLES * 5, deadline=None, database=None, derandomize=DERANDOMIZE,
          suppress_health_check=list(HealthCheck))
def test_a_control_character_in_a_process_string_is_422_naming_the_field(
        data: st.DataObject, fuzzed: System, key: str) -> None:
    """Schemathesis makes valid requests (stdin, tests, metadata with any character); one
    string that reaches a process gets a control character: 422 names that field."""
    operation = schema[EXECUTIONS]["POST"]
    case = data.draw(operation.as_strategy(generation_mode=GenerationMode.POSITIVE))
    assume(isinstance(case.body, dict))
    field = data.draw(st.sampled_from(["args.0", "files.0.name", "language", "version",
                                       "callback", "id"]))
    refused = [c for c in C0_DEL if c not in ARGUMENT_SAFE] if field == "args.0" else (
        C0_DEL + C1)
    bad = data.draw(st.sampled_from(refused))
    around = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=8)
    text = data.draw(around) + bad + data.draw(around)
    body = {k: v for k, v in case.body.items() if k not in PROCESS_STRINGS}
    body.update({"language": "python", "source": "print(1)"})
    if field == "files.0.name":
        del body["source"]
    body.update(_inject(field, text))
    r = httpx.post(f"{fuzzed.url}{EXECUTIONS}", content=json.dumps(body),
                   headers={"X-Api-Key": key, "Content-Type": "application/json"}, timeout=30)
    assert r.status_code == 422, (body, r.text)
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["field"] == field, (body, problem)
    assert f"U+{ord(bad):04X}" in problem["detail"], problem
