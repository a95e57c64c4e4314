"""The launcher and bwrap command lines (pure)."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from runstream.schemas.models import Limits
from runstream.services.execution.languages import Language
from runstream.services.execution.sandbox import rlimits
from runstream.services.execution.sandbox.bwrap import command
from runstream.services.execution.sandbox.environment import PATH

LIMITS = Limits(wall_ms=5000, cpu_ms=2500, memory_mb=256, processes=64, output_kb=1024,
                file_size_kb=16384)
LANG = Language(name="go", entry="main.go", run=("./main",), version_cmd=("go", "version"),
                binds=("/etc/java-17-openjdk",), env={"GOCACHE": "/tmp/c"})


def spec(**over: object) -> command.RunSpec:
    base: dict[str, object] = dict(
        argv=["./main", "arg with space"], language=LANG, limits=LIMITS,
        workspace="/run/runstream/x-1", cgroup_join=["/sys/fs/cgroup/memory/rs/1/tasks",
                                                     "/sys/fs/cgroup/pids/rs/1/tasks"],
        uid=65534, gid=65534, seccomp_fd=7, status_fd=8, args_fd=10, tmp_bytes=64 << 20,
        root_links={"/bin": "usr/bin", "/lib": "usr/lib", "/lib64": "usr/lib64"},
        root_dirs=["/sbin"])
    base.update(over)
    return command.RunSpec(**base)  # type: ignore[arg-type]


def pairs(argv: list[str], flag: str) -> list[tuple[str, ...]]:
    """The operands following each occurrence of ``flag``."""
    width = {"--ro-bind": 2, "--ro-bind-try": 2, "--symlink": 2, "--bind": 2, "--setenv": 2}
    n = width.get(flag, 1)
    return [tuple(argv[i + 1:i + 1 + n]) for i, a in enumerate(argv) if a == flag]


def test_chain_is_shell_then_setpriv_then_bwrap_then_program() -> None:
    argv = command.launch_argv(spec())
    assert argv[:2] == [command.SHELL, "-c"]
    assert argv[4] == command.SETPRIV
    assert "--reuid=65534" in argv and "--regid=65534" in argv and "--clear-groups" in argv
    bwrap_at = argv.index(command.BWRAP)
    assert argv.index("--inh-caps=-all") < bwrap_at
    assert argv[bwrap_at:] == [command.BWRAP, "--args", "10", "--", "./main", "arg with space"]


def test_native_chain_is_launcher_from_its_memfd_then_bwrap_then_program() -> None:
    sp = spec(launcher_fd=9)
    argv = command.launch_argv(sp)
    # The memfd, the descriptor it closes, then the joins, the rlimits, uid, gid.
    assert argv[:5] == ["/proc/self/fd/9", "9", "2", *sp.cgroup_join]
    lim = rlimits.rlimits(LIMITS)
    assert argv[5:10] == [str(lim[k]) for k in command.NATIVE_RLIMITS]
    assert argv[5:10] == ["4", str(16384 * 1024), str(rlimits.OPEN_FILES), "0",
                          str(rlimits.STACK_KB * 1024)]
    assert argv[10:13] == ["65534", "65534", "--"]
    assert argv[13:] == [command.BWRAP, "--args", "10", "--", "./main", "arg with space"]
    assert command.SHELL not in argv and command.SETPRIV not in argv


def test_the_native_launcher_reads_rlimits_in_the_order_command_writes_them() -> None:
    source = (Path(command.__file__).parent / "launcher.c").read_text()
    listed = source[source.index("resources[] = {"):].split("}", 1)[0]
    names = {"cpu_s": "RLIMIT_CPU", "fsize_bytes": "RLIMIT_FSIZE", "nofile": "RLIMIT_NOFILE",
             "core_bytes": "RLIMIT_CORE", "stack_bytes": "RLIMIT_STACK"}
    assert [listed.index(names[k]) for k in command.NATIVE_RLIMITS] == sorted(
        listed.index(names[k]) for k in command.NATIVE_RLIMITS)


def test_script_joins_every_cgroup_before_limits_and_exec() -> None:
    script = command.launcher_script(spec())
    assert script.startswith("set -e;")
    joins = [script.index(f"echo 0 > {p}") for p in spec().cgroup_join]
    assert max(joins) < script.index("ulimit") < script.index('exec "$@"')


def test_rlimits_in_dash_units() -> None:
    script = command.launcher_script(spec())
    assert "ulimit -t 4;" in script  # ceil(2.5 s) + 1 s backstop
    assert f"ulimit -f {16384 * 2};" in script  # 512-byte blocks
    assert f"ulimit -n {rlimits.OPEN_FILES};" in script
    assert "ulimit -c 0;" in script
    assert f"ulimit -s {rlimits.STACK_KB};" in script


def test_cgroup_paths_are_shell_quoted() -> None:
    nasty = "/sys/fs/cgroup/x y;rm -rf $HOME/tasks"
    script = command.launcher_script(spec(cgroup_join=[nasty]))
    assert f"echo 0 > {shlex.quote(nasty)}" in script


def test_bwrap_isolation_flags() -> None:
    args = command.bwrap_options(spec())
    for flag in ("--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent",
                 "--new-session", "--clearenv"):
        assert flag in args
    assert pairs(args, "--cap-drop") == [("ALL",)]
    assert "--share-net" not in args
    assert pairs(args, "--seccomp") == [("7",)]
    assert pairs(args, "--json-status-fd") == [("8",)]
    assert "--" not in args and "--args" not in args  # the command line says those


def test_mounts_are_read_only_except_workspace_and_tmpfs() -> None:
    args = command.bwrap_options(spec())
    ro = pairs(args, "--ro-bind")
    assert ("/usr", "/usr") in ro and ("/etc/ld.so.cache", "/etc/ld.so.cache") in ro
    assert ("/sbin", "/sbin") in ro  # a real directory on this (fake) host
    assert ("usr/bin", "/bin") in pairs(args, "--symlink")
    assert pairs(args, "--bind") == [("/run/runstream/x-1", command.BOX)]
    assert pairs(args, "--chdir") == [(command.BOX,)]
    assert ("/etc/java-17-openjdk", "/etc/java-17-openjdk") in pairs(args, "--ro-bind-try")
    # /etc as a whole, /home, /root, /work and /run are never mounted.
    sources = {p[0] for p in ro}
    assert not sources & {"/etc", "/home", "/root", "/work", "/run", "/"}
    for target in ("/tmp", "/dev/shm"):
        i = args.index(target)
        assert args[i - 1] == "--tmpfs" and args[i - 3:i - 1] == ["--size", str(64 << 20)]


def test_environment_is_only_the_fixed_set_plus_language_env() -> None:
    env = dict(pairs(command.bwrap_options(spec()), "--setenv"))  # type: ignore[arg-type]
    assert env == {"PATH": PATH, "HOME": "/tmp", "LANG": "C.UTF-8", "GOCACHE": "/tmp/c"}


def test_bwrap_command_line_names_no_host_path_pid_or_descriptor_of_the_run() -> None:
    """bwrap is pid 1 in the sandbox: its argv is the program's /proc/1/cmdline (issue 23)."""
    sp = spec(workspace="/run/runstream/w4242-1700000000/abc-1234")
    argv = command.launch_argv(sp)
    visible = argv[argv.index(command.BWRAP):]
    assert visible == [command.BWRAP, "--args", "10", "--", "./main", "arg with space"]
    assert not [a for a in visible if "runstream/" in a or "4242" in a]
    assert ("/run/runstream/w4242-1700000000/abc-1234", command.BOX) in pairs(
        command.bwrap_options(sp), "--bind")


def test_bwrap_options_data_is_nul_separated_and_refuses_an_embedded_nul() -> None:
    data = command.bwrap_options_data(spec())
    assert data.endswith(b"\0")
    assert data[:-1].split(b"\0") == [o.encode() for o in command.bwrap_options(spec())]
    with pytest.raises(ValueError, match="NUL"):
        command.bwrap_options_data(spec(workspace="/run/x\0y"))


@pytest.mark.parametrize("cpu_ms,seconds", [(1, 2), (1000, 2), (1001, 3), (5000, 6)])
def test_cpu_backstop_is_above_the_polled_limit(cpu_ms: int, seconds: int) -> None:
    limits = Limits(5000, cpu_ms, 256, 64, 1024, 1024)
    assert rlimits.cpu_rlimit_s(limits) == seconds
    assert rlimits.cpu_rlimit_s(limits) * 1000 > cpu_ms
