"""The language registry: a data file (languages.toml), not code.

Each language names its aliases, entry file, optional compile command, run
command, Docker image, the Debian packages that provide it, and the command
that prints its version. Commands are argv lists with placeholders filled by
:func:`render`: ``{entry}``, ``{stem}`` (entry without extension),
``{memory_mb}``, ``{heap_mb}`` and ``{processes}``.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from runstream.schemas.errors import UnknownLanguage
from runstream.schemas.models import Limits
from runstream.services.errors import ConfigurationError
from runstream.services.settings import Settings

_VERSION_RE = re.compile(r"\d+(?:\.\d+)+(?:[-+~][0-9A-Za-z.]+)?")


@dataclass(frozen=True)
class Language:
    """One language as the registry describes it."""

    name: str
    entry: str
    run: tuple[str, ...]
    version_cmd: tuple[str, ...]
    aliases: tuple[str, ...] = ()
    compile: tuple[str, ...] | None = None
    image: str = ""
    apt: tuple[str, ...] = ()
    binds: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    # Extra processes/threads the runtime itself needs (JVM, Go's runtime, V8).
    processes_floor: int = 1
    version: str | None = None
    #: Judge0's ids for this language; the first is the one Judge0's /languages lists.
    judge0: tuple[int, ...] = ()
    #: Piston's name for it ("" if Piston has none) and the other names Piston accepts.
    piston: str = ""
    piston_aliases: tuple[str, ...] = ()
    #: A hello world that reads one line of stdin: the playground's starting program.
    sample: str = ""
    #: What the runtime prints when the heap its flags cap ({heap_mb}) runs out.
    heap_exhausted: tuple[str, ...] = ()
    #: Part of the ``core`` profile (see :meth:`Registry.profile`).
    core: bool = False

    @property
    def compiled(self) -> bool:
        return self.compile is not None


def render(argv: Sequence[str], language: Language, limits: Limits,
           entry: str | None = None) -> list[str]:
    """Fill the placeholders of a command template; ``entry`` defaults to the language's."""
    entry = entry or language.entry
    stem = entry.rsplit(".", 1)[0]
    values = {
        "entry": entry,
        "stem": stem,
        "memory_mb": str(limits.memory_mb),
        # Leave the runtime a quarter of the limit (at least 16 MiB) outside its heap.
        "heap_mb": str(max(8, limits.memory_mb - max(16, limits.memory_mb // 4))),
        "processes": str(limits.processes),
    }
    return [part.format_map(values) for part in argv]


def parse_version(output: str) -> str | None:
    """The first version-looking token of a ``--version`` output."""
    match = _VERSION_RE.search(output)
    return match.group(0) if match else None


def _language(name: str, spec: Mapping[str, Any]) -> Language:
    try:
        return Language(
            name=name,
            entry=str(spec["entry"]),
            run=tuple(spec["run"]),
            version_cmd=tuple(spec["version"]),
            aliases=tuple(spec.get("aliases", ())),
            compile=tuple(spec["compile"]) if "compile" in spec else None,
            image=str(spec.get("image", "")),
            apt=tuple(spec.get("apt", ())),
            binds=tuple(spec.get("binds", ())),
            env=dict(spec.get("env", {})),
            processes_floor=int(spec.get("processes_floor", 1)),
            judge0=tuple(int(i) for i in spec.get("judge0", ())),
            piston=str(spec.get("piston", "")),
            piston_aliases=tuple(str(a) for a in spec.get("piston_aliases", ())),
            sample=str(spec.get("sample", "")),
            heap_exhausted=tuple(str(m) for m in spec.get("heap_exhausted", ())),
            core=bool(spec.get("core", False)),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise ConfigurationError(f"languages file: language {name!r} is malformed: {e}") from e


class Registry:
    """Languages by name and alias."""

    def __init__(self, languages: Iterable[Language]) -> None:
        self._by_name: dict[str, Language] = {}
        self._alias: dict[str, str] = {}
        for lang in languages:
            self._by_name[lang.name] = lang
            for key in (lang.name, *lang.aliases):
                if key in self._alias:
                    raise ConfigurationError(f"languages file: {key!r} is used twice")
                self._alias[key] = lang.name

    @classmethod
    def load(cls, path: str | Path | None = None) -> Registry:
        """Load a registry file; the shipped languages.toml when ``path`` is empty."""
        if path:
            text = Path(path).read_text(encoding="utf-8")
        else:
            pkg = resources.files("runstream.services")
            text = pkg.joinpath("languages.toml").read_text(encoding="utf-8")
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ConfigurationError(f"languages file is not valid TOML: {e}") from e
        return cls(_language(name, spec) for name, spec in data.items())

    @classmethod
    def from_settings(cls, settings: Settings) -> Registry:
        """The registry of ``RUNSTREAM_LANGUAGES_FILE``, else the shipped one."""
        return cls.load(settings.languages_file or None)

    def profile(self, spec: str) -> Registry:
        """The languages a profile names: ``all``, ``core``, or names and aliases, comma-separated.

        An unknown name is a ConfigurationError that lists the known ones.
        """
        wanted = [part.strip().lower() for part in spec.split(",") if part.strip()]
        if not wanted:
            raise ConfigurationError("language profile is empty: use all, core or names")
        if wanted == ["all"]:
            return self
        if wanted == ["core"]:
            return Registry(lang for lang in self._by_name.values() if lang.core)
        unknown = [name for name in wanted if name not in self._alias]
        if unknown:
            raise ConfigurationError(
                f"language profile {spec!r}: unknown {', '.join(unknown)}; "
                f"use all, core or some of {', '.join(self.names())}")
        keep = {self._alias[name] for name in wanted}
        return Registry(lang for name, lang in self._by_name.items() if name in keep)

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def __iter__(self) -> Any:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)

    def resolve(self, name: str, version: str | None = None) -> Language:
        """The language for a name or alias; UnknownLanguage names the served ones."""
        key = self._alias.get(name.strip().lower())
        if key is None:
            raise UnknownLanguage(
                f"language {name!r} is not supported; supported: {', '.join(self.names())}",
                field="language",
                supported=self.names(),
            )
        lang = self._by_name[key]
        if version and lang.version and not lang.version.startswith(version):
            raise UnknownLanguage(
                f"{lang.name} {version} is not served; this deployment runs {lang.version}",
                field="version",
            )
        return lang

    def with_versions(self, versions: Mapping[str, str | None]) -> Registry:
        """A copy with detected versions; languages whose detection failed are dropped."""
        kept = []
        for lang in self._by_name.values():
            found = versions.get(lang.name)
            if found:
                kept.append(Language(**{**lang.__dict__, "version": found}))
        return Registry(kept)

    def describe(self) -> list[dict[str, Any]]:
        """The public description served by GET /v1/languages."""
        return [
            {
                "name": lang.name,
                "aliases": list(lang.aliases),
                "version": lang.version,
                "compiled": lang.compiled,
                "entry": lang.entry,
                "sample": lang.sample,
            }
            for lang in sorted(self._by_name.values(), key=lambda lang: lang.name)
        ]
