"""Workloads: a named, weighted mix of programs in a TOML file, and its deterministic sequence.

A workload file (``services/bench/workloads/*.toml``, or any path)::

    name = "braindrill"
    description = "..."
    seed = 160                      # default seed; the CLI may override it
    [load]                          # defaults of the load model (see schedule.py)
    model = "open"                  # open | closed
    arrival = "fixed"               # fixed | poisson (open loop)
    rate = 6.25                     # requests per second (open loop)
    clients = 4                     # concurrent clients (closed loop)
    duration_s = 30
    warmup_s = 5
    [limits]                        # request limits applied to every program
    wall_ms = 2000
    [[programs]]
    name = "instant"
    language = "python"
    weight = 1
    source = "print('hello world')"
    stdin = ""                      # optional
    expect_status = "ok"            # optional: checked by the client
    expect_stdout = "hello world"   # optional: checked judge-style (trailing blanks ignored)
    compare = "stdout"              # replay checks status and stdout (default) or "status" only
    limits = { wall_ms = 1000 }     # optional, over the workload's
    tests = [{ stdin = "1", expected_output = "2", points = 1 }]  # optional, as the request's
    checker = "tokens"              # optional: checker, interactor, stop_on_failure travel
                                    # as the request's (docs/judging.md)

``{{seed}}`` in a program's source or stdin is replaced by a per-request integer
drawn from the workload's generator, so programs that use randomness are
deterministic given their source: the same file and seed always yield the same
sequence of payloads, and each payload's output can be compared on replay.

Pure: no I/O besides reading the TOML file.
"""

from __future__ import annotations

import hashlib
import random
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import orjson

SEED_TOKEN = "{{seed}}"
LIMIT_KEYS = ("wall_ms", "cpu_ms", "memory_mb", "processes", "output_kb", "file_size_kb")
#: A program's keys that go into its request as they are (the request schema checks them).
JUDGING_KEYS = ("tests", "checker", "interactor", "stop_on_failure")


class WorkloadError(ValueError):
    """A workload file that cannot be used, with the reason."""


@dataclass(frozen=True)
class Program:
    """One program of a mix, with its weight and what its run is expected to give."""

    name: str
    language: str
    source: str
    weight: float = 1.0
    stdin: str = ""
    expect_status: str | None = None
    expect_stdout: str | None = None
    compare: str = "stdout"
    limits: Mapping[str, int] = field(default_factory=dict)
    #: Tests and judging fields of the request (JUDGING_KEYS), as the TOML gives them.
    judging: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Workload:
    """A named mix of programs, its default seed and its default load model."""

    name: str
    programs: tuple[Program, ...]
    seed: int = 0
    description: str = ""
    load: Mapping[str, Any] = field(default_factory=dict)
    source_path: str = ""

    def program(self, name: str) -> Program:
        for p in self.programs:
            if p.name == name:
                return p
        raise KeyError(name)


@dataclass(frozen=True)
class Planned:
    """One request of the sequence: its place, its program and its payload (with id)."""

    seq: int
    program: str
    payload: dict[str, Any]

    @property
    def id(self) -> str:
        return str(self.payload["id"])


def builtin_names() -> list[str]:
    """Names of the workloads shipped with runstream."""
    folder = resources.files(__package__).joinpath("workloads")
    return sorted(p.name.removesuffix(".toml") for p in folder.iterdir()
                  if p.name.endswith(".toml"))


def load_workload(name_or_path: str) -> Workload:
    """A shipped workload by name (``braindrill``) or a TOML file by path."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise WorkloadError(f"cannot read workload {name_or_path}: {e}") from e
        return parse_workload(text, source=str(path))
    if name_or_path not in builtin_names():
        raise WorkloadError(f"no workload {name_or_path!r}; shipped: {', '.join(builtin_names())}")
    res = resources.files(__package__).joinpath("workloads", f"{name_or_path}.toml")
    return parse_workload(res.read_text(encoding="utf-8"), source=f"builtin:{name_or_path}")


def parse_workload(text: str, source: str = "") -> Workload:
    """Parse and check a workload document."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise WorkloadError(f"{source}: not valid TOML: {e}") from e
    name = doc.get("name")
    if not isinstance(name, str) or not name:
        raise WorkloadError(f"{source}: 'name' is required")
    common = _limits(doc.get("limits", {}), f"{source}: limits")
    programs = []
    for i, p in enumerate(doc.get("programs", [])):
        where = f"{source}: programs[{i}]"
        for key in ("name", "language", "source"):
            if not isinstance(p.get(key), str) or not p[key]:
                raise WorkloadError(f"{where}: '{key}' is required")
        weight = float(p.get("weight", 1.0))
        if weight <= 0:
            raise WorkloadError(f"{where}: weight must be positive")
        compare = p.get("compare", "stdout")
        if compare not in ("stdout", "status"):
            raise WorkloadError(f"{where}: compare must be 'stdout' or 'status'")
        programs.append(Program(
            name=p["name"], language=p["language"], source=p["source"], weight=weight,
            stdin=p.get("stdin", ""), expect_status=p.get("expect_status"),
            expect_stdout=p.get("expect_stdout"), compare=compare,
            limits={**common, **_limits(p.get("limits", {}), f"{where}.limits")},
            judging={k: p[k] for k in JUDGING_KEYS if k in p}))
    if not programs:
        raise WorkloadError(f"{source}: a workload needs at least one [[programs]]")
    if len({p.name for p in programs}) != len(programs):
        raise WorkloadError(f"{source}: two programs have the same name")
    return Workload(name=name, programs=tuple(programs), seed=int(doc.get("seed", 0)),
                    description=doc.get("description", ""), load=dict(doc.get("load", {})),
                    source_path=source)


def _limits(raw: Mapping[str, Any], where: str) -> dict[str, int]:
    unknown = set(raw) - set(LIMIT_KEYS)
    if unknown:
        raise WorkloadError(f"{where}: unknown limits {sorted(unknown)}")
    return {k: int(v) for k, v in raw.items()}


def request_id(run_id: str, seq: int) -> str:
    """The id of request ``seq`` of run ``run_id`` (a valid execution id)."""
    return f"{run_id}-{seq:06d}"


def replay_id(original_id: str, replay_n: int) -> str:
    """The fresh id of a replayed request: ids are idempotency keys, so never reuse one."""
    return f"{original_id}-r{replay_n}"


def generate(workload: Workload, run_id: str, seed: int | None = None) -> Iterator[Planned]:
    """The endless, deterministic sequence of requests of ``workload`` under ``seed``.

    Two calls with the same workload and seed yield the same payloads in the
    same order (only the ids, which embed ``run_id``, differ).
    """
    seed = workload.seed if seed is None else seed
    rng = random.Random(f"{workload.name}:{seed}")
    programs = list(workload.programs)
    weights = [p.weight for p in programs]
    seq = 0
    while True:
        program = rng.choices(programs, weights)[0]
        program_seed = rng.randrange(2**31)  # drawn always, so sequences stay aligned
        yield Planned(seq, program.name, payload_for(program, request_id(run_id, seq),
                                                     program_seed))
        seq += 1


def payload_for(program: Program, exec_id: str, program_seed: int) -> dict[str, Any]:
    """The request document (schema runstream.request.v1) of one run of ``program``."""
    doc: dict[str, Any] = {
        "id": exec_id,
        "language": program.language,
        "source": program.source.replace(SEED_TOKEN, str(program_seed)),
    }
    if program.stdin:
        doc["stdin"] = program.stdin.replace(SEED_TOKEN, str(program_seed))
    if program.limits:
        doc["limits"] = dict(program.limits)
    doc.update(program.judging)
    return doc


def payload_hash(payload: Mapping[str, Any]) -> str:
    """SHA-256 of the payload without its id (canonical JSON, sorted keys)."""
    body = {k: v for k, v in payload.items() if k != "id"}
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def sequence_hash(hashes: list[str]) -> str:
    """One digest of an ordered list of payload hashes: same payloads, same order."""
    return hashlib.sha256("\n".join(hashes).encode()).hexdigest()
