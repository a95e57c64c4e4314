"""Hostile programs that both direct sandbox suites run (each asserts its own backend's way)."""

from __future__ import annotations

FORK_BOMB_PY = ("import os\nwhile True:\n    try:\n        os.fork()\n"
                "    except OSError:\n        pass\n")
FORK_BOMB_C = "#include <unistd.h>\nint main(){for(;;)fork();}\n"
MEMORY_BOMB_PY = "a = []\nwhile True:\n    a.append(bytearray(1 << 20))\n"
MEMORY_BOMB_C = ("#include <stdlib.h>\n#include <string.h>\n"
                 "int main(){for(;;){char*p=malloc(1<<20); if(p) memset(p,1,1<<20);}}\n")
BUSY_LOOP_PY = "while True: pass\n"
SLEEP_FOREVER_PY = "import time\ntime.sleep(1000)\n"
STDOUT_FLOOD_PY = "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n"

# Tries to raise its own fd limit, then opens /dev/null until refused: "<count> <errno>".
MILLION_FDS_PY = """import os, resource
try:
    resource.setrlimit(resource.RLIMIT_NOFILE, (10**6, 10**6)); print('raised')
except (ValueError, OSError):
    pass
fds = []
try:
    for _ in range(10**6):
        fds.append(os.open('/dev/null', os.O_RDONLY))
except OSError as e:
    print(len(fds), e.errno)
"""


def fill_disk_py(*dirs: str) -> str:
    """Write 8 MiB files into each folder until refused: "<dir> <ERRNO> <MiB written>"."""
    return f"""import errno
for d in {dirs!r}:
    total, i = 0, 0
    try:
        while True:
            with open(f'{{d}}/f{{i}}', 'wb') as f:
                for _ in range(8):
                    f.write(b'z' * (1 << 20)); total += 1 << 20
            i += 1
    except OSError as e:
        print(d, errno.errorcode[e.errno], total >> 20)
"""


# What a run can learn about the host (docs/sandbox.md "What a run can see"): one JSON document.
# Its stdin: the host paths (one a line) to look for in the memory of the processes it sees.
HOST_FACTS_PY = r"""import ctypes, json, os, socket, sys
def read(path):
    try:
        with open(path, 'rb') as f:
            return f.read(1 << 20).decode('utf-8', 'replace')
    except OSError as e:
        return type(e).__name__
def peek(pid, needles):
    # Another process's memory: why it cannot be read, or which needles it holds.
    try:
        maps = open(f'/proc/{pid}/maps').read().splitlines()
        mem = open(f'/proc/{pid}/mem', 'rb')
    except OSError as e:
        return type(e).__name__
    found = set()
    with mem:
        for line in maps:
            fields = line.split()
            path = fields[5] if len(fields) > 5 else ''
            if 'r' not in fields[1] or (path.startswith('/') and 'w' not in fields[1]):
                continue  # unreadable, or a file's own bytes
            lo, hi = (int(x, 16) for x in fields[0].split('-'))
            try:
                mem.seek(lo)
                data = mem.read(min(hi - lo, 1 << 24))
            except OSError:
                continue
            found.update(n for n in needles if n.encode() in data)
    return sorted(found)
needles = [line for line in sys.stdin.read().splitlines() if line]
pids = [p for p in os.listdir('/proc') if p.isdigit()]
libc = ctypes.CDLL(None, use_errno=True)
buf = ctypes.create_string_buffer(256)
klog = libc.klogctl(3, buf, 256)  # SYSLOG_ACTION_READ_ALL
print(json.dumps({
    'self': os.getpid(),
    'cmdlines': {p: read(f'/proc/{p}/cmdline').split('\0')[:-1] for p in pids},
    'memory': {p: peek(p, needles) for p in pids if p != str(os.getpid())},
    'mountinfo': read('/proc/self/mountinfo'),
    'cgroup': read('/proc/self/cgroup'),
    'hostname': socket.gethostname(),
    'passwd': read('/etc/passwd'),
    'interfaces': [name for _, name in socket.if_nameindex()],
    'kmsg': read('/dev/kmsg')[:200],
    'klogctl': [klog, ctypes.get_errno(), buf.raw[:max(klog, 0)].decode('utf-8', 'replace')],
    'kallsyms': read('/proc/kallsyms')[:200],
}))
"""


def assert_host_facts_hidden(facts: dict[str, object], *, host_paths: list[str],
                             programs: set[str]) -> None:
    """The rows of docs/sandbox.md's table marked hidden, on either backend.

    ``host_paths``: the worker's own paths (run folder, scope) that no visible
    command line, mount or readable memory may name (the probe's stdin);
    ``programs``: the names of the processes a run may see (its own and its
    sandbox's, none of the host's).
    """
    cmdlines = facts["cmdlines"]
    assert isinstance(cmdlines, dict)
    # The memory of the processes a run sees (bwrap's pid 1 held the workspace's host path).
    memory = facts["memory"]
    assert isinstance(memory, dict)
    assert not {p: found for p, found in memory.items() if isinstance(found, list) and found}, (
        f"a process's memory names a host path: {memory}")
    seen = {argv[0].rsplit("/", 1)[-1] for argv in cmdlines.values() if argv}
    assert seen <= programs, f"processes outside the run are visible: {cmdlines}"
    visible = "\n".join(" ".join(argv) for argv in cmdlines.values())
    mountinfo = str(facts["mountinfo"])
    for path in host_paths:
        assert path not in visible, f"a command line names {path}: {cmdlines}"
        assert path not in mountinfo, f"a mount names {path}: {mountinfo}"
    assert [line for line in str(facts["cgroup"]).splitlines()
            if not line.endswith(":/")] == [], f"host cgroup paths: {facts['cgroup']}"
    assert facts["hostname"] == "runstream"
    assert facts["interfaces"] == ["lo"]
    assert facts["kmsg"] in ("FileNotFoundError", "PermissionError"), facts["kmsg"]
    assert facts["klogctl"][0] == -1, facts["klogctl"]  # type: ignore[index]
    assert facts["kallsyms"] in ("", "PermissionError"), facts["kallsyms"]
    # No host file is mounted over the users: bwrap has no /etc/passwd, docker the image's.
    assert not [line for line in mountinfo.splitlines()
                if line.split()[4] in ("/etc/passwd", "/etc/group", "/etc")], mountinfo
