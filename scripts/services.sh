#!/usr/bin/env bash
# Starts the services the distributed mode and its tests need, when they are
# not running already: PostgreSQL 15 (cluster "main", 127.0.0.1:5432) and
# nats-server with JetStream on 127.0.0.1:4222. Idempotent; never stops what
# it did not start. Usage:
#   scripts/services.sh            start both if needed (wait until they answer)
#   scripts/services.sh check      exit 0 when both answer, 1 otherwise
#   scripts/services.sh restart-nats | restart-postgres   (fault tests only)
# Environment: TORO_PG_VERSION (15), TORO_NATS_PORT (4222), TORO_NATS_STORE
# (/var/lib/nats-server), TORO_NATS_LOG (/var/log/nats-server.log).
set -euo pipefail

pg_version=${TORO_PG_VERSION:-15}
nats_port=${TORO_NATS_PORT:-4222}
nats_store=${TORO_NATS_STORE:-/var/lib/nats-server}
nats_log=${TORO_NATS_LOG:-/var/log/nats-server.log}

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
nats_up() { (exec 3<>/dev/tcp/127.0.0.1/"$nats_port") 2>/dev/null; }

wait_for() { # name check-function seconds
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    if $2; then return 0; fi
    sleep 0.1
  done
  echo "services.sh: $1 did not come up" >&2
  return 1
}

start_pg() {
  pg_up && return 0
  if ! command -v pg_ctlcluster >/dev/null; then
    echo "services.sh: PostgreSQL is not installed (scripts/install-deps.sh --test)" >&2
    return 1
  fi
  pg_ctlcluster --skip-systemctl-redirect "$pg_version" main start
  wait_for PostgreSQL pg_up 30
  # tests and the cluster script connect as postgres over TCP without a password
  if ! psql -h 127.0.0.1 -U postgres -d postgres -Atc "SELECT 1" >/dev/null 2>&1; then
    echo "services.sh: PostgreSQL runs but postgres@127.0.0.1 is refused; allow trust for 127.0.0.1 in pg_hba.conf" >&2
    return 1
  fi
}

start_nats() {
  nats_up && return 0
  if [[ ! -x /usr/sbin/nats-server ]]; then
    echo "services.sh: nats-server is not installed (scripts/install-deps.sh --test)" >&2
    return 1
  fi
  mkdir -p "$nats_store"
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
    -a 127.0.0.1 -p "$nats_port" -js -sd "$nats_store" -l "$nats_log"
  wait_for nats-server nats_up 30
}

# The pid of the nats-server listening on our port (exact executable, and our
# port on its command line), never a match by name alone.
nats_pid() {
  local p
  for p in $(pgrep -x nats-server || true); do
    if tr '\0' ' ' <"/proc/$p/cmdline" | grep -q -- "-p $nats_port"; then
      echo "$p"
      return 0
    fi
  done
  return 1
}

case "${1:-start}" in
  start)
    start_pg
    start_nats
    ;;
  check)
    pg_up && nats_up
    ;;
  restart-nats)
    if p=$(nats_pid); then
      kill -TERM "$p"
      for ((i = 0; i < 100; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    fi
    start_nats
    ;;
  restart-postgres)
    pg_ctlcluster --skip-systemctl-redirect "$pg_version" main restart -m fast
    wait_for PostgreSQL pg_up 30
    ;;
  *)
    echo "usage: scripts/services.sh [start|check|restart-nats|restart-postgres]" >&2
    exit 2
    ;;
esac
