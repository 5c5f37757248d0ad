#!/usr/bin/env bash
# What the PostgreSQL store costs per question in distributed mode (issue 15):
# for each toro binary given, `toro api` + K `toro worker process` + K
# `toro worker notify` on a fresh database of their own get a warm-up of 50
# questions, then a burst of N (bench/distributed_bench.py); measured over
# the burst only: CPU seconds (utime + stime from /proc) of the toro
# processes and of the PostgreSQL backends serving that database
# (pg_stat_activity) per 1,000 questions, PostgreSQL transactions per
# question (pg_stat_database.xact_commit) and statements (round trips) per
# question (toro_store_statements_total of every process's /metrics; "n/a"
# for a binary without that counter). Binaries are run in turn, ROUNDS times
# (default 2), so an A/B comparison is interleaved. CPU seconds do not
# depend on other load on the machine; q/s does. nats-server is shared and
# not counted. VERBOSE=1 also prints the ticks of each toro process. Stops only the processes it started, drops its database and
# streams. Usage: bench/pg_store_cost.sh [N] [K] BIN [BIN...]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000}
k=${2:-2}
shift 2 || true
bins=("$@")
[[ ${#bins[@]} -gt 0 ]] || bins=(build/toro)
rounds=${ROUNDS:-2}
py=.venv/bin/python
admin=postgres://postgres@127.0.0.1:5432/postgres
tmp=$(mktemp -d)
tag=pgcost$$
db=toro_$tag
store=postgres://postgres@127.0.0.1:5432/$db
bus="nats://127.0.0.1:4222?prefix=$tag"
export TORO_JWT_SECRET=bench-secret-0123456789-abcdefghijklmnopq
pids=()
scripts/services.sh
"${bins[0]}" kb build kb/docs -o "$tmp/kb.toro" >/dev/null 2>&1

cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}
finish() {
  cleanup
  psql "$admin" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  (cd tests/e2e && ../../$py -c "import cluster; cluster.delete_streams('$tag')") >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap finish EXIT

wait_port() { # outfile -> port ("listening on HOST:PORT" of api, "health on http://HOST:PORT/healthz" of a worker)
  for _ in $(seq 200); do grep -q "listening on\|health on" "$1" 2>/dev/null && break; sleep 0.05; done
  sed -n 's/^listening on .*:\([0-9]*\)$/\1/p; s/^health on http:.*:\([0-9]*\)\/healthz$/\1/p' "$1" | head -1
}
ticks() { # pid... -> "pid ticks" lines (utime + stime)
  for p in "$@"; do [[ -r /proc/$p/stat ]] && awk -v p="$p" '{print p, $14 + $15}' "/proc/$p/stat"; done
}
backends() { psql "$admin" -Atc "SELECT pid FROM pg_stat_activity WHERE datname = '$db'"; }
commits() { psql "$admin" -Atc "SELECT xact_commit FROM pg_stat_database WHERE datname = '$db'"; }
statements() { # ports... -> sum of toro_store_statements_total, or n/a
  local sum=0 v
  for port in "$@"; do
    v=$(curl -s "http://127.0.0.1:$port/metrics" | awk '/^toro_store_statements_total /{print $2}')
    [[ -n "$v" ]] || { echo n/a; return; }
    sum=$((sum + v))
  done
  echo "$sum"
}

hz=$(getconf CLK_TCK)
echo "machine: $(nproc) cores; $k worker processes per stage; burst of $n questions after a warm-up of 50"
printf "%-28s %8s %12s %12s %12s %9s %9s\n" binary "q/s" "toro cpu s" "pg cpu s" "total cpu s" "xact/q" "stmt/q"
printf "%-28s %8s %12s %12s %12s %9s %9s\n" "" "" "per 1000 q" "per 1000 q" "per 1000 q" "" ""
for _ in $(seq "$rounds"); do
  for bin in "${bins[@]}"; do
    psql "$admin" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
    psql "$admin" -qc "CREATE DATABASE $db" >/dev/null
    (cd tests/e2e && ../../$py -c "import cluster; cluster.delete_streams('$tag')") >/dev/null 2>&1 || true
    "$bin" db migrate --store "$store" >/dev/null
    mports=()
    for i in $(seq "$k"); do
      for stage in process notify; do
        kb=()
        [[ $stage == notify ]] || kb=(--kb "$tmp/kb.toro")
        "$bin" worker "$stage" --store "$store" --bus "$bus" "${kb[@]}" --concurrency 1 --log-level warn \
          --health-port 0 >"$tmp/w$stage$i.out" 2>"$tmp/w$stage$i.err" &
        pids+=($!)
        mports+=("$(wait_port "$tmp/w$stage$i.out")")
      done
    done
    "$bin" api --port 0 --store "$store" --bus "$bus" --rate-limit 0 --log-level warn >"$tmp/api.out" 2>"$tmp/api.err" &
    pids+=($!)
    port=$(wait_port "$tmp/api.out")
    mports+=("$port")
    sleep 0.5
    $py bench/distributed_bench.py "$port" --n 50 >/dev/null
    declare -A t0=()
    while read -r p t; do t0[$p]=$t; done < <(ticks "${pids[@]}" $(backends))
    c0=$(commits)
    s0=$(statements "${mports[@]}")
    r=$($py bench/distributed_bench.py "$port" --n "$n")
    sleep 0.3
    s1=$(statements "${mports[@]}")
    c1=$(commits)
    toro=0 pg=0
    while read -r p t; do
      toro=$((toro + t - ${t0[$p]:-0}))
      [[ -z "${VERBOSE:-}" ]] || echo "  pid $p $(tr '\0' ' ' </proc/$p/cmdline | cut -c1-40): $((t - ${t0[$p]:-0})) ticks"
    done < <(ticks "${pids[@]}")
    while read -r p t; do pg=$((pg + t - ${t0[$p]:-0})); done < <(ticks $(backends))
    unset t0
    cleanup
    done_n=$(jq -r .completed <<<"$r")
    stmt=n/a
    [[ "$s0" == n/a || "$s1" == n/a ]] || stmt=$(awk -v a="$s0" -v b="$s1" -v n="$done_n" 'BEGIN{printf "%.2f", (b-a)/n}')
    awk -v b="$bin" -v q="$(jq -r .throughput_qps <<<"$r")" -v t="$toro" -v p="$pg" -v hz="$hz" -v n="$done_n" \
      -v x="$((c1 - c0))" -v s="$stmt" -v m="$(jq -r .missing <<<"$r")" \
      'BEGIN{printf "%-28s %8s %12.2f %12.2f %12.2f %9.2f %9s%s\n", b, q, t/hz*1000/n, p/hz*1000/n, (t+p)/hz*1000/n,
             x/n, s, (m > 0 ? "  missing " m : "")}'
  done
done
