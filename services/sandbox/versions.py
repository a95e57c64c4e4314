"""Detect each language's version at worker start-up.

The version commands run on the host (they only print a banner), all at once,
each with a timeout and an empty environment; a language whose toolchain is
missing or broken gets None and is dropped by ``Registry.with_versions``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable

from runstream.services.languages import Language, parse_version

log = logging.getLogger(__name__)

TIMEOUT_S = 15.0


async def detect_one(language: Language, timeout_s: float = TIMEOUT_S) -> str | None:
    """The version ``language.version_cmd`` prints (stdout or stderr), or None."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *language.version_cmd, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env={"PATH": "/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8", **language.env})
    except OSError as e:
        log.warning("%s: cannot run %s: %s", language.name, language.version_cmd[0], e)
        return None
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout_s)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        log.warning("%s: version command timed out after %.0f s", language.name, timeout_s)
        return None
    version: str | None = parse_version(out.decode(errors="replace"))
    if proc.returncode != 0 or version is None:
        log.warning("%s: version command failed (exit %s): %s", language.name,
                    proc.returncode, out[-300:].decode(errors="replace").strip())
        return None
    return version


async def detect(languages: Iterable[Language],
                 timeout_s: float = TIMEOUT_S) -> dict[str, str | None]:
    """Every language's version by name, detected concurrently."""
    langs = list(languages)
    found = await asyncio.gather(*(detect_one(lang, timeout_s) for lang in langs))
    return {lang.name: version for lang, version in zip(langs, found, strict=True)}
