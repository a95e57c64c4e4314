"""The compile cache through the pipeline: a re-submitted source is a hit on its worker."""

from __future__ import annotations

import uuid
from collections import Counter

import httpx
import pytest
from runstream.schemas.codec import validate_result_doc

from tests.system import System

pytestmark = [pytest.mark.kafka, pytest.mark.sandbox]


async def test_the_same_c_source_compiles_once_per_worker(client: httpx.AsyncClient,
                                                          system: System) -> None:
    # A source no other test sends: its first compile on each worker is a miss.
    source = (f"/* {uuid.uuid4()} */\n#include <stdio.h>\n#warning \"kept\"\n"
              "int main(void) { int n; scanf(\"%d\", &n); printf(\"%d\\n\", n + 1); }\n")
    seen: Counter[tuple[str, str]] = Counter()
    stderr = set()
    for n in range(6):
        r = await client.post("/v1/executions", json={"language": "c", "source": source,
                                                      "stdin": str(n)})
        assert r.status_code == 200, r.text
        doc = r.json()
        validate_result_doc(doc)
        assert doc["status"] == "ok" and doc["run"]["stdout"] == f"{n + 1}\n", doc
        seen[(doc["worker"], doc["compile"]["cache"])] += 1
        stderr.add(doc["compile"]["stderr"])
    # One miss at most per worker (a worker restarted by another test misses again).
    workers = {worker for worker, _ in seen}
    assert all(seen[(w, "miss")] <= 1 for w in workers), seen
    assert len(workers) <= len(system.workers) < 6, seen
    assert sum(seen[(w, "hit")] for w in workers) == 6 - sum(seen[(w, "miss")] for w in workers)
    # A hit tells the compiler's warning as the miss did.
    assert len(stderr) == 1 and "kept" in stderr.pop()
