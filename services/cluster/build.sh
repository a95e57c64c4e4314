#!/usr/bin/env bash
# Build the compose cluster's images on this machine; idempotent, cached by input hash.
#
#   services/cluster/build.sh            every image docker-compose.yaml names
#
# No image registry is needed. The base is a Debian bookworm root file system made
# with debootstrap (.ci/build-images.sh --base, cached) and `docker import`ed as
# runstream-cluster/base:bookworm; hosts that can pull official images may set
# RUNSTREAM_CLUSTER_BASE=debian:bookworm-slim instead. On it:
#
#   runstream-cluster/kafka     Java 17 (Debian) + the Kafka jars `runstream broker`
#                               fetches from Maven Central (the same version and cache)
#   runstream-cluster/runstream this checkout (wheels built here) + bubblewrap + every
#                               language's Debian packages (services/languages.toml;
#                               RUNSTREAM_CLUSTER_LANGUAGES="python c" narrows them)
#   runstream-cluster/haproxy   Debian's HAProxy with services/cluster/haproxy.cfg
#
# Each image carries the label dev.runstream.inputs: a hash of everything it is built
# from (its Dockerfile, context files, the base image's id). An image whose label
# matches is not rebuilt, so a second run takes seconds. Every image also carries
# dev.runstream.cluster=1 (`./deploy.sh down --images` removes exactly those).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

CACHE=${RUNSTREAM_IMAGE_CACHE:-/var/cache/runstream/images}
WORK="$CACHE/cluster"
BASE_IMAGE=${RUNSTREAM_CLUSTER_BASE:-runstream-cluster/base:bookworm}
LANGUAGES=${RUNSTREAM_CLUSTER_LANGUAGES:-all}
KAFKA_VERSION=${RUNSTREAM_BROKER_KAFKA_VERSION:-4.1.1}
VENV="$ROOT/.venv"
LABEL=dev.runstream.inputs
say() { echo "cluster-build: $*" >&2; }

[ "$(id -u)" = 0 ] || { say "needs root (debootstrap, docker)"; exit 1; }
[ -x "$VENV/bin/python" ] || { say "no $VENV: run ./deploy.sh (it installs the project)"; exit 1; }
mkdir -p "$WORK"

label_of() { docker image inspect -f "{{index .Config.Labels \"$LABEL\"}}" "$1" 2>/dev/null || true; }

hash_files() {  # a stable hash of the named files' paths and contents
  find "$@" -type f ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 | sort -z \
    | xargs -0 sha256sum | sha256sum | cut -c1-16
}

# -- the base --------------------------------------------------------------------
base_image() {
  if [ "$BASE_IMAGE" != runstream-cluster/base:bookworm ]; then
    docker image inspect "$BASE_IMAGE" >/dev/null 2>&1 || docker pull "$BASE_IMAGE" >&2
    return
  fi
  local tar want
  tar=$(.ci/build-images.sh --base | tail -n 1)
  want=$(stat -c '%n %s %Y' "$tar" | sha256sum | cut -c1-16)
  if [ "$(label_of "$BASE_IMAGE")" = "$want" ]; then
    say "$BASE_IMAGE is up to date"
    return
  fi
  local t0=$SECONDS
  docker import --change "LABEL $LABEL=$want" --change "LABEL dev.runstream.cluster=1" \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8' \
    "$tar" "$BASE_IMAGE" >/dev/null
  say "imported $BASE_IMAGE from $tar in $((SECONDS - t0))s"
}

# -- one image -------------------------------------------------------------------
build() {  # image dockerfile context extra-hash
  local image=$1 dockerfile=$2 ctx=$3 extra=$4 want
  want=$(printf '%s %s %s %s\n' "$(docker image inspect -f '{{.Id}}' "$BASE_IMAGE")" \
    "$(sha256sum <"$dockerfile")" "$(hash_files "$ctx")" "$extra" | sha256sum | cut -c1-16)
  if [ "$(label_of "$image")" = "$want" ]; then
    say "$image is up to date ($LABEL=$want)"
    return
  fi
  build_with_label "$image" "$dockerfile" "$ctx" "$want"
}

kafka_image() {
  local ctx="$WORK/kafka-context" libs
  # The same jars, version and cache as `runstream broker` (fetched once with mvn).
  RUNSTREAM_BROKER_KAFKA_VERSION=$KAFKA_VERSION "$VENV/bin/runstream" broker --fetch-only >/dev/null
  libs="$("$VENV/bin/python" -c 'from runstream.services.broker import LocalBroker
from runstream.services.settings import Settings
print(LocalBroker(Settings.from_env()).libs)')"
  rm -rf "$ctx"
  mkdir -p "$ctx"
  cp -r "$libs" "$ctx/libs"
  cp services/broker-log4j2.xml "$ctx/log4j2.xml"
  cp services/cluster/kafka-node.sh "$ctx/"
  build runstream-cluster/kafka services/cluster/kafka.Dockerfile "$ctx" "kafka=$KAFKA_VERSION"
}

haproxy_image() {
  local ctx="$WORK/haproxy-context"
  rm -rf "$ctx"
  mkdir -p "$ctx"
  cp services/cluster/haproxy.cfg "$ctx/"
  build runstream-cluster/haproxy services/cluster/haproxy.Dockerfile "$ctx" ""
}

apt_packages() {  # the sandbox's tools and the chosen languages' packages
  "$VENV/bin/python" - services/languages.toml "$LANGUAGES" <<'PY'
import sys, tomllib
langs = tomllib.load(open(sys.argv[1], "rb"))
chosen = list(langs) if sys.argv[2] == "all" else sys.argv[2].split()
for name in chosen:
    if name not in langs:
        sys.exit(f"cluster-build: no language {name!r} in {sys.argv[1]}")
pkgs = {"python3", "python3-venv", "bubblewrap", "util-linux", "dash", "procps",
        "libseccomp2", "ca-certificates", "curl",
        # The worker builds its native sandbox launcher (launcher.c) at start-up.
        "gcc", "linux-libc-dev"}
pkgs |= {p for name in chosen for p in langs[name].get("apt", [])}
print("\n".join(sorted(pkgs)))
PY
}

runstream_image() {
  local ctx="$WORK/runstream-context" image=runstream-cluster/runstream want src
  # The inputs, hashed before the (slower) wheel build: the checkout's installed
  # parts, the apt list, the Dockerfile and the base.
  src=$(hash_files pyproject.toml schemas streams services)
  rm -rf "$ctx"
  mkdir -p "$ctx"
  apt_packages >"$ctx/apt-packages.txt"
  cp services/cluster/worker-entry.sh "$ctx/"
  want=$(printf '%s %s %s %s\n' "$(docker image inspect -f '{{.Id}}' "$BASE_IMAGE")" \
    "$(sha256sum <Dockerfile)" "$src" "$(sha256sum <"$ctx/apt-packages.txt")" \
    | sha256sum | cut -c1-16)
  if [ "$(label_of "$image")" = "$want" ]; then
    say "$image is up to date ($LABEL=$want)"
    return
  fi
  local t0=$SECONDS
  say "pip wheel: this checkout and its dependencies (log: $WORK/wheels.log)"
  # From a copy: an in-tree build would leave build/ and egg-info in the checkout.
  rm -rf "$WORK/src"
  mkdir -p "$WORK/src"
  cp -r pyproject.toml README.md schemas streams services "$WORK/src/"
  find "$WORK/src" -name __pycache__ -prune -exec rm -rf {} +
  "$VENV/bin/pip" wheel -q --wheel-dir "$ctx/wheels" "$WORK/src" >"$WORK/wheels.log" 2>&1 \
    || { tail -n 30 "$WORK/wheels.log" >&2; exit 1; }
  say "wheels ready in $((SECONDS - t0))s"
  # The label is the input hash above (wheels are rebuilt bit-for-bit differently).
  build_with_label "$image" Dockerfile "$ctx" "$want"
}

build_with_label() {  # image dockerfile context label
  local image=$1 dockerfile=$2 ctx=$3 want=$4 t0=$SECONDS
  say "building $image (log: $WORK/$(basename "$image").log)"
  if ! docker build --build-arg "BASE=$BASE_IMAGE" --label "$LABEL=$want" \
      --label dev.runstream.cluster=1 -t "$image" -f "$dockerfile" "$ctx" \
      >"$WORK/$(basename "$image").log" 2>&1; then
    tail -n 40 "$WORK/$(basename "$image").log" >&2
    say "building $image failed"
    exit 1
  fi
  say "built $image in $((SECONDS - t0))s ($(( $(docker image inspect -f '{{.Size}}' "$image") / 1048576 )) MiB)"
}

t_all=$SECONDS
base_image
kafka_image
haproxy_image
runstream_image
say "images ready in $((SECONDS - t_all))s"
