"""Per-execution tmpfs workspaces on the host, handled without following paths.

The workspace is a fresh tmpfs mounted by root; files are written relative to
a directory fd opened right after the mount, before any sandboxed code ran.
Once code has run, the host only unmounts (detached) and removes the empty
mount point: it never walks, opens, chowns or follows anything the submission
could have created (symlinks, hard links, fifos...).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from runstream.schemas.errors import InvalidRequest
from runstream.services.errors import SandboxError

log = logging.getLogger(__name__)

MS_NOSUID = 0x2
MS_NODEV = 0x4
MNT_DETACH = 0x2
UMOUNT_NOFOLLOW = 0x8
# Inodes of a workspace; bounds what a submission can create besides bytes.
NR_INODES = 16384

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.mount.argtypes = (ctypes.c_char_p,) * 3 + (ctypes.c_ulong, ctypes.c_char_p)
_libc.umount2.argtypes = (ctypes.c_char_p, ctypes.c_int)


def mount_tmpfs(target: Path, *, size_mb: int, uid: int, gid: int) -> None:
    """Mount a size-capped tmpfs owned by uid:gid (mode 0700) on ``target``."""
    opts = f"size={size_mb}m,nr_inodes={NR_INODES},mode=0700,uid={uid},gid={gid}"
    rc = _libc.mount(b"runstream", os.fsencode(target), b"tmpfs", MS_NOSUID | MS_NODEV,
                     opts.encode())
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount tmpfs on {target}: {os.strerror(err)}")


def umount(target: Path) -> None:
    """Detach the mount at ``target`` without following a symlink there."""
    if _libc.umount2(os.fsencode(target), MNT_DETACH | UMOUNT_NOFOLLOW) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"umount {target}: {os.strerror(err)}")


def _components(name: str) -> list[str]:
    parts = name.split("/")
    if (not name or name.startswith("/") or "\0" in name
            or any(p in ("", ".", "..") for p in parts)):
        raise InvalidRequest(f"file name {name!r} is not a plain relative path", field="files")
    return parts


#: Opening a directory of a workspace: never through a symlink a submission planted.
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


#: Creating a file in a workspace: a new one only, never through a planted symlink.
NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def write_all(fd: int, data: bytes) -> None:
    """Write every byte of ``data`` to ``fd`` (``os.write`` may write fewer)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def open_parents(top: int, dirs: Sequence[str], uid: int, gid: int) -> int:
    """The descriptor of ``top``/``dirs``..., each made (mode 755, owned uid:gid) if missing.

    Every step is relative to the directory before it and refuses a symlink, so a
    hostile name cannot lead out of ``top``. The caller closes the descriptor.
    """
    dfd = os.dup(top)
    try:
        for d in dirs:
            try:
                os.mkdir(d, 0o755, dir_fd=dfd)
                os.chown(d, uid, gid, dir_fd=dfd, follow_symlinks=False)
            except FileExistsError:
                pass
            nxt = os.open(d, DIR_FLAGS, dir_fd=dfd)
            os.close(dfd)
            dfd = nxt
    except BaseException:
        os.close(dfd)
        raise
    return dfd


def write_files(root: Path, files: Sequence[tuple[str, bytes]], uid: int, gid: int) -> None:
    """Create each file below ``root`` with O_EXCL|O_NOFOLLOW, owned by uid:gid.

    Called on a fresh, empty tmpfs only; every open is relative to a directory
    fd and refuses symlinks, so even a hostile name cannot leave the tmpfs.
    """
    top = os.open(root, DIR_FLAGS)
    try:
        for name, content in files:
            *dirs, base = _components(name)
            dfd = open_parents(top, dirs, uid, gid)
            try:
                fd = os.open(base, NEW_FILE_FLAGS, 0o644, dir_fd=dfd)
                try:
                    os.fchown(fd, uid, gid)
                    write_all(fd, content)
                finally:
                    os.close(fd)
            finally:
                os.close(dfd)
    except FileExistsError as e:
        raise InvalidRequest(f"file {e.filename!r} is given twice", field="files") from e
    except OSError as e:
        if e.errno == errno.ENOSPC:  # the submission is larger than the workspace
            raise InvalidRequest("the files do not fit in the workspace", field="files") from e
        raise SandboxError(f"cannot write the submission into {root}: {e}") from e
    finally:
        os.close(top)


def remove_workspace(target: Path) -> None:
    """Unmount (detached) and rmdir the now-empty mount point: no path walking."""
    try:
        umount(target)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOENT):  # not mounted; gone already
            raise
    with contextlib.suppress(FileNotFoundError):
        os.rmdir(target)


def mounts_under(folder: Path) -> list[Path]:
    """Mount points strictly below ``folder`` (from /proc/self/mountinfo)."""
    prefix = str(folder).rstrip("/") + "/"
    found = []
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            point = line.split()[4].encode().decode("unicode_escape")
            if point.startswith(prefix):
                found.append(Path(point))
    return found
