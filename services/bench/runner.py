"""Issue jobs to a target under a load model and collect one Sample per request.

Open loop: each job has an intended send offset; the runner sleeps until it
(scheduling sleeps, the only ones here) and starts the request without waiting
for earlier ones. Closed loop: ``clients`` tasks each take the next job as soon
as their previous one is answered. Both are bounded: by the jobs given (open),
by the load model's duration and count (closed), by ``max_in_flight`` and by a
drain timeout after the last send.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from runstream.services.bench.recording import Recorder
from runstream.services.bench.sample import Sample, apply_result, check_expectation
from runstream.services.bench.schedule import LoadModel, measured
from runstream.services.bench.target import Target, TargetError
from runstream.services.bench.workload import Planned, Workload, payload_hash

log = logging.getLogger(__name__)


@dataclass
class Job:
    """One request to issue; ``intended_s`` is None until a closed-loop client takes it."""

    seq: int
    program: str
    language: str
    payload: dict[str, Any]
    intended_s: float | None = None
    expect_status: str | None = None
    expect_stdout: str | None = None
    payload_sha256: str = ""


def job_from_plan(planned: Planned, workload: Workload, intended_s: float | None) -> Job:
    p = workload.program(planned.program)
    return Job(planned.seq, p.name, p.language, planned.payload, intended_s,
               p.expect_status, p.expect_stdout, payload_hash(planned.payload))


class Runner:
    """Runs jobs against one target; ``samples`` grows as answers arrive."""

    def __init__(self, target: Target, *, warmup_s: float = 0.0, recorder: Recorder | None = None,
                 max_in_flight: int = 2000, drain_timeout_s: float = 120.0) -> None:
        self.target = target
        self.warmup_s = warmup_s
        self.recorder = recorder
        self.max_in_flight = max_in_flight
        self.drain_timeout_s = drain_timeout_s
        self.samples: list[Sample] = []
        self.sent = 0
        self.in_flight = 0
        self.t0 = time.perf_counter()
        self.on_sample: Callable[[Sample], None] | None = None

    def now(self) -> float:
        return time.perf_counter() - self.t0

    async def _one(self, job: Job) -> None:
        assert job.intended_s is not None
        sample = Sample(seq=job.seq, id=str(job.payload["id"]), program=job.program,
                        language=job.language, payload_sha256=job.payload_sha256,
                        intended_s=job.intended_s, warmup=not measured(job.intended_s,
                                                                       self.warmup_s))
        self.in_flight += 1
        self.sent += 1
        try:
            if self.recorder is not None:
                await self.recorder.request(sample, job.payload)
            sample.sent_s = self.now()
            result = await self.target.execute(job.payload)
            apply_result(sample, result, self.now())
            sample.unexpected = check_expectation(result, job.expect_status, job.expect_stdout)
        except TargetError as e:
            sample.done_s, sample.error = self.now(), e.kind
        except asyncio.CancelledError:
            sample.error = "no answer before the drain timeout"
        except Exception as e:  # a client bug must not stop the run; it is counted
            log.exception("request %s failed in the client", sample.id)
            sample.done_s, sample.error = self.now(), f"client: {type(e).__name__}"
        finally:
            self.in_flight -= 1
            self.samples.append(sample)
            if self.on_sample is not None:
                self.on_sample(sample)
        if self.recorder is not None:
            await self.recorder.outcome(sample)

    async def _drain(self, tasks: set[asyncio.Task[None]]) -> None:
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=self.drain_timeout_s)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=10)

    async def open_loop(self, jobs: list[Job]) -> list[Sample]:
        """Send each job at its intended offset, whatever earlier ones are doing."""
        self.t0 = time.perf_counter()
        tasks: set[asyncio.Task[None]] = set()
        for job in jobs:
            assert job.intended_s is not None
            delay = job.intended_s - self.now()
            if delay > 0:
                await asyncio.sleep(delay)
            if self.in_flight >= self.max_in_flight:
                self.samples.append(Sample(
                    seq=job.seq, id=str(job.payload["id"]), program=job.program,
                    language=job.language, payload_sha256=job.payload_sha256,
                    intended_s=job.intended_s, sent_s=self.now(),
                    error="client overload (max in flight)",
                    warmup=not measured(job.intended_s, self.warmup_s)))
                continue
            task = asyncio.create_task(self._one(job))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await self._drain(set(tasks))
        return self.samples

    async def closed_loop(self, jobs: Iterator[Job], load: LoadModel) -> list[Sample]:
        """``load.clients`` clients, each sending its next job when answered."""
        self.t0 = time.perf_counter()

        def take() -> Job | None:
            now = self.now()
            job = next(jobs)
            if not load.within(job.seq, now):
                return None
            job.intended_s = now  # no schedule: the intended time is the send time
            return job

        async def client() -> None:
            while (job := take()) is not None:
                await self._one(job)

        workers = {asyncio.create_task(client()) for _ in range(load.clients)}
        # Without a duration, a closed loop is still bounded in time: an hour at most.
        limit = (load.duration_s or 3600.0) + self.drain_timeout_s
        done, pending = await asyncio.wait(workers, timeout=limit)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=10)
        for task in done:
            if task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        return self.samples


async def with_target(target: Target, body: Callable[[], Awaitable[list[Sample]]]
                      ) -> list[Sample]:
    """Start the target, run ``body``, always stop the target."""
    await target.start()
    try:
        return await body()
    finally:
        await target.stop()
