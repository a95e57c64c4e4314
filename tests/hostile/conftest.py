"""Fixtures of the hostile-code suite: a real BwrapSandbox (root, bwrap, cgroups) and a
real DockerSandbox (a Docker engine and the runstream/* images)."""

from __future__ import annotations

import dataclasses
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import pytest
from runstream.schemas.models import Limits, PhaseResult
from runstream.services.execution.languages import Language, Registry, render
from runstream.services.execution.sandbox.base import Sandbox
from runstream.services.execution.sandbox.bwrap import BwrapSandbox
from runstream.services.execution.sandbox.docker import DockerSandbox, docker_available
from runstream.services.settings import Settings

from tests.system import System, launch_system

REGISTRY = Registry.load()


def skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "the bwrap sandbox tests need root (mounts, cgroups, setpriv)"
    if shutil.which("bwrap") is None:
        return "bubblewrap is not installed (apt-get install bubblewrap)"
    return None


DOCKER_IMAGES = ("python", "javascript", "c")


def docker_skip_reason() -> str | None:
    """Why the docker tests cannot run here (no engine, or no images), or None."""
    settings = Settings.from_env({})
    reason = docker_available(settings)
    if reason:
        return reason + " (start one with .ci/docker-engine.sh)"
    import docker

    client = docker.DockerClient(base_url=settings.sandbox_docker_url, timeout=5)
    try:
        for name in DOCKER_IMAGES:
            image = REGISTRY.resolve(name).image
            try:
                client.images.get(image)
            except docker.errors.ImageNotFound:
                return f"image {image} is missing (.ci/build-images.sh {' '.join(DOCKER_IMAGES)})"
    finally:
        client.close()
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = skip_reason()
    docker_reason = (docker_skip_reason() if any("docker" in i.keywords for i in items)
                     else None)
    for item in items:
        if "sandbox" in item.keywords and reason:
            print(f"skipping {item.nodeid}: {reason}")
            item.add_marker(pytest.mark.skip(reason=reason))
        if "docker" in item.keywords and docker_reason:
            print(f"skipping {item.nodeid}: {docker_reason}")
            item.add_marker(pytest.mark.skip(reason=docker_reason))


@pytest.fixture(scope="session")
def sandbox_settings() -> Settings:
    tag = uuid.uuid4().hex[:8]
    return Settings.from_env({}, sandbox_cgroup_name=f"runstream-test-{tag}",
                             sandbox_run_dir=f"/run/runstream-test-{tag}")


@pytest.fixture(scope="session")
async def sandbox(sandbox_settings: Settings) -> AsyncIterator[BwrapSandbox]:
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    sb = BwrapSandbox(sandbox_settings)
    await sb.start()
    yield sb
    await sb.stop()
    # stop() removed this worker's scope and, as the host's last worker, the parents.
    assert leftovers(sb) == []


@pytest.fixture(scope="session")
async def docker_sandbox() -> AsyncIterator[DockerSandbox]:
    reason = docker_skip_reason()
    if reason:
        pytest.skip(reason)
    sb = DockerSandbox(Settings.from_env({}))
    await sb.start()
    yield sb
    await sb.stop()
    assert docker_containers(sb.scope) == [], "stop() left containers behind"


def docker_containers(scope: str | None = None) -> list[str]:
    """Ids of runstream containers (of one worker scope, or of any)."""
    import docker

    client = docker.DockerClient(base_url=Settings.from_env({}).sandbox_docker_url, timeout=10)
    try:
        label = "dev.runstream.worker" + (f"={scope}" if scope else "")
        # One listing call: containers.list() also inspects each container it lists, and
        # one removed in between (another test's run ending) would fail it with a 404.
        return [c["Id"] for c in client.api.containers(all=True, filters={"label": label})]
    finally:
        client.close()


def limits(settings: Settings, **over: int) -> Limits:
    return dataclasses.replace(settings.default_limits, **over)


async def run_code(sb: Sandbox, lang_name: str, source: str | bytes, *, stdin: bytes = b"",
                   extra: Sequence[tuple[str, bytes]] = (), **limit_over: int) -> PhaseResult:
    """Compile (if needed) and run ``source`` once; the run's PhaseResult."""
    lang: Language = REGISTRY.resolve(lang_name)
    settings: Settings = sb.settings  # type: ignore[attr-defined]
    lim = limits(settings, **limit_over)
    body = source.encode() if isinstance(source, str) else source
    async with sb.workspace("t", [(lang.entry, body), *extra], lang) as ws:
        if lang.compile:
            clim = settings.compile_limits(lim)
            c = await ws.run(render(lang.compile, lang, clim), stdin=b"", limits=clim,
                             language=lang)
            assert c.exit_code == 0, c.stderr.decode(errors="replace")
        return await ws.run(render(lang.run, lang, lim), stdin=stdin, limits=lim, language=lang)


def run_pids(settings: Settings) -> list[int]:
    """Host pids still inside this test session's run cgroups."""
    marker = f"/{settings.sandbox_cgroup_name}/"
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "cgroup").read_text()
        except OSError:
            continue
        if marker in text:
            found.append(int(entry.name))
    return found


def pids_with(token: str, program: str | None = None) -> list[int]:
    """Host pids whose command line holds ``token`` (a test's marker argument).

    ``program``: only those whose argv[0] is that program (e.g. "python3"). The
    wrappers that start a program (bwrap, the docker phase's sh, timeout) carry the
    token too, and so does a shell's fork before it execs a pipeline's command:
    counting them would take a wrapper for the program.
    """
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        argv0 = cmdline.split(b"\0", 1)[0].rsplit(b"/", 1)[-1]
        if token.encode() in cmdline and (program is None or argv0 == program.encode()):
            found.append(int(entry.name))
    return found


# A run that never ends by itself: a setsid daemon sleeps while its parent spins.
ENDLESS_PY = (b"import os, time\nif os.fork() == 0:\n    os.setsid(); time.sleep(1000)\n"
              b"while True: pass\n")


def leftovers(sb: BwrapSandbox) -> list[str]:
    """What a stopped sandbox left: its scope, the shared parents, the run folder."""
    paths = [sb.run_dir, sb.base_dir]
    for d in sb._tree.parents.values() if sb._tree else ():
        paths += [d, d.parent]
    return [str(p) for p in paths if p.exists()]


async def assert_clean_and_healthy(sb: Sandbox) -> None:
    """Nothing of a finished run is left, and a normal run works.

    bwrap: no process of any run remains and no workspace is mounted. docker: only
    the warm pool's idle containers remain.
    """
    if isinstance(sb, DockerSandbox):
        await sb.settle()  # pending removals and the pool's refill (started at the end)
        pooled = {cid for entries in (sb._pool._ready.values() if sb._pool else ())
                  for _, cid in entries}
        left = set(docker_containers(sb.scope)) - pooled
        assert not left, f"containers of finished executions remain: {left}"
    else:
        assert isinstance(sb, BwrapSandbox)
        assert run_pids(sb.settings) == []
        assert os.listdir(sb.run_dir) == []
    r = await run_code(sb, "python", "print(6 * 7)")
    assert (r.exit_code, r.stdout) == (0, b"42\n"), r


@pytest.fixture(scope="session")
def docker_system(kafka: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    """A running runstream whose worker uses the docker backend."""
    reason = docker_skip_reason()
    if reason:
        pytest.skip(reason)
    with launch_system(kafka, tmp_path_factory.mktemp("docker-system"), ingresses=1,
                       workers=1, extra_env={"RUNSTREAM_SANDBOX_BACKEND": "docker"}) as running:
        yield running
