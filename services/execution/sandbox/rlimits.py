"""The rlimits of a sandboxed run, set by the shell that starts it (both backends).

Both backends start a phase through a POSIX shell (dash: the host's launcher for
bwrap, the image's ``/bin/sh`` for docker) and set the limits with its
``ulimit`` builtin, so no ``preexec_fn`` runs in the threaded worker. dash
applies a bare ``ulimit`` to both the soft and the hard limit, so the program
cannot raise them back; its units are fixed: ``-f`` in 512-byte blocks, ``-s``
in KiB.
"""

from __future__ import annotations

from runstream.schemas.models import Limits

OPEN_FILES = 256
STACK_KB = 64 * 1024
FSIZE_BLOCK = 512  # dash's unit of ``ulimit -f``


def cpu_rlimit_s(limits: Limits) -> int:
    """RLIMIT_CPU in seconds: a backstop a little above the polled CPU limit."""
    return int(-(-limits.cpu_ms // 1000) + 1)


def rlimits(limits: Limits) -> dict[str, int]:
    """The rlimits of a run, in the units of the RLIMIT_* resources (bytes, seconds)."""
    return {
        "cpu_s": cpu_rlimit_s(limits),
        "fsize_bytes": limits.file_size_bytes,
        "nofile": OPEN_FILES,
        "core_bytes": 0,
        "stack_bytes": STACK_KB * 1024,
    }


def ulimit_script(limits: Limits) -> str:
    """dash commands that set the run's rlimits, each ended by ``; ``."""
    lim = rlimits(limits)
    return (
        f"ulimit -t {lim['cpu_s']}; ulimit -f {-(-lim['fsize_bytes'] // FSIZE_BLOCK)}; "
        f"ulimit -n {lim['nofile']}; ulimit -c 0; ulimit -s {lim['stack_bytes'] // 1024}; "
    )
