"""One request's measurement, and what a result document tells about where its time went (pure).

Times of a sample are offsets in seconds from the start of the run, on the
client's monotonic clock. The split of the time between send and answer
comes from the result's timestamps (wall clock of the ingress and worker,
millisecond resolution, same host or NTP-synchronised hosts):

* ``queue_ms``: ``started - enqueued``, waiting in Kafka and for a free worker slot;
* ``sandbox_ms``: the sum of the phases' ``wall_ms`` (compile, run, each test);
* ``overhead_ms``: the rest of the service time (send to answer): HTTP, produce,
  consume, workspace set-up, reply, correlation. Never negative.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from runstream.services.bench.schedule import lag_ms, latency_ms


@dataclass
class Sample:
    """What happened to one request of a run."""

    seq: int
    id: str
    program: str
    language: str
    payload_sha256: str
    intended_s: float
    sent_s: float = 0.0
    done_s: float | None = None
    status: str | None = None
    error: str | None = None
    queue_ms: float | None = None
    sandbox_ms: float | None = None
    overhead_ms: float | None = None
    stdout_sha256: str | None = None
    unexpected: str | None = None
    warmup: bool = False

    @property
    def completed(self) -> bool:
        """Answered with a result (any verdict)."""
        return self.done_s is not None and self.error is None

    @property
    def latency_ms(self) -> float | None:
        return None if self.done_s is None else latency_ms(self.intended_s, self.done_s)

    @property
    def service_ms(self) -> float | None:
        return None if self.done_s is None else latency_ms(self.sent_s, self.done_s)

    @property
    def lag_ms(self) -> float:
        return lag_ms(self.intended_s, self.sent_s)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Sample:
        return cls(**{k: doc[k] for k in cls.__dataclass_fields__ if k in doc})


def _ts(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def phases(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The phases of a result document: compile, run, then each test's run."""
    out = [p for p in (result.get("compile"), result.get("run")) if isinstance(p, dict)]
    out += [t["run"] for t in result.get("tests") or () if isinstance(t.get("run"), dict)]
    return out


def stdout_of(result: dict[str, Any]) -> str:
    """The program's output: the run's stdout, or the tests' stdouts joined."""
    run = result.get("run")
    if isinstance(run, dict):
        return str(run.get("stdout", ""))
    return "\x00".join(str(t["run"].get("stdout", "")) for t in result.get("tests") or ()
                       if isinstance(t.get("run"), dict))


def stdout_hash(result: dict[str, Any]) -> str:
    return hashlib.sha256(stdout_of(result).encode("utf-8", "surrogatepass")).hexdigest()


def apply_result(sample: Sample, result: dict[str, Any], done_s: float) -> None:
    """Fill ``sample`` from a result document received at ``done_s``."""
    sample.done_s = done_s
    sample.status = str(result.get("status"))
    sample.stdout_sha256 = stdout_hash(result)
    stamps = result.get("timestamps") or {}
    enqueued, started = _ts(stamps.get("enqueued")), _ts(stamps.get("started"))
    walls = [float(p.get("wall_ms") or 0) for p in phases(result)]
    sample.sandbox_ms = sum(walls) if walls else None
    if enqueued is not None and started is not None:
        sample.queue_ms = max(0.0, (started - enqueued).total_seconds() * 1000.0)
    service = sample.service_ms or 0.0
    sample.overhead_ms = max(0.0, service - (sample.queue_ms or 0.0) - (sample.sandbox_ms or 0.0))


def normalise(text: str) -> str:
    """Output as judges compare it: trailing blanks of lines and trailing empty lines ignored."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines)


def check_expectation(result: dict[str, Any], expect_status: str | None,
                      expect_stdout: str | None) -> str | None:
    """Why the result is not what the workload expects, or None."""
    status = result.get("status")
    if expect_status is not None and status != expect_status:
        return f"status {status}, expected {expect_status}"
    if expect_stdout is not None and normalise(stdout_of(result)) != normalise(expect_stdout):
        return "stdout differs from expect_stdout"
    return None
