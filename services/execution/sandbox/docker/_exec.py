"""One ``docker exec`` of a phase: its command line, its stdin, its capped output.

The blocking parts (:class:`ExecStream`) run in worker threads; they only touch
the exec's hijacked socket and report back to the event loop through
thread-safe callbacks.
"""

from __future__ import annotations

import contextlib
import io
import socket
import struct
import tarfile
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from runstream.schemas.models import Limits
from runstream.services.execution.sandbox.rlimits import ulimit_script
from runstream.services.execution.sandbox.supervision import CappedOutput

BOX = "/box"
SHELL = "/bin/sh"
TIMEOUT = "/usr/bin/timeout"
# The in-container `timeout` is a backstop for a lost worker, not the limit:
# the worker kills the phase at its wall limit and this fires a little later.
BACKSTOP_MARGIN_S = 2
# The phase's sh and timeout count against the pids limit besides the program.
PHASE_OVERHEAD = 2
_HEADER = struct.Struct(">BxxxL")  # docker's multiplexed stream frame header
CHUNK = 65536


def files_tar(files: Sequence[tuple[str, bytes]], uid: int, gid: int) -> bytes:
    """An in-memory tar of the submitted files, owned by the sandbox user."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, content in files:
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mode = 0o644
            info.uid, info.gid = uid, gid
            tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def phase_argv(argv: Sequence[str], limits: Limits, tar_bytes: int) -> list[str]:
    """The exec's argv: unpack the files (first phase only), set rlimits, run under timeout.

    The files travel as the first ``tar_bytes`` bytes of the exec's stdin: the
    root file system is read-only, so the archive API cannot write them, and a
    separate exec would cost ~70 ms. ``head -c`` reads exactly that many bytes,
    leaving the rest of stdin to the program.
    """
    unpack = (f"head -c {tar_bytes} | tar -x -f - -C {BOX} --no-same-owner; "
              if tar_bytes else "")
    backstop = -(-limits.wall_ms // 1000) + BACKSTOP_MARGIN_S
    script = f'set -e; {unpack}{ulimit_script(limits)}exec {TIMEOUT} -s KILL {backstop} "$@"'
    return [SHELL, "-c", script, "runstream-phase", *argv]


_PPID = ('{ while read -r k v; do [ "$k" = PPid: ] && { echo "$v"; break; }; done '
         '< "/proc/$1/status"; } 2>/dev/null')


def signal_script(number: int) -> list[str]:
    """An exec's argv that sends signal ``number`` to every process of the phase's program.

    Run as the sandbox uid, it can signal only that uid's processes: the program's,
    and the phase's own wrapper, which it skips: like every exec's first process
    (this one's too), that one's parent is outside the container (PPid 0 in it).
    While the wrapper is still the phase's ``sh`` unpacking the files (not yet the
    ``timeout`` that runs the program), its children are skipped too. It exits 0
    when it signalled a process, 1 when the program has none (yet, or any more).
    """
    script = (f'ppid() {_PPID}; sent=1; '
              'for d in /proc/[0-9]*; do p=${d#/proc/}; [ "$p" = "$$" ] && continue; '
              'pp=$(ppid "$p"); [ -n "$pp" ] && [ "$pp" != 0 ] || continue; '
              'if [ "$pp" != 1 ] && [ "$(ppid "$pp")" = 0 ]; then '
              'c=; read -r c < "/proc/$pp/comm" 2>/dev/null; '
              '[ "$c" = timeout ] || continue; fi; '
              f'kill -{int(number)} "$p" 2>/dev/null && sent=0; done; exit $sent')
    return [SHELL, "-c", script]


def raw_socket(sock: Any) -> socket.socket:
    """The plain socket under docker-py's hijacked response (a SocketIO over unix sockets)."""
    inner = getattr(sock, "_sock", sock)
    if not isinstance(inner, socket.socket):
        raise TypeError(f"unexpected exec socket {type(sock).__name__}")
    return inner


class ExecStream:
    """Feeds stdin to and demultiplexes the output of one exec, keeping ``cap`` bytes each.

    ``on_overflow`` is called (from a worker thread) when a stream first goes
    past its cap; reading goes on, discarding, until the exec ends. ``on_data``
    (also from that thread) is told ("stdout" | "stderr", bytes) of what is kept.
    """

    def __init__(self, sock: socket.socket, cap: int, on_overflow: Callable[[], None],
                 timeout_s: float, on_data: Callable[[str, bytes], None] | None = None) -> None:
        self.sock = sock
        self.stdout, self.stderr = (
            CappedOutput(cap, on_overflow, partial(on_data, name) if on_data else None)
            for name in ("stdout", "stderr"))
        self.closed = False
        sock.settimeout(timeout_s)

    def feed(self, data: bytes) -> None:
        """Write stdin, then half-close so the program sees EOF (blocking)."""
        self.send(data)
        self.end_input()

    def send(self, data: bytes) -> None:
        """Write to the program's stdin (blocking while it does not read; bounded by the
        socket's timeout and by :meth:`close`)."""
        # The program may exit or close stdin without reading: that is its right.
        with contextlib.suppress(OSError):
            if data:
                self.sock.sendall(data)

    def end_input(self) -> None:
        """Half-close: the program sees the end of its stdin."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)

    def _recv_exact(self, n: int) -> bytes | None:
        chunks = []
        while n:
            chunk = self.sock.recv(min(n, CHUNK))
            if not chunk:
                return None
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def read(self) -> None:
        """Read frames until the exec ends (blocking; the socket timeout bounds each recv)."""
        try:
            self._read_frames()
        except OSError:
            if not self.closed:
                raise
            # close() from the loop (a cancelled or killed phase) ends the read: not an error.

    def _read_frames(self) -> None:
        while True:
            header = self._recv_exact(_HEADER.size)
            if header is None:
                return
            stream, size = _HEADER.unpack(header)
            sink = self.stderr if stream == 2 else self.stdout
            while size:
                payload = self.sock.recv(min(size, CHUNK))
                if not payload:
                    return
                size -= len(payload)
                sink.keep(payload)

    def close(self) -> None:
        """Close the socket; a ``read`` or ``feed`` blocked on it in a thread returns."""
        self.closed = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.sock.close()
