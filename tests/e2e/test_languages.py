"""The first twelve languages over POST /v1/executions: hello-world, stdin, detected version.

Every language, on both backends: tests/hostile/test_language_matrix.py."""

from __future__ import annotations

import httpx
import pytest
from runstream.services.execution.languages import Registry

from tests.programs import CASES, ECHO

pytestmark = [pytest.mark.kafka, pytest.mark.sandbox]


def test_every_registered_language_is_covered() -> None:
    # The twelve first languages here; every language in tests/language_cases.toml
    # (tests/hostile/test_language_matrix.py).
    assert set(ECHO) <= set(Registry.load().names())
    assert set(CASES) == set(Registry.load().names())


@pytest.mark.parametrize("language", sorted(ECHO))
async def test_language_over_http(client: httpx.AsyncClient, language: str) -> None:
    r = await client.post("/v1/executions", json={"language": language,
                                                  "source": ECHO[language], "stdin": "world\n"})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["status"] == "ok", doc
    assert doc["run"]["stdout"] == "hello world\n"
    listed = {lang["name"]: lang for lang in
              (await client.get("/v1/languages")).json()["languages"]}
    assert doc["version"] and doc["version"] == listed[language]["version"]
