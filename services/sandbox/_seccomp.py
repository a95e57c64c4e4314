"""The seccomp filter of sandboxed programs, as a classic-BPF program (pure).

bwrap loads the filter from a file descriptor (``--seccomp FD``) right before it
executes the program, so the filter never constrains bwrap's own set-up.

Denied calls fail with EPERM rather than killing the process: a runtime that
probes for a feature (io_uring, a file lock, a user namespace) then falls back
or reports an ordinary error, and the submission gets a normal verdict.
``clone3`` answers ENOSYS instead: its flags live in memory that BPF cannot
read, and ENOSYS makes glibc fall back to ``clone``, whose flags we can check.
Anything from a foreign ABI (i386 via ``int 0x80``, x32) is killed outright:
the syscall numbers below would mean something else there.
"""

from __future__ import annotations

import platform
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# <linux/audit.h>
AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_AARCH64 = 0xC00000B7
# <linux/seccomp.h>
SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_ALLOW = 0x7FFF0000
# <linux/filter.h>
BPF_LD_W_ABS = 0x20
BPF_JEQ_K = 0x15
BPF_JGE_K = 0x35
BPF_JSET_K = 0x45
BPF_RET_K = 0x06

EPERM = 1
ENOSYS = 38
X32_SYSCALL_BIT = 0x40000000

# struct seccomp_data: int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6];
OFF_NR = 0
OFF_ARCH = 4


def arg_low(index: int) -> int:
    """Offset of the low 32 bits of syscall argument ``index`` (little-endian ABIs)."""
    return 16 + 8 * index


# Namespace flags of clone(2). CLONE_NEWTIME (0x80) is left out on purpose: in
# clone(2) those bits are the exit signal; a time namespace needs clone3/unshare,
# which are refused anyway.
CLONE_NS_FLAGS = (
    0x00020000  # CLONE_NEWNS
    | 0x02000000  # CLONE_NEWCGROUP
    | 0x04000000  # CLONE_NEWUTS
    | 0x08000000  # CLONE_NEWIPC
    | 0x10000000  # CLONE_NEWUSER
    | 0x20000000  # CLONE_NEWPID
    | 0x40000000  # CLONE_NEWNET
)
AF_VSOCK = 40
# F_SETLK, F_SETLKW, F_OFD_SETLK, F_OFD_SETLKW (the 64-bit ABIs have no *64 variants).
FCNTL_LOCK_CMDS = (6, 7, 37, 38)

# Calls refused with EPERM outright: kernel keyrings, io_uring (bypasses the
# filter), cross-process memory access, every mount API, namespaces, modules,
# kexec, reboot, swap, bpf, perf, userfaultfd, handle-based opens, accounting,
# quotas, the kernel log, and whole-file locks on files other runs share.
DENIED = (
    "keyctl", "add_key", "request_key",
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    "ptrace", "process_vm_readv", "process_vm_writev",
    "mount", "umount2", "pivot_root", "open_tree", "move_mount", "fsopen", "fsconfig",
    "fsmount", "fspick", "mount_setattr",
    "unshare", "setns",
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load",
    "reboot", "swapon", "swapoff", "bpf", "perf_event_open", "userfaultfd",
    "open_by_handle_at", "acct", "quotactl", "quotactl_fd", "syslog", "flock",
)  # fmt: skip

_COMMON = {
    "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
    "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432,
    "fspick": 433, "clone3": 435, "mount_setattr": 442, "quotactl_fd": 443,
}  # fmt: skip

SYSCALLS: Mapping[str, Mapping[str, int]] = {
    "x86_64": {
        **_COMMON,
        "keyctl": 250, "add_key": 248, "request_key": 249, "ptrace": 101,
        "process_vm_readv": 310, "process_vm_writev": 311, "mount": 165, "umount2": 166,
        "pivot_root": 155, "unshare": 272, "setns": 308, "init_module": 175,
        "finit_module": 313, "delete_module": 176, "kexec_load": 246, "kexec_file_load": 320,
        "reboot": 169, "swapon": 167, "swapoff": 168, "bpf": 321, "perf_event_open": 298,
        "userfaultfd": 323, "open_by_handle_at": 304, "acct": 163, "quotactl": 179,
        "syslog": 103, "clone": 56, "socket": 41, "fcntl": 72, "flock": 73,
    },
    "aarch64": {
        **_COMMON,
        "keyctl": 219, "add_key": 217, "request_key": 218, "ptrace": 117,
        "process_vm_readv": 270, "process_vm_writev": 271, "mount": 40, "umount2": 39,
        "pivot_root": 41, "unshare": 97, "setns": 268, "init_module": 105,
        "finit_module": 273, "delete_module": 106, "kexec_load": 104, "kexec_file_load": 294,
        "reboot": 142, "swapon": 224, "swapoff": 225, "bpf": 280, "perf_event_open": 241,
        "userfaultfd": 282, "open_by_handle_at": 265, "acct": 89, "quotactl": 60,
        "syslog": 116, "clone": 220, "socket": 198, "fcntl": 25, "flock": 32,
    },
}  # fmt: skip

AUDIT_ARCH = {"x86_64": AUDIT_ARCH_X86_64, "aarch64": AUDIT_ARCH_AARCH64}


@dataclass(frozen=True)
class Insn:
    """One BPF instruction; jumps name labels, resolved by :func:`assemble`."""

    code: int
    k: int = 0
    jt: str | None = None
    jf: str | None = None
    label: str | None = None  # label of this instruction itself


def _ld(offset: int) -> Insn:
    return Insn(BPF_LD_W_ABS, offset)


def _ret(value: int, label: str | None = None) -> Insn:
    return Insn(BPF_RET_K, value, label=label)


def _arch_block(arch: str) -> list[Insn]:
    nr = SYSCALLS[arch]
    p = arch + "_"
    out: list[Insn] = [Insn(BPF_LD_W_ABS, OFF_NR, label=p + "start")]
    if arch == "x86_64":
        # x32 calls share the x86_64 audit arch and differ only by this bit.
        out.append(Insn(BPF_JGE_K, X32_SYSCALL_BIT, jt="kill", jf=None))
    out += [
        Insn(BPF_JEQ_K, nr["clone3"], jt="enosys"),
        Insn(BPF_JEQ_K, nr["clone"], jt=p + "clone"),
        Insn(BPF_JEQ_K, nr["socket"], jt=p + "socket"),
        Insn(BPF_JEQ_K, nr["fcntl"], jt=p + "fcntl"),
    ]
    out += [Insn(BPF_JEQ_K, nr[name], jt="eperm") for name in DENIED]
    out.append(_ret(SECCOMP_RET_ALLOW))
    out += [
        Insn(BPF_LD_W_ABS, arg_low(0), label=p + "clone"),
        Insn(BPF_JSET_K, CLONE_NS_FLAGS, jt="eperm", jf="allow"),
        Insn(BPF_LD_W_ABS, arg_low(0), label=p + "socket"),
        Insn(BPF_JEQ_K, AF_VSOCK, jt="eperm", jf="allow"),
        Insn(BPF_LD_W_ABS, arg_low(1), label=p + "fcntl"),
    ]
    out += [Insn(BPF_JEQ_K, cmd, jt="eperm") for cmd in FCNTL_LOCK_CMDS]
    out.append(_ret(SECCOMP_RET_ALLOW))
    return out


def program(arches: Sequence[str] = ("x86_64", "aarch64")) -> list[Insn]:
    """The filter as labelled instructions (the unit tests interpret these bytes)."""
    insns: list[Insn] = [_ld(OFF_ARCH)]
    for arch in arches:
        insns.append(Insn(BPF_JEQ_K, AUDIT_ARCH[arch], jt=arch + "_start"))
    insns.append(_ret(SECCOMP_RET_KILL_PROCESS))  # a foreign audit arch (i386, ...)
    for arch in arches:
        insns += _arch_block(arch)
    insns += [
        _ret(SECCOMP_RET_ERRNO | EPERM, label="eperm"),
        _ret(SECCOMP_RET_ERRNO | ENOSYS, label="enosys"),
        _ret(SECCOMP_RET_ALLOW, label="allow"),
        _ret(SECCOMP_RET_KILL_PROCESS, label="kill"),
    ]
    return insns


def assemble(insns: Sequence[Insn]) -> bytes:
    """Encode as ``struct sock_filter[]`` in native byte order, resolving labels.

    A jump without a target falls through to the next instruction. Classic BPF
    only jumps forward, at most 255 instructions: both are checked here.
    """
    where = {insn.label: i for i, insn in enumerate(insns) if insn.label}
    out = bytearray()
    for i, insn in enumerate(insns):
        offsets = []
        for target in (insn.jt, insn.jf):
            if target is None:
                offsets.append(0)
                continue
            delta = where[target] - i - 1
            if not 0 <= delta <= 255:
                raise ValueError(f"BPF jump from {i} to {target!r} out of range ({delta})")
            offsets.append(delta)
        out += struct.pack("=HBBI", insn.code, offsets[0], offsets[1], insn.k)
    return bytes(out)


def native_arch() -> str | None:
    """The machine's arch name in :data:`SYSCALLS`, or None if unsupported."""
    machine = platform.machine().lower()
    return {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}.get(
        machine
    )


def build(arches: Sequence[str] | None = None) -> bytes:
    """The filter bytes bwrap reads from ``--seccomp FD``.

    Only the native arch is allowed by default: any foreign ABI is killed.
    """
    if arches is None:
        arch = native_arch()
        if arch is None:
            raise ValueError(f"no seccomp syscall table for {platform.machine()!r}")
        arches = (arch,)
    return assemble(program(arches))
