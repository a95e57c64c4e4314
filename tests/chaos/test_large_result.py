"""Chaos: a result larger than a Kafka message (issue 7, item 3).

8 tests, each writing 1 MiB of ``\\x01`` to stdout and 1 MiB to stderr: the result
must be trimmed to fit (``*_truncated`` flags set), never ``internal_error``, and no
``internal_error`` may follow a good result on the results topic.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from runstream.services.settings import Settings

from tests.chaos._harness import HttpClients, KafkaDirect, Ledger, poll_until, read_results
from tests.system import System

pytestmark = [pytest.mark.kafka, pytest.mark.sandbox]

LARGE = ("import sys\n"
         "sys.stdout.write('\\x01' * 1048576)\n"
         "sys.stderr.write('\\x01' * 1048576)\n")
BODY: dict[str, Any] = {"language": "python", "source": LARGE,
                        "tests": [{"stdin": "", "expected_output": "x"}] * 8}


def _check(doc: dict[str, Any], limit: int) -> None:
    assert doc["status"] != "internal_error", doc.get("message")
    assert len(doc.get("tests") or []) == 8, doc.get("message")
    runs = [t["run"] for t in doc["tests"]]
    assert any(r.get("stdout_truncated") for r in runs), "no stdout_truncated flag"
    assert any(r.get("stderr_truncated") for r in runs), "no stderr_truncated flag"
    assert len(str(doc)) < limit * 2  # sanity: trimmed, not the 96 MiB of escaped bytes


async def test_large_result_is_trimmed_not_internal_error(
        chaos_system: System, ledger: Callable[[str], Ledger]) -> None:
    book = ledger("large result: 8 tests x 2 MiB output (7.3)")
    settings = Settings.from_env(chaos_system.env)
    http = HttpClients(chaos_system, book, wait_s=30, deadline_s=60)
    kafka = KafkaDirect(chaos_system, book, deadline_s=60)
    await kafka.start()
    try:
        tag = uuid.uuid4().hex[:6]
        book.fault_begins()
        sent = await kafka.send(f"large-k-{tag}", BODY)
        answers = await asyncio.gather(*(http.run(f"large-h{n}-{tag}", BODY, first=n)
                                         for n in range(2)))
        assert sent is not None
        await poll_until(lambda: sent.answered, 60)
        # Nothing behind the large ones stalls.
        after = await asyncio.gather(*(http.run(
            f"after-{n}-{tag}", {"language": "python", "source": f"print({n})"},
            expect_stdout=f"{n}\n", first=n) for n in range(4)))
        book.fault_ends()
        await http.verify()
        book.assert_promise()
        for t in [*answers, sent]:
            _check(t.answers[0][1], settings.message_max_bytes)
        assert all(t.answered for t in after)
        ids = [t.id for t in (*answers, sent)]
        found = await read_results(kafka.bootstrap, kafka.results_topic,
                                   settings.results_partitions, ids, 10)
        overwritten = {i: [d["status"] for d in docs] for i, docs in found.items()
                       if "internal_error" in [d["status"] for d in docs]}
        assert not overwritten, f"internal_error on the results topic: {overwritten}"
        book.note(f"answered in {max(t.answers[0][0] - t.sent for t in answers):.1f}s; "
                  f"statuses {sorted({t.answers[0][1]['status'] for t in answers})}")
    finally:
        book.fault_end = book.fault_end or time.monotonic()
        await kafka.stop()
        await http.close()
