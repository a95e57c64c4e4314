"""The compile cache with real sandboxes: a hit skips the compiler and gives the same
answer, anything different misses, the bound holds, and what a hostile compile step
leaves (links to host files, setuid files, fifos) gets nothing out of the cache."""

from __future__ import annotations

import dataclasses
import os
import stat
import textwrap
import uuid
from pathlib import Path

import pytest
from runstream.schemas.models import ExecutionRequest, ExecutionResult, SourceFile, Status
from runstream.services.execution.compilecache import SnapshotBounds
from runstream.services.execution.executor import Executor
from runstream.services.execution.languages import Language, Registry
from runstream.services.execution.sandbox.base import Sandbox
from runstream.services.execution.sandbox.bwrap import BwrapSandbox, _snapshot
from runstream.services.execution.sandbox.docker import DockerSandbox
from runstream.services.settings import Settings

from .conftest import REGISTRY

pytestmark = [pytest.mark.timeout(180)]

C_SOURCE = textwrap.dedent("""\
    #include <stdio.h>
    #warning "kept with the artefacts"
    int main(void) { int n; if (scanf("%d", &n) != 1) return 3; printf("%d\\n", n * 2); }
""")
JAVA_SOURCE = textwrap.dedent("""\
    public class Main { public static void main(String[] a) {
        java.util.Scanner s = new java.util.Scanner(System.in);
        System.out.println(s.nextInt() * 3); } }
""")


def shell_language(name: str, compile_script: str, run_script: str) -> Language:
    """A language whose compile and run steps are shell scripts (the compile is the attacker)."""
    return Language(name=name, entry="main.sh", run=("/bin/sh", "-c", run_script),
                    version_cmd=("/bin/sh", "-c", "echo 1.0"),
                    compile=("/bin/sh", "-c", compile_script),
                    image=REGISTRY.resolve("c").image,
                    version="1.0")


def executor(settings: Settings, sandbox: Sandbox, *languages: Language,
             **over: int) -> Executor:
    registry = Registry([*languages]) if languages else REGISTRY
    return Executor(dataclasses.replace(settings, **over), registry, sandbox)


async def run(ex: Executor, language: str, source: str, stdin: str = "",
              name: str | None = None) -> ExecutionResult:
    req = ExecutionRequest(id=str(uuid.uuid4()), language=language,
                           files=(SourceFile(name, source.encode()),), stdin=stdin.encode())
    return await ex.execute(req)


def cache_of(result: ExecutionResult) -> str | None:
    assert result.compile is not None, result
    return result.compile.cache


# -- bwrap ---------------------------------------------------------------------------

@pytest.mark.sandbox
async def test_c_second_run_is_a_hit_that_skips_gcc(sandbox: BwrapSandbox,
                                                    sandbox_settings: Settings) -> None:
    ex = executor(sandbox_settings, sandbox)
    first = await run(ex, "c", C_SOURCE, "21")
    assert first.status == Status.OK and first.run is not None, first
    assert cache_of(first) == "miss" and b"kept with the artefacts" in first.compile.stderr
    second = await run(ex, "c", C_SOURCE, "50")
    assert second.status == Status.OK and second.run is not None, second
    assert cache_of(second) == "hit" and second.run.stdout == b"100\n"
    assert second.compile is not None and first.compile is not None
    # gcc did not run: no compiler time, and its warning is told again as it was.
    assert second.compile.cpu_ms == 0 and second.compile.wall_ms <= 5
    assert first.compile.wall_ms > 20
    assert second.compile.stderr == first.compile.stderr
    assert (ex.compile_cache is not None and ex.compile_cache.hits == 1
            and ex.compile_cache.misses == 1)
    # Another source, the same source under another name, other compile limits: misses.
    assert cache_of(await run(ex, "c", C_SOURCE + "\n", "1")) == "miss"
    assert cache_of(await run(ex, "c", C_SOURCE, "1", name="other.c")) == "miss"
    ex.settings = dataclasses.replace(ex.settings, compile_memory_mb=512)
    assert cache_of(await run(ex, "c", C_SOURCE, "1")) == "miss"
    # Off: no lookup, nothing in the result.
    off = await run(executor(sandbox_settings, sandbox, compile_cache_mb=0), "c", C_SOURCE, "2")
    assert off.status == Status.OK and cache_of(off) is None


@pytest.mark.sandbox
async def test_java_second_run_is_a_hit(sandbox: BwrapSandbox,
                                        sandbox_settings: Settings) -> None:
    ex = executor(sandbox_settings, sandbox)
    first = await run(ex, "java", JAVA_SOURCE, "5")
    second = await run(ex, "java", JAVA_SOURCE, "7")
    assert (first.status, second.status) == (Status.OK, Status.OK), (first, second)
    assert (cache_of(first), cache_of(second)) == ("miss", "hit")
    assert first.run is not None and second.run is not None
    assert (first.run.stdout, second.run.stdout) == (b"15\n", b"21\n")
    assert first.compile is not None and second.compile is not None
    assert second.compile.wall_ms < first.compile.wall_ms / 10


@pytest.mark.sandbox
async def test_the_compiler_does_not_run_on_a_hit_and_options_matter(
        sandbox: BwrapSandbox, sandbox_settings: Settings) -> None:
    # The "compiler" stamps its artefact with a value no second run could reproduce.
    stamp = shell_language("stamp", "head -c 16 /dev/urandom | od -An -tx1 > out; echo made",
                           "cat out")
    other = dataclasses.replace(stamp, name="stamp2",
                                compile=("/bin/sh", "-c", "head -c 16 /dev/urandom "
                                         "| od -An -tx1 > out; echo made; true"))
    ex = executor(sandbox_settings, sandbox, stamp, other)
    a = await run(ex, "stamp", "x", "0")
    b = await run(ex, "stamp", "x", "1")
    assert (cache_of(a), cache_of(b)) == ("miss", "hit")
    assert a.run is not None and b.run is not None and a.run.stdout == b.run.stdout
    assert a.compile is not None and b.compile is not None
    assert b.compile.stdout == a.compile.stdout == b"made\n"
    c = await run(ex, "stamp2", "x")  # other compile options: another compile
    assert cache_of(c) == "miss" and c.run is not None and c.run.stdout != a.run.stdout


@pytest.mark.sandbox
async def test_the_cache_keeps_within_its_bound(sandbox: BwrapSandbox,
                                                sandbox_settings: Settings) -> None:
    blob = shell_language("blob", "head -c 400000 /dev/zero > blob", "wc -c < blob")
    ex = executor(sandbox_settings, sandbox, blob, compile_cache_mb=1,
                  compile_cache_entry_mb=1)
    cache = ex.compile_cache
    assert cache is not None
    for source in ("a", "b", "c"):  # 3 x 400 kB > 1 MiB: "a" goes
        r = await run(ex, "blob", source)
        assert r.status == Status.OK and cache_of(r) == "miss", r
        assert cache.bytes <= 1024 * 1024
    assert len(cache) == 2 and cache.evictions == 1
    assert cache_of(await run(ex, "blob", "c")) == "hit"
    assert cache_of(await run(ex, "blob", "a")) == "miss"
    # Over the per-entry bound: compiled every time, never kept.
    big = shell_language("big", "head -c 1100000 /dev/zero > blob", "wc -c < blob")
    ex = executor(sandbox_settings, sandbox, big, compile_cache_mb=4, compile_cache_entry_mb=1)
    for _ in range(2):
        r = await run(ex, "big", "x")
        assert r.run is not None and r.run.stdout == b"1100000\n" and cache_of(r) == "miss"
    assert ex.compile_cache is not None and len(ex.compile_cache) == 0


PLANTS = {
    "a link to /etc/shadow": "ln -s /etc/shadow leak",
    "a link to a host directory": "ln -s / root",
    "a fifo": "mkfifo pipe",
    "a dangling link": "ln -s /nowhere gone",
}


@pytest.mark.sandbox
@pytest.mark.parametrize("plant", sorted(PLANTS))
async def test_a_compile_that_plants_links_or_fifos_is_never_kept(
        sandbox: BwrapSandbox, sandbox_settings: Settings, plant: str) -> None:
    lang = shell_language("planted", f"echo ok > out; {PLANTS[plant]}",
                          "cat out; cat leak root/etc/shadow 2>&1 | head -c 300")
    ex = executor(sandbox_settings, sandbox, lang)
    for _ in range(2):
        r = await run(ex, "planted", "x")
        assert r.status == Status.OK and cache_of(r) == "miss", r
        assert r.run is not None and b"root:" not in r.run.stdout
    assert ex.compile_cache is not None and len(ex.compile_cache) == 0


@pytest.mark.sandbox
async def test_setuid_bits_are_dropped_and_files_belong_to_the_sandbox_user(
        sandbox: BwrapSandbox, sandbox_settings: Settings) -> None:
    lang = shell_language(
        "suid", "cp /usr/bin/id suid && chmod 6755 suid && mkdir -p d/e && chmod 3777 d "
        "&& echo x > d/e/f && stat -c '%a %u' suid d",
        "stat -c '%a %u %g' suid d d/e/f")
    ex = executor(sandbox_settings, sandbox, lang)
    miss, hit = await run(ex, "suid", "x"), await run(ex, "suid", "x")
    assert (cache_of(miss), cache_of(hit)) == ("miss", "hit"), (miss, hit)
    assert hit.run is not None and miss.run is not None
    uid, gid = sandbox_settings.sandbox_uid, sandbox_settings.sandbox_gid
    before, after = (r.decode().split("\n")[:3] for r in (miss.run.stdout, hit.run.stdout))
    assert before[:2] == [f"6755 {uid} {gid}", f"3777 {uid} {gid}"], miss.run
    assert after == [f"755 {uid} {gid}", f"777 {uid} {gid}", before[2]], hit.run


@pytest.mark.sandbox
def test_the_host_side_snapshot_follows_nothing_and_never_blocks(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (a setuid file of another user)")
    (tmp_path / "main").write_bytes(b"ELF")
    os.chmod(tmp_path / "main", 0o4755)
    os.mkdir(tmp_path / "sub")
    (tmp_path / "sub" / "a").write_bytes(b"A")
    found = _snapshot.snapshot(tmp_path, SnapshotBounds())
    assert found is not None

    def mode(name: str) -> int:
        return stat.S_IMODE(os.stat(tmp_path / name).st_mode)

    assert [(a.path, a.data, a.mode) for a in found] == [
        ("main", b"ELF", 0o755), ("sub", None, mode("sub")), ("sub/a", b"A", mode("sub/a"))]
    assert _snapshot.snapshot(tmp_path, SnapshotBounds(max_bytes=3)) is None
    assert _snapshot.snapshot(tmp_path, SnapshotBounds(max_files=2)) is None
    os.mkfifo(tmp_path / "sub" / "pipe")  # opened O_NONBLOCK: a fifo never blocks the worker
    assert _snapshot.snapshot(tmp_path, SnapshotBounds()) is None
    os.unlink(tmp_path / "sub" / "pipe")
    os.symlink("/etc/shadow", tmp_path / "sub" / "leak")
    assert _snapshot.snapshot(tmp_path, SnapshotBounds()) is None


# -- docker --------------------------------------------------------------------------

@pytest.mark.docker
async def test_docker_second_run_is_a_hit_and_planted_links_are_not_kept(
        docker_sandbox: DockerSandbox) -> None:
    settings = docker_sandbox.settings
    ex = executor(settings, docker_sandbox)
    first = await run(ex, "c", C_SOURCE, "21")
    second = await run(ex, "c", C_SOURCE, "4")
    assert (first.status, second.status) == (Status.OK, Status.OK), (first, second)
    assert (cache_of(first), cache_of(second)) == ("miss", "hit")
    assert first.run is not None and second.run is not None
    assert (first.run.stdout, second.run.stdout) == (b"42\n", b"8\n")
    assert second.compile is not None and first.compile is not None
    assert second.compile.cpu_ms == 0 and second.compile.stderr == first.compile.stderr
    assert cache_of(await run(ex, "c", C_SOURCE + "\n", "1")) == "miss"
    lang = shell_language(
        "planted", "echo ok > out; ln -s /etc/shadow leak",
        "cat out; cat leak 2>&1 | head -c 300")
    suid = shell_language("suid", "cp /usr/bin/id suid && chmod 6755 suid",
                          "stat -c '%a %u %g' suid")
    ex = executor(settings, docker_sandbox, lang, suid)
    for _ in range(2):
        r = await run(ex, "planted", "x")
        assert r.status == Status.OK and cache_of(r) == "miss", r
    miss, hit = await run(ex, "suid", "x"), await run(ex, "suid", "x")
    assert (cache_of(miss), cache_of(hit)) == ("miss", "hit"), (miss, hit)
    assert hit.run is not None
    assert hit.run.stdout == f"755 {settings.sandbox_uid} {settings.sandbox_gid}\n".encode()
