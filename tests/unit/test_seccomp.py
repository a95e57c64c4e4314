"""The seccomp filter, checked by interpreting its bytes like the kernel would."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest
from runstream.services.sandbox import _seccomp as sc

ALLOW, KILL = sc.SECCOMP_RET_ALLOW, sc.SECCOMP_RET_KILL_PROCESS
EPERM, ENOSYS = sc.SECCOMP_RET_ERRNO | 1, sc.SECCOMP_RET_ERRNO | 38


def run_bpf(prog: bytes, nr: int, arch: int = sc.AUDIT_ARCH_X86_64,
            args: tuple[int, ...] = (0,) * 6) -> int:
    """Classic BPF, the subset the filter uses: LD W ABS, JEQ/JGE/JSET K, RET K."""
    data = struct.pack("=iIQ6Q", nr, arch, 0, *(list(args) + [0] * 6)[:6])
    insns = [struct.unpack_from("=HBBI", prog, off) for off in range(0, len(prog), 8)]
    pc, acc, steps = 0, 0, 0
    while True:
        steps += 1
        assert steps < 1000 and pc < len(insns), "filter ran off its end"
        code, jt, jf, k = insns[pc]
        if code == sc.BPF_LD_W_ABS:
            acc = struct.unpack_from("=I", data, k)[0]
            pc += 1
        elif code in (sc.BPF_JEQ_K, sc.BPF_JGE_K, sc.BPF_JSET_K):
            taken = {sc.BPF_JEQ_K: acc == k, sc.BPF_JGE_K: acc >= k,
                     sc.BPF_JSET_K: bool(acc & k)}[code]
            pc += 1 + (jt if taken else jf)
        elif code == sc.BPF_RET_K:
            return k
        else:
            raise AssertionError(f"unexpected opcode {code:#x}")


@pytest.fixture(scope="module")
def prog() -> bytes:
    return sc.build(("x86_64", "aarch64"))


X86 = sc.SYSCALLS["x86_64"]
ARM = sc.SYSCALLS["aarch64"]


@pytest.mark.parametrize("name", sc.DENIED)
def test_denied_calls_get_eperm_on_both_arches(prog: bytes, name: str) -> None:
    assert run_bpf(prog, X86[name]) == EPERM
    assert run_bpf(prog, ARM[name], sc.AUDIT_ARCH_AARCH64) == EPERM


@pytest.mark.parametrize("nr", [0, 1, 2, 3, 9, 59, 60, 231, 257, 39, 202])
def test_ordinary_calls_are_allowed(prog: bytes, nr: int) -> None:
    # read write open close mmap execve exit exit_group openat getpid futex
    assert run_bpf(prog, nr) == ALLOW


def test_clone3_answers_enosys_so_libc_falls_back(prog: bytes) -> None:
    assert run_bpf(prog, 435) == ENOSYS
    assert run_bpf(prog, 435, sc.AUDIT_ARCH_AARCH64) == ENOSYS


@pytest.mark.parametrize("flags,expected", [
    (0x003D0F00, ALLOW),  # glibc pthread_create flags
    (0x01200011, ALLOW),  # glibc fork: CHILD_SETTID|CHILD_CLEARTID|SIGCHLD
    (0x10000000 | 17, EPERM),  # CLONE_NEWUSER
    (0x20000000, EPERM),  # CLONE_NEWPID
    (0x40000000, EPERM),  # CLONE_NEWNET
    (0x00020000, EPERM),  # CLONE_NEWNS
    (0x08000000, EPERM),  # CLONE_NEWIPC
])  # fmt: skip
def test_clone_with_namespace_flags_is_refused(prog: bytes, flags: int, expected: int) -> None:
    assert run_bpf(prog, X86["clone"], args=(flags,)) == expected
    assert run_bpf(prog, ARM["clone"], sc.AUDIT_ARCH_AARCH64, args=(flags,)) == expected


def test_vsock_sockets_are_refused_others_allowed(prog: bytes) -> None:
    assert run_bpf(prog, X86["socket"], args=(40, 1, 0)) == EPERM
    assert run_bpf(prog, X86["socket"], args=(1, 1, 0)) == ALLOW  # AF_UNIX
    assert run_bpf(prog, X86["socket"], args=(2, 1, 0)) == ALLOW  # AF_INET (no network anyway)


@pytest.mark.parametrize("cmd,expected", [
    (6, EPERM), (7, EPERM), (37, EPERM), (38, EPERM),  # SETLK SETLKW OFD_SETLK OFD_SETLKW
    (0, ALLOW), (1, ALLOW), (2, ALLOW), (3, ALLOW), (4, ALLOW), (5, ALLOW), (36, ALLOW),
])  # fmt: skip
def test_fcntl_lock_commands_are_refused(prog: bytes, cmd: int, expected: int) -> None:
    assert run_bpf(prog, X86["fcntl"], args=(3, cmd, 0)) == expected


def test_foreign_abis_are_killed(prog: bytes) -> None:
    assert run_bpf(prog, 1, arch=0x40000003) == KILL  # i386 via int 0x80
    assert run_bpf(prog, 1 | sc.X32_SYSCALL_BIT) == KILL  # x32
    native_only = sc.build(("x86_64",))
    assert run_bpf(native_only, 64, sc.AUDIT_ARCH_AARCH64) == KILL


def test_native_build_is_x86_only_on_this_host() -> None:
    if sc.native_arch() != "x86_64":
        pytest.skip("not an x86_64 host")
    prog = sc.build()
    assert run_bpf(prog, X86["ptrace"]) == EPERM
    assert run_bpf(prog, ARM["ptrace"], sc.AUDIT_ARCH_AARCH64) == KILL


@pytest.mark.parametrize("arch,header,pattern", [
    ("x86_64", "/usr/include/x86_64-linux-gnu/asm/unistd_64.h", r"#define __NR_(\w+)\s+(\d+)"),
    ("aarch64", "/usr/include/asm-generic/unistd.h", r"#define __NR(?:3264)?_(\w+)\s+(\d+)"),
])  # fmt: skip
def test_syscall_numbers_match_the_kernel_headers(arch: str, header: str, pattern: str) -> None:
    path = Path(header)
    if not path.exists():
        pytest.skip(f"{header} not installed (linux-libc-dev)")
    numbers = {m.group(1): int(m.group(2)) for m in re.finditer(pattern, path.read_text())}
    for name, nr in sc.SYSCALLS[arch].items():
        assert numbers.get(name) == nr, name


def test_jumps_out_of_range_are_rejected() -> None:
    far = [sc.Insn(sc.BPF_JEQ_K, 1, jt="end")] + [sc.Insn(sc.BPF_RET_K, 0)] * 300
    with pytest.raises(ValueError, match="out of range"):
        sc.assemble([*far, sc.Insn(sc.BPF_RET_K, 0, label="end")])
