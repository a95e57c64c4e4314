"""Detect each language's version at worker start-up.

Each backend runs ``language.version_cmd`` where its programs will run (see
``Sandbox.detect_versions``): bwrap on the host, whose toolchains it binds;
docker inside the language's image. The commands run all at once, each with a
timeout and the programs' environment; a language whose toolchain is missing or
broken gets None and is dropped by ``Registry.with_versions``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable

from runstream.services.execution.languages import Language, parse_version
from runstream.services.execution.sandbox.environment import program_env

log = logging.getLogger(__name__)

TIMEOUT_S = 15.0


def version_from(language: Language, exit_code: int | None, output: bytes) -> str | None:
    """The version a version command printed, or None (logged) if it failed."""
    version: str | None = parse_version(output.decode(errors="replace"))
    if exit_code != 0 or version is None:
        log.warning("%s: version command failed (exit %s): %s", language.name, exit_code,
                    output[-300:].decode(errors="replace").strip())
        return None
    return version


async def detect_one(language: Language, timeout_s: float = TIMEOUT_S) -> str | None:
    """The version ``language.version_cmd`` prints on this host (stdout or stderr), or None."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *language.version_cmd, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env=program_env(language))
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
    return version_from(language, proc.returncode, out)


# Version commands run at once at most: forty languages' containers (docker) or
# runtimes started together would starve a small machine past TIMEOUT_S.
CONCURRENCY = 8


async def detect_each(languages: Iterable[Language],
                      detect: Callable[[Language], Awaitable[str | None]],
                      concurrency: int = CONCURRENCY) -> dict[str, str | None]:
    """Every language's version by name, each found by ``detect``, ``concurrency`` at once."""
    langs = list(languages)
    gate = asyncio.Semaphore(concurrency)

    async def one(lang: Language) -> str | None:
        async with gate:
            return await detect(lang)

    found = await asyncio.gather(*(one(lang) for lang in langs))
    return {lang.name: version for lang, version in zip(langs, found, strict=True)}


async def detect(languages: Iterable[Language],
                 timeout_s: float = TIMEOUT_S) -> dict[str, str | None]:
    """Every language's version by name, detected on this host, concurrently."""
    return await detect_each(languages, lambda lang: detect_one(lang, timeout_s))
