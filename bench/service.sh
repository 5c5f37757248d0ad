#!/usr/bin/env bash
# Service benchmark (issue "service core" figures): POST /questions requests
# per second with 64 connections (wrk), and POST -> completed WebSocket update
# latency p50/p99 at a fixed offered rate (bench/e2e_latency.py). Starts its own
# toro on a free loopback port in a temporary directory and stops it by pid.
# (bench/run.sh is the full benchmark with baselines; this is the quick look.)
# Usage: bench/service.sh [seconds] [rate]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
rate=${2:-200}
command -v wrk >/dev/null || { [[ $(id -u) -eq 0 ]] && apt-get install -y -qq wrk >/dev/null; }
[[ -x .venv-bench/bin/python ]] || { python3 -m venv .venv-bench && .venv-bench/bin/pip install -q -r bench/requirements.txt; }
scripts/build.sh build >/dev/null
tmp=$(mktemp -d)
./build/toro kb build kb/docs -o "$tmp/kb.toro" 2>/dev/null
start_server() {
  ./build/toro serve --port 0 --data "$tmp/data-$1" --kb "$tmp/kb.toro" --rate-limit 0 --log-level warn >"$tmp/out-$1" 2>"$tmp/err-$1" &
  pid=$!
  for _ in $(seq 100); do grep -q listening "$tmp/out-$1" 2>/dev/null && break; sleep 0.1; done
  port=$(sed -n 's/.*:\([0-9]*\)$/\1/p' "$tmp/out-$1")
}
export TORO_JWT_SECRET=${TORO_JWT_SECRET:-bench-secret-0123456789-abcdefghijklmnopq}
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$tmp"' EXIT

echo "machine: $(nproc) cores, $(free -g | awk '/Mem/{print $2}') GiB, $(uname -sr)"
start_server post
echo "== wrk -t2 -c64 -d${secs}s POST /questions =="
TORO_TOKENS=$(.venv-bench/bin/python bench/tokens.py 64 wrk) wrk -t2 -c64 -d"${secs}s" -s bench/post.lua "http://127.0.0.1:$port/questions" | sed -n '/Latency/,/Transfer/p'
kill "$pid"; wait "$pid" 2>/dev/null || true

start_server e2e
echo "== open-loop POST -> completed update, ${rate} q/s for ${secs}s =="
.venv-bench/bin/python bench/e2e_latency.py "$port" --rate "$rate" --seconds "$secs"
