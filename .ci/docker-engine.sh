#!/usr/bin/env bash
# Make sure a Docker engine answers on this machine; idempotent.
#
# A daemon that already answers `docker info` is left alone. Otherwise Debian's
# docker.io is installed (if missing) and dockerd is started in the background
# with a storage driver this host supports: overlay2 when the kernel can mount
# overlayfs over the data root's file system, vfs otherwise. The daemon's log
# goes to $RUNSTREAM_DOCKERD_LOG. Exits non-zero if the engine does not answer
# within $RUNSTREAM_DOCKERD_WAIT_S seconds.
set -euo pipefail

LOG=${RUNSTREAM_DOCKERD_LOG:-/var/log/runstream-dockerd.log}
DATA_ROOT=${RUNSTREAM_DOCKERD_DATA_ROOT:-/var/lib/docker}
WAIT_S=${RUNSTREAM_DOCKERD_WAIT_S:-60}
say() { echo "docker-engine: $*"; }

# Any client works against Debian's 20.10 daemon: newer clients negotiate the API down.
client=$(command -v docker || true)

answers() { [ -n "$client" ] && timeout 10 "$client" info >/dev/null 2>&1; }

if answers; then
    say "an engine already answers ($("$client" version --format '{{.Server.Version}}' 2>/dev/null))"
    exit 0
fi

if [ "$(id -u)" != 0 ]; then
    say "no engine answers and starting one needs root" >&2
    exit 1
fi

if [ ! -x /usr/sbin/dockerd ]; then
    say "installing Debian's docker.io"
    export DEBIAN_FRONTEND=noninteractive
    # policy-rc.d (if any) keeps the package from trying to start a service itself.
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends docker.io iptables >/dev/null
fi
client=$(command -v docker || echo /usr/bin/docker)

storage_driver() {
    # overlay2 needs overlayfs mountable on the data root's file system (not on
    # overlayfs itself, nor on some network file systems): try it for real.
    local probe
    mkdir -p "$DATA_ROOT"
    probe=$(mktemp -d "$DATA_ROOT/.overlay-probe.XXXXXX")
    mkdir -p "$probe"/{lower,upper,work,merged}
    if mount -t overlay overlay \
        -o "lowerdir=$probe/lower,upperdir=$probe/upper,workdir=$probe/work" \
        "$probe/merged" 2>/dev/null; then
        umount "$probe/merged"
        rm -rf "$probe"
        echo overlay2
    else
        rm -rf "$probe"
        echo vfs
    fi
}

if [ -S /var/run/docker.sock ] && ! pgrep -x dockerd >/dev/null; then
    rm -f /var/run/docker.sock /var/run/docker.pid  # a dead daemon's leftovers
fi

if pgrep -x dockerd >/dev/null; then
    say "dockerd runs (pid $(pgrep -x dockerd | head -1)) but does not answer yet; waiting"
else
    driver=$(storage_driver)
    say "starting dockerd (storage driver $driver, log $LOG)"
    # containerd comes with docker.io; dockerd starts its own when none runs.
    # setsid + nohup: the daemon must outlive this script and its session.
    setsid nohup /usr/sbin/dockerd --storage-driver="$driver" --data-root="$DATA_ROOT" \
        >>"$LOG" 2>&1 </dev/null &
fi

for _ in $(seq 1 $((WAIT_S * 4))); do
    if answers; then
        say "engine answers: $("$client" version --format 'server {{.Server.Version}}, API {{.Server.APIVersion}}' 2>/dev/null), driver $("$client" info --format '{{.Driver}}' 2>/dev/null)"
        exit 0
    fi
    sleep 0.25
done
say "dockerd did not answer within ${WAIT_S}s; last log lines:" >&2
tail -n 30 "$LOG" >&2 || true
exit 1
