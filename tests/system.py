"""Launching a real runstream (ingresses and workers as processes) for tests.

Each process is started as `python -m runstream.services.cli ...` with its own
RUNSTREAM_* environment, exactly as `deploy.sh local` starts them, on topics and
a worker group that belong to this test session alone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest


def free_port(pair: bool = False) -> int:
    """A free TCP port on loopback (and the next one too, when ``pair``)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if not pair:
            return port
        with socket.socket() as s2:
            try:
                s2.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port pair on loopback")


@dataclass
class System:
    """A running runstream: two ingresses (own reply partitions) and two workers."""

    env: dict[str, str]
    urls: list[str]
    workers: list[str]
    logs: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    worker_procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.urls[0]

    def start_worker(self, name: str) -> subprocess.Popen[bytes]:
        """Start (or restart) the worker called ``name``."""
        proc = _spawn(self.env | {"RUNSTREAM_WORKER_ID": name,
                                  "RUNSTREAM_WORKER_CONCURRENCY": "2",
                                  "RUNSTREAM_WORKER_DATA_DIR": str(self.logs / name)},
                      ["worker"], self.logs / f"{name}.log")
        self.procs.append(proc)
        self.worker_procs[name] = proc
        return proc


def _spawn(env: dict[str, str], args: list[str], log: Path) -> subprocess.Popen[bytes]:
    out = log.open("wb")
    try:
        return subprocess.Popen([sys.executable, "-m", "runstream.services.cli", *args],
                                env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    finally:
        out.close()


def stop(proc: subprocess.Popen[bytes], grace_s: float = 20) -> None:
    """SIGTERM, then SIGKILL of the whole process group after ``grace_s``."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def wait_ready(url: str, workers: int, procs: list[subprocess.Popen[bytes]], logs: Path,
               timeout_s: float = 120) -> None:
    """Until /readyz says ready with ``workers`` group members, or fail with the logs."""
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        for p in procs:
            if p.poll() is not None:
                pytest.fail(f"a process exited with {p.returncode}: {p.args}\n" + _tails(logs))
        try:
            r = httpx.get(f"{url}/readyz", timeout=2)
            last = r.text
            if r.status_code == 200 and r.json()["workers"] >= workers:
                return
        except httpx.HTTPError as e:
            last = repr(e)
        time.sleep(0.25)
    pytest.fail(f"{url} not ready in {timeout_s}s: {last}\n" + _tails(logs))


def _tails(logs: Path) -> str:
    return "\n".join(f"--- {p.name}\n" + "\n".join(p.read_text(errors="replace")
                                                  .splitlines()[-25:])
                     for p in sorted(logs.glob("*.log")))


def base_env(kafka: str, tag: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNSTREAM_")}
    env.update({
        "RUNSTREAM_BOOTSTRAP_SERVERS": kafka,
        "RUNSTREAM_REQUESTS_TOPIC": f"e2e{tag}.requests",
        "RUNSTREAM_REPLIES_TOPIC": f"e2e{tag}.replies",
        "RUNSTREAM_RESULTS_TOPIC": f"e2e{tag}.results",
        "RUNSTREAM_WORKERS_TOPIC": f"e2e{tag}.workers",
        "RUNSTREAM_WORKER_GROUP": f"e2e{tag}-workers",
        "RUNSTREAM_INGRESS_WAIT_S": "60",
        "PYTHONUNBUFFERED": "1",
    })
    return env


@contextlib.contextmanager
def launch_system(kafka: str, logs: Path, *, ingresses: int = 2, workers: int = 2,
                  extra_env: dict[str, str] | None = None) -> Iterator[System]:
    """Start ingresses and workers on fresh topics; stop them all on exit."""
    env = base_env(kafka, uuid.uuid4().hex[:8]) | (extra_env or {})
    subprocess.run([sys.executable, "-m", "runstream.services.cli", "topics"], env=env,
                   check=True, timeout=60, capture_output=True)
    system = System(env=env, urls=[], workers=[f"e2e-worker-{n}" for n in
                                               range(1, workers + 1)], logs=logs)
    try:
        for name in system.workers:
            system.start_worker(name)
        for partition in range(ingresses):
            port = free_port()
            system.procs.append(_spawn(
                env | {"RUNSTREAM_INGRESS_PORT": str(port),
                       "RUNSTREAM_INGRESS_REPLY_PARTITION": str(partition)},
                ["ingress"], logs / f"ingress-{partition}.log"))
            system.urls.append(f"http://127.0.0.1:{port}")
        for url in system.urls:
            wait_ready(url, workers, system.procs, logs)
        yield system
    finally:
        for proc in reversed(system.procs):
            stop(proc)
