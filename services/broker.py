"""A real single-node Apache Kafka broker (KRaft) for local mode and tests, no Docker.

The jars of ``org.apache.kafka:kafka_2.13`` and their dependencies are fetched
from Maven Central with ``mvn`` once into a cache folder; the storage folder is
formatted for KRaft once; the broker is started on the host:port of the first
bootstrap server (the controller listens on the next port) and is ready when it
answers a metadata request.

Stopping is bounded: SIGTERM (Kafka's controlled shutdown), then SIGKILL of the
broker's process group after ``grace_s``. The broker's pid and start time are
kept in ``broker.pid`` in the data folder, so that a launcher that died without
stopping it (SIGKILL, a closed terminal) does not leave a broker holding the
data folder and the port: the next start stops that leftover first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from aiokafka import AIOKafkaClient
from aiokafka.errors import KafkaError
from runstream.services.errors import BrokerLaunchError
from runstream.services.settings import Settings

log = logging.getLogger(__name__)

# Kafka's controlled shutdown of one KRaft node takes a few seconds; past this it is stuck.
STOP_GRACE_S = 20.0

_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.runstream</groupId><artifactId>local-broker</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
      <version>{kafka}</version></dependency>
    <!-- Kafka logs through slf4j; without a backend it prints nothing useful. -->
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId>
      <version>2.0.17</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId>
      <version>2.24.3</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j2-impl</artifactId><version>2.24.3</version></dependency>
  </dependencies>
</project>
"""


def _host_port(bootstrap: str) -> tuple[str, int]:
    first = bootstrap.split(",")[0].strip()
    host, _, port = first.rpartition(":")
    return host or "127.0.0.1", int(port)


def jvm_flags(settings: Settings) -> list[str]:
    """The broker JVM's collector, from the settings."""
    gc = {"g1": "-XX:+UseG1GC", "serial": "-XX:+UseSerialGC",
          "parallel": "-XX:+UseParallelGC"}[settings.broker_gc]
    return [gc]


def server_properties(data_dir: Path, host: str, port: int,
                      settings: Settings | None = None) -> str:
    """The broker's configuration: one node, both roles, tuned for low latency."""
    s = settings or Settings()
    return "\n".join(
        [
            f"num.network.threads={s.broker_network_threads}",
            f"num.io.threads={s.broker_io_threads}",
            # The controller writes a no-op record to the metadata log when it has been
            # idle this long (Kafka's default: 500 ms), so that other nodes can tell a
            # stalled controller from a quiet one. This node is the only one: every 500 ms
            # it cost the idle broker ~0.5-1 % of a core (raft I/O, metadata loader).
            "metadata.max.idle.interval.ms=5000",
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@{host}:{port + 1}",
            f"listeners=PLAINTEXT://{host}:{port},CONTROLLER://{host}:{port + 1}",
            f"advertised.listeners=PLAINTEXT://{host}:{port}",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "inter.broker.listener.name=PLAINTEXT",
            f"log.dirs={data_dir / 'logs'}",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=12",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            # A single-node group need not wait for more members before the first rebalance.
            "group.initial.rebalance.delay.ms=0",
            # Workers use a short session timeout for quick failover.
            "group.min.session.timeout.ms=1000",
            # Topics are created explicitly with their partition counts and configs.
            "auto.create.topics.enable=false",
            "message.max.bytes=16777216",
            "replica.fetch.max.bytes=16777216",
            "num.partitions=1",
            "log.retention.hours=168",
            "log.segment.bytes=268435456",
            "",
        ]
    )


class LocalBroker:
    """Fetch, format, start and stop one local Kafka broker process."""

    def __init__(self, settings: Settings, *, data_dir: Path | None = None) -> None:
        self.settings = settings
        self.host, self.port = _host_port(settings.bootstrap_servers)
        self.version = settings.broker_kafka_version
        self.cache = Path(settings.broker_cache_dir).expanduser() / f"kafka-{self.version}"
        self.data_dir = (data_dir or Path(settings.broker_data_dir)).expanduser()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def libs(self) -> Path:
        return self.cache / "libs"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "broker.log"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "broker.pid"

    def fetch(self) -> None:
        """Download the broker's jars with mvn, once."""
        stamp = self.cache / "complete"
        if stamp.exists():
            return
        mvn = shutil.which("mvn")
        if mvn is None:
            raise BrokerLaunchError("mvn is not installed: apt-get install maven (deploy.sh does)")
        self.cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            pom = Path(tmp) / "pom.xml"
            pom.write_text(_POM.format(kafka=self.version))
            cmd = [mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
                   f"-DoutputDirectory={self.libs}", "-DincludeScope=runtime"]
            log.info("fetching Apache Kafka %s from Maven Central into %s", self.version, self.libs)
            try:
                done = subprocess.run(cmd, capture_output=True, timeout=900, check=False)
            except subprocess.TimeoutExpired as e:
                raise BrokerLaunchError("mvn did not finish fetching Kafka in 15 minutes") from e
            if done.returncode != 0:
                tail = (done.stdout + done.stderr).decode(errors="replace")[-2000:]
                raise BrokerLaunchError(f"mvn failed to fetch Kafka {self.version}:\n{tail}")
        stamp.write_text(self.version)

    def _java(self, main: str, *args: str, heap_mb: int = 256,
              flags: Sequence[str] = ()) -> list[str]:
        java = shutil.which("java")
        if java is None:
            raise BrokerLaunchError(
                "java is not installed: apt-get install openjdk-17-jre-headless")
        log4j = resources.files("runstream.services").joinpath("broker-log4j2.xml")
        return [java, f"-Xmx{heap_mb}m", f"-Xms{min(heap_mb, 256)}m", *flags,
                f"-Dlog4j2.configurationFile={log4j}", f"-Dkafka.logs.dir={self.data_dir}",
                "-cp", f"{self.libs}/*", main, *args]

    def format(self) -> Path:
        """Write server.properties and format the KRaft storage folder, once."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        props = self.data_dir / "server.properties"
        props.write_text(server_properties(self.data_dir, self.host, self.port, self.settings))
        if (self.data_dir / "logs" / "meta.properties").exists():
            return props
        cluster_id = _cluster_id()
        cmd = self._java("kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}",
                          "-c", str(props))
        done = subprocess.run(cmd, capture_output=True, timeout=120, check=False)
        if done.returncode != 0:
            out = (done.stdout + done.stderr).decode(errors="replace")[-2000:]
            raise BrokerLaunchError(f"formatting KRaft storage in {self.data_dir} failed:\n{out}")
        return props

    def start(self) -> None:
        """Fetch, format and start the broker, then wait until it answers."""
        self.fetch()
        self.stop_leftover()
        props = self.format()
        cmd = self._java("kafka.Kafka", str(props), heap_mb=self.settings.broker_heap_mb,
                         flags=jvm_flags(self.settings))
        out = self.log_file.open("ab")
        log.info("starting Kafka %s on %s:%d (log: %s)", self.version, self.host, self.port,
                 self.log_file)
        # Its own session: a Ctrl-C in the terminal reaches us, and we stop it in order.
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        out.close()
        self.pid_file.write_text(f"{self.proc.pid} {_start_time(self.proc.pid) or ''}\n")
        try:
            asyncio.run(self.wait_ready(self.settings.broker_start_timeout_s))
        except BaseException:
            self.stop()
            raise

    async def wait_ready(self, timeout_s: float) -> None:
        """Poll metadata until the broker answers, the process dies or time runs out."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise BrokerLaunchError(
                    f"the broker exited with {self.proc.returncode}; see {self.log_file}:\n"
                    + _tail(self.log_file))
            # A bare TCP probe first: aiokafka logs an error for every refused connection.
            if await _port_open(self.host, self.port) and await broker_answers(
                    f"{self.host}:{self.port}", timeout_s=2.0):
                log.info("Kafka answers on %s:%d", self.host, self.port)
                return
            await asyncio.sleep(0.2)
        raise BrokerLaunchError(
            f"the broker did not answer on {self.host}:{self.port} within {timeout_s}s; "
            f"see {self.log_file}")

    def stop(self, grace_s: float = STOP_GRACE_S) -> float:
        """SIGTERM, then SIGKILL of the process group after ``grace_s``; bounded.

        Returns the seconds the broker took to go.
        """
        proc = self.proc
        if proc is None:
            return 0.0
        t0 = time.monotonic()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                log.warning("the broker ignored SIGTERM for %.0fs; killing it", grace_s)
                self.kill(proc)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # anything it started dies with it
        took = time.monotonic() - t0
        # Only now: a second signal while stopping must still find the process to kill.
        self.proc = None
        self._forget(proc.pid)
        log.info("the broker stopped in %.1fs", took)
        return took

    def kill(self, proc: subprocess.Popen[bytes] | None = None) -> None:
        """SIGKILL the broker's process group at once (a second Ctrl-C)."""
        proc = proc or self.proc
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)

    def stop_leftover(self, grace_s: float = STOP_GRACE_S) -> bool:
        """Stop a broker of an earlier launcher still running on this data folder.

        The pid file names the process and its start time, so a reused pid is never
        signalled. Returns whether there was one.
        """
        try:
            pid_text, _, started = self.pid_file.read_text().strip().partition(" ")
            pid = int(pid_text)
        except (OSError, ValueError):
            return False
        if not started or _start_time(pid) != started or (
                self.proc is not None and self.proc.pid == pid):
            self._forget(pid)
            return False
        log.warning("a broker of an earlier run (pid %d) still runs on %s; stopping it",
                    pid, self.data_dir)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while _start_time(pid) == started and time.monotonic() < deadline:
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while _start_time(pid) == started and time.monotonic() < deadline:
            time.sleep(0.1)  # not our child: it is gone once init has reaped it
        self._forget(pid)
        return True

    def _forget(self, pid: int) -> None:
        with contextlib.suppress(OSError, ValueError):
            if int(self.pid_file.read_text().split()[0]) == pid:
                self.pid_file.unlink()


async def broker_answers(bootstrap: str, *, timeout_s: float) -> bool:
    """True when a metadata request to ``bootstrap`` succeeds within ``timeout_s``."""
    # The one Kafka client not from streams/kafka.py: it probes the local broker this
    # module starts, plaintext by construction, whatever security the settings name.
    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000))
    try:
        await asyncio.wait_for(client.bootstrap(), timeout_s)
        return True
    except (KafkaError, OSError, TimeoutError):
        return False
    finally:
        await client.close()


async def _port_open(host: str, port: int) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 1.0)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


def _cluster_id() -> str:
    """A KRaft cluster id: a UUID as 22 characters of URL-safe base64.

    Never one that starts with "-", as Kafka's own Uuid.randomUuid() ensures: the
    storage tool's argument parser reads it as an option (1 start in 64 failed).
    """
    import base64

    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def _start_time(pid: int) -> str | None:
    """The kernel's start time of a live ``pid`` (with the pid, unique); None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(errors="replace")
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()
    if fields[0] == "Z":
        return None  # a zombie has exited already
    return fields[19]


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
