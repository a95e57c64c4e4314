"""One execution, start to verdict: resolve, compile once, run (once or per test), judge.

The executor knows nothing of Kafka or HTTP: the worker agent hands it a
request and publishes what it returns. Anything the submitted program does
ends in a verdict; only a failure of the sandbox itself is ``internal_error``.
"""

from __future__ import annotations

import logging
import time
from contextlib import AsyncExitStack
from datetime import UTC, datetime

from runstream.schemas.errors import InvalidRequest
from runstream.schemas.limits import resolve_limits
from runstream.schemas.models import (
    ExecutionRequest,
    ExecutionResult,
    Limits,
    PhaseResult,
    Status,
)
from runstream.services.errors import SandboxError
from runstream.services.execution.compilecache import (
    MISS,
    CompileCache,
    added_by_compile,
    cacheable,
    compile_key,
)
from runstream.services.execution.judge import (
    JudgeProgram,
    Pipe,
    Refused,
    judge_test,
    open_judge,
    skipped,
)
from runstream.services.execution.languages import Language, Registry, render
from runstream.services.execution.progress import COMPILE, RUN, Progress
from runstream.services.execution.sandbox.base import LiveInput, PhaseOutput, Sandbox, Workspace
from runstream.services.execution.sandbox.factory import create_sandbox
from runstream.services.execution.scoring import totals
from runstream.services.execution.verdict import (
    compile_failed,
    compile_limit_message,
    judge_run,
    overall,
)
from runstream.services.settings import Settings

log = logging.getLogger(__name__)

#: What a client is told when the sandbox itself failed. Its own words (a host path,
#: an errno, bwrap's or Docker's message) stay in the worker's log, under the id.
SANDBOX_MESSAGE = ("the sandbox failed: an error of the service, not of the program; the "
                   "worker's log has it under this execution's id")


def now() -> datetime:
    return datetime.now(UTC)


def named_files(req: ExecutionRequest, language: Language) -> list[tuple[str, bytes]]:
    """Give unnamed files a name: the entry file the language's, the rest file<N>."""
    files = []
    for index, f in enumerate(req.files):
        name = f.name or (language.entry if index == 0 else f"file{index}")
        files.append((name, f.content))
    return files


class Executor:
    """Runs validated requests in a sandbox and returns results."""

    def __init__(self, settings: Settings, registry: Registry, sandbox: Sandbox) -> None:
        self.settings = settings
        self.registry = registry
        self.sandbox = sandbox
        mib = 1024 * 1024
        self.compile_cache = (
            CompileCache(settings.compile_cache_mb * mib, settings.compile_cache_entry_mb * mib)
            if settings.compile_cache_mb > 0 else None)

    def refusal(self, req: ExecutionRequest, status: Status, message: str) -> ExecutionResult:
        """A result for a request that was not run."""
        return ExecutionResult(
            id=req.id, status=status, message=message, language=req.language,
            worker=self.settings.worker_id, enqueued=req.enqueued_at, started=None,
            finished=now(), metadata=req.metadata,
        )

    async def execute(self, req: ExecutionRequest, progress: Progress | None = None,
                      live: LiveInput | None = None) -> ExecutionResult:
        """Run one request; never raises for anything the program does.

        ``progress``, if given, is told the steps and the output as they happen.
        ``live`` is the stdin of an interactive request's run, read as it arrives
        (without one, an interactive run gets an empty stdin).
        """
        started = now()
        if req.deadline is not None and started > req.deadline:
            return self.refusal(req, Status.EXPIRED,
                                f"the deadline {req.deadline.isoformat()} passed before it ran")
        try:
            language = self.registry.resolve(req.language, req.version)
            limits = resolve_limits(req.limits, self.settings.default_limits,
                                    self.settings.max_limits)
        except InvalidRequest as e:
            return self.refusal(req, Status.REJECTED, e.message)
        result = ExecutionResult(
            id=req.id, status=Status.INTERNAL_ERROR, language=language.name,
            version=language.version, worker=self.settings.worker_id,
            enqueued=req.enqueued_at, started=started, metadata=req.metadata,
        )
        if progress is not None:
            progress.started(language, limits)
        try:
            await self._run(req, language, limits, result, progress, live)
        except InvalidRequest as e:  # e.g. files that do not fit the workspace
            result.status = Status.REJECTED
            result.message = e.message
        except SandboxError:
            log.exception("sandbox failure on %s", req.id)
            result.status = Status.INTERNAL_ERROR
            result.message = SANDBOX_MESSAGE
        result.finished = now()
        return result

    async def _run(self, req: ExecutionRequest, language: Language, limits: Limits,
                   result: ExecutionResult, progress: Progress | None,
                   live: LiveInput | None = None) -> None:
        files = named_files(req, language)
        entry = files[0][0]
        async with self.sandbox.workspace(req.id, files, language) as ws:
            if language.compile is not None:
                compile_limits = self.settings.compile_limits(limits)
                argv = render(language.compile, language, compile_limits, entry)
                result.compile = await self._compile(ws, files, argv, compile_limits,
                                                     language, progress)
                failed = compile_failed(result.compile)
                if progress is not None:
                    progress.compiled(result.compile, failed=failed)
                if failed:
                    result.status = Status.COMPILE_ERROR
                    result.message = compile_limit_message(result.compile, compile_limits)
                    return
            argv = render(language.run, language, limits, entry) + list(req.args)
            if not req.tests:
                stdin: bytes | LiveInput = (live if req.interactive and live is not None
                                            else req.stdin)
                result.run = await _phase(ws, argv, stdin, limits, language, progress,
                                          RUN, None)
                result.status = judge_run(result.run, None, language.heap_exhausted)
                return
            async with AsyncExitStack() as stack:
                judge = await self._open_judge(stack, req, result)
                if not isinstance(judge, Refused):
                    await self._tests(req, ws, argv, limits, language, judge, result, progress)

    async def _open_judge(self, stack: AsyncExitStack, req: ExecutionRequest,
                          result: ExecutionResult) -> JudgeProgram | Refused | None:
        """The request's checker program or interactor, compiled in its own workspace."""
        program = req.interactor or req.checker_program
        if program is None:
            return None
        role = "interactor" if req.interactor is not None else "checker"

        async def compile_(ws: Workspace, files: list[tuple[str, bytes]], argv: list[str],
                           limits: Limits, language: Language) -> PhaseResult:
            return await self._compile(ws, files, argv, limits, language, None)

        judge, result.judge_compile = await open_judge(
            stack, self.sandbox, self.registry, self.settings, req.id, program, role,
            compile_)
        if isinstance(judge, Refused):
            result.status = Status.INTERNAL_ERROR
            result.message = judge.message
        return judge

    async def _tests(self, req: ExecutionRequest, ws: Workspace, argv: list[str],
                     limits: Limits, language: Language, judge: JudgeProgram | None,
                     result: ExecutionResult, progress: Progress | None) -> None:
        """Run and judge each test; score them; stop at a failure if asked to."""
        failed = False
        for index in range(len(req.tests)):
            if failed and req.stop_on_failure:
                result.tests.append(skipped(req, index))
                continue

            async def run(stdin: bytes | Pipe, also: PhaseOutput | None,
                          index: int = index) -> PhaseResult:
                return await _phase(ws, argv, stdin, limits, language, progress, RUN, index,
                                    also)

            test = await judge_test(req, index, judge, run, limits, language.heap_exhausted)
            result.tests.append(test)
            failed = failed or test.status is not Status.OK
            if progress is not None:
                progress.tested(test)
        result.status = overall(result.tests)
        scored = totals(req.tests, result.tests)
        if scored is not None:
            result.score, result.max_score, result.groups = (scored.score, scored.max_score,
                                                             scored.groups)

    async def _compile(self, ws: Workspace, files: list[tuple[str, bytes]], argv: list[str],
                       limits: Limits, language: Language,
                       progress: Progress | None) -> PhaseResult:
        """The compile phase; from the compile cache when this very step ran before."""
        cache = self.compile_cache
        if cache is None:
            return await _phase(ws, argv, b"", limits, language, progress, COMPILE, None)
        key = compile_key(language, argv, limits, files)
        kept = cache.get(key)
        if kept is not None:
            began = time.monotonic()
            await ws.restore(kept.artefacts)
            phase = kept.replay(int((time.monotonic() - began) * 1000))
            if progress is not None:  # live clients see the compiler's words as on a miss
                sink = progress.output(COMPILE, None)
                for stream, data in (("stdout", phase.stdout), ("stderr", phase.stderr)):
                    if data:
                        sink(stream, data)
                progress.phase_ended(COMPILE, None, phase)
            return phase
        phase = await _phase(ws, argv, b"", limits, language, progress, COMPILE, None)
        phase.cache = MISS
        if cacheable(phase):
            try:
                found = await ws.snapshot(cache.bounds)
            except SandboxError as e:  # the result stands; only the cache goes without
                log.warning("cannot keep the compile of %s: %s", language.name, e.message)
                found = None
            artefacts = added_by_compile(found, files) if found is not None else None
            if artefacts is not None:
                cache.put(key, artefacts, phase)
        return phase


async def _phase(ws: Workspace, argv: list[str], stdin: bytes | LiveInput, limits: Limits,
                 language: Language, progress: Progress | None, name: str,
                 test: int | None, also: PhaseOutput | None = None) -> PhaseResult:
    """One phase in ``ws``; its output goes to ``progress`` (and ``also``) as it is written."""
    if progress is None and also is None:
        return await ws.run(argv, stdin=stdin, limits=limits, language=language)
    if progress is None:
        return await ws.run(argv, stdin=stdin, limits=limits, language=language, output=also)
    result: PhaseResult | None = None
    sink = progress.output(name, test)
    try:
        result = await ws.run(argv, stdin=stdin, limits=limits, language=language,
                              output=sink if also is None else _both(sink, also))
        return result
    finally:
        progress.phase_ended(name, test, result)


def _both(first: PhaseOutput, second: PhaseOutput) -> PhaseOutput:
    def sink(stream: str, data: bytes) -> None:
        second(stream, data)  # the interactor's pipe first: it is the program's conversation
        first(stream, data)
    return sink


async def start_executor(settings: Settings, catalogue: Registry | None = None) -> Executor:
    """The one start-up path: registry, sandbox (started), versions it runs, executor.

    Only the languages of the profile (``RUNSTREAM_LANGUAGES``) are served, and of
    those only the ones whose runtime the sandbox has (the others are logged).
    The caller stops ``executor.sandbox`` when done.
    """
    catalogue = catalogue or Registry.from_settings(settings)
    catalogue = catalogue.profile(settings.languages)  # an unknown name stops here
    sandbox = create_sandbox(settings)
    await sandbox.start()
    try:
        versions = await sandbox.detect_versions(catalogue)
    except BaseException:
        await sandbox.stop()
        raise
    missing = sorted(name for name, v in versions.items() if not v)
    if missing:
        log.warning("not serving %s: their runtimes are not installed", ", ".join(missing))
    return Executor(settings, catalogue.with_versions(versions), sandbox)
