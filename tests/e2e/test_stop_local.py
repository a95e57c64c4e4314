"""`./deploy.sh local` stops within its bound and leaves nothing behind (issue 14, item 3).

Each test runs the real launcher on a state folder, ports, cgroup name and run folder
of its own, so that "nothing left" can be checked exactly — processes, cgroups,
mounts, containers — without touching another runstream on this host.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.system import free_port

pytestmark = [pytest.mark.kafka, pytest.mark.sandbox]

ROOT = Path(__file__).resolve().parents[2]
DRAIN_S = 5
# deploy.sh's bounds: ingress 15 s, workers drain + 10 s, Kafka 30 s, and the
# sandbox clean-up; plus a little for bash itself.
STOP_BOUND_S = 15 + (DRAIN_S + 10) + 30 + 10
START_S = 240  # setup checks, Kafka, two workers: generous on a busy 2-core machine


@dataclass
class Local:
    """One `./deploy.sh local` and what identifies everything it started."""

    proc: subprocess.Popen[bytes]
    state: Path
    port: int
    kafka_port: int
    cgroup: str
    run_dir: Path
    out: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def recorded(self) -> list[tuple[str, int]]:
        """(role, pid) of the children, from deploy.sh's pid file."""
        lines = (self.state / "local.pids").read_text().splitlines()
        return [(parts[0], int(parts[1])) for parts in (line.split() for line in lines)
                if len(parts) >= 2]

    def log(self) -> str:
        return self.out.read_text(errors="replace")


def _env(state: Path, port: int, kafka_port: int, cgroup: str, run_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNSTREAM_")}
    env.update({
        "RUNSTREAM_STATE_DIR": str(state),
        "RUNSTREAM_INGRESS_PORT": str(port),
        "RUNSTREAM_BOOTSTRAP_SERVERS": f"127.0.0.1:{kafka_port}",
        "RUNSTREAM_SANDBOX_CGROUP_NAME": cgroup,
        "RUNSTREAM_SANDBOX_RUN_DIR": str(run_dir),
        "RUNSTREAM_WORKER_CONCURRENCY": "2",
        "RUNSTREAM_WORKER_DRAIN_S": str(DRAIN_S),
        "PYTHONUNBUFFERED": "1",
    })
    return env


def _start(state: Path, port: int, kafka_port: int, cgroup: str, run_dir: Path,
           name: str) -> Local:
    out = state.parent / f"{name}.out"
    with out.open("wb") as sink:
        # Its own session, like a terminal's foreground job: our SIGINT is its Ctrl-C.
        proc = subprocess.Popen([str(ROOT / "deploy.sh"), "local"], cwd=ROOT,
                                env=_env(state, port, kafka_port, cgroup, run_dir),
                                stdout=sink, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    local = Local(proc, state, port, kafka_port, cgroup, run_dir, out)
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"deploy.sh local exited with {proc.returncode}:\n{local.log()[-3000:]}")
        # Its own banner first: an earlier run's leftovers may answer on the same port.
        if "runstream is running" in local.log():
            with contextlib.suppress(httpx.HTTPError):
                r = httpx.get(f"{local.url}/readyz", timeout=2)
                if r.status_code == 200 and r.json().get("workers", 0) >= 2:
                    return local
        time.sleep(0.5)
    _kill_all(local)
    pytest.fail(f"deploy.sh local not ready in {START_S}s:\n{local.log()[-3000:]}")


def _kill_all(local: Local) -> None:
    """Last resort of a failed test: SIGKILL the launcher, every recorded group, the JVM."""
    with contextlib.suppress(OSError, ValueError):
        jvm = int((local.state / "kafka" / "broker.pid").read_text().split()[0])
        os.killpg(jvm, signal.SIGKILL)
    with contextlib.suppress(OSError):
        for _, pid in local.recorded():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(local.proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        local.proc.wait(10)


def _scrub(cgroup: str, run_dir: Path) -> None:
    """After a failed test: remove this test's own cgroups and run folder (the names are
    unique to it), so that a failure leaves nothing on the host either."""
    fs = Path("/sys/fs/cgroup")
    for root in {p.resolve() for p in [*fs.glob(f"*/{cgroup}"), fs / cgroup] if p.is_dir()}:
        for d in sorted(root.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if not d.is_dir():
                continue
            with contextlib.suppress(OSError, ValueError):
                for pid in (d / "cgroup.procs").read_text().split():
                    os.kill(int(pid), signal.SIGKILL)
            for _ in range(50):  # EBUSY for a moment after the last exit
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.05)
        with contextlib.suppress(OSError):
            root.rmdir()
    points = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    for point in sorted((p for p in points if p.startswith(f"{run_dir}/")), key=len,
                        reverse=True):
        subprocess.run(["umount", "-l", point], check=False, timeout=10)
    shutil.rmtree(run_dir, ignore_errors=True)


@pytest.fixture
def places(tmp_path: Path) -> Iterator[tuple[Path, int, int, str, Path]]:
    """A state folder, free ports, a cgroup name and a run folder for one test."""
    tag = uuid.uuid4().hex[:8]
    state = tmp_path / "state"
    cgroup, run_dir = f"runstream-stop-{tag}", Path(f"/run/runstream-stop-{tag}")
    yield state, free_port(), free_port(pair=True), cgroup, run_dir
    _scrub(cgroup, run_dir)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _leftovers(local: Local, pids: list[int]) -> list[str]:
    """Everything of this run still on the host, described; empty when nothing is."""
    left: list[str] = []
    marker = f"RUNSTREAM_STATE_DIR={local.state}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in environ.split(b"\0") and _alive(int(entry.name)):
            left.append(f"process {entry.name}: {cmd[:120]}")
    left += [f"recorded process {pid}" for pid in pids if _alive(pid)]
    fs = Path("/sys/fs/cgroup")
    left += [f"cgroup {p}" for p in [*fs.glob(f"*/{local.cgroup}"), fs / local.cgroup]
             if p.exists()]
    mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    left += [f"mount {line.split()[4]}" for line in mounts
             if line.split()[4].startswith(str(local.run_dir))]
    if shutil.which("docker"):
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            listed = subprocess.run(
                ["docker", "ps", "-a", "--filter", "label=dev.runstream.worker", "--format",
                 '{{.ID}} {{.Label "dev.runstream.worker"}}'],
                capture_output=True, text=True, timeout=20, check=False).stdout
            scopes = tuple(f"w{pid}-" for pid in pids)
            left += [f"container {line}" for line in listed.splitlines()
                     if line.split()[1:2] and line.split()[1].startswith(scopes)]
    for port in (local.port, local.kafka_port):
        with socket.socket() as s:
            s.settimeout(1)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                left.append(f"something still listens on port {port}")
    if (local.state / "local.pids").exists():
        left.append("the pid file")
    return left


def _interrupt(local: Local) -> float:
    """Ctrl-C: SIGINT to deploy.sh; the seconds until it exited (bounded wait)."""
    t0 = time.monotonic()
    local.proc.send_signal(signal.SIGINT)
    try:
        local.proc.wait(STOP_BOUND_S + 30)
    except subprocess.TimeoutExpired:
        _kill_all(local)
        pytest.fail(f"deploy.sh local still running {STOP_BOUND_S + 30}s after SIGINT:\n"
                    + local.log()[-3000:])
    return time.monotonic() - t0


def _show(request: pytest.FixtureRequest, text: str) -> None:
    """Print past pytest's output capture: the measured stop times belong in the log."""
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:
        print(text)
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(f"\n{text}")


def _stop_times(log: str) -> str:
    return ", ".join(re.findall(r"((?:ingress|workers|Kafka|everything) stopped in \d+s)", log))


def test_ctrl_c_stops_everything_in_order_within_the_bound(
        places: tuple[Path, int, int, str, Path], request: pytest.FixtureRequest) -> None:
    local = _start(*places, name="run")
    pids = [pid for _, pid in local.recorded()]
    try:
        with httpx.Client(base_url=local.url, timeout=60) as c:
            r = c.post("/v1/executions", json={"language": "python", "source": "print(6*7)"})
            assert r.status_code == 200 and r.json()["run"]["stdout"] == "42\n", (
                f"{r.text}\n{local.log()[-6000:]}")
            # One still running when Ctrl-C comes: the stop must not wait for it unbounded.
            c.post("/v1/executions", params={"wait": 0}, json={
                "language": "python", "source": "import time\ntime.sleep(3)\nprint(1)"})
        took = _interrupt(local)
    finally:
        if local.proc.poll() is None:
            _kill_all(local)
    log = local.log()
    _show(request, f"deploy.sh local stopped in {took:.1f}s after SIGINT "
                   f"(bound {STOP_BOUND_S}s): {_stop_times(log)}")
    assert took <= STOP_BOUND_S, log[-3000:]
    order = [log.find(f"{role} stopped in") for role in ("ingress", "workers", "Kafka")]
    assert -1 not in order and order == sorted(order), log[-3000:]
    left = _leftovers(local, pids)
    assert not left, left


def test_a_later_run_stops_what_an_earlier_one_left_running(
        places: tuple[Path, int, int, str, Path], request: pytest.FixtureRequest) -> None:
    first = _start(*places, name="first")
    orphans = first.recorded()
    # The launcher dies without stopping anything (its terminal was closed, say):
    # its children keep running in their own sessions.
    os.kill(first.proc.pid, signal.SIGKILL)
    first.proc.wait(10)
    try:
        assert all(_alive(pid) for _, pid in orphans), orphans
        second = _start(*places, name="second")
    except BaseException:
        _kill_all(first)
        raise
    pids = [pid for _, pid in orphans + second.recorded()]
    try:
        assert not [pid for _, pid in orphans if _alive(pid)], "an earlier run's process lives"
        # Only this run's two workers are in the group, then and a little later.
        for _ in range(3):
            r = httpx.get(f"{second.url}/readyz", timeout=5)
            assert r.json()["workers"] == 2, r.text
            time.sleep(1)
        took = _interrupt(second)
    finally:
        if second.proc.poll() is None:
            _kill_all(second)
    _show(request, f"a second deploy.sh local stopped the first one's leftovers, then "
                   f"itself in {took:.1f}s after SIGINT: {_stop_times(second.log())}")
    assert took <= STOP_BOUND_S
    left = _leftovers(second, pids)
    assert not left, left
