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
