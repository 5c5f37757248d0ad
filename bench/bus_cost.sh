#!/usr/bin/env bash
# Bus cost of the distributed mode per question (issue 15, the NATS part):
# a burst of N questions through `toro api` + P process + P notify worker
# processes on PostgreSQL and a nats-server of its own (JetStream in a temp
# dir, a free port, so no other user's traffic is counted), then per 1,000
# questions: CPU seconds (user+system, from /proc/PID/stat) of the toro
# processes, of the PostgreSQL backends of its database and of nats-server,
# and the NATS messages per question (server in_msgs/out_msgs from the
# monitoring port: publishes, pull requests, deliveries, acks, replies), and
# the PostgreSQL transactions and outbox scans per question.
# CPU seconds do not depend on other load on the machine; wall-clock
# figures (q/s) here do. Run it with two binaries to compare them:
#   bench/bus_cost.sh [N] [BUILD_DIR] [P]     (defaults 1000 build 2)
# Own database (dropped at the end); stops only what it started, by pid.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000}
build=${2:-build}
workers=${3:-2}
bin=$build/toro
py=.venv/bin/python
[[ -x $bin ]] || { echo "no $bin" >&2; exit 2; }
tmp=$(mktemp -d /tmp/bus-cost.XXXXXX)
tag=buscost$$
admin=postgres://postgres@127.0.0.1:5432/postgres
store=postgres://postgres@127.0.0.1:5432/toro_$tag
export TORO_JWT_SECRET=bench-secret-0123456789-abcdefghijklmnopq
free_port() { $py -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
nport=$(free_port)
mport=$(free_port)
pids=()
finish() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  psql "$admin" -qc "DROP DATABASE IF EXISTS toro_$tag WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap finish EXIT

nats-server -a 127.0.0.1 -p "$nport" -m "$mport" -js -sd "$tmp/js" >"$tmp/nats.log" 2>&1 &
nats_pid=$!
pids+=("$nats_pid")
bus="nats://127.0.0.1:$nport?prefix=$tag"
"$bin" kb build kb/docs -o "$tmp/kb.toro" >/dev/null 2>&1
psql "$admin" -qc "CREATE DATABASE toro_$tag" >/dev/null
"$bin" db migrate --store "$store" >/dev/null
toro_pids=()
for i in $(seq "$workers"); do
  "$bin" worker process --store "$store" --bus "$bus" --kb "$tmp/kb.toro" --concurrency 1 --log-level warn \
    >/dev/null 2>"$tmp/wp$i.err" &
  pids+=($!) toro_pids+=($!)
  "$bin" worker notify --store "$store" --bus "$bus" --concurrency 1 --log-level warn >/dev/null 2>"$tmp/wn$i.err" &
  pids+=($!) toro_pids+=($!)
done
"$bin" api --port 0 --store "$store" --bus "$bus" --rate-limit 0 --log-level warn >"$tmp/api.out" 2>"$tmp/api.err" &
pids+=($!) toro_pids+=($!)
for _ in $(seq 200); do grep -q "listening on" "$tmp/api.out" 2>/dev/null && break; sleep 0.05; done
port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$tmp/api.out")
sleep 1
# warm-up burst (connections, prepared statements, streams), not counted
$py bench/distributed_bench.py "$port" --n 50 >/dev/null

pg_pids() { psql "$admin" -Atc "SELECT pid FROM pg_stat_activity WHERE datname = 'toro_$tag'"; }
cpu_of() { # pids... -> total user+system clock ticks
  local t=0
  for p in "$@"; do
    [[ -r /proc/$p/stat ]] || continue
    local f
    f=$(sed 's/^.*) //' "/proc/$p/stat")
    set -- $f
    t=$((t + ${12} + ${13}))
  done
  echo $t
}
# transactions of the database, and claim/mark statements on the outbox (rows
# updated by claims, index scans: claims, marks, releases)
pgstat() {
  psql "toro_$tag" -h 127.0.0.1 -U postgres -Atc "SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()),
    (SELECT coalesce(idx_scan, 0) + coalesce(seq_scan, 0) FROM pg_stat_user_tables WHERE relname = 'outbox')" | tr '|' ' '
}
msgs() { curl -s "http://127.0.0.1:$mport/varz" | jq -r '"\(.in_msgs) \(.out_msgs)"'; }
read -r -a pg <<<"$(pg_pids | tr '\n' ' ')"
t0=$(cpu_of "${toro_pids[@]}") p0=$(cpu_of "${pg[@]}") s0=$(cpu_of "$nats_pid")
read -r in0 out0 <<<"$(msgs)"
read -r x0 o0 <<<"$(pgstat)"
r=$($py bench/distributed_bench.py "$port" --n "$n")
sleep 1 # acks and relay marks of the last questions
t1=$(cpu_of "${toro_pids[@]}") p1=$(cpu_of "${pg[@]}") s1=$(cpu_of "$nats_pid")
read -r in1 out1 <<<"$(msgs)"
sleep 0.6 # the statistics collector's delay
read -r x1 o1 <<<"$(pgstat)"
read -r -a pg_after <<<"$(pg_pids | tr '\n' ' ')"
hz=$(getconf CLK_TCK)
done_n=$(jq -r .completed <<<"$r")
per() { awk -v a="$1" -v b="$2" -v hz="$hz" -v n="$done_n" 'BEGIN { printf "%.2f", (b - a) / hz / n * 1000 }'; }
echo "binary: $bin; $workers process + $workers notify worker processes; burst of $n questions: $r"
[[ ${#pg_after[@]} -eq ${#pg[@]} ]] || echo "note: PostgreSQL backends changed during the burst (${#pg[@]} -> ${#pg_after[@]}); new ones not counted"
printf "CPU s per 1000 questions: toro %s  postgres %s  nats-server %s  total %s\n" "$(per "$t0" "$t1")" \
  "$(per "$p0" "$p1")" "$(per "$s0" "$s1")" "$(per $((t0 + p0 + s0)) $((t1 + p1 + s1)))"
awk -v i=$((in1 - in0)) -v o=$((out1 - out0)) -v n="$done_n" \
  'BEGIN { printf "NATS messages per question: in %.1f  out %.1f\n", i / n, o / n }'
awk -v x=$((x1 - x0)) -v o=$((o1 - o0)) -v n="$done_n" \
  'BEGIN { printf "PostgreSQL per question: transactions %.1f  outbox scans (claims, marks, releases) %.1f\n", x / n, o / n }'
