"""Record a short braindrill run through the real pipeline (HTTP), replay it over Kafka.

The replay must issue the same payloads in the same order (fresh ids), get the
same verdicts and outputs, and `compare` must give a verdict for every figure.
"""

from __future__ import annotations

import uuid

import orjson
import pytest
from runstream.services.bench.recording import read_recording
from runstream.services.bench.workload import payload_hash
from runstream.services.errors import ConfigurationError

from tests.integration.conftest import Bench

pytestmark = [pytest.mark.kafka, pytest.mark.sandbox, pytest.mark.timeout(600)]


async def test_record_replay_compare(bench: Bench) -> None:
    run_id = f"it-{uuid.uuid4().hex[:6]}"
    run_dir, replay_dir, cmp_dir = (bench.out / n for n in ("run", "replay", "cmp"))
    code = await bench("run", "braindrill", "--target", "http", "--url", bench.url,
                       "--rate", "6", "--duration", "4", "--warmup", "1", "--run-id", run_id,
                       "--out", str(run_dir), "--no-progress")
    assert code == 0
    report = orjson.loads((run_dir / "report.json").read_bytes())
    assert report["requests"]["planned"] == 24 and report["requests"]["errors"] == 0
    assert report["unexpected"]["count"] == 0, report["unexpected"]
    assert report["latency_ms"]["count"] == report["requests"]["completed"] > 0
    assert set(report["split_ms"]) >= {"queue", "sandbox", "overhead"}
    assert (run_dir / "report.html").read_text().count("<svg") >= 4
    assert (run_dir / "manifest.json").exists()

    # Replayed over Kafka straight onto the requests topic, with a reply topic of its own.
    code = await bench("replay", run_id, "--target", "kafka", "--out", str(replay_dir),
                       "--no-progress")
    again = orjson.loads((replay_dir / "report.json").read_bytes())
    assert again["replay"]["payloads_match"], again["replay"]
    assert again["replay"]["output_mismatches"] == 0, again["replay"]
    assert again["replay"]["compared"] == 24
    assert again["sequence_sha256"] == report["sequence_sha256"]
    assert code == 0

    # Both recordings on Kafka: same payload hashes in the same order, replay ids derived.
    original = await read_recording(bench.settings, run_id)
    replayed = await read_recording(bench.settings, f"{run_id}-r1")
    assert original.complete and replayed.complete
    assert [r["sha256"] for r in original.requests] == [r["sha256"] for r in replayed.requests]
    assert [payload_hash(r["payload"]) for r in replayed.requests] == [
        r["sha256"] for r in original.requests]
    assert [r["id"] for r in replayed.requests] == [f"{r['id']}-r1" for r in original.requests]
    assert original.manifest["workload"]["name"] == "braindrill"

    assert await bench("compare", str(run_dir), str(replay_dir), "--out", str(cmp_dir)) == 0
    rows = orjson.loads((cmp_dir / "compare.json").read_bytes())["rows"]
    verdicts = {r["figure"]: r["verdict"] for r in rows}
    assert {"throughput_rps", "latency_p50_ms", "latency_p99_ms", "latency_p999_ms",
            "latency_max_ms"} <= set(verdicts)
    assert set(verdicts.values()) <= {"faster", "slower", "same", "better", "worse", "n/a"}
    assert verdicts["same_request_sequence"] == "same"
    assert verdicts["replay_output_mismatches"] == "same"


async def test_a_run_id_cannot_be_recorded_twice(bench: Bench) -> None:
    """A second run under the same id would append to the first one's recording."""
    run_id = f"it-{uuid.uuid4().hex[:6]}"
    args = ("run", "hello", "--target", "http", "--url", bench.url, "--rate", "4",
            "--duration", "1", "--warmup", "0", "--run-id", run_id, "--no-progress")
    assert await bench(*args, "--out", str(bench.out / "first")) == 0
    with pytest.raises(ConfigurationError, match="already recorded"):
        await bench(*args, "--out", str(bench.out / "second"))
