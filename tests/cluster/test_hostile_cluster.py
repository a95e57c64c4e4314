"""The hostile-code battery (tests/hostile) through the compose cluster.

The same cases as ``tests/hostile/test_pipeline_hostile.py``, sent through HAProxy
to the worker containers, where bwrap runs inside a container that has only
CAP_SYS_ADMIN, its own seccomp profile and its own cgroup namespace
(docker-compose.yaml). Each case must get its verdict; afterwards the host is
unchanged, no worker container keeps a file a case planted or a process of the
sandbox uid, and an ordinary request still succeeds. The cases go two at a time:
several verdicts are about CPU time (a busy loop must end on its CPU limit, not
its wall limit), so the runs must not starve each other on a 2-core host.
"""

from __future__ import annotations

import hashlib
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cluster._cluster import Cluster
from tests.hostile.test_pipeline_hostile import CASES, MARK, SANDBOX_UID, Case

pytestmark = pytest.mark.timeout(900)


def _digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _send(cluster: Cluster, case: Case) -> dict[str, Any]:
    # Inside the cluster Kafka listens on 9092 and each ingress on 8080.
    source = case.source.replace("KAFKA_PORT", "9092").replace("INGRESS_PORT", "8080")
    limits = dict(case.limits)
    if "cpu_ms" in limits and "wall_ms" not in limits:
        # A CPU-bound case must end on its CPU limit; the default 5 s of wall would turn
        # it into a wall verdict whenever the host's 2 cores are busy elsewhere (three
        # JVMs, other workers), which is not what the case is about.
        limits["wall_ms"] = 20_000
    r = httpx.post(f"{cluster.url}/v1/executions", headers=cluster.headers, timeout=180,
                   json={"language": case.language, "source": source, "stdin": case.stdin,
                         "limits": limits})
    assert r.status_code == 200, (case.name, r.status_code, r.text)
    doc: dict[str, Any] = r.json()
    return doc


def _workers(cluster: Cluster) -> list[str]:
    done = subprocess.run(
        ["docker", "ps", "-q", "--no-trunc", "--filter",
         f"label=com.docker.compose.project={cluster.project}",
         "--filter", "label=com.docker.compose.service=worker"],
        capture_output=True, text=True, timeout=30, check=True)
    return done.stdout.split()


def _sandbox_pids(container_ids: list[str]) -> list[int]:
    """Host pids of the sandbox uid inside the given containers (by their cgroup)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid != SANDBOX_UID:
                continue
            cgroups = (entry / "cgroup").read_text()
        except OSError:
            continue
        if any(cid in cgroups for cid in container_ids):
            found.append(int(entry.name))
    return found


def test_the_hostile_battery_holds_in_the_worker_containers(cluster: Cluster) -> None:
    cluster.wait_healthy()  # settled: not three JVMs still starting beside the runs
    baseline = {p: _digest(p) for p in ("/etc/passwd", "/etc/shadow")}
    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=2) as pool:
        docs = list(pool.map(lambda c: _send(cluster, c), CASES))
    took = time.monotonic() - t0
    failures = []
    for case, doc in zip(CASES, docs, strict=True):
        try:
            assert doc["status"] in case.statuses, doc
            if case.check is not None:
                case.check(doc)
        except AssertionError as e:
            failures.append(f"{case.name}: {str(e)[:600]}")
    assert not failures, "\n".join(failures)
    print(f"\n{len(CASES)} hostile cases through the cluster in {took:.0f} s")
    # The host is unchanged ...
    assert {p: _digest(p) for p in baseline} == baseline
    for planted in (f"/tmp/planted-{MARK}", f"/dev/shm/planted-{MARK}"):
        assert not Path(planted).exists()
    # ... and so are the worker containers: no planted file, no process of a run left.
    workers = _workers(cluster)
    assert len(workers) >= 3, workers
    for cid in workers:
        done = subprocess.run(
            ["docker", "exec", cid, "sh", "-c",
             f"ls /tmp/planted-{MARK} /dev/shm/planted-{MARK} /run/runstream/planted-{MARK} "
             "2>/dev/null; true"], capture_output=True, text=True, timeout=30, check=True)
        assert done.stdout.strip() == "", (cid, done.stdout)
    deadline = time.monotonic() + 10
    while (left := _sandbox_pids(workers)) and time.monotonic() < deadline:
        time.sleep(0.2)  # another process's sandboxes: no event to await, bounded poll
    assert not left, f"processes of the sandbox uid outlived their runs: {left}"
    ok = httpx.post(f"{cluster.url}/v1/executions", headers=cluster.headers, timeout=90,
                    json={"language": "python", "source": "print(6*7)"})
    assert ok.status_code == 200 and ok.json()["run"]["stdout"] == "42\n", ok.text
