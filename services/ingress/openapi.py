"""The OpenAPI 3.1 document, built from the JSON Schema files of the wire contract.

Pure: no Starlette, no I/O beyond reading the schema files shipped in
``runstream.schemas``. Every ``*.json`` there becomes a component schema
(``request.v1.json`` -> ``RequestV1``; its ``$defs`` become components of their own,
``ResultV1_phase``), with every ``$ref`` rewritten to point at the components, so
the document and the validators of the codec read the very same files. The paths
are :class:`Operation` values; :mod:`.openapi_paths` lists them (the one place to
add a path).
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

JSON = "application/json"
PROBLEM = "application/problem+json"
TEXT = "text/plain"

_SCHEMAS_PACKAGE = "runstream.schemas"
_COMPONENT = "#/components/schemas/"


def component_name(filename: str) -> str:
    """``request.v1.json`` -> ``RequestV1``; ``event.v1.json`` -> ``EventV1``."""
    stem = filename.removesuffix(".json")
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[._-]", stem) if part)


def ref(name: str) -> dict[str, str]:
    """A reference to the component schema ``name``."""
    return {"$ref": _COMPONENT + name}


@functools.cache
def _schema_files() -> dict[str, dict[str, Any]]:
    root = resources.files(_SCHEMAS_PACKAGE)
    docs: dict[str, dict[str, Any]] = {}
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".json"):
            docs[entry.name] = json.loads(entry.read_text(encoding="utf-8"))
    return docs


def schema_components() -> dict[str, Any]:
    """Every schema file of the contract (and each of its ``$defs``) as components."""
    files = _schema_files()
    names = {filename: component_name(filename) for filename in files}
    components: dict[str, Any] = {}
    for filename, doc in files.items():
        doc = copy.deepcopy(doc)
        # $id would re-base the rewritten $refs; the 3.1 dialect is 2020-12 already.
        for key in ("$schema", "$id"):
            doc.pop(key, None)
        defs = doc.pop("$defs", {})
        own = names[filename]
        components[own] = _rewrite(doc, filename, names)
        for def_name, sub in defs.items():
            components[f"{own}_{def_name}"] = _rewrite(sub, filename, names)
    return components


def _rewrite(node: Any, filename: str, names: Mapping[str, str]) -> Any:
    """``node`` with each ``$ref`` (``#/$defs/x``, ``other.v1.json#...``) to components."""
    if isinstance(node, list):
        return [_rewrite(item, filename, names) for item in node]
    if not isinstance(node, dict):
        return node
    out = {k: _rewrite(v, filename, names) for k, v in node.items()}
    target = out.get("$ref")
    if isinstance(target, str):
        out["$ref"] = _component_ref(target, filename, names)
    return out


def _component_ref(target: str, filename: str, names: Mapping[str, str]) -> str:
    base, _, fragment = target.partition("#")
    file = base.rsplit("/", 1)[-1] if base else filename
    if file not in names:
        raise ValueError(f"{filename}: $ref {target!r} names no schema file of the contract")
    comp = names[file]
    if fragment.startswith("/$defs/"):
        def_name, _, rest = fragment[len("/$defs/"):].partition("/")
        return f"{_COMPONENT}{comp}_{def_name}" + (f"/{rest}" if rest else "")
    return _COMPONENT + comp + (fragment if fragment not in ("", "/") else "")


@dataclass(frozen=True)
class Reply:
    """One status code an operation answers, with its body per media type and headers."""

    status: int
    description: str
    content: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    headers: tuple[str, ...] = ()  # names of components.headers
    #: Media type -> the schema of each item of a stream (Server-Sent Events' data):
    #: ``x-itemSchema``, what OpenAPI 3.2 names ``itemSchema``; 3.1 has no such field.
    item_schemas: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


def problem(status: int, description: str, headers: tuple[str, ...] = ()) -> Reply:
    """A reply whose body is ``application/problem+json``."""
    return Reply(status, description, {PROBLEM: ref("ProblemV1")}, headers)


@dataclass(frozen=True)
class Operation:
    """One method on one path, documented."""

    method: str
    path: str
    operation_id: str
    summary: str
    replies: tuple[Reply, ...]
    description: str = ""
    tag: str = "native"
    parameters: tuple[Mapping[str, Any], ...] = ()
    body: Mapping[str, Mapping[str, Any]] | None = None  # media type -> schema
    body_description: str = ""
    #: An example body (shown on /docs, and tried first by schema-driven fuzzers).
    body_example: Any = None
    security: tuple[Mapping[str, list[str]], ...] | None = None


def build(operations: Iterable[Operation], *, title: str, version: str, description: str,
          schemas: Mapping[str, Any] | None = None, headers: Mapping[str, Any] | None = None,
          tags: Iterable[Mapping[str, str]] = (),
          security_schemes: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``operations``.

    ``schemas`` adds component schemas of HTTP-only shapes to those of the
    contract's files; ``headers`` are the response headers replies name.
    """
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        method = op.method.lower()
        item = paths.setdefault(op.path, {})
        if method in item:
            raise ValueError(f"{op.method} {op.path} is documented twice")
        item[method] = _operation(op)
    components: dict[str, Any] = {"schemas": {**schema_components(), **(schemas or {})}}
    if headers:
        components["headers"] = dict(headers)
    if security_schemes:
        components["securitySchemes"] = dict(security_schemes)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": description,
                 "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"}},
        "tags": list(tags),
        "paths": paths,
        "components": components,
    }


def _operation(op: Operation) -> dict[str, Any]:
    doc: dict[str, Any] = {"operationId": op.operation_id, "summary": op.summary,
                           "tags": [op.tag]}
    if op.description:
        doc["description"] = op.description
    if op.parameters:
        doc["parameters"] = [dict(p) for p in op.parameters]
    if op.body is not None:
        example = {} if op.body_example is None else {"example": op.body_example}
        doc["requestBody"] = {
            "required": True, "description": op.body_description,
            "content": {media: {"schema": dict(schema), **example}
                        for media, schema in op.body.items()}}
    responses: dict[str, Any] = {}
    for reply in op.replies:
        key = str(reply.status)
        if key in responses:
            raise ValueError(f"{op.method} {op.path}: status {key} is documented twice")
        response: dict[str, Any] = {"description": reply.description}
        if reply.content:
            response["content"] = {media: {"schema": dict(schema)}
                                   for media, schema in reply.content.items()}
            for media, item in reply.item_schemas.items():
                response["content"][media]["x-itemSchema"] = dict(item)
        if reply.headers:
            response["headers"] = {name: {"$ref": f"#/components/headers/{name}"}
                                   for name in reply.headers}
        responses[key] = response
    doc["responses"] = responses
    if op.security is not None:
        doc["security"] = [dict(s) for s in op.security]
    return doc
