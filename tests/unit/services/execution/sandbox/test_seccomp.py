"""The seccomp filter libseccomp generates, checked by the running kernel.

The old filter was hand-assembled BPF with hand-kept syscall tables; its policy
is written down below (OLD_*) and the generated filter must deny exactly that.
Each check loads the exported bytes into a child process (the way bwrap does)
beneath a *probe* filter that answers every call carrying a marker argument
with errno PROBE without running it. The kernel returns the errno of the most
recently installed filter among equal actions, so a call comes back with the
policy's errno when the policy denies it and with PROBE when it allows it:
every syscall number is asked, and none is executed.
"""

from __future__ import annotations

import json
import platform
import signal
import subprocess
import sys

import pyseccomp
import pytest
from runstream.services.execution.sandbox.bwrap import _seccomp as sc

EPERM, ENOSYS = 1, 38
PROBE = 999  # an errno no call returns by itself
MARKER = 0x5EC0_11AB_5EC0_11AB  # the probe's sixth argument

# The old policy, as its hand-kept tables had it.
OLD_X86_64 = {
    "keyctl": 250, "add_key": 248, "request_key": 249, "ptrace": 101,
    "process_vm_readv": 310, "process_vm_writev": 311, "mount": 165, "umount2": 166,
    "pivot_root": 155, "unshare": 272, "setns": 308, "init_module": 175,
    "finit_module": 313, "delete_module": 176, "kexec_load": 246, "kexec_file_load": 320,
    "reboot": 169, "swapon": 167, "swapoff": 168, "bpf": 321, "perf_event_open": 298,
    "userfaultfd": 323, "open_by_handle_at": 304, "acct": 163, "quotactl": 179,
    "syslog": 103, "flock": 73, "io_uring_setup": 425, "io_uring_enter": 426,
    "io_uring_register": 427, "open_tree": 428, "move_mount": 429, "fsopen": 430,
    "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442, "quotactl_fd": 443,
}  # fmt: skip
OLD_AARCH64 = {
    "keyctl": 219, "add_key": 217, "request_key": 218, "ptrace": 117,
    "process_vm_readv": 270, "process_vm_writev": 271, "mount": 40, "umount2": 39,
    "pivot_root": 41, "unshare": 97, "setns": 268, "init_module": 105,
    "finit_module": 273, "delete_module": 106, "kexec_load": 104, "kexec_file_load": 294,
    "reboot": 142, "swapon": 224, "swapoff": 225, "bpf": 280, "perf_event_open": 241,
    "userfaultfd": 282, "open_by_handle_at": 265, "acct": 89, "quotactl": 60,
    "syslog": 116, "flock": 32, "io_uring_setup": 425, "io_uring_enter": 426,
    "io_uring_register": 427, "open_tree": 428, "move_mount": 429, "fsopen": 430,
    "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442, "quotactl_fd": 443,
}  # fmt: skip
OLD_CONDITIONAL_X86_64 = {"clone3": 435, "clone": 56, "socket": 41, "fcntl": 72}
OLD_CLONE_NS_FLAGS = 0x7E020000  # NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET
OLD_FCNTL_LOCK_CMDS = (6, 7, 37, 38)
X32_SYSCALL_BIT = 0x40000000

# Runs in a child: load the probe, then the policy (hex on stdin), then ask the
# kernel about each (nr, args) given; prints the errnos as JSON.
CHILD = """
import ctypes, json, sys
import pyseccomp
MARKER, PROBE = {marker}, {probe}
filt, calls = sys.stdin.read().split("\\n", 1)
calls = json.loads(calls)
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
libc.syscall.argtypes = [ctypes.c_long] * 7
libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_ulong,
                       ctypes.c_ulong]
if {with_probe}:
    probe = pyseccomp.SyscallFilter(pyseccomp.ALLOW)
    for nr in sorted({{nr for nr, _ in calls}}):
        probe.add_rule(pyseccomp.ERRNO(PROBE), nr, pyseccomp.Arg(5, pyseccomp.EQ, MARKER))
    probe.load()  # sets no_new_privs too
else:
    assert libc.prctl(38, 1, None, 0, 0) == 0  # PR_SET_NO_NEW_PRIVS
prog = bytes.fromhex(filt)
class Fprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]
fprog = Fprog(len(prog) // 8, prog)
assert libc.prctl(22, 2, ctypes.addressof(fprog), 0, 0) == 0  # PR_SET_SECCOMP, FILTER
out = []
for nr, args in calls:
    ctypes.set_errno(0)
    rc = libc.syscall(nr, *(args + [0] * 5)[:5], MARKER)
    out.append(ctypes.get_errno() if rc == -1 else -1000 - rc)
print(json.dumps(out))
"""


def ask_kernel(filt: bytes, calls: list[tuple[int, list[int]]], *,
               with_probe: bool = True) -> subprocess.CompletedProcess[str]:
    script = CHILD.format(marker=MARKER, probe=PROBE, with_probe=with_probe)
    return subprocess.run([sys.executable, "-c", script], input=filt.hex() + "\n" +
                          json.dumps(calls), capture_output=True, text=True, timeout=60)


def errnos(filt: bytes, calls: list[tuple[int, list[int]]]) -> list[int]:
    done = ask_kernel(filt, calls)
    assert done.returncode == 0, done.stderr
    answers: list[int] = json.loads(done.stdout)
    return answers


@pytest.fixture(scope="module")
def filt() -> bytes:
    return sc.build()


def native_is_x86_64() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64")


x86_only = pytest.mark.skipif(not native_is_x86_64(), reason="the old tables are x86_64's here")


def test_deny_list_is_the_old_one() -> None:
    assert sorted(sc.DENIED) == sorted(OLD_X86_64) == sorted(OLD_AARCH64)
    assert sum(sc.CLONE_NS_FLAGS) == OLD_CLONE_NS_FLAGS
    assert sc.FCNTL_LOCK_CMDS == OLD_FCNTL_LOCK_CMDS


@pytest.mark.parametrize("arch,table", [
    (pyseccomp.Arch.X86_64, OLD_X86_64), (pyseccomp.Arch.AARCH64, OLD_AARCH64),
])  # fmt: skip
def test_libseccomp_numbers_are_the_old_tables(arch: int, table: dict[str, int]) -> None:
    assert {name: pyseccomp.resolve_syscall(arch, name) for name in table} == table


@x86_only
def test_the_denied_syscall_numbers_are_exactly_the_old_ones(filt: bytes) -> None:
    known = [nr for nr in range(512) if _known(nr)]
    answers = errnos(filt, [(nr, []) for nr in known])
    got = {nr: e for nr, e in zip(known, answers, strict=True) if e != PROBE}
    # clone, socket and fcntl are only refused for some arguments (zeros pass).
    assert got == {**{nr: EPERM for nr in OLD_X86_64.values()}, 435: ENOSYS}


def _known(nr: int) -> bool:
    try:
        pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, nr)
    except ValueError:
        return False
    return True


@x86_only
@pytest.mark.parametrize("flags,expected", [
    (0x003D0F00, PROBE),  # glibc pthread_create flags
    (0x01200011, PROBE),  # glibc fork: CHILD_SETTID|CHILD_CLEARTID|SIGCHLD
    *[(flag | 17, EPERM) for flag in sc.CLONE_NS_FLAGS],
    (0x80 | 17, PROBE),  # CLONE_NEWTIME's bit is the exit signal in clone(2)
])  # fmt: skip
def test_clone_with_namespace_flags_is_refused(filt: bytes, flags: int, expected: int) -> None:
    assert errnos(filt, [(OLD_CONDITIONAL_X86_64["clone"], [flags])]) == [expected]


@x86_only
def test_vsock_sockets_and_file_locks_are_refused(filt: bytes) -> None:
    socket_nr, fcntl_nr = OLD_CONDITIONAL_X86_64["socket"], OLD_CONDITIONAL_X86_64["fcntl"]
    calls = [
        (socket_nr, [40, 1, 0]), (socket_nr, [(1 << 32) | 40, 1, 0]),  # high half ignored
        (socket_nr, [1, 1, 0]), (socket_nr, [2, 1, 0]),  # AF_UNIX, AF_INET (no network)
        *[(fcntl_nr, [3, cmd, 0]) for cmd in (*OLD_FCNTL_LOCK_CMDS, 0, 1, 2, 3, 4, 5, 36)],
    ]
    assert errnos(filt, calls) == [EPERM, EPERM, PROBE, PROBE] + [EPERM] * 4 + [PROBE] * 7


@x86_only
def test_clone3_answers_enosys_so_libc_falls_back(filt: bytes) -> None:
    assert errnos(filt, [(OLD_CONDITIONAL_X86_64["clone3"], [])]) == [ENOSYS]


@x86_only
def test_x32_calls_kill_the_process(filt: bytes) -> None:
    # getpid through the x32 ABI: the x86_64 audit arch, other numbers.
    done = ask_kernel(filt, [(X32_SYSCALL_BIT | 39, [])], with_probe=False)
    assert done.returncode == -signal.SIGSYS, (done.returncode, done.stderr)


def test_the_filter_is_whole_bpf_instructions(filt: bytes) -> None:
    assert filt and len(filt) % 8 == 0 and len(filt) // 8 < 4096  # BPF_MAXINSNS
