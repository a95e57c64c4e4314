"""Typed views of the wire contract (see request.v1.json and result.v1.json).

These are plain frozen dataclasses: no I/O, no Kafka, no sandbox. The codec
builds them from validated JSON and turns results back into JSON.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class Status(enum.StrEnum):
    """The closed set of verdicts a result can carry."""

    OK = "ok"
    WRONG_ANSWER = "wrong_answer"
    COMPILE_ERROR = "compile_error"
    RUNTIME_ERROR = "runtime_error"
    TIME_LIMIT_EXCEEDED = "time_limit_exceeded"
    MEMORY_LIMIT_EXCEEDED = "memory_limit_exceeded"
    OUTPUT_LIMIT_EXCEEDED = "output_limit_exceeded"
    #: A checker or interactor (docs/judging.md) said so: testlib's 2.
    PRESENTATION_ERROR = "presentation_error"
    #: A checker or interactor gave part of the test's points (testlib's 7).
    PARTIAL = "partial"
    #: A test not run because an earlier one failed and the request asked to stop there.
    SKIPPED = "skipped"
    EXPIRED = "expired"
    REJECTED = "rejected"
    INTERNAL_ERROR = "internal_error"


@dataclass(frozen=True, slots=True)
class SourceFile:
    """One file of the submission; ``name`` None means the language's entry name."""

    name: str | None
    content: bytes


#: The standard checkers (docs/judging.md); "lines" is the default.
CHECKER_KINDS = ("exact", "lines", "tokens", "floats", "unordered", "case_insensitive")


@dataclass(frozen=True, slots=True)
class StandardChecker:
    """How a test's output is compared with its expected output, without a program.

    ``abs_error`` and ``rel_error``: for ``floats``, a number is accepted when it is
    within either of them of the expected one.
    """

    kind: str = "lines"
    abs_error: float = 0.0
    rel_error: float = 0.0


@dataclass(frozen=True, slots=True)
class TestCase:
    """One input and its expected output; the program is compiled once for all."""

    __test__ = False  # not a pytest class, despite the name

    stdin: bytes
    expected_output: str | None
    name: str | None = None
    #: This test's standard checker, over the request's.
    checker: StandardChecker | None = None
    #: What passing the test is worth; None: the test is not scored.
    points: float | None = None
    #: The subtask the test belongs to: a group scores only if all its tests pass.
    group: str | None = None


@dataclass(frozen=True, slots=True)
class RequestedLimits:
    """Limits as the client asked for them; None means the server default."""

    wall_ms: int | None = None
    cpu_ms: int | None = None
    memory_mb: int | None = None
    processes: int | None = None
    output_kb: int | None = None
    file_size_kb: int | None = None


@dataclass(frozen=True, slots=True)
class Program:
    """A judge's own program (checker or interactor), compiled once per request."""

    language: str
    files: tuple[SourceFile, ...]
    version: str | None = None
    limits: RequestedLimits = field(default_factory=RequestedLimits)


@dataclass(frozen=True, slots=True)
class Limits:
    """Effective limits of one sandbox phase, after defaults and maxima."""

    wall_ms: int
    cpu_ms: int
    memory_mb: int
    processes: int
    output_kb: int
    file_size_kb: int

    @property
    def memory_bytes(self) -> int:
        return self.memory_mb * 1024 * 1024

    @property
    def output_bytes(self) -> int:
        return self.output_kb * 1024

    @property
    def file_size_bytes(self) -> int:
        return self.file_size_kb * 1024


@dataclass(frozen=True, slots=True)
class ReplyTo:
    """Where the result goes besides runstream.results; partition None lets Kafka choose."""

    topic: str
    partition: int | None = None


@dataclass(frozen=True, slots=True)
class Callback:
    """Where the finished result is sent (docs/webhooks.md), with which method, in which format.

    ``format`` "runstream" sends the result document as it is; "judge0" sends
    Judge0's callback body.
    """

    url: str
    method: str = "POST"
    format: str = "runstream"


@dataclass(frozen=True, slots=True)
class ExecutionRequest:
    """A validated execution request (schema runstream.request.v1)."""

    id: str
    language: str
    files: tuple[SourceFile, ...]
    version: str | None = None
    stdin: bytes = b""
    args: tuple[str, ...] = ()
    tests: tuple[TestCase, ...] = ()
    limits: RequestedLimits = field(default_factory=RequestedLimits)
    deadline: datetime | None = None
    reply_to: ReplyTo | None = None
    metadata: dict[str, Any] | None = None
    #: Where to send the result when it is finished (a webhook), if anywhere.
    callback: Callback | None = None
    # Set by the ingress when it produced the request; the worker's queue-wait
    # figure is measured from it. Not part of the public schema's required set.
    enqueued_at: datetime | None = None
    # The API key the request was made with (its public id), stamped by the ingress
    # over anything the client sent; None when auth is off. Webhooks sign with it.
    key_id: str | None = None
    #: The run's stdin is live (the stdin topic, keyed by id), not ``stdin``: a
    #: WebSocket session's program (docs/piston.md).
    interactive: bool = False
    #: The client will follow the run's live events (docs/events.md).
    events: bool = False
    #: The request's standard checker (each test may choose another).
    checker: StandardChecker = field(default_factory=StandardChecker)
    #: A checker program, run after each test (testlib's convention); over ``checker``.
    checker_program: Program | None = None
    #: An interactor, run beside the program on each test (testlib's convention).
    interactor: Program | None = None
    #: Stop at the first test that does not pass (the others are ``skipped``).
    stop_on_failure: bool = False


@dataclass(slots=True)
class PhaseResult:
    """What one sandboxed process (compile step, run, or one test run) did."""

    stdout: bytes = b""
    stderr: bytes = b""
    exit_code: int | None = None
    signal: str | None = None
    wall_ms: int = 0
    cpu_ms: int = 0
    memory_kb: int = 0
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    time_limit: str | None = None  # "wall" or "cpu"
    oom_killed: bool = False
    output_limit_hit: bool = False
    #: A compile phase on a worker with the compile cache on: "hit" (the compiler did
    #: not run; the artefacts and the output are those of an earlier identical compile)
    #: or "miss". None otherwise.
    cache: str | None = None


@dataclass(slots=True)
class TestResult:
    """The verdict of one test case."""

    __test__ = False  # not a pytest class, despite the name

    index: int
    status: Status
    run: PhaseResult
    name: str | None = None
    #: Points earned (a scored test only).
    score: float | None = None
    #: The checker's or interactor's message, or why it failed (a judge error).
    comment: str | None = None
    #: The checker's or interactor's own run.
    judge: PhaseResult | None = None


@dataclass(slots=True)
class ExecutionResult:
    """The answer to one request (schema runstream.result.v1)."""

    id: str
    status: Status
    message: str | None = None
    language: str | None = None
    version: str | None = None
    worker: str | None = None
    compile: PhaseResult | None = None
    run: PhaseResult | None = None
    tests: list[TestResult] = field(default_factory=list)
    enqueued: datetime | None = None
    started: datetime | None = None
    finished: datetime | None = None
    metadata: dict[str, Any] | None = None
    #: The checker's or interactor's compile step, when it has one.
    judge_compile: PhaseResult | None = None
    #: Scored tests: the points earned and the points there were; None otherwise.
    score: float | None = None
    max_score: float | None = None
    #: Scored groups: name -> (earned, possible), in the order they first appear.
    groups: dict[str, tuple[float, float]] | None = None
