# Test set-up does small blocking file and process calls on purpose: they are
# instantaneous and keep the assertions next to what they check.
# ruff: noqa: ASYNC220, ASYNC240
"""Hostile programs against DockerSandbox directly (no Kafka): what only docker has.

What both backends answer (limits, floods, disk, network, links, output) is in
test_sandbox_direct.py, one suite parametrised by backend. Each test asserts the
outcome, then that nothing of the run is left and that an ordinary run still
works afterwards.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from runstream.services.execution.languages import render
from runstream.services.execution.sandbox.docker import DockerSandbox, DockerWorkspace

from ._programs import HOST_FACTS_PY, assert_host_facts_hidden
from .conftest import (
    ENDLESS_PY,
    REGISTRY,
    assert_clean_and_healthy,
    docker_containers,
    limits,
    pids_with,
    run_code,
)

pytestmark = [pytest.mark.docker, pytest.mark.timeout(180)]


def py(src: str) -> str:
    return textwrap.dedent(src)


async def test_what_a_run_can_see_of_the_host(docker_sandbox: DockerSandbox) -> None:
    """docs/sandbox.md "What a run can see": every row marked hidden, on docker (issue 23)."""
    r = await run_code(docker_sandbox, "python", HOST_FACTS_PY,
                       stdin=docker_sandbox.scope.encode())
    assert r.exit_code == 0, r.stderr
    facts = json.loads(r.stdout)
    # The container's init (docker-init, sleep), the phase's timeout and the program.
    assert_host_facts_hidden(facts, host_paths=[docker_sandbox.scope],
                             programs={"docker-init", "sleep", "timeout", "sh", "python3"})
    assert facts["cmdlines"]["1"][0] == "/sbin/docker-init", facts["cmdlines"]
    assert facts["memory"]["1"] == "PermissionError", facts["memory"]  # root's
    # The image's own users, not the host's (no host file is mounted there).
    assert facts["passwd"].startswith("root:x:0:0:")


HELLO = {
    "python": "import sys\nprint('hello', sys.stdin.read().strip())\n",
    "javascript": "const s=require('fs').readFileSync(0,'utf8').trim();console.log('hello', s)",
    "c": '#include <stdio.h>\nint main(){char b[64];scanf("%63s",b);printf("hello %s\\n",b);}',
}


@pytest.mark.parametrize("lang", sorted(HELLO))
async def test_hello_world_with_stdin(docker_sandbox: DockerSandbox, lang: str) -> None:
    r = await run_code(docker_sandbox, lang, HELLO[lang], stdin=b"world\n")
    assert (r.exit_code, r.signal, r.stdout) == (0, None, b"hello world\n"), r
    assert r.cpu_ms > 0 and r.memory_kb > 0 and r.wall_ms > 0


async def test_closing_stdout_does_not_end_the_run(docker_sandbox: DockerSandbox) -> None:
    r = await run_code(docker_sandbox, "python", "import os, time\nos.close(1); os.close(2)\n"
                       "time.sleep(1000)\n", wall_ms=1000)
    assert r.time_limit == "wall", r


async def test_host_files_and_worker_environment_are_invisible(
        docker_sandbox: DockerSandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = Path("/usr/share/runstream-test-secret")
    secret.write_text("s3cret")
    monkeypatch.setenv("RUNSTREAM_TEST_CANARY", "canary-7c1d")
    try:
        r = await run_code(docker_sandbox, "python", py(f"""
            import os
            for p in ('/etc/shadow', '{secret}', '/proc/1/environ', '/proc/1/root/etc'):
                try:
                    print(open(p).read()[:200])
                except OSError as e:
                    print(p, type(e).__name__)
            print(sorted(os.environ))
            print([p for p in ('/work', '/root/.bashrc', '/var/run/docker.sock')
                   if os.path.exists(p)])
        """))
    finally:
        secret.unlink()
    out = r.stdout.decode()
    assert "s3cret" not in out and "canary" not in out and "root:" not in out, out
    assert "/etc/shadow PermissionError" in out and f"{secret} FileNotFoundError" in out
    assert "/proc/1/environ PermissionError" in out
    names = eval(out.splitlines()[-2])  # the sorted list printed above
    assert set(names) <= {"HOME", "HOSTNAME", "LANG", "PATH", "PWD"}, names
    assert out.endswith("[]\n"), out


async def test_kill_minus_one_reaches_only_the_run(docker_sandbox: DockerSandbox) -> None:
    victim = subprocess.Popen(["/usr/bin/sleep", "60"], user=65534, group=65534,
                              extra_groups=[])
    lang = REGISTRY.resolve("python")
    lim = limits(docker_sandbox.settings)
    try:
        async with docker_sandbox.workspace("k", [("main.py", b"import os\nos.kill(-1, 9)\n"
                                                               b"print('alive')\n")],
                                            lang) as ws:
            r = await ws.run(render(lang.run, lang, lim), stdin=b"", limits=lim, language=lang)
            assert r.signal == "SIGKILL", r
            # The container (its root-owned init) survived: the next phase runs.
            again = await ws.run(["/usr/bin/python3", "-c", "print('next')"], stdin=b"",
                                 limits=lim, language=lang)
            assert again.stdout == b"next\n", again
        assert victim.poll() is None, "a host process of the sandbox uid was killed"
    finally:
        victim.kill()
        victim.wait(timeout=5)
    await assert_clean_and_healthy(docker_sandbox)


async def test_setsid_daemon_dies_with_the_phase(docker_sandbox: DockerSandbox) -> None:
    lang = REGISTRY.resolve("python")
    lim = limits(docker_sandbox.settings)
    daemon = py("""
        import os, time
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                os.close(1); os.close(2)
                open('/tmp/daemon', 'w').write(str(os.getpid()))
                time.sleep(1000)
            os._exit(0)
        while not os.path.exists('/tmp/daemon'):
            time.sleep(0.01)
        print('parent done')
    """).encode()
    async with docker_sandbox.workspace("d", [("main.py", daemon)], lang) as ws:
        r = await ws.run(render(lang.run, lang, lim), stdin=b"", limits=lim, language=lang)
        assert (r.exit_code, r.stdout) == (0, b"parent done\n"), r
        check = await ws.run(["/usr/bin/python3", "-c", "import os\n"
                              "print(os.path.exists('/proc/' + open('/tmp/daemon').read()))"],
                             stdin=b"", limits=lim, language=lang)
        assert check.stdout == b"False\n", check
    await assert_clean_and_healthy(docker_sandbox)


async def test_privileged_calls_fail(docker_sandbox: DockerSandbox) -> None:
    r = await run_code(docker_sandbox, "python", py("""
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        def call(name, *args, label=None):
            rc = getattr(libc, name)(*args)
            print(label or name, rc, ctypes.get_errno())
        call('setuid', 0)
        call('unshare', 0x10000000, label='unshare-user')  # CLONE_NEWUSER
        call('unshare', 0x20000, label='unshare-ns')
        call('mount', b'none', b'/tmp', b'tmpfs', 0, None)
        call('ptrace', 16, 1, None, None, label='ptrace-attach-init')  # PTRACE_ATTACH
        call('syscall', 321, 0, None, 0, label='bpf')
    """))
    lines = dict(line.split(" ", 1) for line in r.stdout.decode().splitlines())
    assert len(lines) == 6, r
    for name, rc_errno in lines.items():
        rc, errno_ = rc_errno.split()
        assert rc == "-1" and errno_ in ("1", "13"), (name, rc_errno)  # EPERM / EACCES
    await assert_clean_and_healthy(docker_sandbox)


async def test_each_phase_has_its_own_limits(docker_sandbox: DockerSandbox) -> None:
    # Exit codes, signals and stdin: test_sandbox_direct.py (both backends).
    # The compile phase ran with 1 GiB; the run gets its own 64 MiB limit.
    r = await run_code(docker_sandbox, "c", "#include <stdlib.h>\n#include <string.h>\n"
                       "int main(){volatile char*p=malloc(100<<20);"
                       " for(int i=0;i<(100<<20);i+=4096)p[i]=1; return 0;}\n",
                       memory_mb=64)
    assert r.oom_killed, r


async def test_detect_versions_runs_in_the_images(docker_sandbox: DockerSandbox) -> None:
    found = await docker_sandbox.detect_versions(REGISTRY)
    assert set(found) == set(REGISTRY.names())
    for name in ("python", "javascript", "c"):
        assert found[name], (name, found)
    assert found["python"].startswith("3."), found  # type: ignore[union-attr]
    await assert_clean_and_healthy(docker_sandbox)


async def test_a_cancelled_execution_leaves_nothing(docker_sandbox: DockerSandbox) -> None:
    token = f"cancel-{time.monotonic_ns()}"
    lang = REGISTRY.resolve("python")
    lim = limits(docker_sandbox.settings, wall_ms=30000, cpu_ms=30000)
    workspaces: list[DockerWorkspace] = []

    async def execution() -> None:
        async with docker_sandbox.workspace("cancel", [("main.py", ENDLESS_PY)], lang) as ws:
            workspaces.append(ws)
            await ws.run(["/usr/bin/python3", "main.py", token], stdin=b"", limits=lim,
                         language=lang)

    task = asyncio.create_task(execution())
    deadline = time.monotonic() + 20
    # Processes in another pid namespace have no event here to await: poll, bounded.
    while len(pids_with(token, "python3")) < 2 and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    assert len(pids_with(token, "python3")) >= 2, "the program and its daemon never started"
    cancelled_at = time.monotonic()
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=10)
    assert task in done and task.cancelled()
    assert time.monotonic() - cancelled_at < 2.0
    assert pids_with(token) == []
    cid = workspaces[0].container_id
    assert cid is not None and cid not in docker_containers(), "the container is left"
    await assert_clean_and_healthy(docker_sandbox)


WORKER = """
import asyncio, dataclasses, sys
from runstream.services.settings import Settings
from runstream.services.execution.languages import Registry
from runstream.services.execution.sandbox.docker import DockerSandbox
async def main():
    s = Settings.from_env({}, sandbox_docker_pool=0)
    sb = DockerSandbox(s); await sb.start()
    print(sb.scope, flush=True)
    py = Registry.load().resolve("python")
    code = (b"import os, time\\nif os.fork() == 0:\\n    os.setsid(); time.sleep(1000)\\n"
            b"time.sleep(1000)\\n")
    limits = dataclasses.replace(s.default_limits, wall_ms=30000, cpu_ms=30000)
    async with sb.workspace("k", [("main.py", code)], py) as ws:
        await ws.run(["/usr/bin/python3", "main.py"], stdin=b"", limits=limits, language=py)
asyncio.run(main())
"""


async def test_sigkilled_worker_leaves_no_container(docker_sandbox: DockerSandbox) -> None:
    worker = subprocess.Popen([sys.executable, "-c", WORKER], stdout=subprocess.PIPE)
    try:
        assert worker.stdout is not None
        scope = (await asyncio.to_thread(worker.stdout.readline)).decode().strip()
        assert scope.startswith("w"), f"the worker did not start (printed {scope!r})"
        deadline = time.monotonic() + 20
        # Another process's container has no event here to await: poll, bounded.
        while not docker_containers(scope) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        assert docker_containers(scope), "the worker's container never appeared"
        # A worker starting beside a live one leaves the live one's containers alone.
        neighbour = DockerSandbox(docker_sandbox.settings)
        await neighbour.start()
        await neighbour.stop()
        assert docker_containers(scope), "a starting worker removed a live worker's container"
        worker.kill()
        worker.wait(timeout=10)
        assert docker_containers(scope), "expected the SIGKILLed worker's container to stay"
        fresh = DockerSandbox(docker_sandbox.settings)
        await fresh.start()  # reaps the dead worker's containers
        try:
            assert docker_containers(scope) == []
        finally:
            await fresh.stop()
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(timeout=10)
