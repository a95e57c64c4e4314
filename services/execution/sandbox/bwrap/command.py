"""The launcher and bubblewrap command lines of one sandboxed run (pure: no I/O).

The chain, started by root with an empty environment, is::

    runstream-launch (join the run's cgroups, set rlimits, drop the bounding set,
                      become the sandbox uid/gid with no groups and no capabilities)
      -> bwrap (namespaces, mounts, seccomp) -> the program

where ``runstream-launch`` is the native launcher (``launcher.c``, no libc, run
from a sealed memfd: see :mod:`._launcher`). Where it is not available, the
same steps take two programs::

    dash -c 'join the run's cgroups; set rlimits; exec setpriv ...'
      -> setpriv (become the sandbox uid/gid, no groups, no capabilities) -> bwrap

Joining the cgroup from inside the first process means every descendant is
accounted and killable before untrusted code runs (and writing "0" moves only
the writer, without the global lock that moving another pid takes); doing it
all in the first exec needs no ``preexec_fn`` (unsafe in a threaded worker).
The native launcher saves two glibc process starts, ~1.5 ms each on a VM where
CPUID traps. bwrap itself runs unprivileged: started as root it would let the
program read root-only host files even with a uid mapping.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from runstream.schemas.models import Limits
from runstream.services.execution.languages import Language
from runstream.services.execution.sandbox.environment import MASKED, program_env
from runstream.services.execution.sandbox.rlimits import rlimits, ulimit_script

BWRAP = "/usr/bin/bwrap"
SETPRIV = "/usr/bin/setpriv"
SHELL = "/usr/bin/dash"  # the ulimit units of rlimits.ulimit_script are dash's
BOX = "/box"
HOSTNAME = "runstream"
# The root-level names a merged-/usr Debian has as symlinks into /usr.
MERGED_USR = ("/bin", "/lib", "/lib64", "/sbin")
BASE_RO = ("/usr", "/etc/alternatives", "/etc/ld.so.cache")
# Inside the run pid 1 is bwrap's reaper, of the program's uid and dumpable (bwrap makes
# it so): its memory still holds its options (the workspace's host path, the worker's
# pid) and the host's mount table it parsed, which /proc/1/mem would hand any program.
# Read as nothing, like the kernel's symbols; ptrace and process_vm_readv are denied by
# the seccomp filter (docs/sandbox.md "What a run can see").
PID1_MEMORY = ("/proc/1/mem", "/proc/1/task/1/mem")


@dataclass(frozen=True)
class RunSpec:
    """Everything a launch command depends on."""

    argv: Sequence[str]
    language: Language
    limits: Limits
    workspace: str  # host path of the run's tmpfs, bound at BOX
    # Files where writing "0" moves the writer into the run cgroup: v1 "tasks"
    # (no global lock, so no RCU grace period per run), v2 "cgroup.procs".
    cgroup_join: Sequence[str]
    uid: int
    gid: int
    seccomp_fd: int
    status_fd: int
    tmp_bytes: int
    # Root-level names that are symlinks on the host (name -> target), e.g.
    # "/bin" -> "usr/bin"; names absent here are bound read-only if they exist.
    root_links: Mapping[str, str] = field(default_factory=dict)
    root_dirs: Sequence[str] = ()
    # The native launcher's memfd (inherited by the launcher), or -1 for the shell chain.
    launcher_fd: int = -1
    # The descriptor bwrap reads its options from (``--args``), NUL-separated: see
    # bwrap_argv for why they are not on its command line.
    args_fd: int = -1


def launcher_script(spec: RunSpec) -> str:
    """The dash script: join the cgroups, set limits, hand over to setpriv."""
    joins = "; ".join(f"echo 0 > {shlex.quote(p)}" for p in spec.cgroup_join)
    return f'set -e; {joins}; {ulimit_script(spec.limits)}exec "$@"'


def bwrap_options(spec: RunSpec) -> list[str]:
    """bwrap's options (what it reads from ``--args``): namespaces, mounts, environment."""
    args = [
        "--unshare-all",
        "--unshare-user",
        "--disable-userns",
        "--die-with-parent",
        "--new-session",
        "--cap-drop", "ALL",
        "--hostname", HOSTNAME,
        "--uid", str(spec.uid),
        "--gid", str(spec.gid),
    ]  # fmt: skip
    for path in BASE_RO:
        args += ["--ro-bind", path, path]
    for name in MERGED_USR:
        if name in spec.root_links:
            args += ["--symlink", spec.root_links[name], name]
        elif name in spec.root_dirs:
            args += ["--ro-bind", name, name]
    for path in spec.language.binds:
        args += ["--ro-bind-try", path, path]
    size = str(spec.tmp_bytes)
    args += [
        "--dev", "/dev",
        "--size", size, "--tmpfs", "/dev/shm",
        "--proc", "/proc",
        *(arg for path in (*MASKED, *PID1_MEMORY) for arg in ("--ro-bind", "/dev/null", path)),
        "--size", size, "--tmpfs", "/tmp",
        "--bind", spec.workspace, BOX,
        "--chdir", BOX,
        "--clearenv",
    ]  # fmt: skip
    for key, value in program_env(spec.language).items():
        args += ["--setenv", key, value]
    args += ["--seccomp", str(spec.seccomp_fd), "--json-status-fd", str(spec.status_fd)]
    return args


def bwrap_options_data(spec: RunSpec) -> bytes:
    """:func:`bwrap_options` as bwrap's ``--args`` reads them: each ends with a NUL."""
    options = bwrap_options(spec)
    bad = [o for o in options if "\0" in o]
    if bad:  # only the configuration writes them; a NUL would split one in two
        raise ValueError(f"a bwrap option contains a NUL character: {bad[0]!r}")
    return b"".join(os.fsencode(o) + b"\0" for o in options)


def bwrap_argv(spec: RunSpec) -> list[str]:
    """bwrap's command line, up to and including ``--``: its options come from a descriptor.

    Inside the sandbox bwrap is pid 1, and any program can read ``/proc/1/cmdline``:
    with the options there, it would learn the workspace's host path (with the
    worker's pid), the descriptors' numbers and the binds. Read from ``--args`` they
    leave only ``bwrap --args N --`` and the program's own argv.
    """
    return [BWRAP, "--args", str(spec.args_fd), "--"]


#: The order of the native launcher's rlimit operands (launcher.c's ``resources``).
NATIVE_RLIMITS = ("cpu_s", "fsize_bytes", "nofile", "core_bytes", "stack_bytes")


def native_argv(launcher_fd: int, cgroup_join: Sequence[str], limits: Limits, uid: int,
                gid: int, argv: Sequence[str]) -> list[str]:
    """The native launcher's command line (see launcher.c), run from its memfd."""
    lim = rlimits(limits)
    return [
        f"/proc/self/fd/{launcher_fd}", str(launcher_fd),
        str(len(cgroup_join)), *cgroup_join,
        *(str(lim[name]) for name in NATIVE_RLIMITS),
        str(uid), str(gid), "--", *argv,
    ]


def launch_argv(spec: RunSpec) -> list[str]:
    """The whole argv root executes (with an empty environment)."""
    if spec.launcher_fd >= 0:
        return native_argv(spec.launcher_fd, spec.cgroup_join, spec.limits, spec.uid, spec.gid,
                           [*bwrap_argv(spec), *spec.argv])
    return [
        SHELL, "-c", launcher_script(spec), "runstream-launch",
        SETPRIV,
        f"--reuid={spec.uid}", f"--regid={spec.gid}", "--clear-groups",
        "--inh-caps=-all", "--bounding-set=-all",
        "--",
        *bwrap_argv(spec),
        *spec.argv,
    ]  # fmt: skip
