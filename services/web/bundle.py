"""Whether the committed bundle (``static/``) was built from the sources as they are.

``build.mjs`` records a digest of its inputs in ``static/manifest.json``; this module
computes the same digest (the same rule, in Python) so that ``deploy.sh`` rebuilds
only when an input changed and a unit test fails when someone edited the sources
and forgot to rebuild. The rule: for every input file, sorted by its path relative
to this folder (with ``/``), SHA-256 over ``path NUL content NUL``.

``python -m runstream.services.web.bundle`` exits 0 when the bundle is current, 1
when it must be rebuilt (and says why).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

HERE = Path(__file__).parent
STATIC = HERE / "static"
MANIFEST = STATIC / "manifest.json"
#: What the bundle is built from (relative to this folder): every file under src/ too.
INPUTS = ("build.mjs", "package.json", "package-lock.json")
SOURCES = "src"


def input_files(root: Path = HERE) -> list[str]:
    """The bundle's inputs, relative to ``root``, sorted."""
    names = [name for name in INPUTS if (root / name).is_file()]
    names += [p.relative_to(root).as_posix() for p in (root / SOURCES).rglob("*") if p.is_file()]
    return sorted(names)


def inputs_digest(root: Path = HERE) -> str:
    """The digest build.mjs records for the inputs under ``root``."""
    digest = hashlib.sha256()
    for name in input_files(root):
        digest.update(name.encode() + b"\0" + (root / name).read_bytes() + b"\0")
    return digest.hexdigest()


def recorded_digest(manifest: Path = MANIFEST) -> str | None:
    """The digest of the inputs the bundle in ``static/`` was built from; None if unbuilt."""
    try:
        doc = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    value = doc.get("inputs") if isinstance(doc, dict) else None
    return value if isinstance(value, str) else None


def stale_reason(root: Path = HERE) -> str | None:
    """Why the bundle must be rebuilt, or None when it is current."""
    recorded = recorded_digest(root / "static" / "manifest.json")
    if recorded is None:
        return "no bundle: static/manifest.json is missing or unreadable"
    if recorded != inputs_digest(root):
        return "the sources changed since the bundle was built"
    return None


def main() -> int:
    why = stale_reason()
    if why is None:
        print("web bundle is current")
        return 0
    print(f"web bundle must be rebuilt: {why}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
