/*
 * runstream's native sandbox launcher: the first process of every bwrap run.
 *
 *   launch SELF N JOIN_1 .. JOIN_N CPU_S FSIZE_BYTES NOFILE CORE_BYTES STACK_BYTES UID GID
 *          -- ARGV...
 *
 * Started by root with an empty environment, it closes descriptor SELF (the
 * sealed memfd it was executed from, "-" for none), joins the run's cgroups (writes
 * "0" to each JOIN file: only this thread moves, no global lock), sets the five
 * rlimits (soft = hard), drops the capability bounding set and ambient set,
 * clears the supplementary groups, becomes UID:GID, clears its remaining
 * capabilities, and executes ARGV (bwrap) with an empty environment. It does
 * what `dash -c 'echo 0 > ...; ulimit ...; exec setpriv ... bwrap ...'` did,
 * in one exec instead of three.
 *
 * Why no libc: every glibc process start runs its CPU-feature probe (dozens of
 * CPUID instructions), and under a hypervisor each CPUID is a VM exit: on the
 * 2-core VMs runstream is measured on, a glibc start costs ~1.5 ms; this one
 * costs ~0.1 ms. So it is built with -nostdlib -static from this file alone
 * (the kernel's UAPI headers only), for x86-64 and aarch64; elsewhere, or
 * without a C compiler, the worker keeps the dash + setpriv chain.
 *
 * Any failure exits 127 with a message on stderr before ARGV runs.
 */

#include <asm/unistd.h>
#include <linux/capability.h>
#include <linux/fcntl.h>
#include <linux/prctl.h>
#include <linux/resource.h>

typedef unsigned long u64;

#if defined(__x86_64__)
__asm__(".text\n.global _start\n_start:\n"
        "  xor %rbp, %rbp\n  mov %rsp, %rdi\n  and $-16, %rsp\n  call entry\n  hlt\n");

static long sys5(long n, long a, long b, long c, long d, long e) {
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    long ret;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8)
                     : "rcx", "r11", "memory");
    return ret;
}
#elif defined(__aarch64__)
__asm__(".text\n.global _start\n_start:\n  mov x0, sp\n  bl entry\n  brk #0\n");

static long sys5(long n, long a, long b, long c, long d, long e) {
    register long x8 __asm__("x8") = n;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    register long x3 __asm__("x3") = d;
    register long x4 __asm__("x4") = e;
    __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4)
                     : "memory");
    return x0;
}
#else
#error "runstream's native launcher supports x86-64 and aarch64 only"
#endif

#define SYS(n, a, b, c) sys5((n), (long)(a), (long)(b), (long)(c), 0, 0)

static u64 length(const char *s) {
    u64 n = 0;
    while (s[n]) n++;
    return n;
}

static void say(const char *s) { SYS(__NR_write, 2, s, length(s)); }

static __attribute__((noreturn)) void fail(const char *what, const char *detail) {
    say("runstream-launch: ");
    say(what);
    if (detail) {
        say(": ");
        say(detail);
    }
    say("\n");
    for (;;) SYS(__NR_exit_group, 127, 0, 0);
}

/* A decimal number with nothing else around it, or the launcher fails. */
static u64 number(const char *s) {
    u64 v = 0;
    if (!s || !*s) fail("expected a number", s);
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > (~0UL - 9) / 10) fail("not a number", s);
        v = v * 10 + (u64)(*s - '0');
    }
    return v;
}

static const char *next(char **argv, long argc, long *i) {
    if (*i >= argc) fail("too few arguments", 0);
    return argv[(*i)++];
}

struct limit { u64 cur, max; };

__attribute__((used, noreturn)) void entry(long *sp) {
    long argc = sp[0], i = 1;
    char **argv = (char **)(sp + 1);
    static const int resources[] = {RLIMIT_CPU, RLIMIT_FSIZE, RLIMIT_NOFILE, RLIMIT_CORE,
                                    RLIMIT_STACK};
    static char *const empty_env[] = {0};

    /* Read every argument before acting on any. */
    const char *self = next(argv, argc, &i);
    long self_fd = (self[0] == '-' && !self[1]) ? -1 : (long)number(self);
    u64 joins = number(next(argv, argc, &i));
    long first_join = i;
    for (u64 k = 0; k < joins; k++) next(argv, argc, &i);
    struct limit limits[sizeof resources / sizeof resources[0]];
    for (u64 r = 0; r < sizeof resources / sizeof resources[0]; r++)
        limits[r].cur = limits[r].max = number(next(argv, argc, &i));
    u64 uid = number(next(argv, argc, &i)), gid = number(next(argv, argc, &i));
    const char *sep = next(argv, argc, &i);
    if (sep[0] != '-' || sep[1] != '-' || sep[2] || i >= argc) fail("expected -- ARGV", 0);
    if (uid == 0 || gid == 0) fail("refusing to run the sandbox as root", 0);
    /* uid_t is 32 bits: a larger id would be cut, and (uid_t)-1 means "unchanged". */
    if (uid >= 0xffffffffUL || gid >= 0xffffffffUL) fail("id out of range", 0);

    if (self_fd >= 0 && SYS(__NR_close, self_fd, 0, 0) != 0) fail("cannot close", self);
    /* Into the run's cgroups first: every later process is accounted and killable. */
    for (long k = first_join; k < first_join + (long)joins; k++) {
        long fd = SYS(__NR_openat, AT_FDCWD, argv[k], O_WRONLY | O_CLOEXEC);
        if (fd < 0) fail("cannot open", argv[k]);
        if (SYS(__NR_write, fd, "0", 1) != 1) fail("cannot join", argv[k]);
        SYS(__NR_close, fd, 0, 0);
    }
    for (u64 r = 0; r < sizeof resources / sizeof resources[0]; r++)
        if (sys5(__NR_prlimit64, 0, resources[r], (long)&limits[r], 0, 0) != 0)
            fail("cannot set an rlimit", 0);

    /* The bounding set needs CAP_SETPCAP: drop it while still root. */
    for (long cap = 0; SYS(__NR_prctl, PR_CAPBSET_READ, cap, 0) >= 0; cap++)
        if (SYS(__NR_prctl, PR_CAPBSET_DROP, cap, 0) != 0) fail("cannot drop capabilities", 0);
    long amb = sys5(__NR_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    if (amb != 0 && amb != -22 /* EINVAL: a kernel without ambient capabilities */)
        fail("cannot clear ambient capabilities", 0);
    if (SYS(__NR_setgroups, 0, 0, 0) != 0) fail("cannot clear groups", 0);
    if (SYS(__NR_setresgid, gid, gid, gid) != 0) fail("cannot set the gid", 0);
    if (SYS(__NR_setresuid, uid, uid, uid) != 0) fail("cannot set the uid", 0);
    struct __user_cap_header_struct head = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct none[2] = {{0, 0, 0}, {0, 0, 0}};
    if (SYS(__NR_capset, &head, none, 0) != 0) fail("cannot clear capabilities", 0);
    /* Trust, but verify: no id of this process may be left at anything else. */
    unsigned int ids[3];
    for (int which = 0; which < 2; which++) {
        long nr = which ? __NR_getresgid : __NR_getresuid;
        u64 want = which ? gid : uid;
        if (SYS(nr, &ids[0], &ids[1], &ids[2]) != 0 || ids[0] != want || ids[1] != want ||
            ids[2] != want)
            fail("the ids did not change", 0);
    }
    SYS(__NR_execve, argv[i], argv + i, empty_env);
    fail("cannot execute", argv[i]);
}
