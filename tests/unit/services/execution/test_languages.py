"""The shipped language registry: 41 languages, consistent commands and packages."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from runstream.schemas.models import Limits
from runstream.services.errors import ConfigurationError
from runstream.services.execution.languages import Registry, render

EXPECTED = {"python", "javascript", "typescript", "java", "c", "cpp", "go", "rust", "ruby",
            "perl", "php", "bash"}
REGISTRY = Registry.load()
LIMITS = Limits(5000, 5000, 256, 64, 1024, 16384)


def test_forty_languages_and_the_core_twelve() -> None:
    assert len(REGISTRY) >= 40 and set(REGISTRY.names()) >= EXPECTED
    assert {lang.name for lang in REGISTRY if lang.core} == EXPECTED


@pytest.mark.parametrize("spec,names", [
    ("all", None), ("core", EXPECTED), (" Haskell, py ,kt", {"haskell", "python", "kotlin"}),
])
def test_profiles(spec: str, names: set[str] | None) -> None:
    assert set(REGISTRY.profile(spec).names()) == (names or set(REGISTRY.names()))


@pytest.mark.parametrize("spec", ["python,klingon", " , "])
def test_a_profile_with_an_unknown_name_is_refused_with_the_known_ones(spec: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        REGISTRY.profile(spec)
    assert ("klingon" in str(caught.value) and "haskell" in str(caught.value)) or (
        "empty" in str(caught.value))


@pytest.mark.parametrize("alias,name", [("py", "python"), ("ts", "typescript"),
                                        ("c++", "cpp"), ("golang", "go"), ("rs", "rust"),
                                        ("sh", "bash"), ("node", "javascript")])
def test_aliases(alias: str, name: str) -> None:
    assert REGISTRY.resolve(alias).name == name


@pytest.mark.parametrize("lang", list(REGISTRY), ids=lambda lang: lang.name)
def test_commands_call_tools_by_absolute_path(lang) -> None:  # type: ignore[no-untyped-def]
    for argv in (lang.run, lang.version_cmd, lang.compile or ("/x",)):
        assert argv[0].startswith(("/", "./")), argv
    assert lang.apt, "install scripts need the Debian packages"
    assert lang.image.startswith("runstream/")


@pytest.mark.parametrize("lang", [lang for lang in REGISTRY if lang.compiled],
                         ids=lambda lang: lang.name)
def test_compiled_languages_run_what_they_compiled(lang) -> None:  # type: ignore[no-untyped-def]
    compile_argv = render(lang.compile, lang, LIMITS)
    run_argv = render(lang.run, lang, LIMITS)
    text = " ".join(compile_argv)
    assert lang.entry in compile_argv
    if run_argv[0] == "./main":  # -o main, -omain, --out:main, ld -o main
        assert re.search(r"(-o ?|-out:|--out:)main(\s|$)", text), text
    elif exe := [a for a in run_argv if a.endswith(".exe")]:  # mono main.exe
        assert f"-out:{exe[0]}" in compile_argv
    else:  # java Main / node main.js: the compiler writes into the workspace
        assert "." in compile_argv or "--outDir" in compile_argv


def test_debian_package_names() -> None:
    apt = {lang.name: set(lang.apt) for lang in REGISTRY}
    assert "node-typescript" in apt["typescript"]
    assert "golang-go" in apt["go"]
    assert "rustc" in apt["rust"]
    assert "openjdk-17-jdk-headless" in apt["java"]
    assert "g++" in apt["cpp"] and "gcc" in apt["c"]


def test_go_and_runtimes_get_writable_caches_and_thread_room() -> None:
    go = REGISTRY.resolve("go")
    assert go.env["GOCACHE"].startswith("/tmp/") and go.env["CGO_ENABLED"] == "0"
    assert REGISTRY.resolve("java").processes_floor >= 16
    assert REGISTRY.resolve("javascript").processes_floor >= 8
    for name in ("kotlin", "scala", "groovy", "clojure", "csharp", "erlang", "elixir"):
        assert REGISTRY.resolve(name).processes_floor >= 16, name


@pytest.mark.parametrize("name", ["java", "kotlin", "scala", "groovy", "clojure", "csharp",
                                  "haskell", "javascript"])
def test_managed_runtimes_cap_their_heap_from_the_limit(name: str) -> None:
    lang = REGISTRY.resolve(name)
    argv = render(lang.run, lang, Limits(5000, 5000, 128, 64, 1024, 16384))
    assert any("96" in part for part in argv), argv  # 128 MiB less a quarter
    assert lang.heap_exhausted


@pytest.mark.parametrize("lang", list(REGISTRY), ids=lambda lang: lang.name)
def test_toolchain_is_installed_here(lang) -> None:  # type: ignore[no-untyped-def]
    tool = lang.compile[0] if lang.compile else lang.run[0]
    if not Path(tool).exists() and shutil.which("dpkg") is None:
        pytest.skip("not a Debian host")
    assert Path(tool).exists(), f"apt-get install {' '.join(lang.apt)}"


def test_judge0_ids_and_piston_names_name_one_language_each() -> None:
    from runstream.services.execution.languages import Registry

    langs = list(Registry.load())
    ids = [i for lang in langs for i in lang.judge0]
    assert len(ids) == len(set(ids))
    # Piston lists a language's own name among its aliases too: one language per name.
    names = [n for lang in langs for n in {lang.piston, *lang.piston_aliases} if n]
    assert len(names) == len(set(names))
    # Those that Judge0 CE / Piston do not run (or run as another language) have none.
    assert {lang.name for lang in langs if not lang.judge0} == {
        "tcl", "awk", "scheme", "basic", "forth", "nim", "ada", "racket"}
    assert {lang.name for lang in langs if not lang.piston} == {
        "tcl", "scheme", "basic", "objectivec", "ada"}


def test_the_registry_of_the_settings_is_the_languages_file_else_the_shipped_one(
        tmp_path: Path) -> None:
    from runstream.services.settings import Settings

    assert Registry.from_settings(Settings.from_env({})).names() == REGISTRY.names()
    python = (Path(__file__).parents[4] / "services" / "languages.toml").read_text()
    only = tmp_path / "only-python.toml"
    only.write_text(python[python.index("[python]"):].split("\n[", 1)[0] + "\n")
    chosen = Registry.from_settings(Settings.from_env({"RUNSTREAM_LANGUAGES_FILE": str(only)}))
    assert chosen.names() == ["python"]


async def test_a_worker_with_an_unknown_language_in_its_profile_does_not_start() -> None:
    from runstream.services.execution.executor import start_executor
    from runstream.services.settings import Settings

    with pytest.raises(ConfigurationError, match="klingon"):
        await start_executor(Settings.from_env({"RUNSTREAM_LANGUAGES": "python,klingon"}))
