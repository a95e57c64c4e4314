# Test set-up does small blocking file and process calls on purpose: they are
# instantaneous and keep the assertions next to what they check.
# ruff: noqa: ASYNC220, ASYNC240
"""Hostile programs against DockerSandbox directly (no Kafka).

The same ideas as test_bwrap_direct.py, in python, javascript and c. Each test
asserts the outcome, then that nothing of the run is left and that an ordinary
run still works afterwards.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from runstream.services.execution.languages import render
from runstream.services.execution.sandbox.docker import DockerSandbox, DockerWorkspace

from ._programs import (
    BUSY_LOOP_PY,
    FORK_BOMB_C,
    FORK_BOMB_PY,
    HOST_FACTS_PY,
    MEMORY_BOMB_C,
    MEMORY_BOMB_PY,
    MILLION_FDS_PY,
    SLEEP_FOREVER_PY,
    STDOUT_FLOOD_PY,
    assert_host_facts_hidden,
    fill_disk_py,
)
from .conftest import ENDLESS_PY, REGISTRY, docker_containers, limits, pids_with, run_code

pytestmark = [pytest.mark.docker, pytest.mark.timeout(180)]


def py(src: str) -> str:
    return textwrap.dedent(src)


async def assert_clean_and_healthy(sb: DockerSandbox) -> None:
    """Only the warm pool's idle containers remain, and a normal run works."""
    await sb.settle()  # pending removals and the pool's refill (started at the end)
    pooled = {cid for entries in (sb._pool._ready.values() if sb._pool else ())
              for _, cid in entries}
    left = set(docker_containers(sb.scope)) - pooled
    assert not left, f"containers of finished executions remain: {left}"
    r = await run_code(sb, "python", "print(6 * 7)")
    assert (r.exit_code, r.stdout) == (0, b"42\n"), r


async def test_what_a_run_can_see_of_the_host(docker_sandbox: DockerSandbox) -> None:
    """docs/sandbox.md "What a run can see": every row marked hidden, on docker (issue 23)."""
    r = await run_code(docker_sandbox, "python", HOST_FACTS_PY)
    assert r.exit_code == 0, r.stderr
    facts = json.loads(r.stdout)
    # The container's init (docker-init, sleep), the phase's timeout and the program.
    assert_host_facts_hidden(facts, host_paths=[docker_sandbox.scope],
                             programs={"docker-init", "sleep", "timeout", "sh", "python3"})
    assert facts["cmdlines"]["1"][0] == "/sbin/docker-init", facts["cmdlines"]
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


async def test_identity_limits_and_capabilities(docker_sandbox: DockerSandbox) -> None:
    r = await run_code(docker_sandbox, "python", py("""
        import os, socket
        print(os.getuid(), os.getgid(), os.getgroups(), socket.gethostname())
        status = open('/proc/self/status').read()
        print([l for l in status.splitlines() if l.startswith(('CapEff', 'CapPrm', 'NoNewPrivs'))])
        print(open('/proc/self/limits').read())
    """), file_size_kb=1024)
    out = r.stdout.decode()
    # Docker gives the user its primary group as a supplementary one too: no other.
    assert out.split("\n")[0] in ("65534 65534 [] runstream", "65534 65534 [65534] runstream"), out
    assert "CapEff:\\t0000000000000000" in out and "NoNewPrivs:\\t1" in out
    lim = {line[:26].strip(): line[26:].split() for line in out.splitlines()[2:] if line}
    assert lim["Max file size"][:2] == ["1048576", "1048576"]
    assert lim["Max open files"][:2] == ["256", "256"]
    assert lim["Max core file size"][:2] == ["0", "0"]


@pytest.mark.parametrize("lang,src", [
    ("python", FORK_BOMB_PY), ("c", FORK_BOMB_C),
])
async def test_fork_bomb(docker_sandbox: DockerSandbox, lang: str, src: str) -> None:
    r = await run_code(docker_sandbox, lang, src, wall_ms=2000, cpu_ms=2000)
    assert r.time_limit in ("wall", "cpu") and r.signal == "SIGKILL", r
    await assert_clean_and_healthy(docker_sandbox)


@pytest.mark.parametrize("lang,src", [
    ("python", MEMORY_BOMB_PY), ("c", MEMORY_BOMB_C),
])
async def test_memory_bomb_is_oom_killed(docker_sandbox: DockerSandbox, lang: str,
                                         src: str) -> None:
    r = await run_code(docker_sandbox, lang, src, memory_mb=64, wall_ms=10000)
    assert r.oom_killed and r.signal == "SIGKILL" and r.time_limit is None, r
    assert 48 * 1024 <= r.memory_kb <= 64 * 1024 + 1024, r.memory_kb
    await assert_clean_and_healthy(docker_sandbox)


@pytest.mark.parametrize("lang,src", [
    ("python", BUSY_LOOP_PY), ("javascript", "for(;;){}"), ("c", "int main(){for(;;);}"),
])
async def test_busy_loop_hits_the_cpu_limit(docker_sandbox: DockerSandbox, lang: str,
                                            src: str) -> None:
    r = await run_code(docker_sandbox, lang, src, cpu_ms=1000, wall_ms=10000)
    assert r.time_limit == "cpu" and r.signal == "SIGKILL", r
    assert 1000 <= r.cpu_ms <= 1800 and r.wall_ms < 4000, r
    await assert_clean_and_healthy(docker_sandbox)


async def test_sleep_forever_hits_the_wall_limit(docker_sandbox: DockerSandbox) -> None:
    r = await run_code(docker_sandbox, "python", SLEEP_FOREVER_PY, wall_ms=1000)
    assert r.time_limit == "wall" and r.signal == "SIGKILL", r
    assert 1000 <= r.wall_ms < 2500 and r.cpu_ms < 500, r
    await assert_clean_and_healthy(docker_sandbox)


async def test_closing_stdout_does_not_end_the_run(docker_sandbox: DockerSandbox) -> None:
    r = await run_code(docker_sandbox, "python", "import os, time\nos.close(1); os.close(2)\n"
                       "time.sleep(1000)\n", wall_ms=1000)
    assert r.time_limit == "wall", r


async def test_stdout_flood_is_truncated(docker_sandbox: DockerSandbox) -> None:
    r = await run_code(docker_sandbox, "python", STDOUT_FLOOD_PY, output_kb=64)
    assert r.stdout_truncated and r.output_limit_hit and r.signal == "SIGKILL", r
    assert r.stdout == b"x" * 65536 and not r.stderr_truncated
    r = await run_code(docker_sandbox, "javascript",
                       "const fs=require('fs');for(;;)fs.writeSync(2,'y'.repeat(1e5))",
                       output_kb=100)
    assert r.stderr_truncated and r.output_limit_hit and r.stderr == b"y" * 102400
    await assert_clean_and_healthy(docker_sandbox)


async def test_filling_the_disk_stops_at_the_tmpfs_cap(docker_sandbox: DockerSandbox) -> None:
    r = await run_code(docker_sandbox, "python",
                       fill_disk_py("/box", "/tmp", "/dev/shm", "/var/tmp", "/"),
                       memory_mb=512, wall_ms=20000, cpu_ms=20000)
    lines = [line.split() for line in r.stdout.decode().splitlines()]
    cap = docker_sandbox.settings.sandbox_tmpfs_mb
    assert [line[0] for line in lines] == ["/box", "/tmp", "/dev/shm", "/var/tmp", "/"], r
    for d, err, mb in lines[:3]:
        assert err == "ENOSPC" and cap - 8 <= int(mb) <= cap, (d, err, mb)
    for d, err, mb in lines[3:]:  # the read-only root
        assert err in ("EROFS", "EACCES") and mb == "0", (d, err, mb)
    await assert_clean_and_healthy(docker_sandbox)


async def test_no_network_not_even_the_hosts_loopback(docker_sandbox: DockerSandbox) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    try:
        # No packet is ever sent off this machine, even by a broken sandbox: "outside"
        # is proven unreachable by the absence of any route and of any interface but lo.
        r = await run_code(docker_sandbox, "python", py(f"""
            import socket
            routes = open('/proc/net/route').read().splitlines()[1:]
            print('routes', len(routes), sorted(n for _, n in socket.if_nameindex()))
            s = socket.socket(); s.settimeout(2)
            try:
                s.connect(('127.0.0.1', {port})); print('CONNECTED')
            except OSError as e:
                print('fail', type(e).__name__)
        """))
    finally:
        listener.close()
    out = r.stdout.decode()
    assert "routes 0 ['lo']" in out, out  # network_mode none: no route, only loopback
    assert "CONNECTED" not in out and "fail ConnectionRefusedError" in out, out


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


async def test_planted_links_do_not_reach_the_host(docker_sandbox: DockerSandbox) -> None:
    passwd = Path("/etc/passwd").read_bytes()
    r = await run_code(docker_sandbox, "python", py("""
        import os
        os.symlink('/etc/passwd', '/box/passwd')
        os.symlink('/', '/box/root')
        os.symlink('/etc', '/box/main.py.d')
        os.mkfifo('/box/fifo')
        print('planted')
    """))
    assert r.stdout == b"planted\n", r
    assert Path("/etc/passwd").read_bytes() == passwd
    await assert_clean_and_healthy(docker_sandbox)


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


async def test_a_million_fds(docker_sandbox: DockerSandbox) -> None:
    r = await run_code(docker_sandbox, "python", MILLION_FDS_PY)
    count, err = r.stdout.split()
    assert int(count) < 256 and int(err) == 24, r  # EMFILE
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


async def test_exit_codes_signals_and_phases(docker_sandbox: DockerSandbox) -> None:
    r = await run_code(docker_sandbox, "c", "#include <stdlib.h>\nint main(){exit(3);}\n")
    assert (r.exit_code, r.signal) == (3, None)
    r = await run_code(docker_sandbox, "c", "#include <stdlib.h>\nint main(){abort();}\n")
    assert (r.exit_code, r.signal) == (None, "SIGABRT")
    r = await run_code(docker_sandbox, "python", "import sys\nsys.stdout.write(sys.stdin.read())",
                       stdin=b"x" * 300_000)
    assert r.stdout == b"x" * 300_000 and r.exit_code == 0
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


LIVE_OUTPUT_PY = ("import sys, time\nprint('a', flush=True)\ntime.sleep(0.3)\n"
                  "print('b', flush=True)\nsys.stderr.write('x' * 100000)\n")


async def test_output_is_told_as_it_is_written_up_to_the_cap(
        docker_sandbox: DockerSandbox) -> None:
    """The live-output sink (events): each write as it comes, nothing past the cap."""
    lang = REGISTRY.resolve("python")
    lim = limits(docker_sandbox.settings, output_kb=64)
    told: list[tuple[str, bytes]] = []
    files = [(lang.entry, LIVE_OUTPUT_PY.encode())]
    async with docker_sandbox.workspace("t", files, lang) as ws:
        r = await ws.run(render(lang.run, lang, lim), stdin=b"", limits=lim, language=lang,
                         output=lambda stream, data: told.append((stream, data)))
    # Two writes with a pause between reach the sink apart, in order.
    assert [d for s, d in told if s == "stdout"] == [b"a\n", b"b\n"] and r.stdout == b"a\nb\n"
    assert b"".join(d for s, d in told if s == "stderr") == r.stderr == b"x" * 65536
    assert r.stderr_truncated and r.output_limit_hit
    await assert_clean_and_healthy(docker_sandbox)
