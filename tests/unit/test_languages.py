"""The shipped language registry: 12 languages, consistent commands and packages."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from runstream.schemas.models import Limits
from runstream.services.execution.languages import Registry, render

EXPECTED = {"python", "javascript", "typescript", "java", "c", "cpp", "go", "rust", "ruby",
            "perl", "php", "bash"}
REGISTRY = Registry.load()
LIMITS = Limits(5000, 5000, 256, 64, 1024, 16384)


def test_twelve_languages() -> None:
    assert set(REGISTRY.names()) == EXPECTED


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
    assert lang.entry in compile_argv
    if run_argv[0] == "./main":
        assert "main" in compile_argv  # -o main
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
    assert len(ids) == len(set(ids)) and all(lang.judge0 for lang in langs)
    names = [n for lang in langs for n in (lang.piston, *lang.piston_aliases)]
    assert len(names) == len(set(names)) and all(lang.piston for lang in langs)
