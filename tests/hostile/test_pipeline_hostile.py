"""The hostile-code battery through the whole pipeline: HTTP -> Kafka -> worker -> sandbox.

Each case checks the verdict the client gets, that the host is unchanged (no
process left under the sandbox uid, no file planted on the host, the host's
secrets unread), and that the next ordinary request still succeeds. The same
cases run against every sandbox backend available (bwrap always; docker when an
engine answers).
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from runstream.services.execution.sandbox.cgroup import CgroupTree
from runstream.services.execution.sandbox.docker import WORKER_LABEL
from runstream.services.settings import Settings

from tests.system import System

pytestmark = [pytest.mark.kafka, pytest.mark.sandbox]

MARK = uuid.uuid4().hex  # planted names carry it, so the host check cannot be fooled


@dataclass(frozen=True)
class Case:
    """One attack: what to send and what the client must get back."""

    name: str
    language: str
    source: str
    statuses: frozenset[str]
    limits: dict[str, int] = field(default_factory=dict)
    check: Callable[[dict[str, Any]], None] | None = None
    stdin: str = ""


def _out(doc: dict[str, Any]) -> str:
    run = doc.get("run") or {}
    return str(run.get("stdout", ""))


def _expect_in_stdout(*needles: str, absent: tuple[str, ...] = ()) -> Callable[[dict], None]:
    def check(doc: dict[str, Any]) -> None:
        out = _out(doc)
        for n in needles:
            assert n in out, (n, doc)
        for n in absent:
            assert n not in out, (n, doc)
    return check


def _time_limit(kind: str) -> Callable[[dict], None]:
    def check(doc: dict[str, Any]) -> None:
        assert doc["run"]["time_limit"] == kind, doc["run"]
    return check


def _truncated(stream: str) -> Callable[[dict], None]:
    def check(doc: dict[str, Any]) -> None:
        assert doc["run"][f"{stream}_truncated"], doc["run"]
    return check


def _compile_limit(doc: dict[str, Any]) -> None:
    compiled = doc["compile"]
    assert compiled["oom_killed"] or compiled["time_limit"], compiled
    assert "the compile step exceeded its" in (doc.get("message") or ""), doc
    assert doc.get("run") is None, doc


def _oom(doc: dict[str, Any]) -> None:
    assert doc["run"]["oom_killed"], doc["run"]


TLE = frozenset({"time_limit_exceeded"})
CRASH_OR_TLE = frozenset({"time_limit_exceeded", "runtime_error", "memory_limit_exceeded"})

CASES = [
    Case("fork bomb", "python", "import os\nwhile True:\n    os.fork()",
         CRASH_OR_TLE, {"wall_ms": 2000, "cpu_ms": 2000}),
    Case("fork bomb in c", "c",
         "#include <unistd.h>\nint main(void){for(;;)fork();}", CRASH_OR_TLE,
         {"wall_ms": 2000, "cpu_ms": 2000}),
    Case("thread bomb", "python",
         "import threading, time, sys\nn = 0\ntry:\n    while True:\n"
         "        threading.Thread(target=time.sleep, args=(100,), daemon=True).start(); n += 1\n"
         "except RuntimeError:\n    print('capped'); sys.exit(3)",
         frozenset({"runtime_error"}), {"wall_ms": 5000},
         _expect_in_stdout("capped")),
    Case("memory bomb", "python", "a = []\nwhile True:\n    a.append(bytearray(1 << 20))",
         frozenset({"memory_limit_exceeded"}), {"memory_mb": 64}, _oom),
    Case("memory bomb in c", "c",
         "#include <stdlib.h>\n#include <string.h>\n"
         "int main(void){for(;;){char*p=malloc(1<<20); if(p) memset(p,1,1<<20);}}",
         frozenset({"memory_limit_exceeded"}), {"memory_mb": 64}, _oom),
    Case("busy loop", "python", "while True:\n    pass", TLE, {"cpu_ms": 1000},
         _time_limit("cpu")),
    Case("busy loop in javascript", "javascript", "for (;;) {}", TLE, {"cpu_ms": 1000},
         _time_limit("cpu")),
    Case("sleep forever", "python", "import time\ntime.sleep(1000)", TLE, {"wall_ms": 1000},
         _time_limit("wall")),
    Case("stdout flood", "python", "while True:\n    print('x' * 1000)",
         frozenset({"output_limit_exceeded"}), {"output_kb": 64}, _truncated("stdout")),
    Case("stderr flood of random bytes", "python",
         "import os\nwhile True:\n    os.write(2, os.urandom(4096))",
         frozenset({"output_limit_exceeded"}), {"output_kb": 64}, _truncated("stderr")),
    Case("filling the disk", "python",
         "import os\ntry:\n    with open('big', 'wb') as f:\n        while True:\n"
         "            f.write(b'x' * (1 << 20)); f.flush()\n"
         "except OSError as e:\n    print('stopped', e.errno)",
         frozenset({"ok", "runtime_error"}), {"file_size_kb": 65536, "wall_ms": 10000},
         _expect_in_stdout("stopped")),
    Case("plant files in /tmp and /dev/shm", "python",
         f"for d in ('/tmp', '/dev/shm', '.'):\n"
         f"    try:\n        open(d + '/planted-{MARK}', 'w').write('x')\n"
         f"    except OSError:\n        pass\nprint('planted')",
         frozenset({"ok"}), check=_expect_in_stdout("planted")),
    Case("find files of an earlier run", "python",
         "import glob\nprint(sorted(glob.glob('/tmp/planted-*') + glob.glob('/dev/shm/planted-*')"
         " + glob.glob('planted-*')))",
         frozenset({"ok"}), check=_expect_in_stdout("[]")),
    Case("network: no route out, nothing on the host's loopback", "python",
         "import socket\nroutes = open('/proc/net/route').read().splitlines()[1:]\n"
         "devs = sorted(l.split(':')[0].strip() for l in "
         "open('/proc/net/dev').read().splitlines()[2:])\nprint('routes', len(routes), devs)\n"
         "for port in (KAFKA_PORT, INGRESS_PORT):\n    s = socket.socket(); s.settimeout(2)\n"
         "    try:\n        s.connect(('127.0.0.1', port)); print('CONNECTED', port)\n"
         "    except OSError as e:\n        print('refused', type(e).__name__)",
         frozenset({"ok"}),
         check=_expect_in_stdout("routes 0 ['lo']", "refused", absent=("CONNECTED",))),
    Case("read /etc/shadow", "python",
         "try:\n    print(open('/etc/shadow').read()[:20])\nexcept OSError as e:\n"
         "    print('denied', type(e).__name__)",
         frozenset({"ok"}), check=_expect_in_stdout("denied", absent=("root:",))),
    Case("read the environment of pid 1 and of the worker", "python",
         "import glob\nseen = ''\nfor p in glob.glob('/proc/*/environ'):\n"
         "    try:\n        seen += open(p).read()\n    except OSError:\n        pass\n"
         "print('RUNSTREAM' in seen, 'BOOTSTRAP' in seen)",
         frozenset({"ok"}), check=_expect_in_stdout("False False")),
    Case("read the worker's code", "python",
         "import os\ndef listed(p):\n    try:\n        return bool(os.listdir(p))\n"
         "    except OSError:\n        return False\n"
         "print([p for p in ('/work', '/root', '/opt', '/home', '/run/runstream') if listed(p)])",
         frozenset({"ok"}), check=_expect_in_stdout("[]")),
    Case("symlinks and hard links to host files", "python",
         "import os\nfor src, dst in (('/etc/passwd', 'hard'), ('/etc/shadow', 'hard2')):\n"
         "    try:\n        os.link(src, dst)\n    except OSError:\n        pass\n"
         "os.symlink('/etc/passwd', 'sym'); os.symlink('/', 'root'); os.symlink('..', 'up')\n"
         "print('links planted')",
         frozenset({"ok"}), check=_expect_in_stdout("links planted")),
    Case("kill -9 -1", "python", "import os, signal\nos.kill(-1, signal.SIGKILL)\nprint('alive')",
         frozenset({"ok", "runtime_error"})),
    Case("double-forked setsid daemon", "python",
         "import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
         "        time.sleep(1000)\n    os._exit(0)\nprint('parent done')",
         frozenset({"ok"}), check=_expect_in_stdout("parent done")),
    Case("a million file descriptors", "python",
         "import os\nfds = []\ntry:\n    for _ in range(1_000_000):\n"
         "        fds.append(os.open('/dev/null', os.O_RDONLY))\nexcept OSError as e:\n"
         "    print('stopped at', len(fds))",
         frozenset({"ok"}), check=_expect_in_stdout("stopped at")),
    Case("setuid, unshare, mount, ptrace via ctypes", "python",
         "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
         "print(libc.setuid(0), libc.unshare(0x10000000), "
         "libc.mount(b'none', b'/tmp', b'tmpfs', 0, None), libc.ptrace(16, 1, 0, 0), "
         "os.getuid())",
         frozenset({"ok"}), check=_expect_in_stdout("-1 -1 -1 -1")),
    Case("unbounded recursion", "python",
         "import sys\nsys.setrecursionlimit(10**9)\ndef f(n):\n    return f(n + 1) + 1\nf(0)",
         frozenset({"runtime_error", "memory_limit_exceeded"})),
    Case("unbounded recursion in c", "c",
         "int f(int n){ volatile char pad[256]; pad[0] = n; return f(n + 1) + pad[0]; }\n"
         "int main(void){ return f(0); }",
         frozenset({"runtime_error"})),
    # The compiler is attacked too: cpp reads an endless include until a compile limit
    # (memory, usually) stops it, and the verdict says which limit it was.
    Case("a compile bomb: #include \"/dev/zero\"", "c", '#include "/dev/zero"\nint main;',
         frozenset({"compile_error"}), check=_compile_limit),
    Case("java thread bomb", "java",
         "public class Main { public static void main(String[] a) throws Exception {"
         " int n = 0; try { while (true) { Thread t = new Thread(() -> {"
         " try { Thread.sleep(100000); } catch (Exception e) {} }); t.setDaemon(true);"
         " t.start(); n++; } } catch (Throwable e) { System.out.println(\"capped \" + n);"
         " System.exit(4); } } }",
         frozenset({"runtime_error"}), {"wall_ms": 10000}, _expect_in_stdout("capped")),
    Case("java reads host secrets", "java",
         "import java.nio.file.*; public class Main { public static void main(String[] a) {"
         " System.out.println(Files.isReadable(Path.of(\"/etc/shadow\")) + \" \" +"
         " Files.exists(Path.of(\"/work\"))); } }",
         frozenset({"ok"}), check=_expect_in_stdout("false false")),
    Case("javascript memory bomb", "javascript",
         "const a = []; for (;;) a.push(Buffer.alloc(1 << 20, 1));",
         frozenset({"memory_limit_exceeded", "runtime_error"}), {"memory_mb": 128}),
    Case("javascript child_process and fs on host paths", "javascript",
         "const fs = require('fs'); let r = [];"
         "for (const p of ['/etc/shadow', '/work', '/root']) {"
         " try { fs.readdirSync(p); r.push('LISTED ' + p); } catch (e) {"
         " try { fs.readFileSync(p); r.push('READ ' + p); } catch (e2) { r.push('no'); } } }"
         "console.log(r.join(' '));",
         frozenset({"ok"}), check=_expect_in_stdout("no no no")),
]


def _bwrap_run_pids(system: System) -> list[int]:
    """Processes still in a run cgroup of this system's workers (setsid cannot leave it)."""
    tree = CgroupTree.detect(Settings.from_env({}).sandbox_cgroup_name)
    parent = tree.parents["pids" if tree.version == 1 else "unified"]
    found: list[int] = []
    for proc in system.worker_procs.values():
        for procs in parent.glob(f"w{proc.pid}-*/*/cgroup.procs"):
            try:
                found += [int(p) for p in procs.read_text().split()]
            except OSError:
                continue  # removed while we looked: empty
    return found


def _docker_run_pids(system: System) -> list[int]:
    """Processes of the sandbox uid in containers of this system's worker.

    The warm pool's idle containers run only their root-owned init, so any
    process of the sandbox uid in one of them is a leftover of a run.
    """
    import docker

    client = docker.DockerClient(timeout=10)
    try:
        # One listing call (containers.list() inspects each one, and fails with a 404 on
        # a container removed in between).
        ids = [c["Id"] for c in client.api.containers(filters={"label": WORKER_LABEL})
               if any((c.get("Labels") or {}).get(WORKER_LABEL, "").startswith(f"w{p.pid}-")
                      for p in system.worker_procs.values())]
    finally:
        client.close()
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
        if any(cid in cgroups for cid in ids):
            found.append(int(entry.name))
    return found


def _settled(system: System, backend: str, timeout_s: float = 5.0) -> list[int]:
    """Processes of another process's sandboxes have no "gone" event: poll, bounded."""
    probe = _bwrap_run_pids if backend == "bwrap" else _docker_run_pids
    deadline = time.monotonic() + timeout_s
    while (left := probe(system)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def _digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def host_baseline() -> Iterator[dict[str, Any]]:
    yield {"passwd": _digest("/etc/passwd"), "shadow": _digest("/etc/shadow")}


SANDBOX_UID = 65534
# The docker backend's images built in CI (.ci/build-images.sh python javascript c).
DOCKER_LANGUAGES = {"python", "javascript", "c"}
PARAMS = [pytest.param(case, "bwrap", id=f"bwrap-{case.name}") for case in CASES] + [
    pytest.param(case, "docker", id=f"docker-{case.name}", marks=pytest.mark.docker)
    for case in CASES if case.language in DOCKER_LANGUAGES]


@pytest.mark.parametrize(("case", "backend"), PARAMS)
def test_hostile_case(case: Case, backend: str, request: pytest.FixtureRequest,
                      host_baseline: dict[str, Any]) -> None:
    system: System = request.getfixturevalue("system" if backend == "bwrap" else
                                             "docker_system")
    kafka_port = system.env["RUNSTREAM_BOOTSTRAP_SERVERS"].rsplit(":", 1)[1]
    ingress_port = system.url.rsplit(":", 1)[1]
    source = case.source.replace("KAFKA_PORT", kafka_port).replace("INGRESS_PORT", ingress_port)
    with httpx.Client(base_url=system.url, timeout=120) as c:
        r = c.post("/v1/executions", json={"language": case.language, "source": source,
                                           "stdin": case.stdin, "limits": case.limits})
        assert r.status_code == 200, r.text
        doc = r.json()
        assert doc["status"] in case.statuses, doc
        if case.check is not None:
            case.check(doc)
        # The host is unchanged ...
        for planted in (f"/tmp/planted-{MARK}", f"/dev/shm/planted-{MARK}"):
            assert not os.path.exists(planted)
        assert _digest("/etc/passwd") == host_baseline["passwd"]
        assert _digest("/etc/shadow") == host_baseline["shadow"]
        assert not _settled(system, backend), "processes of the run outlived it"
        # ... and the next ordinary request still succeeds.
        ok = c.post("/v1/executions", json={"language": "python", "source": "print(6*7)"})
        assert ok.json()["status"] == "ok" and ok.json()["run"]["stdout"] == "42\n"
