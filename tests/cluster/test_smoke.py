"""The compose cluster, end to end: one execution through HAProxy, replication as set.

Part of `./deploy.sh test`: build (cached), up, one execution, down.
"""

from __future__ import annotations

import json
import subprocess

import httpx
import pytest

from tests.cluster._cluster import Cluster

# The first test also builds (cached: seconds; cold: minutes) and starts the cluster.
pytestmark = pytest.mark.timeout(1800)


def test_one_execution_through_the_balancer(cluster: Cluster) -> None:
    r = httpx.post(f"{cluster.url}/v1/executions", headers=cluster.headers, timeout=90,
                   json={"language": "python", "source": "print(6*7)"})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["status"] == "ok" and doc["run"]["stdout"] == "42\n"
    # The sandbox works inside the worker container: bwrap as the unprivileged uid,
    # with every namespace unshared (no network).
    r = httpx.post(f"{cluster.url}/lang/python", headers=cluster.headers, timeout=90,
                   content="import os, socket\nprint(os.getuid())\n"
                           "try:\n socket.create_connection(('1.1.1.1', 53), 2)\n"
                           "except OSError as e: print('no network')")
    assert r.status_code == 200 and r.text.split() == ["65534", "no", "network"], r.text
    # Auth is on in the cluster: no key, no execution.
    r = httpx.post(f"{cluster.url}/v1/executions", timeout=30,
                   json={"language": "python", "source": "print(1)"})
    assert r.status_code == 401


def test_every_container_passes_its_health_check(cluster: Cluster) -> None:
    # A worker is healthy while its event loop samples its metrics (docker-compose.yaml).
    status = cluster.wait_healthy()
    assert sum("-worker-" in name for name in status) >= 3, status


def test_topics_are_replicated_three_times_with_two_in_sync(cluster: Cluster) -> None:
    probe = (
        "import asyncio, json\n"
        "from aiokafka.admin import AIOKafkaAdminClient\n"
        "from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType\n"
        "async def main():\n"
        "    a = AIOKafkaAdminClient(bootstrap_servers='kafka-1:9092')\n"
        "    await a.start()\n"
        "    names = ['runstream.requests', 'runstream.replies', 'runstream.results']\n"
        "    d = await a.describe_topics(names)\n"
        "    c = await a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n)\n"
        "                                  for n in names])\n"
        "    isr = {r[3]: dict((e[0], e[1]) for e in r[4])['min.insync.replicas']\n"
        "           for resp in c for r in resp.resources}\n"
        "    rf = {t['topic']: sorted({len(p['replicas']) for p in t['partitions']})\n"
        "          for t in d}\n"
        "    print(json.dumps({n: [rf[n], isr[n]] for n in names}))\n"
        "    await a.close()\n"
        "asyncio.run(main())\n")
    got = json.loads(cluster.probe(probe, timeout_s=60))
    assert got == {name: [[3], "2"] for name in
                   ("runstream.requests", "runstream.replies", "runstream.results")}
    # Three Kafka nodes, each with a durable volume of its own.
    volumes = subprocess.run(
        ["docker", "volume", "ls", "-q", "--filter", f"label=com.docker.compose.project="
         f"{cluster.project}"], capture_output=True, text=True, timeout=30, check=True)
    assert {f"{cluster.project}_kafka-{n}" for n in (1, 2, 3)} <= set(volumes.stdout.split())
