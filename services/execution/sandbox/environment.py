"""The environment every sandboxed program starts with, on either backend.

Nothing of the worker's environment reaches a program: it gets a fixed PATH,
HOME and LANG plus what its language's registry entry sets (``env``). Version
detection runs the toolchains with the same environment, so that the version a
worker announces is the one a program meets.
"""

from __future__ import annotations

from runstream.services.execution.languages import Language

#: Host files a program reads as nothing on either backend (docs/sandbox.md "What a run can see"):
#: kernel symbols' addresses, shown where perf_event_paranoid <= 1 and kptr_restrict 0.
MASKED = ("/proc/kallsyms",)

PATH = "/usr/bin:/bin"
HOME = "/tmp"
LANG = "C.UTF-8"


def program_env(language: Language) -> dict[str, str]:
    """The whole environment of ``language``'s programs (the language's own keys last)."""
    return {"PATH": PATH, "HOME": HOME, "LANG": LANG, **dict(sorted(language.env.items()))}
