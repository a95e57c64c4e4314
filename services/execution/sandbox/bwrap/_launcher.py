"""The native launcher (``launcher.c``): built once per worker process, run from a sealed memfd.

The launcher replaces the ``dash -> setpriv`` hops in front of bwrap (see
:mod:`.command`). It is compiled at start-up from the shipped source with the
host's C compiler, then kept in a sealed memfd (no file on the host that
anything could replace; gone with the worker) and executed as
``/proc/self/fd/N``; it closes that descriptor first thing. Where it cannot be
built or does not behave (no compiler, another architecture, a kernel that
refuses executable memfds), the worker keeps the shell chain and logs why.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from runstream.schemas.models import Limits
from runstream.services.errors import SandboxError
from runstream.services.execution.sandbox.bwrap._mount import write_all
from runstream.services.execution.sandbox.bwrap.command import native_argv

SOURCE = Path(__file__).with_name("launcher.c")
COMPILERS = ("cc", "gcc", "clang")
BUILD_TIMEOUT_S = 60.0
CHECK_TIMEOUT_S = 10.0
FLAGS = ("-O2", "-static", "-nostdlib", "-ffreestanding", "-fno-stack-protector",
         "-fno-pie", "-no-pie", "-fcf-protection=none", "-Wall", "-Werror")
# Linux >= 6.3 may make memfds non-executable by default (vm.memfd_noexec); older
# kernels refuse the flag, hence the retry without it.
_MFD_EXEC = 0x10
_SEALS = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE
_PROBE = ("/usr/bin/cat", "/proc/self/status")
_PROBE_LIMITS = Limits(wall_ms=int(CHECK_TIMEOUT_S * 1000), cpu_ms=1000, memory_mb=64, processes=8,
                       output_kb=64, file_size_kb=1024)

_binary: bytes | None = None  # one build per process, however many sandboxes it starts


def _compile() -> bytes:
    compiler = next((c for c in map(shutil.which, COMPILERS) if c), None)
    if compiler is None:
        raise SandboxError("no C compiler (cc, gcc or clang) on PATH")
    try:
        with tempfile.TemporaryDirectory(prefix="runstream-launch-") as tmp:
            out = Path(tmp) / "launch"
            done = subprocess.run([compiler, *FLAGS, "-o", str(out), str(SOURCE)],
                                  capture_output=True, timeout=BUILD_TIMEOUT_S, check=False,
                                  env={"PATH": "/usr/bin:/bin"})
            if done.returncode != 0:
                raise SandboxError(
                    f"{compiler} failed: {done.stderr.decode(errors='replace')[-500:]}")
            return out.read_bytes()
    except (OSError, subprocess.TimeoutExpired) as e:
        raise SandboxError(f"cannot build the launcher: {e}") from e


def _sealed(binary: bytes) -> int:
    """A read-only descriptor of a sealed memfd holding ``binary`` (close-on-exec)."""
    try:
        try:
            fd = os.memfd_create("runstream-launch",
                                 os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING | _MFD_EXEC)
        except OSError:
            fd = os.memfd_create("runstream-launch", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            write_all(fd, binary)
            os.fchmod(fd, 0o500)
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS)
            # The descriptor children inherit is opened read-only, so not even a
            # leaked copy could write it (the seals forbid that anyway).
            opened = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_CLOEXEC)
            # Above 0-2: a worker started without stdio would otherwise get one of
            # them, which the launcher's stdio pipes then replace.
            ro = fcntl.fcntl(opened, fcntl.F_DUPFD_CLOEXEC, 3)
            os.close(opened)
        finally:
            os.close(fd)
    except OSError as e:
        raise SandboxError(f"cannot keep the launcher in a memfd: {e}") from e
    return ro


def check(fd: int, uid: int, gid: int) -> None:
    """Run the launcher once as a run would; SandboxError unless it dropped everything."""
    argv = native_argv(fd, [], _PROBE_LIMITS, uid, gid, _PROBE)
    try:
        done = subprocess.run(argv, env={}, capture_output=True, timeout=CHECK_TIMEOUT_S,
                              cwd="/", pass_fds=(fd,), check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise SandboxError(f"the launcher does not run: {e}") from e
    fields = dict(line.split(":", 1) for line in done.stdout.decode(errors="replace").splitlines()
                  if ":" in line)
    caps = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")
    want = {"Uid": f"{uid}\t{uid}\t{uid}\t{uid}", "Gid": f"{gid}\t{gid}\t{gid}\t{gid}",
            "Groups": "", **{k: "0" * 16 for k in caps}}
    wrong = {k: fields.get(k, "").strip() for k in want if fields.get(k, "").strip() != want[k]}
    if done.returncode != 0 or wrong:
        raise SandboxError(f"the launcher misbehaves (exit {done.returncode}, {wrong}): "
                           f"{done.stderr.decode(errors='replace')[-500:]}")


def load(uid: int, gid: int) -> int:
    """The launcher, built if this process has not yet, sealed and checked: its descriptor.

    Raises :class:`SandboxError` if it cannot be built or does not behave; the
    caller owns (and closes) the descriptor.
    """
    global _binary
    if _binary is None:
        _binary = _compile()
    fd = _sealed(_binary)
    try:
        check(fd, uid, gid)
    except SandboxError:
        os.close(fd)
        raise
    return fd
