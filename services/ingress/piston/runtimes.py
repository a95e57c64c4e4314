"""Piston's runtimes: our languages under Piston's names, at the versions workers serve.

A runtime is one (language, version) that a live worker announced. Piston's
versions are semver strings and requests name a semver *range*; the range is
matched with ``nodesemver``, a port of npm's ``semver`` (the library Piston
itself calls: ``semver.satisfies(rt.version, version)``, highest match wins).
``tests/unit/services/ingress/piston/test_piston_wire.py`` pins its answers to ones
captured from npm's ``semver`` 7.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import nodesemver
from runstream.services.execution.languages import Language
from runstream.services.ingress.piston.errors import PistonRefusal

# Piston names the package that provides a language when it provides several
# (api/src/runtime.js: ``runtime`` is set only then). Piston's packaging facts.
_PROVIDERS = {"javascript": "node", "c": "gcc", "c++": "gcc", "d": "gcc", "fortran": "gcc",
              "csharp": "mono", "awk": "gawk", "nasm64": "nasm"}

_CORE = re.compile(r"(\d+)(?:\.(\d+))?(?:\.(\d+))?")


@dataclass(frozen=True, slots=True)
class Runtime:
    """One language at one served version, as Piston lists it."""

    language: str  # Piston's name
    version: str  # semver: major.minor.patch
    aliases: tuple[str, ...]
    lang: Language  # ours
    raw_version: str  # as the worker detected it
    runtime: str | None = None

    def describe(self) -> dict[str, object]:
        """The ``GET /api/v2/runtimes`` entry (``runtime`` only when Piston has one)."""
        doc: dict[str, object] = {"language": self.language, "version": self.version,
                                  "aliases": list(self.aliases)}
        if self.runtime is not None:
            doc["runtime"] = self.runtime
        return doc


def semver_of(raw: str) -> str | None:
    """A detected version as semver ``major.minor.patch``, or None if it has no number.

    What follows the numbers is dropped: for the toolchains we detect it is a
    distribution's revision (gcc ``12.2.0-14``), which semver would read as a
    prerelease and so never match ``*``. Missing parts are zeros (``1.63`` is ``1.63.0``).
    """
    match = _CORE.search(raw)
    if match is None:
        return None
    major, minor, patch = (int(part or 0) for part in match.groups())
    return f"{major}.{minor}.{patch}"


def piston_name(lang: Language) -> str:
    return lang.piston or lang.name


def runtimes(languages: Iterable[Language], served: Mapping[str, list[str]]) -> list[Runtime]:
    """Every (language, version) served now, by Piston name, then highest version first."""
    found: dict[tuple[str, str], Runtime] = {}
    for lang in languages:
        name = piston_name(lang)
        for raw in served.get(lang.name, ()):
            version = semver_of(raw)
            if version is not None and (name, version) not in found:
                found[name, version] = Runtime(name, version, lang.piston_aliases, lang, raw,
                                               _PROVIDERS.get(name))
    return sorted(found.values(),
                  key=lambda rt: (rt.language, _descending(rt.version)))


def _descending(version: str) -> tuple[int, ...]:
    return tuple(-int(part) for part in version.split("."))


def _names(rt: Runtime) -> set[str]:
    # Piston's name and aliases, and ours too (e.g. "nodejs", "cxx"): accepting more
    # names than Piston costs nothing and spares a client a lookup.
    return {rt.language, *rt.aliases, rt.lang.name, *rt.lang.aliases}


def satisfies(version: str, wanted: str) -> bool:
    """npm ``semver.satisfies(version, wanted)``: False for a range that does not parse."""
    try:
        return bool(nodesemver.satisfies(version, wanted, loose=False))
    except (ValueError, TypeError):
        return False


def select(available: Iterable[Runtime], language: str, version: str) -> Runtime:
    """The highest runtime of ``language`` (name or alias) whose version satisfies ``version``.

    Raises Piston's 400 ``"<language>-<version> runtime is unknown"`` otherwise.
    """
    key = language.strip().lower()
    matching = [rt for rt in available if key in _names(rt) and satisfies(rt.version, version)]
    if not matching:
        raise PistonRefusal(f"{language}-{version} runtime is unknown")
    return max(matching, key=lambda rt: tuple(int(p) for p in rt.version.split(".")))


def pinned(available: Iterable[Runtime], chosen: Runtime, version: str) -> str | None:
    """The version to ask the workers for: None when any served version of it would do.

    During a rolling upgrade workers of one language serve different versions; a
    request that any of them may run is not pinned, so it is not refused by the
    one that picks it up. Otherwise the worker must run exactly the chosen one.
    """
    same = [rt for rt in available if rt.lang.name == chosen.lang.name]
    if all(satisfies(rt.version, version) for rt in same):
        return None
    return chosen.raw_version


def packages(available: Iterable[Runtime]) -> list[dict[str, object]]:
    """``GET /api/v2/packages``: what is installed, and nothing else is installable."""
    return [{"language": rt.language, "language_version": rt.version, "installed": True}
            for rt in available]
