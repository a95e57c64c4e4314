"""Faults on the compose cluster under steady load through the balancer.

While a careful client (tests/cluster/_load.py) sends 3 requests/s through HAProxy,
one after the other: `docker kill` of a Kafka node, of a worker and of an ingress
(each started again a little later), then the whole cluster is stopped and started
again (`docker compose stop` / `up`). For each fault the table gives the requests
sent, answered, lost, answered twice (the client saw two different results for one
id, its own answer and each later GET compared) and the longest pause between two
answers; plus, read from the results topic itself, ids executed more than once.
Every row must show 0 lost and 0 answered twice. `./deploy.sh cluster-chaos` runs it
(by path) and writes the table to .cache/cluster-chaos-table.md. The file is not named
test_*.py on purpose: it takes 6-9 minutes on the 2-core CI machine, which with a cold
build of the images would bring `./deploy.sh test` too close to its 30-minute budget,
so `./deploy.sh test` runs the cluster's smoke test (test_smoke.py) and not this.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable

import httpx
import pytest

from tests.cluster._cluster import ROOT, Cluster
from tests.cluster._load import Load, longest_pause

pytestmark = pytest.mark.timeout(1500)

RESULTS_PROBE = """
import asyncio, json, sys
from aiokafka import AIOKafkaConsumer, TopicPartition
from runstream.services.settings import Settings
async def main(prefix):
    s = Settings.from_env()  # the container's own settings
    c = AIOKafkaConsumer(bootstrap_servers=s.bootstrap_servers,
                         enable_auto_commit=False, auto_offset_reset='earliest')
    await c.start()
    parts = [TopicPartition(s.results_topic, p) for p in range(s.results_partitions)]
    c.assign(parts)
    end = await c.end_offsets(parts)
    await c.seek_to_beginning(*parts)
    runs = {}
    async def behind():
        for tp in parts:
            if await c.position(tp) < end[tp]:
                return True
        return False
    while await behind():
        for recs in (await c.getmany(timeout_ms=1000)).values():
            for r in recs:
                if r.key and r.key.decode().startswith(prefix) and r.value:
                    d = json.loads(r.value)
                    runs.setdefault(d['id'], set()).add(
                        (d.get('worker'), (d.get('timestamps') or {}).get('started')))
    await c.stop()
    print(json.dumps({k: len(v) for k, v in runs.items()}))
asyncio.run(main(sys.argv[1]))
"""


COORDINATOR_PROBE = """
import asyncio
from aiokafka.admin import AIOKafkaAdminClient
from runstream.services.settings import Settings
async def main():
    s = Settings.from_env()  # the container's own settings
    a = AIOKafkaAdminClient(bootstrap_servers=s.bootstrap_servers)
    await a.start()
    try:
        print(await asyncio.wait_for(a.find_coordinator(s.worker_group), 30))
    finally:
        await a.close()
asyncio.run(main())
"""


REPLICATION_PROBE = """
import asyncio
from aiokafka.admin import AIOKafkaAdminClient
from runstream.services.settings import Settings
async def main():
    s = Settings.from_env()  # the container's own settings
    a = AIOKafkaAdminClient(bootstrap_servers=s.bootstrap_servers)
    await a.start()
    try:
        names = [t for t in await a.list_topics()]
        topics = await asyncio.wait_for(a.describe_topics(names), 30)
        print(sum(1 for t in topics for p in t['partitions']
                  if len(p['isr']) < len(p['replicas'])))
    finally:
        await a.close()
asyncio.run(main())
"""


def _under_replicated(cluster: Cluster) -> int:
    """Partitions (of every topic) whose in-sync replicas are fewer than their replicas."""
    try:
        return int(cluster.probe(REPLICATION_PROBE))
    except (RuntimeError, ValueError):
        return -1  # not answered: a node is still starting


def _coordinator(cluster: Cluster) -> int:
    """The Kafka node (1-3) that coordinates the worker group now."""
    return int(cluster.probe(COORDINATOR_PROBE))


async def _whole(cluster: Cluster, timeout_s: float = 300) -> None:
    """Until the balancer answers ready with all three workers in the group, and every
    partition has all its replicas in sync again: the next fault is one fault, not a
    second node lost while the first one still catches up (with min.insync.replicas=2,
    that would stop every write to the partitions the two nodes share)."""
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(timeout=3) as client:
        while time.monotonic() < deadline:
            try:
                r = await client.get(f"{cluster.url}/readyz")
                if r.status_code == 200 and r.json().get("workers") == 3:
                    break
            except (httpx.HTTPError, ValueError):
                pass
            await asyncio.sleep(1)
        else:
            raise TimeoutError(f"the cluster was not whole again within {timeout_s}s")
    while (lagging := await asyncio.to_thread(_under_replicated, cluster)) != 0:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{lagging} partitions still under-replicated after "
                               f"{timeout_s}s")
        await asyncio.sleep(2)


async def _run(argv: list[str], env: dict[str, str], timeout_s: float = 300) -> None:
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.DEVNULL,
                                                stderr=asyncio.subprocess.PIPE, env=env)
    async with asyncio.timeout(timeout_s):
        _, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {err.decode()[-2000:]}")


async def test_faults_under_load_lose_nothing_and_answer_once(cluster: Cluster) -> None:
    compose = ["docker", "compose", "-p", cluster.project, "-f",
               str(ROOT / "docker-compose.yaml")]

    def kill_then_start(container: str, down_s: float) -> Callable[[], Awaitable[None]]:
        async def fault() -> None:
            await _run(["docker", "kill", container], cluster.env)
            await asyncio.sleep(down_s)  # the fault's length, not a synchronisation
            await _run(["docker", "start", container], cluster.env)
        return fault

    async def restart_all() -> None:
        # The cluster's own environment: its port, its settings.
        await _run([*compose, "stop", "--timeout", "40"], cluster.env, timeout_s=400)
        await _run([*compose, "up", "-d"], cluster.env, timeout_s=400)

    # The node coordinating the worker group is the hard case: workers that reach its
    # successor late are dropped from the group while still fetching (docs/cluster.md
    # "Faults on the cluster"). Another node is killed too: its partition leaders move.
    coordinator = await asyncio.to_thread(_coordinator, cluster)
    other = 1 + coordinator % 3
    faults: list[tuple[str, Callable[[], Awaitable[None]]]] = [
        (f"Kafka node coordinating the workers killed (kafka-{coordinator}), started 15 s "
         "later", kill_then_start(cluster.container(f"kafka-{coordinator}"), 15)),
        (f"another Kafka node killed (kafka-{other}), started 15 s later",
         kill_then_start(cluster.container(f"kafka-{other}"), 15)),
        ("worker killed (worker-1), started 10 s later",
         kill_then_start(cluster.container("worker", 1), 10)),
        ("ingress killed (ingress-1), started 10 s later",
         kill_then_start(cluster.container("ingress", 1), 10)),
        ("whole cluster stopped and started (compose stop; up)", restart_all),
    ]
    await _whole(cluster)
    load = Load(cluster.url, cluster.headers, rate_per_s=3.0)
    stop = asyncio.Event()
    sender = asyncio.create_task(load.send(stop))
    windows: dict[str, tuple[float, float]] = {}
    broken: list[str] = []  # a fault the cluster did not recover from, with why
    try:
        await asyncio.sleep(5)  # steady load before the first fault
        for name, fault in faults:
            load.phase = name
            t0 = time.monotonic()
            try:
                await asyncio.sleep(3)
                await fault()
                await _whole(cluster)
                await asyncio.sleep(5)  # steady load after the recovery, in the same row
            except (TimeoutError, RuntimeError) as e:
                broken.append(f"{name}: {e!r}")
                break
            finally:
                windows[name] = (t0, time.monotonic())
        load.phase = "after"
        await asyncio.sleep(3)
    finally:
        stop.set()
        await sender

    # What the client got, against what every ingress answers for that id afterwards.
    twice: set[str] = set()
    async with httpx.AsyncClient(headers=cluster.headers, timeout=30) as client:
        for req in load.sent:
            if req.result is None:
                continue
            for _ in range(3):  # the balancer spreads these over the ingresses
                r = await client.get(f"{cluster.url}/v1/executions/{req.id}")
                if r.status_code == 200 and _run_of(r.json()) != _run_of(req.result):
                    twice.add(req.id)
                    print(f"answered twice: {req.id} ({req.phase}): the client got "
                          f"{_run_of(req.result)} after {req.tries} tries, a GET "
                          f"{_run_of(r.json())}")
    # How many different runs of each id the results topic holds.
    runs: dict[str, int] = {}
    probe_error = ""
    try:
        runs = json.loads(cluster.probe(RESULTS_PROBE, load.run))
    except (RuntimeError, ValueError) as e:
        probe_error = repr(e)[-2000:]

    rows = ["| fault | sent | answered | lost | answered twice (HTTP) | executed twice "
            "(results topic) | longest pause s | row s |", "|---|---|---|---|---|---|---|---|"]
    failures = []
    for name, _ in faults:
        if name not in windows:
            continue
        start, end = windows[name]
        mine = [r for r in load.sent if r.phase == name]
        answered = [r for r in mine if r.result is not None]
        lost = len(mine) - len(answered)
        seen_twice = sum(1 for r in mine if r.id in twice)
        ran_twice = sum(1 for r in mine if runs.get(r.id, 0) > 1)
        rows.append(f"| {name} | {len(mine)} | {len(answered)} | {lost} | {seen_twice} | "
                    f"{ran_twice} | {longest_pause(load.answers, start, end):.1f} | "
                    f"{end - start:.0f} |")
        if lost or seen_twice:
            failures.append(f"{name}: {lost} lost, {seen_twice} answered twice")
    table = "\n".join(rows)
    print("\n" + table)
    out = ROOT / ".cache" / "cluster-chaos-table.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text(table + "\n")
    # Every fault was recovered from; every request of every phase (and the warm-up
    # and tail) was answered, once.
    assert not broken, "\n".join(broken)
    assert not probe_error, f"reading the results topic failed: {probe_error}"
    assert len(runs) == len([r for r in load.sent if r.result is not None])
    assert not failures, "\n".join(failures)
    assert all(r.result is not None for r in load.sent)


def _run_of(doc: dict[str, object]) -> tuple[object, object]:
    """What tells two executions of one id apart: the worker and its start instant."""
    stamps = doc.get("timestamps")
    return doc.get("worker"), stamps.get("started") if isinstance(stamps, dict) else None
