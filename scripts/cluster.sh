#!/usr/bin/env bash
# A local distributed toro for trying the distributed mode on one machine:
# PostgreSQL and nats-server (from the Debian packages, started only if not
# already running), the schema migrated, two `toro api` on ports 8081 and
# 8082 and two workers of each stage. Pids and logs go to the run directory;
# `scripts/cluster.sh stop` stops exactly the processes this script started
# (never PostgreSQL or nats-server).
#
#   scripts/cluster.sh [start]   build if needed, start, print the URLs
#   scripts/cluster.sh status    which of our processes run; /healthz of each api
#   scripts/cluster.sh stop
#
# Environment: TORO_RUN (run dir, default ./run/cluster), TORO_BIN (default
# build/toro), TORO_STORE (default postgres://postgres@127.0.0.1:5432/toro),
# TORO_BUS (default nats://127.0.0.1:4222), TORO_KB (default build/sample-kb.toro),
# TORO_DEV_SECRET (dev-login key shared by both apis; generated into the run dir if
# unset), or TORO_JWT_SECRET for jwt mode.
set -euo pipefail
cd "$(dirname "$0")/.."
run=${TORO_RUN:-run/cluster}
bin=${TORO_BIN:-build/toro}
store=${TORO_STORE:-postgres://postgres@127.0.0.1:5432/toro}
bus=${TORO_BUS:-nats://127.0.0.1:4222}
kb=${TORO_KB:-build/sample-kb.toro}

stop_all() {
  [[ -d "$run" ]] || return 0
  local f p
  for f in "$run"/*.pid; do
    [[ -e "$f" ]] || continue
    p=$(cat "$f")
    # only our pid, and only if it is still the toro binary we started
    if kill -0 "$p" 2>/dev/null && [[ "$(readlink "/proc/$p/exe" 2>/dev/null)" == "$(readlink -f "$bin")" ]]; then
      kill -TERM "$p"
      for ((i = 0; i < 100; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
      echo "stopped $(basename "$f" .pid) ($p)"
    fi
    rm -f "$f"
  done
}

status() {
  local f p
  for f in "$run"/*.pid; do
    [[ -e "$f" ]] || { echo "not running"; return 0; }
    p=$(cat "$f")
    if kill -0 "$p" 2>/dev/null; then echo "$(basename "$f" .pid): running ($p)"; else echo "$(basename "$f" .pid): dead"; fi
  done
  for port in 8081 8082; do
    echo "api :$port /healthz -> $(curl -s "http://127.0.0.1:$port/healthz" || echo unreachable)"
  done
}

start_one() { # name args...
  local name=$1
  shift
  "$bin" "$@" >"$run/$name.out" 2>"$run/$name.log" &
  echo $! >"$run/$name.pid"
}

case "${1:-start}" in
  stop) stop_all; exit 0 ;;
  status) status; exit 0 ;;
  start) ;;
  *) echo "usage: scripts/cluster.sh [start|status|stop]" >&2; exit 2 ;;
esac

mkdir -p "$run"
if ls "$run"/*.pid >/dev/null 2>&1; then
  echo "a cluster already runs from $run (scripts/cluster.sh stop first)" >&2
  exit 1
fi
[[ -x "$bin" ]] || scripts/build.sh build
[[ -f "$kb" ]] || "$bin" kb build kb/docs -o "$kb" >/dev/null
scripts/services.sh

db=${store##*/}
db=${db%%\?*}
admin=${store%/*}/postgres
if [[ -z "$(psql "$admin" -Atc "SELECT 1 FROM pg_database WHERE datname = '$db'")" ]]; then
  psql "$admin" -qc "CREATE DATABASE \"$db\""
fi
"$bin" db migrate --store "$store"

# development login on both apis with one shared dev key (never the JWT
# secret: with TORO_JWT_SECRET set the apis run in jwt mode instead)
if [[ -z "${TORO_DEV_SECRET:-}" ]]; then
  [[ -f "$run/dev-secret" ]] || head -c 32 /dev/urandom | base64 >"$run/dev-secret"
  TORO_DEV_SECRET=$(cat "$run/dev-secret")
fi
export TORO_DEV_SECRET

for i in 1 2; do
  start_one "worker-process-$i" worker process --store "$store" --bus "$bus" --kb "$kb" --concurrency 2
  start_one "worker-notify-$i" worker notify --store "$store" --bus "$bus" --concurrency 2
done
start_one api-8081 api --port 8081 --node api-8081 --store "$store" --bus "$bus" --kb "$kb"
start_one api-8082 api --port 8082 --node api-8082 --store "$store" --bus "$bus" --kb "$kb"

for port in 8081 8082; do
  for ((i = 0; i < 100; i++)); do
    curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
    sleep 0.1
  done
done
status
echo
echo "web UI:   http://127.0.0.1:8081/  and  http://127.0.0.1:8082/"
echo "logs:     $run/*.log     stop: scripts/cluster.sh stop"
