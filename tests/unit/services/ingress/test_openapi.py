"""/openapi.json: valid OpenAPI 3.1, built from the schema files, true to the routes."""

from __future__ import annotations

from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import orjson
import pytest
from openapi_spec_validator import validate
from runstream.schemas.codec import load_schema
from runstream.schemas.keys import revoke
from runstream.schemas.models import PhaseResult, Status
from runstream.services.ingress import openapi, problems
from runstream.services.ingress.app import create_app
from runstream.services.ingress.auth import is_open
from runstream.services.ingress.judge0 import catalog as judge0_catalog
from runstream.services.ingress.judge0 import config as judge0_config
from runstream.services.ingress.judge0 import statuses as judge0_statuses
from runstream.services.ingress.judge0.config import Judge0Config
from runstream.services.ingress.judge0.errors import (
    BadParameter,
    FieldErrors,
    NotFoundJudge0,
    NotUtf8,
)
from runstream.services.ingress.judge0.wire import (
    FIELDS,
    parse_fields,
    pending_doc,
    submission_doc,
)
from runstream.services.ingress.openapi import (
    Operation,
    Reply,
    build,
    component_name,
    schema_components,
)
from runstream.services.ingress.openapi_paths import NATIVE, OPERATIONS, document
from runstream.services.ingress.piston.response import render as piston_render
from runstream.services.ingress.piston.runtimes import packages as piston_packages
from runstream.services.settings import Settings
from starlette.routing import Mount, Route

from tests.unit.schemas.test_keys import NOW
from tests.unit.services.ingress.judge0.test_judge0_wire import CATALOG, b64, finished, parse
from tests.unit.services.ingress.piston.test_piston_wire import available as piston_available
from tests.unit.services.ingress.piston.test_piston_wire import job as piston_job
from tests.unit.services.ingress.test_ingress_app import FakeChannel
from tests.unit.services.ingress.test_ingress_auth import FakeKeys, issue


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _resolve(doc: dict[str, Any], pointer: str) -> Any:
    assert pointer.startswith("#/"), pointer
    node: Any = doc
    for part in pointer[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def test_the_document_is_valid_openapi_3_1() -> None:
    doc = document()
    assert doc["openapi"].startswith("3.1")
    validate(doc)  # raises OpenAPIValidationError with the path of the first error


def test_every_ref_resolves_inside_the_document() -> None:
    doc = document()
    refs = set(_refs(doc))
    assert "#/components/schemas/ResultV1_phase" in refs
    for pointer in refs:
        assert _resolve(doc, pointer) is not None, pointer


def test_every_schema_file_is_a_component_with_its_content() -> None:
    files = sorted(e.name for e in resources.files("runstream.schemas").iterdir()
                   if e.name.endswith(".json"))
    assert {"request.v1.json", "result.v1.json", "problem.v1.json"} <= set(files)
    components = document()["components"]["schemas"]
    for name in files:
        original = load_schema(name)
        component = components[component_name(name)]
        # Same keywords, same properties, same required fields: the file is the source.
        assert component.get("required") == original.get("required"), name
        assert set(component.get("properties", {})) == set(original.get("properties", {})), name
        assert "$id" not in component and "$defs" not in component
    # Unchanged where no $ref was rewritten: the request's id pattern, byte for byte.
    assert (components["RequestV1"]["properties"]["id"]
            == load_schema("request.v1.json")["properties"]["id"])
    assert components["ResultV1"]["properties"]["run"]["oneOf"][1] == {
        "$ref": "#/components/schemas/ResultV1_phase"}
    assert components["ResultV1_phase"] == load_schema("result.v1.json")["$defs"]["phase"]


def test_a_component_validates_what_its_file_validates() -> None:
    """The rewritten result schema accepts and refuses the same documents as its file."""
    rooted = {"$ref": "#/components/schemas/ResultV1",
              "components": document()["components"]}
    component = jsonschema.Draft202012Validator(rooted)
    original = jsonschema.Draft202012Validator(load_schema("result.v1.json"))
    good = {"id": "a", "status": "ok", "run": {"stdout": "1\n", "stderr": "", "exit_code": 0,
                                               "signal": None, "wall_ms": 1, "cpu_ms": 1,
                                               "memory_kb": 1}}
    for bad in ({**good, "run": {"stdout": 1}}, {**good, "status": "fine"}, {"id": "a"}):
        assert not component.is_valid(bad) and not original.is_valid(bad), bad
    assert component.is_valid(good) and original.is_valid(good)


def test_refs_between_files_and_into_defs_are_rewritten(
        monkeypatch: pytest.MonkeyPatch) -> None:
    files = {"a.v1.json": {"$id": "https://x/a.v1.json", "$defs": {"p": {"type": "string"}},
                           "properties": {"x": {"$ref": "#/$defs/p"},
                                          "y": {"$ref": "b.v1.json"},
                                          "z": {"$ref": "https://x/b.v1.json#/properties/q"}}},
             "b.v1.json": {"properties": {"q": {"type": "integer"}}}}
    monkeypatch.setattr(openapi, "_schema_files", lambda: files)
    comps = schema_components()
    props = comps["AV1"]["properties"]
    assert props["x"] == {"$ref": "#/components/schemas/AV1_p"}
    assert props["y"] == {"$ref": "#/components/schemas/BV1"}
    assert props["z"] == {"$ref": "#/components/schemas/BV1/properties/q"}
    assert comps["AV1_p"] == {"type": "string"} and "$id" not in comps["AV1"]


def test_native_bodies_are_the_wire_schemas_and_errors_are_problems() -> None:
    paths = document()["paths"]
    post = paths["/v1/executions"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/RequestV1"}
    responses = post["responses"]
    assert set(responses) == {"200", "202", "400", "401", "403", "413", "422", "429", "503"}
    assert responses["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ResultV1"}
    for status in ("400", "413", "422", "429", "503"):
        assert responses[status]["content"]["application/problem+json"]["schema"] == {
            "$ref": "#/components/schemas/ProblemV1"}, status
    assert "Retry-After" in responses["429"]["headers"]
    assert set(paths["/v1/executions/{id}"]["get"]["responses"]) == {
        "200", "202", "401", "403", "404", "503"}
    assert set(paths["/readyz"]["get"]["responses"]) == {"200", "503"}


def test_every_documented_operation_is_a_route_of_the_app(tmp_path: Path) -> None:
    app = create_app(Settings.from_env({}, index_dir=str(tmp_path)))
    routes = {(r.path, m) for r in app.routes if isinstance(r, Route) for m in r.methods or ()}
    # The Judge0 and Piston routes are mounted (/judge0, /api/v2).
    routes |= {(mount.path + r.path, m) for mount in app.routes if isinstance(mount, Mount)
               for r in mount.routes if isinstance(r, Route) for m in r.methods or ()}
    for op in OPERATIONS:
        assert (op.path, op.method) in routes, f"{op.method} {op.path} is not served"
    native = {("/v1/executions", "POST"), ("/v1/executions/{id}", "GET"),
              ("/lang/{language}", "POST"), ("/v1/languages", "GET"), ("/healthz", "GET"),
              ("/readyz", "GET"), ("/metrics", "GET"), ("/openapi.json", "GET")}
    assert native <= {(op.path, op.method) for op in NATIVE}


@pytest.mark.parametrize("exc", [
    problems.Overloaded("busy", retry_after=2.5, backlog_s=40.0),
    problems.Draining("stopping"),
])
def test_problem_bodies_match_the_problem_schema(exc: Exception) -> None:
    """What problems.py writes is what ProblemV1 says (the schema is not a wish)."""
    import asyncio

    from starlette.requests import Request

    request = Request({"type": "http", "method": "POST", "path": "/v1/executions",
                       "headers": [], "query_string": b""})
    response = asyncio.run(problems.runstream_error(request, exc))
    body = orjson.loads(bytes(response.body))
    jsonschema.Draft202012Validator(load_schema("problem.v1.json")).validate(body)
    assert response.headers["retry-after"] == str(body["retry_after"])


def test_the_builder_refuses_a_path_documented_twice() -> None:
    op = Operation("GET", "/x", "x", "x", (Reply(200, "ok"),))
    with pytest.raises(ValueError, match="twice"):
        build([op, op], title="t", version="1", description="d")


def test_the_docs_example_prints_the_documented_paths() -> None:
    page = (Path(__file__).parents[4] / "docs" / "openapi.md").read_text(encoding="utf-8")
    doc = document()
    assert f"# {doc['openapi']} {sorted(doc['paths'])}" in page


# -- Judge0, Piston, events, deliveries, API keys -------------------------------------------


def _component(name: str) -> jsonschema.Draft202012Validator:
    """A validator of the component ``name``, its $refs resolved inside the document."""
    return jsonschema.Draft202012Validator({"$ref": f"#/components/schemas/{name}",
                                            "components": document()["components"]})


def test_the_compat_apis_events_and_deliveries_are_documented() -> None:
    paths = document()["paths"]
    for path in ("/judge0/submissions", "/judge0/submissions/{token}", "/judge0/languages",
                 "/judge0/config_info", "/api/v2/execute", "/api/v2/runtimes"):
        assert path in paths, path
    assert set(paths["/judge0/submissions"]) == {"get", "post"}
    create = paths["/judge0/submissions"]["post"]["responses"]
    assert create["422"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Judge0FieldErrors"}
    execute = paths["/api/v2/execute"]["post"]["responses"]
    assert execute["400"]["content"] == {"application/json": {"schema": {
        "$ref": "#/components/schemas/PistonMessage"}}}
    events = paths["/v1/executions/{id}/events"]["get"]["responses"]["200"]["content"]
    assert events == {"text/event-stream": {
        "schema": {"type": "string"}, "x-itemSchema": {"$ref": "#/components/schemas/EventV1"}}}
    deliveries = paths["/v1/executions/{id}/deliveries"]["get"]["responses"]
    assert deliveries["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/DeliveryV1"}
    assert set(deliveries) == {"200", "401", "403", "404", "503"}


def test_operations_need_a_key_exactly_where_the_key_check_asks_for_one() -> None:
    doc = document()
    schemes = doc["components"]["securitySchemes"]
    assert {(s["type"], s.get("scheme") or s.get("name")) for s in schemes.values()} == {
        ("http", "bearer"), ("apiKey", "X-Api-Key"), ("apiKey", "X-Auth-Token")}
    assert "security" not in doc  # open operations need nothing
    keyed = 0
    for op in OPERATIONS:
        spec = doc["paths"][op.path][op.method.lower()]
        responses = spec["responses"]
        if is_open(op.path):
            assert "security" not in spec and "401" not in responses, op.path
            continue
        keyed += 1
        assert spec["security"] == [{name: []} for name in schemes], op.path
        assert "WWW-Authenticate" in responses["401"]["headers"], op.path
        assert "403" in responses, op.path
        if op.method not in ("GET", "HEAD"):
            assert "Retry-After" in responses["429"]["headers"], op.path
            assert "application/problem+json" in responses["429"]["content"], op.path
    assert keyed > 30


def _concrete(path: str) -> str:
    return path.replace("{id}", "71").replace("{token}", "t1").replace("{language}", "python")


async def test_the_key_check_answers_as_the_document_says(tmp_path: Path) -> None:
    """Auth on, the real middleware: 401 without a key and 403 with a revoked one, on
    every keyed operation, each body the documented problem; the open ones need none."""
    settings = Settings.from_env({}, index_dir=str(tmp_path), auth_required=True)
    keys = FakeKeys(settings, name="test")
    gateway = FakeChannel(settings)
    await gateway.start()
    record, full = issue(keys)
    keys.put(revoke(record, NOW))
    doc = document()
    try:
        app = create_app(settings, channel=gateway, keys=keys)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ingress") as c:
            for op in OPERATIONS:
                if op.path.endswith("/events"):
                    continue  # open, it would stream
                spec = doc["paths"][op.path][op.method.lower()]
                responses = spec["responses"]
                url = _concrete(op.path)
                r = await c.request(op.method, url)
                if "security" not in spec:
                    assert r.status_code != 401, (op.path, r.text)
                    continue
                for status, headers in ((401, {}), (403, {"X-Api-Key": full})):
                    r = await c.request(op.method, url, headers=headers)
                    assert r.status_code == status, (op.method, url, r.text)
                    assert r.headers["content-type"] == "application/problem+json"
                    content = responses[str(status)].get("content")
                    if content is not None:  # Judge0's body-less 403 names it in words
                        schema = content["application/problem+json"]["schema"]
                        assert schema == {"$ref": "#/components/schemas/ProblemV1"}
                        _component("ProblemV1").validate(r.json())
                    else:
                        assert "problem+json" in responses[str(status)]["description"]
    finally:
        await gateway.stop()


def test_judge0_bodies_are_what_the_schemas_say() -> None:
    """What judge0/ writes validates against the document's Judge0 schemas."""
    req = parse({"source_code": b64("print('hi')"), "language_id": 71, "stdin": b64("in")})
    ok = finished(req, Status.OK, run=PhaseResult(stdout=b"hi\n", exit_code=0, wall_ms=31,
                                                  cpu_ms=12, memory_kb=3900))
    submission = _component("Judge0Submission")
    for fields in (FIELDS, parse_fields(None), ("token",)):
        for b64_flag in (True, False):
            submission.validate(submission_doc(ok, fields, base64_encoded=b64_flag,
                                               catalog=CATALOG))
        submission.validate(pending_doc(req.id, fields))
    assert not submission.is_valid({"token": "t", "unknown": 1})  # the SDK refuses it
    assert _component("Judge0Token").is_valid({"token": "t"})
    config = Judge0Config.from_settings(Settings.from_env({}))
    _component("Judge0ConfigInfo").validate(judge0_config.config_info(config))
    assert len(_component("Judge0ConfigInfo").schema["components"]["schemas"][
        "Judge0ConfigInfo"]["required"]) == 39
    _component("Judge0About").validate(judge0_config.about())
    for status in judge0_statuses.statuses():
        _component("Judge0Status").validate(status)
    for entry in (*CATALOG.listing(), *CATALOG.listing_all()):
        _component("Judge0Language").validate(entry)
    limits = Settings.from_env({}).default_limits
    _component("Judge0LanguageDetail").validate(CATALOG.detail("71", limits))
    _component("Judge0LanguageDetail").validate(CATALOG.detail("54", limits))
    for worker in judge0_catalog.workers(5, 2):
        _component("Judge0Worker").validate(worker)
    _component("Judge0FieldErrors").validate(
        FieldErrors({"language_id": ["can't be blank"]}).body)
    _component("Judge0Error").validate(BadParameter("invalid fields: [x]").body)
    _component("Judge0Error").validate(NotUtf8().body)
    _component("Judge0NotFound").validate(NotFoundJudge0("x").body)


def test_piston_bodies_are_what_the_schemas_say() -> None:
    ran = {"stdout": "hi\n", "stderr": "", "encoding": "utf8", "exit_code": 0, "signal": None,
           "wall_ms": 30, "cpu_ms": 12, "memory_kb": 4000, "stdout_truncated": False,
           "stderr_truncated": False, "time_limit": None, "oom_killed": False}
    python = piston_job({"language": "python", "version": "*",
                         "files": [{"content": "print(1)"}]})
    c = piston_job({"language": "gcc", "version": "*", "files": [{"content": "int main(){}"}]})
    cases = [({"status": "ok", "version": "3.11.2", "run": ran}, python),
             ({"status": "time_limit_exceeded", "run": {**ran, "time_limit": "wall",
                                                        "exit_code": None}}, python),
             ({"status": "ok", "version": "12.2.0-14", "compile": ran, "run": ran}, c),
             ({"status": "compile_error", "compile": {**ran, "exit_code": 1}}, c)]
    for doc, job in cases:
        status, body = piston_render(doc, job)
        assert status == 200
        _component("PistonResult").validate(body)
    status, body = piston_render({"status": "expired", "message": "late"}, python)
    assert status == 503
    _component("PistonMessage").validate(body)
    for rt in piston_available():
        _component("PistonRuntime").validate(rt.describe())
    for package in piston_packages(piston_available()):
        _component("PistonPackage").validate(package)
