#!/usr/bin/env bash
# A local distributed toro for trying the distributed mode on one machine:
# PostgreSQL and nats-server (from the Debian packages, started only if not
# already running), the schema migrated, `toro api` on each given port (two
# by default: 8081 and 8082) and N workers of each stage. Pids, logs and the
# URLs go to the run directory (outside the repository); `scripts/cluster.sh
# stop` stops exactly the processes this script started (never PostgreSQL or
# nats-server).
#
#   scripts/cluster.sh [start] [options]   build if needed, start, print the URLs
#   scripts/cluster.sh status [options]    which of our processes run; /healthz of each
#   scripts/cluster.sh stop [options]
#
# Options (and their environment variables):
#   --ports P1,P2,..  api ports, one api per port; 0 = any free port
#                     (TORO_CLUSTER_PORTS, default 8081,8082)
#   --workers N       workers of each stage (TORO_CLUSTER_WORKERS, default 2)
#   --run DIR         run directory (TORO_RUN, default $TMPDIR/toro-cluster-$UID,
#                     /tmp when TMPDIR is unset)
# Environment: TORO_BIN (default build/toro), TORO_STORE (default
# postgres://postgres@127.0.0.1:5432/toro), TORO_BUS (default
# nats://127.0.0.1:4222), TORO_KB (default build/sample-kb.toro),
# TORO_DEV_SECRET (dev-login key shared by every api; generated into the run dir
# if unset), or TORO_JWT_SECRET for jwt mode.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

action=start
default_run=${TMPDIR:-/tmp}/toro-cluster-$(id -u)
run=${TORO_RUN:-$default_run}
ports=${TORO_CLUSTER_PORTS:-8081,8082}
workers=${TORO_CLUSTER_WORKERS:-2}
while [[ $# -gt 0 ]]; do
  case "$1" in
    start|status|stop) action=$1; shift ;;
    --ports|--workers|--run)
      [[ $# -ge 2 && -n $2 ]] || { echo "cluster.sh: $1 needs a value" >&2; exit 2; }
      case "$1" in --ports) ports=$2 ;; --workers) workers=$2 ;; --run) run=$2 ;; esac
      shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "cluster.sh: unknown argument '$1' (--help shows the usage)" >&2; exit 2 ;;
  esac
done
if ! [[ $ports =~ ^[0-9]+(,[0-9]+)*$ ]]; then
  echo "cluster.sh: --ports needs comma-separated port numbers, not '$ports'" >&2
  exit 2
fi
for p in ${ports//,/ }; do
  if ((p > 65535)); then echo "cluster.sh: --ports: $p is not a port" >&2; exit 2; fi
done
if ! [[ $workers =~ ^[1-9][0-9]?$ ]]; then
  echo "cluster.sh: --workers needs a number from 1 to 99, not '$workers'" >&2
  exit 2
fi
bin=${TORO_BIN:-build/toro}
store=${TORO_STORE:-postgres://postgres@127.0.0.1:5432/toro}
bus=${TORO_BUS:-nats://127.0.0.1:4222}
kb=${TORO_KB:-build/sample-kb.toro}

stop_all() {
  [[ -d "$run" ]] || { echo "nothing runs from $run"; return 0; }
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
  rm -f "$run/urls"
}

# The URL a process printed on its stdout ("listening on URL", "health on URL").
url_of() { sed -n 's/^\(listening\|health\) on \(http[^ ]*\)$/\2/p' "$run/$1.out" 2>/dev/null | head -1; }

status() {
  local f p name url
  if ! ls "$run"/*.pid >/dev/null 2>&1; then
    echo "not running (run directory $run)"
    return 0
  fi
  for f in "$run"/*.pid; do
    p=$(cat "$f")
    name=$(basename "$f" .pid)
    url=$(url_of "$name")
    url=${url%/healthz}
    if kill -0 "$p" 2>/dev/null; then
      printf '%-18s running (pid %s)' "$name" "$p"
      [[ -n $url ]] && printf '  %s/healthz -> %s' "$url" "$(curl -s --max-time 5 "$url/healthz" || echo unreachable)"
      echo
    else
      echo "$name: dead (log $run/$name.log)"
    fi
  done
}

start_one() { # name args...
  local name=$1
  shift
  "$bin" "$@" >"$run/$name.out" 2>"$run/$name.log" &
  echo $! >"$run/$name.pid"
}

wait_line() { # name: until its URL line is printed (or it exits)
  local i
  for ((i = 0; i < 300; i++)); do
    [[ -n $(url_of "$1") ]] && return 0
    kill -0 "$(cat "$run/$1.pid")" 2>/dev/null || break
    sleep 0.1
  done
  echo "cluster.sh: $1 did not start; its log ($run/$1.log):" >&2
  tail -5 "$run/$1.log" >&2
  return 1
}

case "$action" in
  stop) stop_all; exit 0 ;;
  status) status; exit 0 ;;
esac

mkdir -p "$run"
if ls "$run"/*.pid >/dev/null 2>&1; then
  echo "a cluster already runs from $run (scripts/cluster.sh stop --run $run first)" >&2
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

# development login on every api with one shared dev key (never the JWT
# secret: with TORO_JWT_SECRET set the apis run in jwt mode instead)
if [[ -z "${TORO_DEV_SECRET:-}" ]]; then
  [[ -f "$run/dev-secret" ]] || (umask 077 && head -c 32 /dev/urandom | base64 >"$run/dev-secret")
  TORO_DEV_SECRET=$(cat "$run/dev-secret")
fi
export TORO_DEV_SECRET

names=()
for ((i = 1; i <= workers; i++)); do
  start_one "worker-process-$i" worker process --store "$store" --bus "$bus" --kb "$kb" --concurrency 2 --health-port 0
  start_one "worker-notify-$i" worker notify --store "$store" --bus "$bus" --concurrency 2 --health-port 0
  names+=("worker-process-$i" "worker-notify-$i")
done
apis=()
i=0
for port in ${ports//,/ }; do
  i=$((i + 1))
  start_one "api-$i" api --port "$port" --node "api-$i" --store "$store" --bus "$bus" --kb "$kb"
  names+=("api-$i")
  apis+=("api-$i")
done
failed=0
for name in "${names[@]}"; do
  wait_line "$name" || failed=1
done
if ((failed)); then
  stop_all
  exit 1
fi
for name in "${apis[@]}"; do
  url=$(url_of "$name")
  for ((j = 0; j < 300; j++)); do
    curl -sf --max-time 2 "$url/healthz" >/dev/null && break
    sleep 0.1
  done
done

{
  for name in "${apis[@]}"; do echo "$name $(url_of "$name")/"; done
  for name in "${names[@]}"; do [[ $name == worker-* ]] && echo "$name $(url_of "$name")"; done
} >"$run/urls"
status
echo
echo "web UI and API:"
for name in "${apis[@]}"; do echo "  $(url_of "$name")/"; done
echo "worker health:"
for name in "${names[@]}"; do [[ $name == worker-* ]] && echo "  $(url_of "$name")"; done
echo "run directory: $run (logs *.log, URLs in urls)"
if [[ $run == "$default_run" || $run == "${TORO_RUN:-}" ]]; then
  echo "stop: scripts/cluster.sh stop"
else
  echo "stop: scripts/cluster.sh stop --run $run"
fi
