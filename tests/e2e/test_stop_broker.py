"""The local broker launcher stops within its bound, and a later start stops a leftover.

A launcher that dies without stopping its broker (SIGKILL, a closed terminal) leaves
the JVM running in its own session; the next start on the same data folder must stop
that JVM first (its pid file names it), not fail on the port or the storage lock.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.conftest import new_broker

pytestmark = [pytest.mark.kafka]


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def test_a_later_start_stops_the_broker_an_earlier_launcher_left(tmp_path: Path) -> None:
    earlier = new_broker(tmp_path)
    earlier.start()
    assert earlier.proc is not None
    orphan = earlier.proc.pid
    earlier.proc = None  # the launcher is gone: nobody will stop this JVM
    later = new_broker(tmp_path)
    later.host, later.port = earlier.host, earlier.port
    try:
        t0 = time.monotonic()
        later.start()
        started_s = time.monotonic() - t0
        assert not _alive(orphan), "the earlier broker still runs"
        assert later.proc is not None and later.proc.pid != orphan
        took = later.stop()
        print(f"\nleftover stopped and broker started in {started_s:.1f}s; stopped in {took:.1f}s")
        assert took < 20 + 10
        assert not (tmp_path / "broker.pid").exists()
    finally:
        for pid in (orphan, *([later.proc.pid] if later.proc else [])):
            if _alive(pid):
                os.killpg(pid, signal.SIGKILL)
