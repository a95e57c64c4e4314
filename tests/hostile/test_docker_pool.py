"""The docker backend's warm pool on a real engine: one execution per container, sized by demand.

A pooled container is started before any submission exists; these tests check
that whatever one execution does to its container (files in /tmp, a daemon
left behind) no other execution ever sees, because no container serves two.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from runstream.schemas.models import PhaseResult
from runstream.services.execution.languages import render
from runstream.services.execution.sandbox.docker import DockerSandbox
from runstream.services.execution.sandbox.docker._host import container_cgroup
from runstream.services.settings import Settings

from .conftest import REGISTRY, docker_containers, docker_skip_reason

pytestmark = [pytest.mark.docker, pytest.mark.timeout(180)]

JS = REGISTRY.resolve("javascript")

# Leaves a file in /tmp and a detached child that outlives the program.
LEAVE_TRACES = """
const fs = require("fs"), cp = require("child_process");
fs.writeFileSync("/tmp/left-by-an-earlier-run", "secret");
cp.spawn("/usr/bin/sleep", ["300"], {detached: true, stdio: "ignore"}).unref();
console.log("left");
"""

LOOK_FOR_TRACES = """
const fs = require("fs");
const procs = fs.readdirSync("/proc").filter((p) => /^[0-9]+$/.test(p)).map((p) => {
  try { return fs.readFileSync(`/proc/${p}/cmdline`, "utf8").replace(/\\0/g, " "); }
  catch (e) { return ""; }
});
console.log(JSON.stringify({
  file: fs.existsSync("/tmp/left-by-an-earlier-run"),
  sleeper: procs.some((c) => c.includes("sleep 300")),
}));
"""


@pytest.fixture
async def pooled_sandbox() -> AsyncIterator[DockerSandbox]:
    reason = docker_skip_reason()
    if reason:
        pytest.skip(reason)
    sb = DockerSandbox(Settings.from_env({}, sandbox_docker_pool=1, sandbox_docker_pool_max=3))
    await sb.start()
    yield sb
    await sb.stop()
    assert docker_containers(sb.scope) == [], "stop() left containers behind"


def ready(sb: DockerSandbox) -> set[str]:
    assert sb._pool is not None
    return {cid for _, cid in sb._pool._ready.get(JS.image, ())}


async def run_js(sb: DockerSandbox, source: str) -> tuple[str, PhaseResult]:
    """Run ``source`` as one execution; (its container's id, the run's result)."""
    limits = sb.settings.default_limits
    async with sb.workspace("pool", [(JS.entry, source.encode())], JS) as ws:
        r = await ws.run(render(JS.run, JS, limits), stdin=b"", limits=limits, language=JS)
        assert ws.container_id is not None
        return ws.container_id, r


async def test_a_pooled_container_serves_one_execution_only(
        pooled_sandbox: DockerSandbox) -> None:
    sb = pooled_sandbox
    await run_js(sb, "console.log(1)")  # the first is cold; the pool fills after it
    await sb.settle()
    waiting = ready(sb)
    assert waiting, "the pool did not fill after an execution"
    dirty, r = await run_js(sb, LEAVE_TRACES)
    assert r.stdout == b"left\n", r
    assert dirty in waiting, "the execution did not get a pooled container"
    await sb.settle()
    assert dirty not in ready(sb), "a used container went back to the pool"
    assert dirty not in docker_containers(sb.scope), "a used container was not removed"
    clean, r = await run_js(sb, LOOK_FOR_TRACES)
    assert clean != dirty
    assert r.stdout == b'{"file":false,"sleeper":false}\n', r


async def test_the_pool_grows_with_demand_and_shrinks_back(
        pooled_sandbox: DockerSandbox) -> None:
    sb = pooled_sandbox
    assert sb._pool is not None
    burst = await asyncio.gather(*(run_js(sb, "console.log(2)") for _ in range(6)))
    assert all(r.stdout == b"2\n" for _, r in burst)
    await sb.settle()
    # Six asks within a second, each held for a run and replaced by a start: by
    # Little's law at least two are wanted (three at most, the ceiling here).
    grown = ready(sb)
    assert 2 <= len(grown) <= 3, grown
    used = {cid for cid, _ in burst}
    assert len(used) == 6 and not used & grown
    # An image nobody asked for within the idle time keeps none: with the idle
    # time shorter than a run, the pool empties once this run is over.
    sb._pool.demand.idle_s = 0.001
    next_cid, _ = await run_js(sb, "console.log(3)")
    assert next_cid in grown and next_cid not in used
    await sb.settle()
    assert ready(sb) == set()
    assert set(docker_containers(sb.scope)) == set(), "an idle container was not removed"


async def test_a_pooled_init_pid_is_trusted_only_for_its_own_container(
        pooled_sandbox: DockerSandbox) -> None:
    """The pid the pool looked up ahead finds the container's cgroup, and no other's."""
    sb = pooled_sandbox
    await run_js(sb, "console.log(4)")
    await sb.settle()
    cid = next(iter(ready(sb)))
    pid = sb._init_pids[cid]
    cg = container_cgroup(pid, cid)
    assert cg is not None and all(cid in str(d) for d in cg.dirs.values())
    assert container_cgroup(pid, "0" * 64) is None  # a reused pid would name another
