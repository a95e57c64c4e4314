"""The ``lang`` bench target's pure parts and the simulator's per-minute figures."""

from __future__ import annotations

import pytest
from runstream.services.bench.figures import per_minute, simulator_percentile
from runstream.services.bench.lang_target import code_of, result_of
from runstream.services.bench.sample import Sample
from runstream.services.bench.target import TargetError
from runstream.services.bench.targets import TARGETS


def sample(seq: int, sent: float, done: float | None, error: str | None = None) -> Sample:
    return Sample(seq=seq, id=str(seq), program="p", language="python", payload_sha256="",
                  intended_s=sent, sent_s=sent, done_s=done, status="ok", error=error)


def test_lang_is_a_target() -> None:
    assert "lang" in TARGETS


def test_the_body_is_the_raw_source() -> None:
    assert code_of({"language": "python", "source": "print(1)"}) == "print(1)"
    assert code_of({"language": "c", "files": [{"name": "m.c", "content": "int x;"}]}) == "int x;"


@pytest.mark.parametrize("extra", [{"stdin": "1"}, {"args": ["a"]},
                                   {"tests": [{"stdin": "", "expected_output": ""}]},
                                   {"files": [{"content": "a"}, {"content": "b"}]}])
def test_what_lang_cannot_say_is_an_error(extra: dict[str, object]) -> None:
    with pytest.raises(TargetError) as e:
        code_of({"language": "python", "source": "x", **extra})
    assert e.value.kind == "not expressible at /lang"


def test_the_verdict_comes_from_the_header() -> None:
    doc = result_of({"id": "mine", "language": "python"},
                    {"x-runstream-status": "time_limit_exceeded", "x-runstream-id": "srv"},
                    b"The process was aborted because it exceeded the timeout")
    assert doc["status"] == "time_limit_exceeded" and doc["id"] == "srv"
    assert doc["run"]["stdout"].startswith("The process was aborted")


def test_simulator_percentile_is_its_nearest_rank() -> None:
    data = [float(x) for x in range(1, 11)]  # 1..10
    assert simulator_percentile(data, 50) == 5
    assert simulator_percentile(data, 90) == 9
    assert simulator_percentile(data, 99) == 10
    assert simulator_percentile([], 50) == 0


def test_per_minute_rows() -> None:
    samples = [sample(0, 1.0, 1.1), sample(1, 2.0, 2.3), sample(2, 59.0, None, "timeout"),
               sample(3, 61.0, 61.05)]
    rows = per_minute(samples)
    assert [r["minute"] for r in rows] == [1, 2]
    first, second = rows
    assert (first["requests"], first["errors"], first["seconds"]) == (2, 1, 60.0)
    assert first["mean_ms"] == 200 and first["p50_ms"] == 100 and first["p99_ms"] == 300
    assert (second["requests"], second["errors"]) == (1, 0)
    assert second["seconds"] == pytest.approx(1.05, abs=0.1)
