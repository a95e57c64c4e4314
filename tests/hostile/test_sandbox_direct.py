# Test set-up does small blocking file and process calls on purpose: they are
# instantaneous and keep the assertions next to what they check.
# ruff: noqa: ASYNC240
"""Hostile programs against each sandbox backend directly (no Kafka), one suite for both.

Every test runs on bwrap (root, bubblewrap, cgroups) and on docker (an engine and the
runstream/* images); what differs between the two is in :data:`EXPECT`. Each test
asserts the outcome, then that nothing of the run is left and that an ordinary run
still works afterwards. What only one backend has (seccomp, the launcher, mounts,
the warm pool, reaping a dead worker's leftovers) is in test_bwrap_direct.py and
test_docker_direct.py.
"""

from __future__ import annotations

import socket
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from runstream.services.execution.languages import render
from runstream.services.execution.sandbox.base import Sandbox
from runstream.services.settings import Settings

from ._programs import (
    BUSY_LOOP_PY,
    FORK_BOMB_C,
    FORK_BOMB_PY,
    MEMORY_BOMB_C,
    MEMORY_BOMB_PY,
    MILLION_FDS_PY,
    SLEEP_FOREVER_PY,
    STDOUT_FLOOD_PY,
    fill_disk_py,
)
from .conftest import REGISTRY, assert_clean_and_healthy, limits, run_code

BACKENDS = [
    pytest.param("bwrap", id="bwrap", marks=[pytest.mark.sandbox, pytest.mark.timeout(120)]),
    pytest.param("docker", id="docker", marks=[pytest.mark.docker, pytest.mark.timeout(180)]),
]


@dataclass(frozen=True)
class Expect:
    """What one backend answers differently to the same hostile program."""

    identities: tuple[str, ...]  # accepted starts of "uid gid groups hostname"
    memory_floor_kb: int  # lowest peak reported for a run OOM-killed at 64 MiB
    cpu_ceiling_ms: int  # highest CPU reported for a run killed at its 1000 ms limit
    busy_wall_ceiling_ms: int  # and its wall time
    sleep_wall_ceiling_ms: int  # highest wall reported for a run killed at 1000 ms wall
    read_only_dirs: tuple[str, ...]  # folders a run cannot write (beside its tmpfs ones)


EXPECT = {
    "bwrap": Expect(identities=("65534 65534 [] ",), memory_floor_kb=60 * 1024,
                    cpu_ceiling_ms=1500, busy_wall_ceiling_ms=3000, sleep_wall_ceiling_ms=2000,
                    read_only_dirs=()),
    # Docker gives the user its primary group as a supplementary one too: no other. Its
    # container's cgroup counts less of the run's memory; exec adds start-up time.
    "docker": Expect(identities=("65534 65534 [] runstream\n", "65534 65534 [65534] runstream\n"),
                     memory_floor_kb=48 * 1024, cpu_ceiling_ms=1800, busy_wall_ceiling_ms=4000,
                     sleep_wall_ceiling_ms=2500, read_only_dirs=("/var/tmp", "/")),
}


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def sb(backend: str, request: pytest.FixtureRequest) -> Sandbox:
    sandbox: Sandbox = request.getfixturevalue("sandbox" if backend == "bwrap"
                                               else "docker_sandbox")
    return sandbox


@pytest.fixture
def expect(backend: str) -> Expect:
    return EXPECT[backend]


def settings_of(sb: Sandbox) -> Settings:
    settings: Settings = sb.settings  # type: ignore[attr-defined]
    return settings


def py(src: str) -> str:
    return textwrap.dedent(src)


async def test_identity_limits_and_capabilities(sb: Sandbox, expect: Expect) -> None:
    r = await run_code(sb, "python", py("""
        import os, socket
        print(os.getuid(), os.getgid(), os.getgroups(), socket.gethostname())
        status = open('/proc/self/status').read()
        print([l for l in status.splitlines() if l.startswith(('CapEff', 'CapPrm', 'NoNewPrivs'))])
        print(open('/proc/self/limits').read())
    """), file_size_kb=1024)
    out = r.stdout.decode()
    assert out.startswith(expect.identities), out
    assert "CapEff:\\t0000000000000000" in out and "NoNewPrivs:\\t1" in out
    lim = {line[:26].strip(): line[26:].split() for line in out.splitlines()[2:] if line}
    assert lim["Max file size"][:2] == ["1048576", "1048576"]
    assert lim["Max open files"][:2] == ["256", "256"]
    assert lim["Max core file size"][:2] == ["0", "0"]
    assert lim["Max cpu time"][:2] == ["6", "6"]


@pytest.mark.parametrize("lang,src", [("python", FORK_BOMB_PY), ("c", FORK_BOMB_C)])
async def test_fork_bomb(sb: Sandbox, lang: str, src: str) -> None:
    r = await run_code(sb, lang, src, wall_ms=2000, cpu_ms=2000)
    assert r.time_limit in ("wall", "cpu") and r.signal == "SIGKILL", r
    await assert_clean_and_healthy(sb)


@pytest.mark.parametrize("lang,src", [("python", MEMORY_BOMB_PY), ("c", MEMORY_BOMB_C)])
async def test_memory_bomb_is_oom_killed(sb: Sandbox, expect: Expect, lang: str,
                                         src: str) -> None:
    r = await run_code(sb, lang, src, memory_mb=64, wall_ms=10000)
    assert r.oom_killed and r.signal == "SIGKILL" and r.time_limit is None, r
    assert expect.memory_floor_kb <= r.memory_kb <= 64 * 1024 + 1024, r.memory_kb
    await assert_clean_and_healthy(sb)


@pytest.mark.parametrize("lang,src", [
    ("python", BUSY_LOOP_PY), ("javascript", "for(;;){}"), ("c", "int main(){for(;;);}"),
])
async def test_busy_loop_hits_the_cpu_limit(sb: Sandbox, expect: Expect, lang: str,
                                            src: str) -> None:
    r = await run_code(sb, lang, src, cpu_ms=1000, wall_ms=10000)
    assert r.time_limit == "cpu" and r.signal == "SIGKILL", r
    assert 1000 <= r.cpu_ms <= expect.cpu_ceiling_ms, r
    assert r.wall_ms < expect.busy_wall_ceiling_ms, r
    await assert_clean_and_healthy(sb)


async def test_sleep_forever_hits_the_wall_limit(sb: Sandbox, expect: Expect) -> None:
    r = await run_code(sb, "python", SLEEP_FOREVER_PY, wall_ms=1000)
    assert r.time_limit == "wall" and r.signal == "SIGKILL", r
    assert 1000 <= r.wall_ms < expect.sleep_wall_ceiling_ms and r.cpu_ms < 500, r
    await assert_clean_and_healthy(sb)


async def test_stdout_flood_is_truncated(sb: Sandbox) -> None:
    r = await run_code(sb, "python", STDOUT_FLOOD_PY, output_kb=64)
    assert r.stdout_truncated and r.output_limit_hit and r.signal == "SIGKILL", r
    assert r.stdout == b"x" * 65536 and not r.stderr_truncated
    await assert_clean_and_healthy(sb)


async def test_stderr_flood_is_truncated(sb: Sandbox) -> None:
    r = await run_code(sb, "python", py("""
        import os
        while True:
            os.write(2, os.urandom(1 << 16))
    """), output_kb=100)
    assert r.stderr_truncated and r.output_limit_hit and len(r.stderr) == 100 * 1024
    r = await run_code(sb, "javascript",
                       "const fs=require('fs');for(;;)fs.writeSync(2,'y'.repeat(1e5))",
                       output_kb=100)
    assert r.stderr_truncated and r.output_limit_hit and r.stderr == b"y" * 102400
    await assert_clean_and_healthy(sb)


async def test_filling_the_disk_stops_at_the_tmpfs_cap(sb: Sandbox, expect: Expect) -> None:
    writable = ("/box", "/tmp", "/dev/shm")
    r = await run_code(sb, "python", fill_disk_py(*writable, *expect.read_only_dirs),
                       memory_mb=512, wall_ms=20000, cpu_ms=20000)
    lines = [line.split() for line in r.stdout.decode().splitlines()]
    cap = settings_of(sb).sandbox_tmpfs_mb
    assert [line[0] for line in lines] == [*writable, *expect.read_only_dirs], r
    for d, err, mb in lines[:len(writable)]:
        assert err == "ENOSPC" and cap - 8 <= int(mb) <= cap, (d, err, mb)
    for d, err, mb in lines[len(writable):]:  # the read-only root
        assert err in ("EROFS", "EACCES") and mb == "0", (d, err, mb)
    await assert_clean_and_healthy(sb)


async def test_files_do_not_survive_into_the_next_run(sb: Sandbox) -> None:
    await run_code(sb, "python", py("""
        for p in ('/tmp/canary', '/dev/shm/canary', '/box/canary'):
            open(p, 'w').write('x')
    """))
    r = await run_code(sb, "python", py("""
        import os
        print([p for p in ('/tmp/canary', '/dev/shm/canary', '/box/canary') if os.path.exists(p)])
    """))
    assert r.stdout == b"[]\n"


async def test_no_network_not_even_the_hosts_loopback(sb: Sandbox) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    try:
        # No packet is ever sent off this machine, even by a broken sandbox: "outside"
        # is proven unreachable by the absence of any route and of any interface but lo.
        r = await run_code(sb, "python", py(f"""
            import socket
            routes = open('/proc/net/route').read().splitlines()[1:]
            devs = sorted(l.split(':')[0].strip() for l in
                          open('/proc/net/dev').read().splitlines()[2:])
            print('routes', len(routes), 'devs', devs,
                  'ifs', sorted(n for _, n in socket.if_nameindex()))
            s = socket.socket(); s.settimeout(2)
            try:
                s.connect(('127.0.0.1', {port})); print('CONNECTED')
            except OSError as e:
                print('fail', type(e).__name__)
        """))
    finally:
        listener.close()
    out = r.stdout.decode()
    assert "routes 0 devs ['lo'] ifs ['lo']" in out, out
    assert "CONNECTED" not in out and "fail ConnectionRefusedError" in out, out


async def test_planted_links_do_not_reach_the_host(sb: Sandbox) -> None:
    passwd = Path("/etc/passwd").read_bytes()
    r = await run_code(sb, "python", py("""
        import os
        os.symlink('/etc/passwd', '/box/passwd')
        os.symlink('/', '/box/root')
        os.symlink('/etc', '/box/main.py.d')
        try:
            os.link('/etc/ld.so.cache', '/box/hard')
        except OSError as e:
            print('link', type(e).__name__)
        os.mkfifo('/box/fifo')
        print('planted')
    """))
    lines = r.stdout.decode().splitlines()
    assert len(lines) == 2 and lines[0].startswith("link ") and lines[1] == "planted", r
    assert Path("/etc/passwd").read_bytes() == passwd
    await assert_clean_and_healthy(sb)


async def test_a_million_fds(sb: Sandbox) -> None:
    r = await run_code(sb, "python", MILLION_FDS_PY)
    count, err = r.stdout.split()
    assert int(count) < 256 and int(err) == 24, r  # EMFILE
    await assert_clean_and_healthy(sb)


async def test_exit_codes_signals_and_stdin(sb: Sandbox) -> None:
    r = await run_code(sb, "c", "#include <stdlib.h>\nint main(){exit(3);}\n")
    assert (r.exit_code, r.signal) == (3, None)
    r = await run_code(sb, "c", "#include <stdlib.h>\nint main(){abort();}\n")
    assert (r.exit_code, r.signal) == (None, "SIGABRT")
    r = await run_code(sb, "python", "import sys\nsys.stdout.write(sys.stdin.read())",
                       stdin=b"x" * 300_000)
    assert r.stdout == b"x" * 300_000 and r.exit_code == 0


LIVE_OUTPUT_PY = ("import sys, time\nprint('a', flush=True)\ntime.sleep(0.3)\n"
                  "print('b', flush=True)\nsys.stderr.write('x' * 100000)\n")


async def test_output_is_told_as_it_is_written_up_to_the_cap(sb: Sandbox) -> None:
    """The live-output sink (events): each write as it comes, nothing past the cap."""
    lang = REGISTRY.resolve("python")
    lim = limits(settings_of(sb), output_kb=64)
    told: list[tuple[str, bytes]] = []
    async with sb.workspace("t", [(lang.entry, LIVE_OUTPUT_PY.encode())], lang) as ws:
        r = await ws.run(render(lang.run, lang, lim), stdin=b"", limits=lim, language=lang,
                         output=lambda stream, data: told.append((stream, data)))
    # Two writes with a pause between reach the sink apart, in order.
    assert [d for s, d in told if s == "stdout"] == [b"a\n", b"b\n"] and r.stdout == b"a\nb\n"
    assert b"".join(d for s, d in told if s == "stderr") == r.stderr == b"x" * 65536
    assert r.stderr_truncated and r.output_limit_hit
    await assert_clean_and_healthy(sb)
