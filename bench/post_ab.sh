#!/usr/bin/env bash
# POST /questions A/B: interleaved wrk runs against one or more toro binaries
# (and nginx's fixed JSON as the yardstick), a fresh `toro serve` per run with
# its default workers answering the backlog. Prints per run: req/s, p50/p99,
# non-2xx, the toro process's CPU seconds per 1,000 requests (utime+stime
# from /proc, less sensitive to other load than req/s), the questions stored
# and the load average. Figures of a shared machine: compare A and B of the
# same repetition, not across machines.
# usage: bench/post_ab.sh [--reps N] [--seconds S] [--no-nginx] TORO_BIN... (e.g. /tmp/toro-main build/toro)
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=3; SECS=10; NGINX=1; BINS=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --reps) REPS=$2; shift ;;
    --seconds) SECS=$2; shift ;;
    --no-nginx) NGINX=0 ;;
    -*) echo "usage: bench/post_ab.sh [--reps N] [--seconds S] [--no-nginx] TORO_BIN..." >&2; exit 2 ;;
    *) BINS+=("$(realpath "$1")") ;;
  esac
  shift
done
((${#BINS[@]})) || { echo "usage: bench/post_ab.sh [--reps N] [--seconds S] [--no-nginx] TORO_BIN..." >&2; exit 2; }
command -v wrk >/dev/null || { echo "wrk is needed (apt-get install wrk)" >&2; exit 1; }
PY=python3; [[ -x .venv/bin/python ]] && PY=.venv/bin/python
tmp=$(mktemp -d /tmp/toro-postab.XXXXXX)
pids=()
stop() { kill -TERM "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
cleanup() { for p in "${pids[@]}"; do stop "$p"; done; rm -rf "$tmp"; }
trap cleanup EXIT
ulimit -n 65536 2>/dev/null || true
export TORO_JWT_SECRET=bench-secret-$RANDOM$RANDOM-0123456789abcdefghijklmnop
"${BINS[0]}" kb build kb/docs -o "$tmp/sample.kb" >/dev/null 2>&1
TOKENS=$("$PY" bench/tokens.py 64 wrk)
cpu_s() { awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$1/stat"; } # utime+stime, all threads
WRK="wrk -t2 -c64 -d${SECS}s"
echo "# $WRK -s bench/post.lua, $(nproc) cores, load average at start $(cut -d' ' -f1-3 /proc/loadavg)"
if ((NGINX)); then
  NPORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  mkdir -p "$tmp/nginx"
  sed -e "s#@PREFIX@#$tmp/nginx#g" -e "s#@PORT@#$NPORT#g" -e 's#@BODY@#{"status":"ok"}#g' bench/nginx.conf >"$tmp/nginx/nginx.conf"
  /usr/sbin/nginx -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" -g 'daemon off;' 2>"$tmp/nginx/stderr" &
  pids+=($!)
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$NPORT/" >/dev/null && break; sleep 0.05; done
fi
printf '%-4s %-28s %9s %8s %8s %7s %12s %9s %s\n' rep target req/s p50ms p99ms non2xx cpu_s/1k_req stored load1
for r in $(seq "$REPS"); do
  if ((NGINX)); then
    o=$($WRK -s bench/report.lua "http://127.0.0.1:$NPORT/" | tail -1)
    "$PY" -c 'import json,sys; o=json.loads(sys.argv[1]); print("%-4s %-28s %9.0f %8.2f %8.2f %7d %12s %9s %s" % (sys.argv[2], "nginx", o["rps"], o["p50_ms"], o["p99_ms"], o["non2xx"], "-", "-", sys.argv[3]))' "$o" "$r" "$(cut -d' ' -f1 /proc/loadavg)"
  fi
  order=("${BINS[@]}"); ((r % 2 == 0)) && order=($(printf '%s\n' "${BINS[@]}" | tac))
  for b in "${order[@]}"; do
    d="$tmp/data-$r"; rm -rf "$d"
    "$b" serve --port 0 --data "$d" --kb "$tmp/sample.kb" --rate-limit 0 --log-level warn >"$tmp/out" 2>"$tmp/err" &
    spid=$!; pids+=("$spid")
    for _ in $(seq 200); do grep -q "listening on" "$tmp/out" 2>/dev/null && break; sleep 0.05; done
    port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$tmp/out")
    c0=$(cpu_s "$spid"); l1=$(cut -d' ' -f1 /proc/loadavg)
    o=$(TORO_TOKENS=$TOKENS TORO_WRK_REPORT=bench/report.lua $WRK -s bench/post.lua "http://127.0.0.1:$port/questions" | tail -1)
    c1=$(cpu_s "$spid")
    stop "$spid"; pids=("${pids[@]/$spid}")
    stored=$(sqlite3 "$d/toro.db" 'SELECT count(*) FROM questions' 2>/dev/null || echo "?")
    "$PY" -c 'import json,sys; o=json.loads(sys.argv[1]); c=float(sys.argv[4])-float(sys.argv[3]); print("%-4s %-28s %9.0f %8.2f %8.2f %7d %12.3f %9s %s" % (sys.argv[2], sys.argv[5][-28:], o["rps"], o["p50_ms"], o["p99_ms"], o["non2xx"], 1000*c/max(o["requests"],1), sys.argv[6], sys.argv[7]))' \
      "$o" "$r" "$c0" "$c1" "$b" "$stored" "$l1"
    rm -rf "$d"
  done
done
