# Set-up runs small blocking process and file calls on purpose, next to what they check.
# ruff: noqa: ASYNC220, ASYNC221, ASYNC240
"""The native launcher in front of bwrap (launcher.c) against the shell chain it replaces.

Both chains must confine a run identically: same ids, groups, capabilities,
rlimits and cgroup; the launcher's own memfd must not reach the program; and
the launcher must refuse what would run the sandbox as root. Also the end of
a run: waiting for a killed run's processes is told by their pidfds.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import subprocess
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from runstream.services.errors import SandboxError
from runstream.services.execution.sandbox.bwrap import BwrapSandbox, _launcher, command
from runstream.services.execution.sandbox.cgroup import _exits
from runstream.services.settings import Settings

from .conftest import assert_clean_and_healthy, leftovers, run_code

pytestmark = [pytest.mark.sandbox, pytest.mark.timeout(120)]

# What a program can learn about how it was started: ids, capabilities, limits,
# its descriptors and its cgroups' limits as the kernel applies them.
IDENTITY_PY = textwrap.dedent("""
    import os, resource
    print(os.getuid(), os.getgid(), os.getgroups(), os.geteuid(), os.getegid())
    for line in open('/proc/self/status'):
        if line.startswith(('Uid', 'Gid', 'Groups', 'Cap', 'NoNewPrivs', 'Seccomp')):
            print(line.strip())
    for name in ('CPU', 'FSIZE', 'NOFILE', 'CORE', 'STACK', 'NPROC', 'AS'):
        print(name, resource.getrlimit(getattr(resource, 'RLIMIT_' + name)))
    print(sorted(os.listdir('/proc/self/fd')))
    print(sorted(os.readlink(f'/proc/self/fd/{fd}') for fd in (0, 1, 2)))
    print(os.environ == {'PATH': '/usr/bin:/bin', 'HOME': '/tmp', 'LANG': 'C.UTF-8',
                         'PWD': '/box'}
          or dict(os.environ))
""")


@pytest.fixture(scope="module")
async def shell_sandbox(sandbox_settings: Settings) -> AsyncIterator[BwrapSandbox]:
    settings = dataclasses.replace(
        sandbox_settings, sandbox_launcher="shell",
        sandbox_cgroup_name=sandbox_settings.sandbox_cgroup_name + "-sh",
        sandbox_run_dir=sandbox_settings.sandbox_run_dir + "-sh")
    sb = BwrapSandbox(settings)
    await sb.start()
    yield sb
    await sb.stop()
    assert leftovers(sb) == []


def _pipes_as_anonymous(text: str) -> str:
    """Pipe inode numbers differ between runs; the rest of the output may not."""
    return re.sub(r"pipe:\[\d+\]", "pipe:[]", text)


async def test_the_native_launcher_is_used_here(sandbox: BwrapSandbox) -> None:
    # This host has a C compiler (C is a core language): falling back silently
    # would hide a broken launcher behind the slower chain.
    assert sandbox.launcher_fd >= 0
    r = await run_code(sandbox, "python", "print(1)")
    assert (r.exit_code, r.stdout) == (0, b"1\n")


async def test_both_chains_confine_a_run_identically(sandbox: BwrapSandbox,
                                                     shell_sandbox: BwrapSandbox) -> None:
    outputs = []
    for sb in (sandbox, shell_sandbox):
        r = await run_code(sb, "python", IDENTITY_PY, file_size_kb=1024, cpu_ms=2500)
        assert r.exit_code == 0, r.stderr
        outputs.append(_pipes_as_anonymous(r.stdout.decode()))
    native, shell = outputs
    assert native == shell
    lines = native.splitlines()
    assert lines[0] == "65534 65534 [] 65534 65534"
    assert "CapBnd:\t0000000000000000" in lines and "CapInh:\t0000000000000000" in lines
    assert "CapAmb:\t0000000000000000" in lines and "NoNewPrivs:\t1" in lines
    assert "FSIZE (1048576, 1048576)" in lines and "CPU (4, 4)" in lines
    # No descriptor beyond stdin, stdout, stderr and listdir's own: not the
    # launcher's memfd, not the seccomp filter's, not bwrap's status pipe.
    assert "['0', '1', '2', '3']" in lines, native
    assert lines[-1] == "True", lines[-1]
    await assert_clean_and_healthy(sandbox)
    await assert_clean_and_healthy(shell_sandbox)


async def test_the_launcher_refuses_root_and_bad_arguments(sandbox: BwrapSandbox) -> None:
    fd = sandbox.launcher_fd
    with pytest.raises(SandboxError, match="misbehaves"):
        _launcher.check(fd, 0, 65534)
    marker = "/tmp/runstream-launcher-must-not-run"
    touch = ["/usr/bin/touch", marker]
    lim = sandbox.settings.default_limits
    good = command.native_argv(fd, [], lim, 65534, 65534, touch)
    bad = {
        "root uid": command.native_argv(fd, [], lim, 0, 65534, touch),
        "root gid": command.native_argv(fd, [], lim, 65534, 0, touch),
        "uid that wraps to root": command.native_argv(fd, [], lim, 1 << 32, 65534, touch),
        "uid meaning unchanged": command.native_argv(fd, [], lim, (1 << 32) - 1, 65534, touch),
        "not a number": [*good[:5], "1e3", *good[6:]],
        "missing --": [a for a in good if a != "--"],
        "nothing to run": good[:good.index("--") + 1],
        "missing cgroup": command.native_argv(fd, ["/sys/fs/cgroup/pids/no-such/tasks"], lim,
                                              65534, 65534, touch),
    }
    for what, argv in bad.items():
        done = subprocess.run(argv, pass_fds=(fd,), env={}, capture_output=True, timeout=10,
                              check=False)
        assert done.returncode == 127, (what, done)
        assert done.stderr.startswith(b"runstream-launch: "), (what, done.stderr)
        assert not os.path.exists(marker), what
    # The same launcher with sane arguments does run the program, as the sandbox uid.
    try:
        done = subprocess.run(good, pass_fds=(fd,), env={}, capture_output=True, timeout=10,
                              check=False)
        assert done.returncode == 0, done
        assert os.stat(marker).st_uid == 65534
    finally:
        if os.path.exists(marker):
            os.unlink(marker)


async def test_the_launchers_memfd_cannot_be_changed(sandbox: BwrapSandbox) -> None:
    fd = sandbox.launcher_fd
    with pytest.raises(OSError):
        os.write(fd, b"\x7fELF")  # a read-only descriptor
    rw = os.open(f"/proc/self/fd/{fd}", os.O_RDWR)  # root may reopen it writable...
    try:
        with pytest.raises(PermissionError):  # ...but the seals refuse any write
            os.pwrite(rw, b"\x7fELF", 0)
        with pytest.raises(PermissionError):
            os.ftruncate(rw, 0)
    finally:
        os.close(rw)


async def test_the_launcher_joins_every_cgroup_and_the_kill_wait_sees_the_exit(
        sandbox: BwrapSandbox) -> None:
    assert sandbox._tree is not None
    lim = sandbox.settings.default_limits
    cg = sandbox._tree.create("launcher-join", memory_bytes=lim.memory_bytes, pids=8)
    fd = sandbox.launcher_fd
    proc = subprocess.Popen(
        command.native_argv(fd, cg.join_files, lim, 65534, 65534, ["/usr/bin/sleep", "1000"]),
        pass_fds=(fd,), env={}, stdout=subprocess.PIPE)
    try:
        # The launcher joins before it executes anything: by the time sleep runs
        # (the launcher's pid now shows sleep's name), every controller has it.
        deadline = time.monotonic() + 10
        while Path(f"/proc/{proc.pid}/comm").read_text().strip() != "sleep":
            assert time.monotonic() < deadline, "the launcher never executed sleep"
            await asyncio.sleep(0.005)  # a poll of another process, not synchronisation
        assert cg.pids() == [proc.pid]
        joined = Path(f"/proc/{proc.pid}/cgroup").read_text()
        for controller, directory in cg.dirs.items():
            assert f":{controller}:/" in joined
            assert str(directory).endswith(
                next(line.split(":", 2)[2] for line in joined.splitlines()
                     if line.split(":")[1] == controller))
        started = time.monotonic()
        assert await cg.wait_empty(5.0)
        # Told by the process's pidfd, not found by a poll: well under the 50 ms
        # fallback bound even on a loaded machine.
        assert time.monotonic() - started < 1.0
        assert cg.pids() == [] and proc.wait(timeout=5) == -9
    finally:
        proc.kill()
        proc.wait(timeout=5)
        await cg.remove()


async def test_exits_waits_for_the_listed_processes_and_no_longer_than_its_bound() -> None:
    sleeper = subprocess.Popen(["/usr/bin/sleep", "1000"])
    gone = subprocess.Popen(["/usr/bin/true"])
    gone.wait(timeout=5)
    try:
        started = time.monotonic()
        await _exits([sleeper.pid], 0.2)  # alive and not killed: the bound ends the wait
        assert 0.19 <= time.monotonic() - started < 2.0
        asyncio.get_running_loop().call_soon(sleeper.kill)
        started = time.monotonic()
        await _exits([sleeper.pid, gone.pid], 30.0)  # one exits meanwhile, one was gone
        assert time.monotonic() - started < 5.0
        assert sleeper.poll() is not None or sleeper.wait(timeout=5) == -9
    finally:
        sleeper.kill()
        sleeper.wait(timeout=5)
