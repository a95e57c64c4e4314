"""Judging one test: the standard checker, a checker program, or an interactor.

A checker program or interactor gets its own workspace (its own tmpfs or
container), compiled once per request (through the compile cache), and runs
with its own limits: the submission cannot reach its files, nor it the
submission's, except through what this module hands over: the test's files
on the checker's stdin (see :mod:`.testlib`), or, for an interactor, the two
pipes relayed here between the two sandboxes (docs/judging.md).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass

from runstream.schemas.errors import InvalidRequest
from runstream.schemas.limits import resolve_limits
from runstream.schemas.models import (
    ExecutionRequest,
    Limits,
    PhaseResult,
    Program,
    Status,
    TestCase,
    TestResult,
)
from runstream.services.execution import testlib
from runstream.services.execution.checkers import check
from runstream.services.execution.languages import Language, Registry, render
from runstream.services.execution.sandbox.base import Input, PhaseOutput, Sandbox, Workspace
from runstream.services.execution.scoring import earned
from runstream.services.execution.verdict import compile_failed, limit_status
from runstream.services.settings import Settings

#: The interactor outlives the submission's wall limit by this much, so that a
#: deadlock (both waiting to read) ends as the submission's time limit.
INTERACTOR_MARGIN_MS = 1000

#: (workspace, files, argv, limits, language) -> the compile phase (the executor's,
#: through its compile cache).
Compile = Callable[[Workspace, list[tuple[str, bytes]], list[str], Limits, Language],
                   Awaitable[PhaseResult]]


@dataclass(frozen=True, slots=True)
class JudgeProgram:
    """A checker or interactor, compiled, ready to run in its own workspace."""

    role: str  # "checker" or "interactor"
    ws: Workspace
    language: Language
    argv: list[str]
    limits: Limits


@dataclass(frozen=True, slots=True)
class Refused:
    """A judge program that cannot judge: why (a judge error), and its compile step."""

    message: str
    compile: PhaseResult | None = None


async def open_judge(stack: AsyncExitStack, sandbox: Sandbox, registry: Registry,
                     settings: Settings, exec_id: str, program: Program, role: str,
                     compile_: Compile) -> tuple[JudgeProgram | Refused, PhaseResult | None]:
    """The judge program in a workspace of its own (closed with ``stack``), compiled.

    Returns it and its compile phase, or why it cannot judge. An unknown language or
    limits above the server's maxima are a refusal of the request (InvalidRequest).
    """
    try:
        language = registry.resolve(program.language, program.version)
        limits = resolve_limits(program.limits, settings.default_limits, settings.max_limits)
    except InvalidRequest as e:
        raise InvalidRequest(f"{role}: {e.message}", field=role) from e
    files = [(f.name or (language.entry if i == 0 else f"file{i}"), f.content)
             for i, f in enumerate(program.files)]
    entry = files[0][0]
    ws = await stack.enter_async_context(sandbox.workspace(f"{exec_id}-{role}", files, language))
    compiled = None
    if language.compile is not None:
        climits = settings.compile_limits(limits)
        compiled = await compile_(ws, files, render(language.compile, language, climits, entry),
                                  climits, language)
        if compile_failed(compiled):
            return Refused(f"judge error: the {role} did not compile", compiled), compiled
    argv = render(language.run, language, limits, entry)
    return JudgeProgram(role, ws, language, argv, limits), compiled


class Pipe:
    """One direction of an interaction: what one program wrote, for the other's stdin.

    Bounded by the writer's output cap (its phase stops past it).
    """

    def __init__(self, first: bytes = b"") -> None:
        self._items: asyncio.Queue[Input] = asyncio.Queue()
        if first:
            self._items.put_nowait(Input(data=first))

    def write(self, data: bytes) -> None:
        self._items.put_nowait(Input(data=data))

    def close(self) -> None:
        self._items.put_nowait(Input(eof=True))

    async def get(self) -> Input:
        return await self._items.get()


def _relay(pipe: Pipe) -> PhaseOutput:
    """A phase's output sink that hands its stdout to ``pipe`` (stderr stays its own)."""
    def sink(stream: str, data: bytes) -> None:
        if stream == "stdout":
            pipe.write(data)
    return sink


#: Runs the submission on one test: (stdin, also told its output) -> its run.
Run = Callable[[bytes | Pipe, PhaseOutput | None], Awaitable[PhaseResult]]


async def interact(judge: JudgeProgram, stdin: bytes, run: Run,
                   limits: Limits) -> tuple[PhaseResult, PhaseResult]:
    """Run the submission (``run``) and the interactor together, cross-connected.

    The interactor gets the test's input as its file and the submission's stdout
    as its stdin; its stdout is the submission's stdin. Whichever ends first, the
    other sees the end of its stdin. Returns (submission's run, interactor's run).
    """
    to_judge, to_program = Pipe(stdin), Pipe()
    argv = testlib.judge_argv(judge.argv, [(testlib.INPUT, len(stdin))], [testlib.OUTPUT])
    judge_limits = dataclasses.replace(
        judge.limits, wall_ms=max(judge.limits.wall_ms, limits.wall_ms + INTERACTOR_MARGIN_MS))

    async def program() -> PhaseResult:
        try:
            return await run(to_program, _relay(to_judge))
        finally:
            to_judge.close()

    async def interactor() -> PhaseResult:
        try:
            return await judge.ws.run(argv, stdin=to_judge, limits=judge_limits,
                                      language=judge.language, output=_relay(to_program))
        finally:
            to_program.close()

    async with asyncio.TaskGroup() as group:
        ran = group.create_task(program())
        judged = group.create_task(interactor())
    return ran.result(), judged.result()


async def run_checker(judge: JudgeProgram, test: TestCase,
                      output: bytes) -> tuple[testlib.JudgeVerdict, PhaseResult]:
    """The checker program's verdict on ``output`` (its files come on its stdin)."""
    answer = (test.expected_output or "").encode("utf-8", "surrogatepass")
    files = [(testlib.INPUT, len(test.stdin)), (testlib.OUTPUT, len(output)),
             (testlib.ANSWER, len(answer))]
    phase = await judge.ws.run(testlib.judge_argv(judge.argv, files),
                               stdin=test.stdin + output + answer, limits=judge.limits,
                               language=judge.language)
    return testlib.read_verdict(phase, judge.limits, judge.role), phase


def interaction_verdict(program: Status | None,
                        judge: testlib.JudgeVerdict) -> testlib.JudgeVerdict:
    """An interactive test's verdict from the submission's run and the interactor's.

    The submission's time limit comes first (a deadlock is one); then a judge error;
    then the interactor's rejection (a submission that died of the closed pipe after
    a wrong answer is wrong, not crashed); then the submission's own failure.
    """
    if program is Status.TIME_LIMIT_EXCEEDED:
        return testlib.JudgeVerdict(program, 0.0, judge.comment)
    if judge.status in (Status.INTERNAL_ERROR, Status.WRONG_ANSWER, Status.PRESENTATION_ERROR):
        return judge
    if program is not None:
        return testlib.JudgeVerdict(program, 0.0, judge.comment)
    return judge


async def judge_test(req: ExecutionRequest, index: int, judge: JudgeProgram | None,
                     run: Run, limits: Limits,
                     heap_exhausted: Sequence[str]) -> TestResult:
    """Run test ``index`` and judge it (standard checker, checker program or interactor)."""
    test = req.tests[index]
    judged: PhaseResult | None = None
    if judge is not None and judge.role == "interactor":
        phase, judged = await interact(judge, test.stdin, run, limits)
        verdict = interaction_verdict(limit_status(phase, heap_exhausted),
                                      testlib.read_verdict(judged, judge.limits, judge.role))
    else:
        phase = await run(test.stdin, None)
        failed = limit_status(phase, heap_exhausted)
        if failed is not None:
            verdict = testlib.JudgeVerdict(failed, 0.0, None)
        elif judge is not None:
            verdict, judged = await run_checker(judge, test, phase.stdout)
        elif test.expected_output is None:
            verdict = testlib.JudgeVerdict(Status.OK, 1.0, None)
        else:
            why = check(test.checker or req.checker, phase.stdout, test.expected_output)
            verdict = testlib.JudgeVerdict(Status.WRONG_ANSWER if why else Status.OK,
                                           0.0 if why else 1.0, why)
    return TestResult(index=index, status=verdict.status, run=phase, name=test.name,
                      score=earned(test, verdict.status, verdict.fraction),
                      comment=verdict.comment, judge=judged)


def skipped(req: ExecutionRequest, index: int) -> TestResult:
    """A test not run: an earlier one failed and the request asked to stop there."""
    test = req.tests[index]
    return TestResult(index=index, status=Status.SKIPPED, run=PhaseResult(), name=test.name,
                      score=earned(test, Status.SKIPPED, 0.0),
                      comment="not run: an earlier test failed (stop_on_failure)")
