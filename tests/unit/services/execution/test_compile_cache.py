"""The compile cache's pure core: its key, its LRU within a byte bound, what it keeps."""

from __future__ import annotations

import dataclasses
import io
import tarfile

from runstream.schemas.codec import result_to_doc, validate_result_doc
from runstream.schemas.models import ExecutionResult, Limits, PhaseResult, Status
from runstream.services import metrics
from runstream.services.execution.compilecache import (
    ENTRY_OVERHEAD,
    HIT,
    MISS,
    Artefact,
    CompileCache,
    SnapshotBounds,
    added_by_compile,
    cacheable,
    compile_key,
    entry_size,
    plain_path,
    safe_mode,
)
from runstream.services.execution.languages import Registry
from runstream.services.execution.sandbox.docker._snapshot import from_tar, with_artefacts

C = Registry.load().resolve("c")
LIMITS = Limits(20000, 20000, 1024, 64, 64, 262144)
ARGV = ["/usr/bin/gcc", "-O2", "-o", "main", "main.c"]
FILES = [("main.c", b"int main(void){return 0;}\n")]


def key(**over: object) -> bytes:
    args: dict[str, object] = {"language": C, "argv": ARGV, "limits": LIMITS, "files": FILES}
    args.update(over)
    return compile_key(**args)  # type: ignore[arg-type]


def test_the_key_is_stable_and_changes_with_every_input() -> None:
    assert key() == key()
    variants = [
        key(language=dataclasses.replace(C, version="99.1")),
        key(language=dataclasses.replace(C, name="cpp")),
        key(language=dataclasses.replace(C, image="other:1")),
        key(language=dataclasses.replace(C, env={"X": "1"})),
        key(argv=[*ARGV[:1], "-O0", *ARGV[2:]]),
        key(limits=dataclasses.replace(LIMITS, memory_mb=512)),
        key(files=[("main.c", FILES[0][1] + b" ")]),
        key(files=[("other.c", FILES[0][1])]),
        key(files=[*FILES, ("extra.h", b"")]),
        # Length prefixes: moving bytes from a name into the content is another key.
        key(files=[("main.", b"c" + FILES[0][1])]),
        key(files=[("ab", b"c"), ("d", b"")]),
    ]
    assert len({key(), *variants}) == len(variants) + 1
    assert key(files=[("ab", b"c"), ("d", b"")]) != key(files=[("a", b"bc"), ("d", b"")])


def phase(**over: object) -> PhaseResult:
    base: dict[str, object] = {"stdout": b"", "stderr": b"warning: x\n", "exit_code": 0,
                               "wall_ms": 300, "cpu_ms": 280, "memory_kb": 9000}
    base.update(over)
    return PhaseResult(**base)  # type: ignore[arg-type]


def art(path: str, size: int, mode: int = 0o755) -> Artefact:
    return Artefact(path, b"x" * size, mode)


def test_only_a_clean_success_is_cacheable() -> None:
    assert cacheable(phase())
    for bad in (dict(exit_code=1), dict(exit_code=None, signal="SIGKILL"),
                dict(time_limit="wall"), dict(oom_killed=True), dict(output_limit_hit=True),
                dict(stderr_truncated=True), dict(stdout_truncated=True)):
        assert not cacheable(phase(**bad)), bad


def test_lru_counts_hits_and_misses_and_replays_the_original_output() -> None:
    cache = CompileCache(max_bytes=1 << 20, entry_max_bytes=1 << 20)
    assert cache.get(b"k") is None
    original = phase(cache=MISS)
    assert cache.put(b"k", (art("main", 100),), original)
    original.wall_ms = 1  # the caller's result moves on; the kept phase does not
    kept = cache.get(b"k")
    assert kept is not None and (cache.hits, cache.misses) == (1, 1)
    replay = kept.replay(wall_ms=0)
    assert (replay.cache, replay.wall_ms, replay.cpu_ms, replay.memory_kb) == (HIT, 0, 0, 0)
    assert (replay.stderr, replay.exit_code) == (b"warning: x\n", 0)
    assert kept.phase.wall_ms == 300 and kept.phase.cache is None


def test_lru_stays_within_its_bound_and_evicts_the_least_recently_used() -> None:
    one = entry_size((art("main", 1000),), phase())
    cache = CompileCache(max_bytes=3 * one, entry_max_bytes=3 * one)
    for k in (b"a", b"b", b"c"):
        assert cache.put(k, (art("main", 1000),), phase())
    assert cache.get(b"a") is not None  # a is now the most recently used
    assert cache.put(b"d", (art("main", 1000),), phase())
    assert b"b" not in cache and all(k in cache for k in (b"a", b"c", b"d"))
    assert cache.bytes == 3 * one <= cache.max_bytes and cache.evictions == 1
    # Putting a key again replaces it: counted once.
    assert cache.put(b"d", (art("main", 1000),), phase())
    assert cache.bytes == 3 * one and len(cache) == 3


def test_an_entry_over_the_entry_bound_is_not_kept_and_evicts_nothing() -> None:
    cache = CompileCache(max_bytes=1 << 20, entry_max_bytes=10_000)
    assert cache.put(b"small", (art("main", 1000),), phase())
    assert not cache.put(b"big", (art("main", 10_000),), phase())
    assert b"big" not in cache and b"small" in cache
    charged = entry_size((art("main", 10),), phase())
    assert charged == len(b"warning: x\n") + 10 + len("main") + 2 * ENTRY_OVERHEAD
    # The per-entry bound never exceeds the whole cache's.
    assert CompileCache(max_bytes=100, entry_max_bytes=1000).entry_max_bytes == 100


def test_modes_keep_permission_bits_only() -> None:
    assert safe_mode(0o104755) == 0o755  # setuid regular file
    assert safe_mode(0o2775) == 0o775 and safe_mode(0o1777) == 0o777


def test_paths_must_be_plain_and_relative() -> None:
    assert plain_path("./a/b") == "a/b" and plain_path("main") == "main"
    for bad in ("", ".", "/etc/shadow", "../x", "a/../../x", "a//b", "a\0b"):
        assert plain_path(bad) is None, bad


def test_added_by_compile_leaves_the_sources_out_and_refuses_changed_ones() -> None:
    found = [Artefact("main.c", FILES[0][1], 0o644), Artefact("main", b"ELF", 0o755),
             Artefact("pkg", None, 0o755), Artefact("pkg/A.class", b"CAFE", 0o644)]
    assert added_by_compile(found, FILES) == (
        Artefact("main", b"ELF", 0o755), Artefact("pkg", None, 0o755),
        Artefact("pkg/A.class", b"CAFE", 0o644))
    changed = [Artefact("main.c", b"rewritten", 0o644), *found[1:]]
    assert added_by_compile(changed, FILES) is None
    assert added_by_compile(found[1:], FILES) is None  # the compile removed a source


def _tar(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _info(name: str, kind: bytes = tarfile.REGTYPE, mode: int = 0o644,
          link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.linkname = kind, mode, link
    return info


def test_a_tar_of_the_box_gives_files_and_dirs_with_safe_modes() -> None:
    data = _tar([(_info(".", tarfile.DIRTYPE, 0o700), None),
                 (_info("./main", mode=0o4755), b"ELF"),
                 (_info("./pkg", tarfile.DIRTYPE, 0o2755), None),
                 (_info("./pkg/A.class"), b"CAFE")])
    assert from_tar(data, SnapshotBounds()) == [
        Artefact("main", b"ELF", 0o755), Artefact("pkg", None, 0o755),
        Artefact("pkg/A.class", b"CAFE", 0o644)]


def test_a_tar_with_links_devices_fifos_or_too_much_is_not_kept() -> None:
    ok = (_info("./main"), b"ELF")
    for bad in [(_info("./leak", tarfile.SYMTYPE, link="/etc/shadow"), None),
                (_info("./hard", tarfile.LNKTYPE, link="main"), None),
                (_info("./fifo", tarfile.FIFOTYPE), None),
                (_info("./dev", tarfile.CHRTYPE), None),
                (_info("../escape"), b"x"),
                (_info("/etc/cron.d/x"), b"x")]:
        assert from_tar(_tar([ok, bad]), SnapshotBounds()) is None, bad[0].name
    assert from_tar(_tar([ok]), SnapshotBounds(max_bytes=2)) is None
    assert from_tar(_tar([ok, (_info("./b"), b"")]), SnapshotBounds(max_files=1)) is None
    assert from_tar(_tar([(_info("./a/b/c"), b"")]), SnapshotBounds(max_depth=3)) is None
    assert from_tar(b"not a tar" * 100, SnapshotBounds()) is None


def test_restored_tar_holds_the_sources_then_the_artefacts() -> None:
    sources = _tar([(_info("main.c"), b"src")])
    out = with_artefacts(sources, [Artefact("pkg", None, 0o755),
                                   Artefact("pkg/main", b"ELF", 0o4755)], 65534, 65534)
    with tarfile.open(fileobj=io.BytesIO(out)) as tar:
        got = [(m.name, m.type, m.mode, m.uid, tar.extractfile(m).read() if m.isreg() else None)
               for m in tar]  # type: ignore[union-attr]
    assert got == [("main.c", tarfile.REGTYPE, 0o644, 0, b"src"),
                   ("pkg", tarfile.DIRTYPE, 0o755, 65534, None),
                   ("pkg/main", tarfile.REGTYPE, 0o755, 65534, b"ELF")]


def test_the_result_says_hit_or_miss_only_when_a_cache_looked() -> None:
    result = ExecutionResult(id="x", status=Status.OK, compile=phase(cache=HIT), run=phase())
    doc = result_to_doc(result)
    validate_result_doc(doc)
    assert doc["compile"]["cache"] == "hit" and "cache" not in doc["run"]
    result.compile = phase()
    assert "cache" not in result_to_doc(result)["compile"]


def test_the_worker_counts_hits_and_misses() -> None:
    def count(kind: str) -> float:  # over every language label ("c" may be "other" by now)
        return sum(s.value for family in metrics.WORKER.collect() for s in family.samples
                   if s.name == "runstream_compile_cache_lookups_total"
                   and s.labels["result"] == kind)

    before = count("hit"), count("miss")
    for kind in (HIT, MISS, HIT):
        metrics.observe_result(ExecutionResult(id="x", status=Status.OK, language="c",
                                               compile=phase(cache=kind)))
    metrics.observe_result(ExecutionResult(id="y", status=Status.OK, language="c",
                                           compile=phase()))
    assert (count("hit"), count("miss")) == (before[0] + 2, before[1] + 1)
