"""Launching a real runstream (ingresses and workers as processes) for tests.

Each process is started as `python -m runstream.services.cli ...` with its own
RUNSTREAM_* environment, exactly as `deploy.sh local` starts them, on topics and
a worker group that belong to this test session alone.

The fault helpers (SIGKILL or restart a worker, restart an ingress on its own
port and reply partition, restart the broker on its port and data folder) are
what the fault and chaos suites inject.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from runstream.services.broker import LocalBroker

# Below the kernel's ephemeral range (net.ipv4.ip_local_port_range, 32768-60999 by
# default): a port the kernel hands out for bind(0) is also the next client
# connection's source port, and with hundreds of Kafka connections one of them took
# a broker's port between the check and the broker's own bind ("Address already in
# use"). Here only another picker can collide, and a random choice makes it rare.
_PORTS = range(20000, 32000)


def free_port(pair: bool = False) -> int:
    """A free TCP port on loopback (and the next one too, when ``pair``)."""
    for _ in range(200):
        port = random.choice(_PORTS)
        if all(_bindable(p) for p in ((port, port + 1) if pair else (port,))):
            return port
    raise RuntimeError("no free port (pair) on loopback in 20000-32000")


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class System:
    """A running runstream: two ingresses (own reply partitions) and two workers."""

    env: dict[str, str]
    urls: list[str]
    workers: list[str]
    logs: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    worker_procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    ingress_procs: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    slots: int = 2

    @property
    def url(self) -> str:
        return self.urls[0]

    def live(self) -> list[subprocess.Popen[bytes]]:
        """The processes of this system that are still running."""
        return [p for p in self.procs if p.poll() is None]

    def start_worker(self, name: str,
                     extra_env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start (or restart) the worker called ``name`` (``extra_env`` for this one only)."""
        proc = _spawn(self.env | {"RUNSTREAM_WORKER_ID": name,
                                  "RUNSTREAM_WORKER_CONCURRENCY": str(self.slots)}
                      | (extra_env or {}), ["worker"], self.logs / f"{name}.log")
        self.procs.append(proc)
        self.worker_procs[name] = proc
        return proc

    def kill_worker(self, name: str) -> None:
        """SIGKILL the worker's whole process group (its sandboxes die with it)."""
        proc = self.worker_procs[name]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def restart_worker(self, name: str, *, grace_s: float = 20) -> float:
        """Stop the worker (SIGTERM, bounded) and start it again; returns the stop time."""
        took = stop(self.worker_procs[name], grace_s)
        self.start_worker(name)
        return took

    def start_ingress(self, partition: int, port: int | None = None) -> str:
        """Start (or restart) the ingress that owns reply ``partition``; returns its URL."""
        port = port or free_port()
        url = f"http://127.0.0.1:{port}"
        proc = _spawn(self.env | {"RUNSTREAM_INGRESS_PORT": str(port),
                                  "RUNSTREAM_INGRESS_REPLY_PARTITION": str(partition)},
                      ["ingress"], self.logs / f"ingress-{partition}.log")
        self.procs.append(proc)
        self.ingress_procs[partition] = proc
        if partition < len(self.urls):
            self.urls[partition] = url
        else:
            self.urls.append(url)
        return url

    def restart_ingress(self, partition: int, *, kill: bool = False,
                        grace_s: float = 20, ready_s: float = 60) -> float:
        """Stop the ingress (SIGKILL when ``kill``) and start it on the same port and
        reply partition; returns once it is ready, with the seconds it was away."""
        t0 = time.monotonic()
        url = self.urls[partition]
        proc = self.ingress_procs[partition]
        if kill:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        else:
            stop(proc, grace_s)
        self.start_ingress(partition, int(url.rpartition(":")[2]))
        wait_ready(url, 1, self.live(), self.logs, timeout_s=ready_s, settled=False)
        return time.monotonic() - t0

    def wait_ready(self, workers: int | None = None, timeout_s: float = 120) -> None:
        """Every ingress ready and seeing ``workers`` (default: all) group members."""
        for url in self.urls:
            wait_ready(url, len(self.workers) if workers is None else workers, self.live(),
                       self.logs, timeout_s=timeout_s)


def _spawn(env: dict[str, str], args: list[str], log: Path) -> subprocess.Popen[bytes]:
    out = log.open("ab")  # a restarted process appends to the log of the one before
    try:
        return subprocess.Popen([sys.executable, "-m", "runstream.services.cli", *args],
                                env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    finally:
        out.close()


def stop(proc: subprocess.Popen[bytes], grace_s: float = 20) -> float:
    """SIGTERM, then SIGKILL of the whole process group after ``grace_s``.

    Returns how long the process took to go (seconds).
    """
    t0 = time.monotonic()
    if proc.poll() is not None:
        return 0.0
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    return time.monotonic() - t0


def restart_broker(broker: LocalBroker, *, down_s: float = 0.0) -> tuple[float, float]:
    """Stop the broker and start it again on the same port and data folder.

    ``down_s`` keeps it away that long (a scenario's parameter, not a synchronisation).
    Returns (seconds to stop, seconds to answer again).
    """
    t0 = time.monotonic()
    broker.stop()
    stopped = time.monotonic() - t0
    if down_s > 0:
        time.sleep(down_s)
    t1 = time.monotonic()
    broker.start()
    return stopped, time.monotonic() - t1


def wait_ready(url: str, workers: int, procs: list[subprocess.Popen[bytes]], logs: Path,
               timeout_s: float = 120, settled: bool = True) -> None:
    """Until /readyz says ready with ``workers`` group members, or fail with the logs.

    ``settled``: also until the group's rebalance is over and every member holds
    partitions (see :func:`_settled`); an ingress restarted under faults only needs
    to be ready.
    """
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        for p in procs:
            if p.poll() is not None:
                pytest.fail(f"a process exited with {p.returncode}: {p.args!r}\n" + _tails(logs))
        try:
            r = httpx.get(f"{url}/readyz", timeout=2)
            last = r.text
            if r.status_code == 200 and (_settled(r.json(), workers) if settled
                                         else r.json()["workers"] >= workers):
                return
        except httpx.HTTPError as e:
            last = repr(e)
        time.sleep(0.25)
    pytest.fail(f"{url} not ready in {timeout_s}s: {last}\n" + _tails(logs))


def _settled(ready: dict[str, Any], workers: int) -> bool:
    """``workers`` members, the group's rebalance over and each member holding partitions.

    Counting members is not enough: a member that has just joined is listed while
    the earlier ones still hold every partition until the rebalance ends.
    """
    group = ready.get("group") or {}
    parts = group.get("partitions") or {}
    return ready["workers"] >= workers and (workers == 0 or (
        group.get("state") == "Stable" and len(parts) >= workers
        and all(parts.values())))


def _tails(logs: Path) -> str:
    return "\n".join(f"--- {p.name}\n" + "\n".join(p.read_text(errors="replace")
                                                  .splitlines()[-25:])
                     for p in sorted(logs.glob("*.log")))


def base_env(kafka: str, tag: str) -> dict[str, str]:
    """The environment of every process of one system: its own topics and group."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNSTREAM_")}
    env.update({
        "RUNSTREAM_BOOTSTRAP_SERVERS": kafka,
        "RUNSTREAM_REQUESTS_TOPIC": f"e2e{tag}.requests",
        "RUNSTREAM_REPLIES_TOPIC": f"e2e{tag}.replies",
        "RUNSTREAM_RESULTS_TOPIC": f"e2e{tag}.results",
        "RUNSTREAM_WORKERS_TOPIC": f"e2e{tag}.workers",
        "RUNSTREAM_WORKER_GROUP": f"e2e{tag}-workers",
        "RUNSTREAM_KEYS_TOPIC": f"e2e{tag}.keys",
        "RUNSTREAM_EVENTS_TOPIC": f"e2e{tag}.events",
        "RUNSTREAM_STDIN_TOPIC": f"e2e{tag}.stdin",
        "RUNSTREAM_CALLBACKS_TOPIC": f"e2e{tag}.callbacks",
        "RUNSTREAM_DELIVERIES_TOPIC": f"e2e{tag}.deliveries",
        "RUNSTREAM_CALLBACK_GROUP": f"e2e{tag}-callbacks",
        "RUNSTREAM_INGRESS_WAIT_S": "60",
        # Four slots on two cores, beside a broker, other systems and the test itself:
        # kotlinc or nim, quietly 3 s, took the whole default 20 s wall in a CI run and
        # were killed. The tests check compile behaviour, not its speed; the CPU limit
        # (20 s) still stops a runaway compiler.
        "RUNSTREAM_COMPILE_WALL_MS": "60000",
        "PYTHONUNBUFFERED": "1",
    })
    return env


@contextlib.contextmanager
def launch_system(kafka: str, logs: Path, *, ingresses: int = 2, workers: int = 2,
                  slots: int = 2, extra_env: dict[str, str] | None = None) -> Iterator[System]:
    """Start ingresses and workers on fresh topics; stop them all on exit."""
    # Each system keeps its on-disk results index with its logs, not in a shared /tmp.
    env = base_env(kafka, uuid.uuid4().hex[:8]) | {
        "RUNSTREAM_INDEX_DIR": str(logs / "index")} | (extra_env or {})
    subprocess.run([sys.executable, "-m", "runstream.services.cli", "topics"], env=env,
                   check=True, timeout=60, capture_output=True)
    system = System(env=env, urls=[], workers=[f"e2e-worker-{n}" for n in
                                               range(1, workers + 1)], logs=logs, slots=slots)
    try:
        for name in system.workers:
            system.start_worker(name)
        for partition in range(ingresses):
            system.start_ingress(partition)
        if workers:  # without workers the ingresses never report ready: the test starts some
            system.wait_ready()
        yield system
    finally:
        # Ingresses first, then workers: the order deploy.sh local stops them in.
        for proc in reversed(system.procs):
            stop(proc)


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc): a worker's running sandboxes."""
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                kids.append(int(entry.name))
    return kids


async def busy_worker(system: System, slots: int, timeout_s: float,
                      among: Iterable[str] | None = None) -> str:
    """A worker with at least ``slots`` sandboxes running: another process's state, polled."""
    names = list(among or system.workers)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for name in names:
            proc = system.worker_procs[name]
            if proc.poll() is None and len(children(proc.pid)) >= slots:
                return name
        await asyncio.sleep(0.05)
    raise AssertionError(f"no worker had {slots} runs going within {timeout_s}s")


#: The reply partition another team's producer names in its requests' reply_to.
TEAM_REPLY_PARTITION = 1


@contextlib.asynccontextmanager
async def team_clients(env: dict[str, str], **consumer_args: Any,
                       ) -> AsyncIterator[tuple[AIOKafkaProducer, AIOKafkaConsumer]]:
    """Another team's producer, and a consumer at the end of its reply partition (the
    replies topic's partition 1: any existing topic will do)."""
    bootstrap = env["RUNSTREAM_BOOTSTRAP_SERVERS"]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, **consumer_args)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await consumer.start()
    await producer.start()
    try:
        tp = TopicPartition(env["RUNSTREAM_REPLIES_TOPIC"], TEAM_REPLY_PARTITION)
        consumer.assign([tp])
        await consumer.seek_to_end(tp)
        await consumer.position(tp)
        yield producer, consumer
    finally:
        await consumer.stop()
        await producer.stop()
