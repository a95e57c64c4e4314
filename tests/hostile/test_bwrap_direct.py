# Test set-up does small blocking file and process calls on purpose: they are
# instantaneous and keep the assertions next to what they check.
# ruff: noqa: ASYNC220, ASYNC240
"""Hostile programs against BwrapSandbox directly (no Kafka): what only bwrap has.

What both backends answer (limits, floods, disk, network, links, output) is in
test_sandbox_direct.py, one suite parametrised by backend. Each test asserts the
outcome, then that no process of the run survives and that an ordinary run still
works afterwards.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import platform
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pyseccomp
import pytest
from runstream.services.execution.sandbox import versions
from runstream.services.execution.sandbox.bwrap import BwrapSandbox, _mount, _seccomp

from ._programs import HOST_FACTS_PY, assert_host_facts_hidden
from .conftest import (
    ENDLESS_PY,
    REGISTRY,
    assert_clean_and_healthy,
    leftovers,
    limits,
    pids_with,
    run_code,
    run_pids,
)

pytestmark = [pytest.mark.sandbox, pytest.mark.timeout(120)]


def py(src: str) -> str:
    return textwrap.dedent(src)


async def test_thread_bomb_hits_the_pids_limit(sandbox: BwrapSandbox) -> None:
    r = await run_code(sandbox, "python", py("""
        import threading, time
        n = 0
        try:
            while True:
                threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
                n += 1
        except RuntimeError:
            print(n, flush=True)
            raise SystemExit(3)
    """), processes=20, wall_ms=5000)
    assert r.exit_code == 3, r
    assert int(r.stdout) < 20 + 1 + 2  # the limit plus python's floor and bwrap's two
    await assert_clean_and_healthy(sandbox)


async def test_root_only_host_files_stay_unreadable(sandbox: BwrapSandbox) -> None:
    secret = Path("/usr/share/runstream-test-secret")
    secret.write_text("s3cret")
    secret.chmod(0o600)
    try:
        r = await run_code(sandbox, "python", py(f"""
            for p in ('/etc/shadow', '{secret}', '/proc/1/root/etc/shadow'):
                try:
                    print(open(p).read())
                except OSError as e:
                    print(p, type(e).__name__)
        """))
    finally:
        secret.unlink()
    out = r.stdout.decode()
    assert "s3cret" not in out and "root:" not in out
    assert f"{secret} PermissionError" in out


async def test_environment_of_the_worker_is_invisible(sandbox: BwrapSandbox,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNSTREAM_TEST_CANARY", "canary-7c1d")
    r = await run_code(sandbox, "python", py("""
        import os
        blobs = []
        for pid in [p for p in os.listdir('/proc') if p.isdigit()]:
            try:
                blobs.append(open(f'/proc/{pid}/environ', 'rb').read())
            except OSError:
                pass
        print(len(blobs), b'canary' in b''.join(blobs), sorted(os.environ))
    """))
    out = r.stdout.decode()
    assert "False" in out and "canary-7c1d" not in out, out
    assert "['HOME', 'LANG', 'PATH', 'PWD']" in out  # PWD: bwrap's --chdir


async def test_what_a_run_can_see_of_the_host(sandbox: BwrapSandbox) -> None:
    """docs/sandbox.md "What a run can see": every row marked hidden, on bwrap (issue 23)."""
    host_paths = [str(sandbox.base_dir), sandbox.scope, f"w{os.getpid()}-"]
    r = await run_code(sandbox, "python", HOST_FACTS_PY, stdin="\n".join(host_paths).encode())
    assert r.exit_code == 0, r.stderr
    facts = json.loads(r.stdout)
    assert_host_facts_hidden(facts, host_paths=host_paths, programs={"bwrap", "python3"})
    # Only bwrap (pid 1) and the program: bwrap's options (the workspace's host path,
    # the worker's pid, descriptor numbers) are not on its command line.
    cmdlines = facts["cmdlines"]
    assert set(cmdlines) == {"1", str(facts["self"])}, cmdlines
    argv = cmdlines["1"]
    assert argv[:2] == ["/usr/bin/bwrap", "--args"] and argv[2].isdigit(), argv
    assert argv[3:] == ["--", *cmdlines[str(facts["self"])]], argv
    # ... nor readable in its memory, which holds them still (and the host's mount table).
    assert facts["memory"] == {"1": "PermissionError"}, facts["memory"]
    assert facts["passwd"] == "FileNotFoundError"


async def test_worker_code_and_host_dirs_are_invisible(sandbox: BwrapSandbox) -> None:
    r = await run_code(sandbox, "python", py("""
        import os
        hidden = ('/work', '/root', '/home', '/run', '/var', '/sys/fs/cgroup', '/etc/passwd')
        print([p for p in hidden if os.path.exists(p)])
        print(sorted(os.listdir('/')))
    """))
    assert r.stdout.startswith(b"[]\n"), r.stdout
    assert b"work" not in r.stdout


async def test_kill_minus_one_only_reaches_the_sandbox(sandbox: BwrapSandbox) -> None:
    victim = subprocess.Popen(["/usr/bin/sleep", "60"], user=65534, group=65534,
                              extra_groups=[])
    try:
        r = await run_code(sandbox, "python", "import os, signal\nos.kill(-1, signal.SIGKILL)\n"
                           "print('still here')\n")
        assert victim.poll() is None, "a host process of the sandbox uid was killed"
        # kill(-1) reaches nothing but the sandbox's own namespace (or nothing: ESRCH).
        assert r.signal == "SIGKILL" or b"ProcessLookupError" in r.stderr, r
    finally:
        victim.kill()
        victim.wait(timeout=5)
    await assert_clean_and_healthy(sandbox)


async def test_setsid_daemon_dies_with_the_run(sandbox: BwrapSandbox) -> None:
    r = await run_code(sandbox, "python", py("""
        import os, time
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                os.close(1); os.close(2)
                time.sleep(1000)
            os._exit(0)
        print('parent done')
    """))
    assert r.stdout == b"parent done\n" and r.exit_code == 0
    await assert_clean_and_healthy(sandbox)


async def test_privileged_calls_fail(sandbox: BwrapSandbox) -> None:
    r = await run_code(sandbox, "python", py("""
        import ctypes, os
        libc = ctypes.CDLL(None, use_errno=True)
        def call(name, *args, label=None):
            rc = getattr(libc, name)(*args)
            print(label or name, rc, ctypes.get_errno())
        call('setuid', 0)
        call('unshare', 0x10000000)  # CLONE_NEWUSER
        call('unshare', 0x20000, label='unshare-ns')
        call('mount', b'none', b'/tmp', b'tmpfs', 0, None)
        call('ptrace', 0, 0, None, None)  # PTRACE_TRACEME
        call('syscall', 250, 0, label='keyctl')
        call('syscall', 425, 1, None, label='io_uring_setup')
        call('syscall', 321, 0, None, 0, label='bpf')
        call('syscall', 56, 0x10000000 | 17, 0, 0, 0, 0, label='clone')
        call('syscall', 435, None, 0, label='clone3')
        call('flock', 0, 2)
        import fcntl
        try:
            fcntl.lockf(open('/box/main.py'), fcntl.LOCK_SH); print('locked')
        except OSError as e:
            print('lockf', e.errno)
    """))
    lines = dict(line.split(" ", 1) for line in r.stdout.decode().splitlines())
    assert len(lines) == 12, r
    assert lines.pop("clone3") == "-1 38", r.stdout  # ENOSYS
    assert lines.pop("setuid").startswith("-1"), r.stdout
    assert lines.pop("lockf") == "1"
    for name, rc_errno in lines.items():
        assert rc_errno == "-1 1", (name, rc_errno)  # EPERM
    await assert_clean_and_healthy(sandbox)


def _nr(name: str) -> int:
    nr: int = pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, name)
    return nr


async def test_every_denied_syscall_class_fails_with_its_errno(sandbox: BwrapSandbox) -> None:
    # Every argument is -1: were a call not filtered, the kernel would refuse it
    # for its arguments (EFAULT, EBADF, EINVAL...), never with the filter's errno.
    calls = [(name, _nr(name), [-1] * 6) for name in _seccomp.DENIED]
    calls += [(f"clone {flag:#x}", _nr("clone"), [flag | 0x800, 0, 0, 0, 0, 0])  # |SIGHAND
              for flag in _seccomp.CLONE_NS_FLAGS]
    calls += [(f"fcntl {cmd}", _nr("fcntl"), [-1, cmd, 0, 0, 0, 0])
              for cmd in _seccomp.FCNTL_LOCK_CMDS]
    calls += [("socket vsock", _nr("socket"), [_seccomp.AF_VSOCK, 1, 0, 0, 0, 0]),
              ("clone3", _nr("clone3"), [0, 0, 0, 0, 0, 0])]
    r = await run_code(sandbox, "python", py(f"""
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        libc.syscall.argtypes = [ctypes.c_long] * 7
        for label, nr, args in {calls!r}:
            ctypes.set_errno(0)
            rc = libc.syscall(nr, *args)
            print(label, rc, ctypes.get_errno(), sep=":")
    """))
    answers = {label: rest for label, _, rest in
               (line.partition(":") for line in r.stdout.decode().splitlines())}
    expected = {label: "-1:1" for label, _, _ in calls}  # EPERM
    expected["clone3"] = "-1:38"  # ENOSYS, so that libc falls back to clone
    assert answers == expected, r
    await assert_clean_and_healthy(sandbox)


async def test_a_foreign_abi_call_kills_the_program(sandbox: BwrapSandbox) -> None:
    if platform.machine() != "x86_64":
        pytest.skip("x32 is an x86_64 ABI")
    r = await run_code(sandbox, "python", py("""
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall(0x40000000 | 39)  # getpid through the x32 ABI
        print('survived')
    """))
    assert (r.signal, r.stdout) == ("SIGSYS", b""), r
    await assert_clean_and_healthy(sandbox)


async def test_detect_versions_finds_the_hosts_toolchains(sandbox: BwrapSandbox) -> None:
    found = await sandbox.detect_versions(REGISTRY)
    assert found == await versions.detect(REGISTRY)
    assert found["python"] and found["python"][0] == "3", found


async def test_a_cancelled_execution_leaves_nothing(sandbox: BwrapSandbox) -> None:
    token = f"cancel-{os.getpid()}-{time.monotonic_ns()}"
    lang = REGISTRY.resolve("python")
    lim = limits(sandbox.settings, wall_ms=30000, cpu_ms=30000)
    assert sandbox._tree is not None
    cgroups_before = set(sandbox._tree.children())

    async def execution() -> None:
        async with sandbox.workspace("cancel", [("main.py", ENDLESS_PY)], lang) as ws:
            await ws.run(["/usr/bin/python3", "main.py", token], stdin=b"", limits=lim,
                         language=lang)

    task = asyncio.create_task(execution())
    await poll_until(lambda: len(pids_with(token, "python3")) >= 2, 20)
    assert len(pids_with(token, "python3")) >= 2, "the program and its daemon never started"
    cancelled_at = time.monotonic()
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=10)
    assert task in done and task.cancelled()
    assert time.monotonic() - cancelled_at < 2.0
    assert pids_with(token) == [] and run_pids(sandbox.settings) == []
    assert os.listdir(sandbox.run_dir) == [] and _mount.mounts_under(sandbox.run_dir) == []
    assert set(sandbox._tree.children()) <= cgroups_before, "the run's cgroup is left"
    await assert_clean_and_healthy(sandbox)


async def test_unbounded_recursion(sandbox: BwrapSandbox) -> None:
    r = await run_code(sandbox, "python", "import sys\nsys.setrecursionlimit(10**8)\n"
                       "def f(n): return f(n + 1) + 1\nf(0)\n")
    # Python 3.11 frames live on the heap: it ends by SIGSEGV, RecursionError or OOM.
    assert r.signal in ("SIGSEGV", "SIGKILL") or (r.exit_code or 0) != 0, r
    c = await run_code(sandbox, "c", "int f(int n){volatile char b[256]; b[0]=n;"
                       " return f(n+1)+b[0];}\nint main(){return f(0);}\n")
    assert c.signal == "SIGSEGV" and c.exit_code is None, c
    await assert_clean_and_healthy(sandbox)


async def test_stdin_read_or_left_unread_in_bash(sandbox: BwrapSandbox) -> None:
    # Exit codes and signals: test_sandbox_direct.py (both backends).
    r = await run_code(sandbox, "bash", "cat; exit 0", stdin=b"x" * 300_000)
    assert r.stdout == b"x" * 300_000 and r.exit_code == 0
    r = await run_code(sandbox, "bash", "exit 0", stdin=b"y" * 1_000_000)  # unread stdin
    assert r.exit_code == 0


async def test_javascript_hostile(sandbox: BwrapSandbox) -> None:
    # Its busy loop: test_sandbox_direct.py (both backends).
    r = await run_code(sandbox, "javascript", "const a=[];for(;;)a.push(Buffer.alloc(1<<20,1));",
                       memory_mb=128)
    assert r.oom_killed or r.exit_code not in (0, None) or r.signal
    r = await run_code(sandbox, "javascript", "require('child_process').execSync('id -u')"
                       ".toString().trim() === '65534' && console.log('nobody')")
    assert r.stdout == b"nobody\n"
    await assert_clean_and_healthy(sandbox)


async def test_java_hostile(sandbox: BwrapSandbox) -> None:
    r = await run_code(sandbox, "java", textwrap.dedent("""
        public class Main { public static void main(String[] a) throws Exception {
            int n = 0;
            try { while (true) { Thread t = new Thread(() -> { try { Thread.sleep(60000); }
                  catch (Exception e) {} }); t.setDaemon(true); t.start(); n++; } }
            catch (Throwable e) { System.out.println("threads " + n); System.exit(4); } } }
    """))
    assert r.exit_code == 4 and b"\nthreads " in r.stdout, r
    r = await run_code(sandbox, "java", textwrap.dedent("""
        public class Main { public static void main(String[] a) throws Exception {
            java.io.File f = new java.io.File("/etc/shadow");
            System.out.println(f.canRead() + " " + new java.io.File("/work").exists()); } }
    """))
    assert r.stdout == b"false false\n"
    await assert_clean_and_healthy(sandbox)


WORKER = """
import asyncio, dataclasses, sys
from runstream.services.settings import Settings
from runstream.services.execution.languages import Registry
from runstream.services.execution.sandbox.bwrap import _mount
from runstream.services.execution.sandbox.bwrap import BwrapSandbox
async def main():
    s = Settings.from_env({}, sandbox_cgroup_name=sys.argv[1], sandbox_run_dir=sys.argv[2])
    sb = BwrapSandbox(s); await sb.start()
    py = Registry.load().resolve("python")
    code = (b"import os, time\\nif os.fork() == 0:\\n    os.setsid(); time.sleep(1000)\\n"
            b"time.sleep(1000)\\n")
    limits = dataclasses.replace(s.default_limits, wall_ms=30000, cpu_ms=30000)
    async with sb.workspace("k", [("main.py", code)], py) as ws:
        await ws.run(["/usr/bin/python3", "main.py"], stdin=b"", limits=limits, language=py)
asyncio.run(main())
"""


async def poll_until(predicate: Callable[[], bool], timeout_s: float) -> None:
    """Another process's /proc state has no event to await: poll it, bounded."""
    deadline = time.monotonic() + timeout_s
    for _ in range(int(timeout_s / 0.05) + 1):
        if predicate() or time.monotonic() > deadline:
            return
        await asyncio.sleep(0.05)


async def test_sigkilled_worker_leaves_nothing_behind(sandbox: BwrapSandbox) -> None:
    s = sandbox.settings
    name, run_dir = s.sandbox_cgroup_name + "-k", s.sandbox_run_dir + "-k"
    k_settings = dataclasses.replace(s, sandbox_cgroup_name=name, sandbox_run_dir=run_dir)
    worker = subprocess.Popen([sys.executable, "-c", WORKER, name, run_dir])
    try:
        await poll_until(lambda: len(run_pids(k_settings)) >= 3, 20)
        assert len(run_pids(k_settings)) >= 3, "the sandboxed program never started"
        # Another worker starting on the same host leaves a live worker's runs alone.
        neighbour = BwrapSandbox(k_settings)
        await neighbour.start()
        assert len(run_pids(k_settings)) >= 3, "a starting worker killed a live worker's run"
        await neighbour.stop()
        worker.kill()
        worker.wait(timeout=10)
        await poll_until(lambda: not run_pids(k_settings), 10)
        assert run_pids(k_settings) == [], "processes outlived the SIGKILLed worker"
        assert _mount.mounts_under(Path(run_dir)), "the dead worker's workspace stays mounted"
        # New workers reap the dead worker's leftovers at start-up; two starting at
        # once (as deploy.sh starts them) race to reap the same scope, and both start.
        fresh, twin = BwrapSandbox(k_settings), BwrapSandbox(k_settings)
        await asyncio.gather(fresh.start(), twin.start())
        assert sorted(os.listdir(run_dir)) == sorted([fresh.scope, twin.scope])
        assert _mount.mounts_under(Path(run_dir)) == []
        assert fresh._tree is not None
        scopes = [e.name for e in fresh._tree.parents["pids"].parent.iterdir() if e.is_dir()]
        assert sorted(scopes) == sorted([fresh.scope, twin.scope])
        await twin.stop()
        await fresh.stop()  # the host's last worker: the shared parents go too
        assert leftovers(fresh) == []
    finally:
        if worker.poll() is None:
            worker.kill()
