"""Report figures, replay checks and the HTML from known samples (no I/O)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from runstream.services.bench.figures import build_report
from runstream.services.bench.html import render
from runstream.services.bench.replay_check import check_outputs, replay_jobs
from runstream.services.bench.sample import Sample, apply_result, check_expectation

RESULT = {"id": "x", "status": "ok", "run": {"stdout": "hi\n", "wall_ms": 30},
          "compile": {"stdout": "", "wall_ms": 20},
          "timestamps": {"enqueued": "2026-01-01T00:00:00.000Z",
                         "started": "2026-01-01T00:00:00.050Z",
                         "finished": "2026-01-01T00:00:00.110Z"}}


def sample(seq: int, intended: float, done: float | None, **kw: object) -> Sample:
    s = Sample(seq=seq, id=f"r-{seq}", program=str(kw.pop("program", "p")),
               language=str(kw.pop("language", "python")), payload_sha256=f"h{seq}",
               intended_s=intended, sent_s=intended, **kw)  # type: ignore[arg-type]
    if done is not None:
        apply_result(s, RESULT, done)
    return s


def test_split_of_the_time_from_the_result() -> None:
    s = sample(0, 1.0, 1.2)
    assert s.queue_ms == pytest.approx(50) and s.sandbox_ms == pytest.approx(50)
    assert s.overhead_ms == pytest.approx(100)  # 200 ms service - 50 queue - 50 sandbox
    assert check_expectation(RESULT, "ok", "hi  \n\n") is None
    assert check_expectation(RESULT, "runtime_error", None) == "status ok, expected runtime_error"
    assert check_expectation(RESULT, None, "ho") == "stdout differs from expect_stdout"


def test_report_figures_from_known_samples() -> None:
    # Warm-up 1 s; ten measured answers of 100..1000 ms latency, one error.
    samples = [sample(0, 0.5, 0.6, warmup=True)]
    samples += [sample(i, 1.0 + i * 0.1, 1.0 + i * 0.1 + i / 10, language="c" if i % 2
                       else "python") for i in range(1, 11)]
    samples.append(Sample(seq=11, id="r-11", program="p", language="python",
                          payload_sha256="h11", intended_s=2.5, sent_s=2.5, done_s=2.6,
                          error="http 503"))
    manifest = {"run_id": "R", "target": "http", "workload": {"name": "w"},
                "load": {"warmup_s": 1.0}}
    r = build_report(samples, manifest=manifest)
    assert r["requests"] == {"planned": 12, "warmup": 1, "measured": 11, "completed": 10,
                             "errors": 1}
    assert r["errors"] == {"http 503": 1}
    assert r["verdicts"] == {"ok": 10}
    assert r["latency_ms"]["p50"] == pytest.approx(500, rel=1e-3)
    assert r["latency_ms"]["max"] == pytest.approx(1000, rel=1e-3)
    last = 1.0 + 10 * 0.1 + 1.0
    assert r["window_s"] == pytest.approx(last - 1.0)
    assert r["throughput_rps"] == pytest.approx(10 / (last - 1.0), rel=1e-3)
    assert set(r["per_language"]) == {"c", "python"}
    assert sum(row["completed"] for row in r["timeline"]) == 11  # warm-up answer included
    assert r["split_ms"]["mean_share"]["queue"] == pytest.approx(
        50 / (50 + 50 + r["split_ms"]["overhead"]["mean"]), rel=1e-3)
    html = render(r)
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "<script" not in html and "<link" not in html
    for chunk in html.split("<svg")[1:]:
        ET.fromstring("<svg" + chunk.split("</svg>")[0] + "</svg>")  # well-formed


class Rec:
    def __init__(self) -> None:
        self.manifest = {"run_id": "R", "workload": {"programs": {
            "p": {"compare": "stdout"}, "q": {"compare": "status"}}}}
        self.requests = [{"seq": i, "id": f"R-{i:06d}", "program": "p" if i else "q",
                          "language": "python", "offset_s": i * 0.5,
                          "payload": {"id": f"R-{i:06d}", "language": "python",
                                      "source": f"print({i})"}} for i in range(3)]
        from runstream.services.bench.workload import payload_hash

        for r in self.requests:
            r["sha256"] = payload_hash(r["payload"])
        self.outcomes = {i: {"seq": i, "status": "ok", "stdout_sha256": f"o{i}",
                             "error": None} for i in range(3)}


def test_replay_jobs_get_fresh_ids_same_payloads_and_timing() -> None:
    jobs, match = replay_jobs(Rec(), 2)
    assert match
    assert [j.payload["id"] for j in jobs] == [f"R-{i:06d}-r2" for i in range(3)]
    assert [j.intended_s for j in jobs] == [0.0, 0.5, 1.0]
    rec = Rec()
    rec.requests[1]["sha256"] = "tampered"
    assert not replay_jobs(rec, 1)[1]


def test_output_mismatches_are_flagged() -> None:
    rec = Rec()
    jobs, match = replay_jobs(rec, 1)
    samples = []
    for j, status, out in zip(jobs, ("ok", "ok", "runtime_error"), ("x", "o1", "o2"),
                              strict=True):
        s = Sample(seq=j.seq, id=str(j.payload["id"]), program=j.program, language="python",
                   payload_sha256=j.payload_sha256, intended_s=j.intended_s or 0.0,
                   done_s=1.0, status=status, stdout_sha256=out)
        samples.append(s)
    check = check_outputs(rec, samples, match)
    assert check["payloads_match"] and check["compared"] == 3
    # seq 0 compares status only (its stdout differs but is not compared); seq 2's verdict changed.
    assert check["output_mismatches"] == 1
    assert check["mismatch_examples"][0]["why"] == "status runtime_error, recorded ok"
    samples[1].stdout_sha256 = "changed"
    assert check_outputs(rec, samples, match)["output_mismatches"] == 2
