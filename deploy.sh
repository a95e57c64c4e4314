#!/usr/bin/env bash
# runstream: set up and run the whole system, or its tests, on this machine.
#
#   ./deploy.sh local    install what is missing, start Kafka, one ingress, two workers
#   ./deploy.sh test     install what is missing and run every check and test
#   ./deploy.sh          the containerised cluster (docker compose), as braindrill did
#   ./deploy.sh --help   this text
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$ROOT/.venv"
STATE="${RUNSTREAM_STATE_DIR:-$ROOT/.cache/local}"
cd "$ROOT"

usage() {
  cat <<'EOF'
Usage: ./deploy.sh [local | test | compose | --help]

  local     Install what is missing (apt: bubblewrap, Java 17, Maven, Python venv and the
            language runtimes in services/languages.toml; pip: the project), fetch Apache
            Kafka from Maven Central once, then start a single-node Kafka broker (KRaft),
            one ingress on http://127.0.0.1:8080 and two workers. Ctrl-C stops everything.
            Needs root (apt, and the bwrap sandbox switches to an unprivileged uid and
            creates cgroups). Settings come from RUNSTREAM_* variables (README).
  test      The same set-up, plus a Docker engine (Debian's docker.io, started if none
            answers) and the docker backend's images built from Debian packages; then
            lint (ruff), types (mypy) and the whole test suite (unit, integration on a
            real broker, end-to-end over HTTP, hostile code on both sandbox backends).
  compose   (default) Build and start the containerised cluster with docker compose.
EOF
}

log() { printf '\033[1m[deploy]\033[0m %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_packages() {
  # Base system, plus every language's packages as the registry names them.
  echo python3 python3-venv openjdk-17-jdk-headless maven bubblewrap util-linux dash procps curl
  python3 - "$ROOT/services/languages.toml" <<'PY'
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    langs = tomllib.load(f)
print(" ".join(sorted({p for spec in langs.values() for p in spec.get("apt", [])})))
PY
}

install_system() {
  command -v python3 >/dev/null || { as_root apt-get update -qq; as_root apt-get install -y -qq python3; }
  local missing=()
  for pkg in $(apt_packages); do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    log "apt: installing ${missing[*]}"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
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

setup() {
  install_system
  install_python
  "$VENV/bin/runstream" broker --fetch-only >/dev/null
}

wait_http() {  # url seconds
  local url=$1 deadline=$((SECONDS + $2))
  until curl -fs "$url" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.5
  done
}

run_local() {
  setup
  mkdir -p "$STATE"
  export RUNSTREAM_BROKER_DATA_DIR="${RUNSTREAM_BROKER_DATA_DIR:-$STATE/kafka}"
  local pids=()
  stop_all() {
    trap - INT TERM EXIT
    log "stopping"
    # Ingress and workers first, so that they leave the group before the broker goes.
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
      kill -TERM "${pids[$i]}" 2>/dev/null || true
      wait "${pids[$i]}" 2>/dev/null || true
    done
  }
  trap 'stop_all; exit 130' INT TERM
  trap stop_all EXIT

  log "starting Kafka (log: $RUNSTREAM_BROKER_DATA_DIR/broker.log)"
  "$VENV/bin/runstream" broker >"$STATE/broker.out" 2>&1 &
  pids+=($!)
  local deadline=$((SECONDS + 120))
  until grep -q "ready on" "$STATE/broker.out" 2>/dev/null; do
    kill -0 "${pids[0]}" 2>/dev/null || { cat "$STATE/broker.out" >&2; exit 1; }
    [ "$SECONDS" -lt "$deadline" ] || { log "Kafka did not start in 120 s"; exit 1; }
    sleep 0.5
  done
  for n in 1 2; do
    RUNSTREAM_WORKER_ID="worker-$n" RUNSTREAM_WORKER_DATA_DIR="$STATE/worker-$n" \
      "$VENV/bin/runstream" worker >"$STATE/worker-$n.log" 2>&1 &
    pids+=($!)
  done
  "$VENV/bin/runstream" ingress >"$STATE/ingress.log" 2>&1 &
  pids+=($!)
  local port="${RUNSTREAM_INGRESS_PORT:-8080}"
  if ! wait_http "http://127.0.0.1:$port/readyz" 120; then
    log "the system did not become ready; logs are in $STATE"
    tail -n 20 "$STATE"/*.log >&2
    exit 1
  fi
  cat <<EOF

runstream is running: http://127.0.0.1:$port   (logs: $STATE)

  curl -s localhost:$port/v1/executions -d '{"language":"python","source":"print(6*7)"}'
  curl -s localhost:$port/lang/ruby --data-binary 'puts "hello"'
  curl -s localhost:$port/v1/languages

Ctrl-C stops the broker, the ingress and both workers.
EOF
  wait -n "${pids[@]}" || true
  log "a process exited; see $STATE"
}

run_tests() {
  setup
  # The docker sandbox backend is tested against a real engine with images built
  # here from Debian packages (no image registry needed); both steps are cached.
  log "docker engine and runtime images"
  .ci/docker-engine.sh
  .ci/build-images.sh python javascript c
  log "ruff"
  "$VENV/bin/ruff" check schemas streams services tests
  log "mypy"
  .ci/typecheck "$VENV/bin/mypy"
  log "pytest"
  "$VENV/bin/pytest" -p no:cacheprovider -rs "$@"
}

run_compose() {
  command -v docker >/dev/null || { log "docker is not installed"; exit 1; }
  docker compose -f "$ROOT/docker-compose.yaml" up --build
}

case "${1:-compose}" in
  local) run_local ;;
  test) shift; run_tests "$@" ;;
  compose) run_compose ;;
  -h | --help | help) usage ;;
  *) usage >&2; exit 2 ;;
esac
