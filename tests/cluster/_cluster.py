"""The compose cluster under test: `docker compose` on docker-compose.yaml, for real.

A project of its own (``runstream-cluster-test``) on a free host port, so that a
cluster started with ``./deploy.sh`` on the same machine is never touched; its
containers and volumes carry the compose project's label and are the only ones
:meth:`Cluster.down` removes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "runstream-cluster-test"


def compose_missing() -> str | None:
    """Why the cluster cannot be run here, or None."""
    if shutil.which("docker") is None:
        return "no docker client (./deploy.sh test installs Debian's docker.io)"
    done = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30,
                          check=False)
    if done.returncode != 0:
        return "Docker Compose v2 is not installed (./deploy.sh test installs it)"
    if os.geteuid() != 0:
        return "building the cluster's images needs root"
    return None


@dataclass
class Cluster:
    """One compose project of docker-compose.yaml, reached through its balancer."""

    port: int
    logs: Path
    project: str = PROJECT
    key: str | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "RUNSTREAM_CLUSTER_PORT": str(self.port),
                "RUNSTREAM_CLUSTER_AUTH": "true"}

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"} if self.key else {}

    def compose(self, *args: str, timeout_s: float = 300,
                check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = ["docker", "compose", "-p", self.project, "-f", str(ROOT / "docker-compose.yaml"),
               *args]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s,
                              env=self.env, check=False)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} exited {done.returncode}:\n"
                               f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return done

    def build(self) -> None:
        t0 = time.monotonic()
        done = subprocess.run([str(ROOT / "services/cluster/build.sh")], capture_output=True,
                              text=True, timeout=1800, check=False)
        self.timings["build"] = time.monotonic() - t0
        if done.returncode != 0:
            raise RuntimeError(f"services/cluster/build.sh failed:\n{done.stderr[-4000:]}")

    def up(self, ready_s: float = 300) -> None:
        t0 = time.monotonic()
        self.compose("up", "-d", "--remove-orphans")
        self.wait_ready(ready_s)
        self.timings["up"] = time.monotonic() - t0
        if self.key is None:
            self.key = self.create_key()

    def wait_ready(self, timeout_s: float) -> None:
        """Until the balancer's /readyz answers 200 (an ingress that sees workers)."""
        deadline = time.monotonic() + timeout_s
        last = ""
        while time.monotonic() < deadline:
            try:
                r = httpx.get(f"{self.url}/readyz", timeout=3)
                if r.status_code == 200:
                    return
                last = f"{r.status_code} {r.text[:200]}"
            except httpx.HTTPError as e:
                last = repr(e)
            time.sleep(1)
        self.save_logs()
        raise TimeoutError(f"the cluster was not ready within {timeout_s}s ({last}); "
                           f"logs in {self.logs}")

    def wait_healthy(self, timeout_s: float = 180) -> dict[str, str]:
        """Until every running container of the project passes its health check (and
        three workers run); the containers' status by name."""
        deadline = time.monotonic() + timeout_s
        while True:
            done = subprocess.run(
                ["docker", "ps", "-a", "--filter", f"label=com.docker.compose.project="
                 f"{self.project}", "--format", "{{.Names}} {{.Status}}"],
                capture_output=True, text=True, timeout=30, check=True)
            status = dict(line.split(" ", 1) for line in done.stdout.strip().splitlines())
            running = {n: st for n, st in status.items() if "-topics-" not in n}
            workers = [n for n in running if "-worker-" in n]
            if len(workers) >= 3 and all("(healthy)" in st for st in running.values()):
                return status
            if time.monotonic() > deadline:
                raise AssertionError(f"not every container is healthy: {status}")
            time.sleep(2)  # docker's own check interval; no event to await

    def probe(self, script: str, *args: str, timeout_s: float = 120) -> str:
        """Run a Python ``script`` in an ingress container (the cluster's own settings and
        network); the last line it printed, "" if none. Raises if it failed."""
        done = self.compose("exec", "-T", "ingress", "python3", "-c", script, *args,
                            timeout_s=timeout_s)
        lines = done.stdout.strip().splitlines()
        return lines[-1] if lines else ""

    def create_key(self) -> str:
        """An unlimited API key, made as an operator does: `runstream keys create`."""
        done = self.compose("run", "--rm", "--no-deps", "-T", "topics", "keys", "create",
                            "--name", "cluster-test", "--rate", "0", "--concurrency", "0",
                            "--json", timeout_s=120)
        return str(orjson.loads(done.stdout.strip().splitlines()[-1])["key"])

    def container(self, service: str, index: int = 1) -> str:
        return f"{self.project}-{service}-{index}"

    def docker(self, *args: str, timeout_s: float = 120) -> None:
        subprocess.run(["docker", *args], capture_output=True, timeout=timeout_s, check=True)

    def save_logs(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        done = self.compose("logs", "--no-color", "--timestamps", check=False, timeout_s=120)
        (self.logs / "compose.log").write_text(done.stdout + done.stderr)

    def down(self) -> None:
        self.save_logs()
        self.compose("down", "--volumes", "--remove-orphans", "--timeout", "40", check=False,
                     timeout_s=300)
