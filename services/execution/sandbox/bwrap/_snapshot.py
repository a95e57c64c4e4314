"""A bwrap workspace's files, read after a compile step and written into a fresh one.

The compile step's processes were untrusted and are dead (their cgroup is
killed when the phase ends), but what they left may be anything: links to host
files, fifos that block an open, files swapped between a stat and an open,
setuid bits. So every open is relative to a directory fd with ``O_NOFOLLOW``
(and ``O_NONBLOCK``: a fifo does not block), the kind is checked on the open
fd, only regular files and directories are taken, and anything else makes the
whole snapshot unusable (None) rather than silently different. Restoring
writes only into a fresh tmpfs no code has run in yet, as ``_mount.write_files``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Sequence
from pathlib import Path

from runstream.services.errors import SandboxError
from runstream.services.execution.compilecache import (
    Artefact,
    SnapshotBounds,
    plain_path,
    safe_mode,
)
from runstream.services.execution.sandbox.bwrap._mount import (
    DIR_FLAGS,
    NEW_FILE_FLAGS,
    open_parents,
    write_all,
)

_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


class _Unusable(Exception):
    """The workspace holds something the cache does not keep, or too much."""


def _read(dfd: int, name: str, left: int) -> tuple[bytes, int]:
    fd = os.open(name, _FILE, dir_fd=dfd)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > left:
            raise _Unusable
        chunks, size = [], 0
        while size <= st.st_size:  # one read past the size: a file that grew is seen
            chunk = os.read(fd, min(1 << 20, st.st_size + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size != st.st_size:
            raise _Unusable
        return b"".join(chunks), st.st_mode
    finally:
        os.close(fd)


def snapshot(root: Path, bounds: SnapshotBounds) -> list[Artefact] | None:
    """Every regular file and directory below ``root``, or None (see the module's doc)."""
    found: list[Artefact] = []
    left = bounds.max_bytes
    try:
        top = os.open(root, DIR_FLAGS)
    except OSError as e:
        raise SandboxError(f"cannot open the workspace {root}: {e}") from e
    stack: list[tuple[int, str, int]] = [(top, "", 0)]
    try:
        while stack:
            dfd, prefix, depth = stack.pop()
            try:
                for name in sorted(os.listdir(dfd)):
                    path = plain_path(prefix + name)
                    if path is None or len(found) >= bounds.max_files:
                        raise _Unusable
                    name.encode()  # a name that is not UTF-8 (surrogates) raises
                    st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
                    if stat.S_ISDIR(st.st_mode):
                        if depth + 1 >= bounds.max_depth:
                            raise _Unusable
                        sub = os.open(name, DIR_FLAGS, dir_fd=dfd)
                        stack.append((sub, path + "/", depth + 1))
                        found.append(Artefact(path, None, safe_mode(os.fstat(sub).st_mode)))
                    elif stat.S_ISREG(st.st_mode):
                        data, mode = _read(dfd, name, left)
                        left -= len(data)
                        found.append(Artefact(path, data, safe_mode(mode)))
                    else:
                        raise _Unusable
            finally:
                os.close(dfd)
    except (_Unusable, UnicodeEncodeError):
        return None
    except OSError as e:
        # ELOOP: a file became a link after the stat; ENXIO and the like: a special file.
        if e.errno in (errno.ELOOP, errno.ENOTDIR, errno.ENXIO, errno.ENOENT, errno.EACCES,
                       errno.EPERM):
            return None
        raise SandboxError(f"cannot read the workspace {root}: {e}") from e
    finally:
        for dfd, _, _ in stack:
            os.close(dfd)
    return found


def restore(root: Path, artefacts: Sequence[Artefact], uid: int, gid: int) -> None:
    """Write ``artefacts`` (parents first) below the fresh ``root``, owned by uid:gid."""
    try:
        top = os.open(root, DIR_FLAGS)
    except OSError as e:
        raise SandboxError(f"cannot open the workspace {root}: {e}") from e
    try:
        for artefact in artefacts:
            *dirs, base = artefact.path.split("/")
            dfd = open_parents(top, dirs, uid, gid)
            try:
                if artefact.data is None:
                    with contextlib.suppress(FileExistsError):  # one of the submission's
                        os.mkdir(base, 0o700, dir_fd=dfd)
                    fd = os.open(base, DIR_FLAGS, dir_fd=dfd)
                else:
                    fd = os.open(base, NEW_FILE_FLAGS, 0o600, dir_fd=dfd)
                try:
                    os.fchown(fd, uid, gid)
                    os.fchmod(fd, safe_mode(artefact.mode))
                    write_all(fd, artefact.data or b"")
                finally:
                    os.close(fd)
            finally:
                os.close(dfd)
    except OSError as e:
        raise SandboxError(f"cannot restore the compiled files into {root}: {e}") from e
    finally:
        os.close(top)
