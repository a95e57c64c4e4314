#!/bin/sh
# Entry point of a worker container (docker-compose.yaml): make the container's own
# cgroups writable, then run the worker.
#
# Docker mounts /sys/fs/cgroup read-only. The container has its own cgroup namespace
# (`cgroup: private`), so what it sees there is its own cgroup and nothing above it:
# a read-write bind of those mounts lets the bwrap sandbox create each run's cgroup
# below the container's, inside the container's memory, CPU and pids limits. Needs
# CAP_SYS_ADMIN (which the sandbox needs anyway, for each run's tmpfs).
set -eu
awk '$3 == "cgroup" || $3 == "cgroup2" {print $2}' /proc/mounts | while read -r m; do
  mount -o remount,bind,rw "$m"
done
exec runstream worker "$@"
