#!/usr/bin/env bash
# Distributed-mode figures (issue "distributed mode"): throughput and p50/p99
# submit -> completed-update latency for 1, 2 and 4 workers per stage, on
# PostgreSQL + NATS JetStream (`toro api` x1 + `toro worker` processes), next
# to the embedded mode (`toro serve` with as many worker threads) in the same
# run. Each configuration gets a burst of N questions (bench/distributed_bench.py).
# Uses its own database and NATS prefix, removed at the end; stops only the
# processes it started, by pid. Usage: bench/distributed.sh [N] [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-600}
build=${2:-build}
bin=$build/toro
py=.venv/bin/python
[[ -x "$py" ]] || { python3 -m venv .venv && .venv/bin/pip install -q -r tests/requirements.txt; }
[[ -x "$bin" ]] || scripts/build.sh "$build" >/dev/null
scripts/services.sh
tmp=$(mktemp -d)
tag=bench$$
store=postgres://postgres@127.0.0.1:5432/toro_$tag
bus="nats://127.0.0.1:4222?prefix=$tag"
export TORO_JWT_SECRET=bench-secret-0123456789-abcdefghijklmnopq
pids=()
"$bin" kb build kb/docs -o "$tmp/kb.toro" >/dev/null 2>&1

cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}
finish() {
  cleanup
  psql postgres://postgres@127.0.0.1:5432/postgres -qc "DROP DATABASE IF EXISTS toro_$tag WITH (FORCE)" || true
  (cd tests/e2e && ../../$py -c "import cluster; cluster.delete_streams('$tag')") || true
  rm -rf "$tmp"
}
trap finish EXIT

wait_port() { # outfile -> port
  for _ in $(seq 200); do grep -q "listening on" "$1" 2>/dev/null && break; sleep 0.05; done
  sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$1"
}

echo "machine: $(nproc) cores, $(uname -sr); burst of $n questions per configuration"
printf "%-12s %-8s %10s %10s %10s %8s\n" mode workers "q/s" "p50 ms" "p99 ms" missing
for k in 1 2 4; do
  # embedded
  "$bin" serve --port 0 --data "$tmp/emb$k" --kb "$tmp/kb.toro" --process-workers "$k" --notify-workers "$k" \
    --rate-limit 0 --log-level warn >"$tmp/emb$k.out" 2>"$tmp/emb$k.err" &
  pids+=($!)
  port=$(wait_port "$tmp/emb$k.out")
  r=$($py bench/distributed_bench.py "$port" --n "$n")
  cleanup
  printf "%-12s %-8s %10s %10s %10s %8s\n" embedded "$k" \
    "$(jq -r .throughput_qps <<<"$r")" "$(jq -r .p50_ms <<<"$r")" "$(jq -r .p99_ms <<<"$r")" "$(jq -r .missing <<<"$r")"

  # distributed: fresh database and streams per configuration
  psql postgres://postgres@127.0.0.1:5432/postgres -qc "DROP DATABASE IF EXISTS toro_$tag WITH (FORCE)"
  psql postgres://postgres@127.0.0.1:5432/postgres -qc "CREATE DATABASE toro_$tag"
  (cd tests/e2e && ../../$py -c "import cluster; cluster.delete_streams('$tag')")
  "$bin" db migrate --store "$store" >/dev/null
  for i in $(seq "$k"); do
    "$bin" worker process --store "$store" --bus "$bus" --kb "$tmp/kb.toro" --concurrency 1 --log-level warn \
      >/dev/null 2>"$tmp/wp$k-$i.err" &
    pids+=($!)
    "$bin" worker notify --store "$store" --bus "$bus" --concurrency 1 --log-level warn >/dev/null 2>"$tmp/wn$k-$i.err" &
    pids+=($!)
  done
  "$bin" api --port 0 --store "$store" --bus "$bus" --rate-limit 0 --log-level warn >"$tmp/api$k.out" 2>"$tmp/api$k.err" &
  pids+=($!)
  port=$(wait_port "$tmp/api$k.out")
  sleep 0.5
  r=$($py bench/distributed_bench.py "$port" --n "$n")
  cleanup
  printf "%-12s %-8s %10s %10s %10s %8s\n" distributed "$k" \
    "$(jq -r .throughput_qps <<<"$r")" "$(jq -r .p50_ms <<<"$r")" "$(jq -r .p99_ms <<<"$r")" "$(jq -r .missing <<<"$r")"
done
