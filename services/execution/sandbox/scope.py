"""Per-worker scopes: which sandbox leftovers on this host belong to a dead worker.

Several workers may share a host. Each names what it creates (cgroups, run
folders, containers) after its scope, ``w<pid>-<start time>-<random>``, and at
start-up reaps only the scopes whose worker no longer runs.
"""

from __future__ import annotations

import os
import re
import secrets


def _start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (clock ticks since boot): with the pid, unique."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            stat = f.read()
    except OSError:
        return None
    # Field 22; the command name (field 2) may contain spaces, so split after its ")".
    return stat.rpartition(")")[2].split()[19]


def scope_of(pid: int) -> str:
    """The scope prefix of process ``pid``: its pid and its start time."""
    return f"w{pid}-{_start_time(pid) or 0}"


def new_scope() -> str:
    """A fresh scope for this process."""
    return f"{scope_of(os.getpid())}-{secrets.token_hex(3)}"


def alive(scope: str) -> bool:
    """Whether the worker that named ``scope`` still runs (the same process, not a reuse)."""
    match = re.fullmatch(r"(w(\d+)-\d+)-[0-9a-f]+", scope)
    if match is None:
        return False  # not a worker scope: leftovers of an older layout, reap them
    return scope_of(int(match.group(2))) == match.group(1)
