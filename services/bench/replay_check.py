"""Replay: rebuild a recorded run's jobs with fresh ids, then check its outputs (pure).

A replayed request is the recorded payload with the id ``<orig-id>-r<n>``
(ids are idempotency keys: reusing one would be answered from a cache, not
run). ``payloads_match`` holds when every rebuilt payload has the recorded
hash (payload modulo id) and the sequence numbers are 0..N-1 in order. Each
answer is then compared with the recorded outcome of the same request: the
verdict always, the stdout hash too unless the program says ``compare =
"status"`` (outputs cut by a time limit depend on timing).
"""

from __future__ import annotations

from typing import Any, Protocol

from runstream.services.bench.runner import Job
from runstream.services.bench.sample import Sample
from runstream.services.bench.workload import payload_hash, replay_id, sequence_hash

MAX_EXAMPLES = 20


class RecordingLike(Protocol):
    manifest: dict[str, Any]
    requests: list[dict[str, Any]]
    outcomes: dict[int, dict[str, Any]]


def replay_jobs(rec: RecordingLike, n: int) -> tuple[list[Job], bool]:
    """The jobs of replay number ``n``, and whether their payloads match the recording."""
    programs = rec.manifest.get("workload", {}).get("programs", {})
    jobs: list[Job] = []
    match = [r["seq"] for r in rec.requests] == list(range(len(rec.requests)))
    for r in rec.requests:
        payload = {**r["payload"], "id": replay_id(r["id"], n)}
        digest = payload_hash(payload)
        match = match and digest == r["sha256"]
        expect = programs.get(r["program"], {})
        jobs.append(Job(seq=r["seq"], program=r["program"], language=r["language"],
                        payload=payload, intended_s=float(r["offset_s"]),
                        expect_status=expect.get("expect_status"),
                        expect_stdout=expect.get("expect_stdout"), payload_sha256=digest))
    return jobs, match


def check_outputs(rec: RecordingLike, samples: list[Sample], payloads_match: bool
                  ) -> dict[str, Any]:
    """Compare each replayed answer with the recorded one; the ``replay`` block of the report."""
    programs = rec.manifest.get("workload", {}).get("programs", {})
    recorded_hashes = [r["sha256"] for r in rec.requests]
    mismatches: list[dict[str, Any]] = []
    compared = not_compared = 0
    for s in sorted(samples, key=lambda s: s.seq):
        before = rec.outcomes.get(s.seq)
        if before is None or before.get("error") or not s.completed:
            not_compared += 1
            continue
        compared += 1
        why = None
        if before.get("status") != s.status:
            why = f"status {s.status}, recorded {before.get('status')}"
        elif (programs.get(s.program, {}).get("compare", "stdout") == "stdout"
              and before.get("stdout_sha256") != s.stdout_sha256):
            why = "stdout differs from the recorded run"
        if why:
            mismatches.append({"seq": s.seq, "id": s.id, "program": s.program, "why": why})
    return {
        "of": rec.manifest.get("run_id"),
        "payloads_match": payloads_match and sequence_hash(recorded_hashes) == sequence_hash(
            [s.payload_sha256 for s in sorted(samples, key=lambda s: s.seq)]),
        "recorded_sequence_sha256": sequence_hash(recorded_hashes),
        "compared": compared, "not_compared": not_compared,
        "output_mismatches": len(mismatches), "mismatch_examples": mismatches[:MAX_EXAMPLES],
    }
