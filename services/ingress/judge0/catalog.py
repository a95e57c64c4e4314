"""Judge0's language list from runstream's registry, and the read-only endpoints' bodies.

Each language lists its Judge0 ids in ``languages.toml`` (``judge0 = [...]``,
the first is its canonical id). Every id is listed by ``/languages``: the SDK
checks that the id it resolved (e.g. ``CPP`` -> 52 in 1.13.1, 54 is the
canonical C++) is among them. Names follow Judge0's "Python (3.8.1)" with the
version the live workers run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from runstream.schemas.models import Limits
from runstream.services.execution.languages import Language, render
from runstream.services.ingress.judge0.config import JUDGE0_VERSION
from runstream.services.ingress.judge0.errors import NotFoundJudge0

# Display name and what precedes the version inside the parentheses.
_DISPLAY = {
    "python": ("Python", ""),
    "javascript": ("JavaScript", "Node.js "),
    "typescript": ("TypeScript", ""),
    "java": ("Java", "OpenJDK "),
    "c": ("C", "GCC "),
    "cpp": ("C++", "GCC "),
    "go": ("Go", ""),
    "rust": ("Rust", ""),
    "ruby": ("Ruby", ""),
    "perl": ("Perl", ""),
    "php": ("PHP", ""),
    "bash": ("Bash", ""),
    "assembly": ("Assembly", "NASM "),
    "csharp": ("C#", "Mono "),
    "commonlisp": ("Common Lisp", "SBCL "),
    "d": ("D", "GDC "),
    "elixir": ("Elixir", ""),
    "erlang": ("Erlang", "OTP "),
    "fortran": ("Fortran", "GFortran "),
    "haskell": ("Haskell", "GHC "),
    "lua": ("Lua", ""),
    "ocaml": ("OCaml", ""),
    "octave": ("Octave", ""),
    "pascal": ("Pascal", "FPC "),
    "prolog": ("Prolog", "SWI-Prolog "),
    "cobol": ("COBOL", "GnuCOBOL "),
    "kotlin": ("Kotlin", ""),
    "objectivec": ("Objective-C", "GCC "),
    "r": ("R", ""),
    "scala": ("Scala", ""),
    "sqlite": ("SQL", "SQLite "),
    "clojure": ("Clojure", ""),
    "groovy": ("Groovy", ""),
}


def display_name(language: str, version: str | None) -> str:
    """``("cpp", "12.2.0")`` -> ``"C++ (GCC 12.2.0)"``; without a version, the bare name."""
    title, prefix = _DISPLAY.get(language, (language.capitalize(), ""))
    return f"{title} ({prefix}{version})" if version else title


@dataclass(frozen=True)
class Catalog:
    """The languages with Judge0 ids, by id, and their names at the served versions."""

    by_id: Mapping[int, Language]
    names: Mapping[int, str]
    canonical: Mapping[str, int]  # runstream language name -> its first Judge0 id

    @classmethod
    def build(cls, languages: Iterable[Language],
              versions: Mapping[str, list[str]]) -> Catalog:
        """``versions``: per language, the versions live workers serve (newest last)."""
        by_id: dict[int, Language] = {}
        names: dict[int, str] = {}
        canonical: dict[str, int] = {}
        for lang in languages:
            served = versions.get(lang.name) or []
            name = display_name(lang.name, served[-1] if served else lang.version)
            for i in lang.judge0:
                by_id[i] = lang
                names[i] = name
            if lang.judge0:
                canonical[lang.name] = lang.judge0[0]
        return cls(by_id, names, canonical)

    def listing(self) -> list[dict[str, Any]]:
        """``GET /languages``: ``[{"id", "name"}]`` ordered by name (then id), as Judge0 does."""
        return [{"id": i, "name": n} for i, n in sorted(self.names.items(),
                                                        key=lambda kv: (kv[1], kv[0]))]

    def listing_all(self) -> list[dict[str, Any]]:
        """``GET /languages/all``: the same with ``is_archived`` (none is archived here)."""
        return [{**entry, "is_archived": False} for entry in self.listing()]

    def detail(self, raw_id: str, limits: Limits) -> dict[str, Any]:
        """``GET /languages/{id}``; NotFoundJudge0 for an id that is not ours."""
        lang_id = int(raw_id) if raw_id.isascii() and raw_id.isdigit() else -1
        lang = self.by_id.get(lang_id)
        if lang is None:
            raise NotFoundJudge0(f"no language with Judge0 id {raw_id!r}")
        return {
            "id": lang_id,
            "name": self.names[lang_id],
            "is_archived": False,
            "source_file": lang.entry,
            "compile_cmd": (" ".join(render(lang.compile, lang, limits))
                            if lang.compile else None),
            "run_cmd": " ".join(render(lang.run, lang, limits)),
        }

    def id_of(self, language: str | None) -> int | None:
        """The canonical Judge0 id of a runstream language name."""
        return self.canonical.get(language or "")


def workers(lag: int, slots: int) -> list[dict[str, Any]]:
    """``GET /workers`` from the worker group: one queue, our slots as Judge0's workers.

    The group's lag counts requests not yet committed, running ones included: up
    to ``slots`` of them are being worked on, the rest wait.
    """
    working = min(lag, slots)
    return [{"queue": JUDGE0_VERSION, "size": max(0, lag - slots), "available": slots,
             "idle": max(0, slots - working), "working": working, "paused": 0, "failed": 0}]


def system_info(facts: Mapping[str, str]) -> dict[str, str]:
    """``GET /system_info``: a flat object of strings, like Judge0's lscpu + free rows."""
    return {str(k): str(v) for k, v in facts.items()}
