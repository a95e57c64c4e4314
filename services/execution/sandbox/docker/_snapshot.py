"""A docker workspace's files for the compile cache: a tar read out of /box, and one put in.

The snapshot is a ``tar -c`` run in the container as the sandbox uid, as a phase
(so with rlimits, the phase's kill of strays before it and an output cap): the
host never touches the container's files, and the archive, written by untrusted
code, is only parsed here, never extracted. Only regular files and directories
are taken, with permission bits only; any other member (a symlink, a hard link,
a device, a fifo) or more than the bounds makes the snapshot unusable (None).
Restoring rewrites the submission's tar with the artefacts added, so the first
phase unpacks both (see ``_exec.phase_argv``).
"""

from __future__ import annotations

import dataclasses
import io
import tarfile
from collections.abc import Sequence

from runstream.schemas.models import Limits
from runstream.services.execution.compilecache import (
    Artefact,
    SnapshotBounds,
    plain_path,
    safe_mode,
)

# --hard-dereference: a file with two names is two files, not a link member.
SNAPSHOT_ARGV = ("/bin/tar", "-c", "-f", "-", "--hard-dereference", "--numeric-owner",
                 "-C", "/box", ".")
SNAPSHOT_WALL_MS = 10_000
_BLOCK = 512


def snapshot_limits(base: Limits, bounds: SnapshotBounds) -> Limits:
    """The tar phase's limits: an output cap that fits ``bounds`` (headers and padding too)."""
    tar_bytes = bounds.max_bytes + (2 * bounds.max_files + 24) * _BLOCK
    return dataclasses.replace(base, wall_ms=SNAPSHOT_WALL_MS, cpu_ms=SNAPSHOT_WALL_MS,
                               output_kb=-(-tar_bytes // 1024))


def from_tar(data: bytes, bounds: SnapshotBounds) -> list[Artefact] | None:
    """The artefacts of a tar of /box, or None if it holds anything else or too much."""
    found: list[Artefact] = []
    left = bounds.max_bytes
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            for member in tar:
                if member.name in (".", "./"):
                    continue
                path = plain_path(member.name)
                if (path is None or len(found) >= bounds.max_files
                        or path.count("/") + 1 >= bounds.max_depth):
                    return None
                if member.isdir():
                    found.append(Artefact(path, None, safe_mode(member.mode)))
                elif member.isreg() and not member.issparse() and member.size <= left:
                    stream = tar.extractfile(member)
                    if stream is None:
                        return None
                    content = stream.read(member.size + 1)
                    if len(content) != member.size:
                        return None
                    left -= member.size
                    found.append(Artefact(path, content, safe_mode(member.mode)))
                else:
                    return None
    except (tarfile.TarError, EOFError, OSError, ValueError):
        return None
    return found


def with_artefacts(tar: bytes, artefacts: Sequence[Artefact], uid: int, gid: int) -> bytes:
    """The submission's tar (``files_tar``'s, ours) with ``artefacts`` added after it."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(tar), mode="r:") as src, \
            tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as out:
        for member in src:
            out.addfile(member, src.extractfile(member) if member.isreg() else None)
        for artefact in artefacts:
            info = tarfile.TarInfo(artefact.path)
            info.mode = safe_mode(artefact.mode)
            info.uid, info.gid = uid, gid
            if artefact.data is None:
                info.type = tarfile.DIRTYPE
                out.addfile(info)
            else:
                info.size = len(artefact.data)
                out.addfile(info, io.BytesIO(artefact.data))
    return buf.getvalue()
