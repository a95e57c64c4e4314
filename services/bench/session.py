"""A benchmark run and a replay, start to files: manifest, record, run, baseline, reports.

Files written under the run's folder (``--out``, default ``bench-results/<run-id>/``):
``manifest.json``, ``samples.jsonl`` (one Sample per line), ``baseline-samples.jsonl``
(when a baseline ran), ``replay.json`` (replays: the output check), ``report.json``
(see figures.py for its fields) and ``report.html``.
"""

from __future__ import annotations

import logging
import secrets
import sys
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any

import orjson
from runstream.services.bench import _facts
from runstream.services.bench.figures import build_report
from runstream.services.bench.html import render
from runstream.services.bench.progress import Progress, live
from runstream.services.bench.recording import Recorder, read_recording, replays_of, topic_for
from runstream.services.bench.replay_check import check_outputs, replay_jobs
from runstream.services.bench.runner import Job, Runner, job_from_plan, with_target
from runstream.services.bench.sample import Sample
from runstream.services.bench.schedule import LoadModel, open_loop_offsets
from runstream.services.bench.targets import create_target
from runstream.services.bench.workload import Workload, generate
from runstream.services.settings import Settings

log = logging.getLogger(__name__)
# Relative to the working directory; gitignored.
RESULTS_DIR = "bench-results"


@dataclass
class Options:
    """What a run does, from the command line."""

    target: str = "http"
    url: str | None = None
    slots: int | None = None
    baseline: str | None = None
    record: bool = True
    out: Path | None = None
    run_id: str | None = None
    progress: bool = True
    max_in_flight: int = 2000
    drain_timeout_s: float = 120.0
    argv: list[str] = field(default_factory=list)


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


def out_dir(settings: Settings, opts: Options, run_id: str) -> Path:
    return opts.out or Path(RESULTS_DIR) / run_id


def manifest_for(settings: Settings, opts: Options, run_id: str, workload: Workload,
                 load: LoadModel, target: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """What the run was: workload, seed, load, settings, code revision, machine."""
    return {
        "schema": "runstream.bench.manifest.v1", "run_id": run_id,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "target": opts.target, "target_detail": target, "baseline": opts.baseline,
        "workload": {"name": workload.name, "source": workload.source_path,
                     "description": workload.description, "seed": load.seed,
                     "programs": {p.name: {"language": p.language, "weight": p.weight,
                                           "compare": p.compare,
                                           "expect_status": p.expect_status,
                                           "expect_stdout": p.expect_stdout}
                                  for p in workload.programs}},
        "load": load.as_dict(),
        "settings": {"bootstrap_servers": settings.bootstrap_servers,
                     "requests_topic": settings.requests_topic,
                     "sandbox_backend": settings.sandbox_backend,
                     "client_worker_concurrency": settings.worker_concurrency},
        "recording_topic": topic_for(settings, run_id) if opts.record else None,
        "git": _facts.git_revision(), "machine": _facts.machine(),
        "argv": opts.argv, "replay_of": None, **extra,
    }


async def _execute(settings: Settings, opts: Options, run_id: str, kind: str,
                   jobs: list[Job] | None, closed: Any, load: LoadModel,
                   manifest: dict[str, Any] | None) -> list[Sample]:
    """Run ``jobs`` (open loop) or the ``closed`` job iterator against target ``kind``."""
    target = create_target(kind, settings, url=opts.url, slots=opts.slots, run_id=run_id)
    recorder = Recorder(settings, run_id) if manifest is not None and opts.record else None
    runner = Runner(target, warmup_s=load.warmup_s, recorder=recorder,
                    max_in_flight=opts.max_in_flight, drain_timeout_s=opts.drain_timeout_s)
    progress = Progress(runner, f"{run_id} → {kind}", len(jobs) if jobs is not None
                        else load.requests, load.duration_s)
    if recorder is not None and manifest is not None:
        manifest["target_detail"] = target.describe()
        await recorder.start(manifest)

    async def body() -> list[Sample]:
        async with live(progress, opts.progress):
            if jobs is not None:
                return await runner.open_loop(jobs)
            return await runner.closed_loop(closed, load)

    try:
        samples = await with_target(target, body)
    finally:
        if recorder is not None:
            await recorder.close(runner.sent)
    return sorted(samples, key=lambda s: s.seq)


def _jobs(workload: Workload, run_id: str, load: LoadModel) -> tuple[list[Job] | None, Any]:
    plans = generate(workload, run_id, load.seed)
    if load.model == "open":
        offsets = open_loop_offsets(load)
        return [job_from_plan(p, workload, t) for p, t in zip(plans, offsets, strict=False)], None
    return None, (job_from_plan(p, workload, None) for p in islice(plans, load.request_bound))


async def run(settings: Settings, workload: Workload, load: LoadModel,
              opts: Options) -> tuple[dict[str, Any], Path]:
    """``runstream bench run``: the target, then the baseline if any; write the files."""
    run_id = opts.run_id or new_run_id()
    folder = out_dir(settings, opts, run_id)
    manifest = manifest_for(settings, opts, run_id, workload, load, {"name": opts.target})
    jobs, closed = _jobs(workload, run_id, load)
    samples = await _execute(settings, opts, run_id, opts.target, jobs, closed, load, manifest)
    baseline = None
    if opts.baseline:
        # The same sequence; ids suffixed so that an http/kafka baseline is not answered
        # from the idempotency cache of the first pass.
        bjobs, bclosed = _jobs(workload, run_id, load)
        if bjobs is not None:
            bjobs = [replace(j, payload={**j.payload, "id": f"{j.payload['id']}-b"})
                     for j in bjobs]
        else:
            bclosed = (replace(j, payload={**j.payload, "id": f"{j.payload['id']}-b"})
                       for j in bclosed)
        baseline = await _execute(settings, opts, run_id, opts.baseline, bjobs, bclosed, load,
                                  None)
    report = build_report(samples, manifest=manifest, baseline=baseline)
    write(folder, manifest, samples, baseline, report, None)
    return report, folder


async def replay(settings: Settings, original: str, opts: Options) -> tuple[dict[str, Any], Path]:
    """``runstream bench replay RUN``: the recorded requests, same timing, fresh ids."""
    rec = await read_recording(settings, original)
    if not rec.requests:
        raise SystemExit(f"the recording of {original} has no requests")
    n = await replays_of(settings, original) + 1
    run_id = opts.run_id or f"{original}-r{n}"
    folder = out_dir(settings, opts, run_id)
    load = LoadModel(**{**rec.manifest.get("load", {}), "model": "open"})
    jobs, payloads_match = replay_jobs(rec, n)
    manifest = {**rec.manifest, "run_id": run_id, "target": opts.target, "baseline": None,
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
                "git": _facts.git_revision(), "machine": _facts.machine(), "argv": opts.argv,
                "replay_of": original, "replay_n": n,
                "recording_topic": topic_for(settings, run_id) if opts.record else None}
    samples = await _execute(settings, opts, run_id, opts.target, jobs, None, load, manifest)
    check = check_outputs(rec, samples, payloads_match)
    report = build_report(samples, manifest=manifest, replay=check)
    write(folder, manifest, samples, None, report, check)
    return report, folder


def write(folder: Path, manifest: dict[str, Any], samples: list[Sample],
          baseline: list[Sample] | None, report: dict[str, Any],
          check: dict[str, Any] | None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    opt = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS
    (folder / "manifest.json").write_bytes(orjson.dumps(manifest, option=opt))
    (folder / "samples.jsonl").write_bytes(b"".join(orjson.dumps(s.as_dict()) + b"\n"
                                                    for s in samples))
    if baseline is not None:
        (folder / "baseline-samples.jsonl").write_bytes(
            b"".join(orjson.dumps(s.as_dict()) + b"\n" for s in baseline))
    if check is not None:
        (folder / "replay.json").write_bytes(orjson.dumps(check, option=opt))
    (folder / "report.json").write_bytes(orjson.dumps(report, option=opt))
    (folder / "report.html").write_text(render(report), encoding="utf-8")


def _read_samples(path: Path) -> list[Sample]:
    return [Sample.from_dict(orjson.loads(line)) for line in path.read_bytes().splitlines()
            if line.strip()]


def rebuild(folder: Path) -> dict[str, Any]:
    """``runstream bench report``: the report files again, from the run's samples."""
    manifest = orjson.loads((folder / "manifest.json").read_bytes())
    samples = _read_samples(folder / "samples.jsonl")
    base_path = folder / "baseline-samples.jsonl"
    baseline = _read_samples(base_path) if base_path.exists() else None
    check_path = folder / "replay.json"
    check = orjson.loads(check_path.read_bytes()) if check_path.exists() else None
    report = build_report(samples, manifest=manifest, baseline=baseline, replay=check)
    write(folder, manifest, samples, baseline, report, check)
    return report


def resolve_run(settings: Settings, name: str) -> Path:
    """A run's folder from a path or a run id under the results folder."""
    path = Path(name)
    if (path / "report.json").exists() or (path / "manifest.json").exists():
        return path
    if path.name == "report.json" and path.exists():
        return path.parent
    candidate = Path(RESULTS_DIR) / name
    if candidate.exists():
        return candidate
    print(f"no run {name!r} (looked in {path} and {candidate})", file=sys.stderr)
    raise SystemExit(2)
