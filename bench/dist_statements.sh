#!/usr/bin/env bash
# Statements per question of the distributed mode, as PostgreSQL ran them
# (issue 15): `toro api` + 2 process + 2 notify workers on a database of
# their own, with log_min_duration_statement = 0 set on that database only
# (ALTER DATABASE: no server setting changes); an open-loop load
# (bench/e2e_latency.py, --rate q/s for --seconds); then the server log's
# lines of that database are counted: executions per question of each
# statement, by process (application_name: api, process, notify), and their
# summed execution time. Parse/bind lines are counted apart (a prepared
# statement is parsed once per connection). pg_stat_statements would need
# shared_preload_libraries, a server restart; this needs none.
# Needs: the server log readable at $TORO_PG_LOG (Debian's default below),
# with %p and %d in log_line_prefix. Own database and NATS prefix, removed at
# the end; stops only the processes it started, by pid; talks to 127.0.0.1.
# Usage: bench/dist_statements.sh [--build DIR] [--rate 50] [--seconds 4]
set -euo pipefail
cd "$(dirname "$0")/.."
build=build rate=50 seconds=4
while [[ $# -gt 0 ]]; do
  case $1 in
    --build) build=$2; shift ;;
    --rate) rate=$2; shift ;;
    --seconds) seconds=$2; shift ;;
    *) echo "usage: $0 [--build DIR] [--rate Q/S] [--seconds S]" >&2; exit 2 ;;
  esac
  shift
done
bin=$build/toro
log=${TORO_PG_LOG:-/var/log/postgresql/postgresql-15-main.log}
admin=${TORO_PG_ADMIN:-postgres://postgres@127.0.0.1:5432/postgres}
PY=.venv-bench/bin/python
[[ -x $bin ]] || scripts/build.sh "$build" >/dev/null
"$PY" -c "import websockets" 2>/dev/null || { echo "$0: needs .venv-bench (bench/requirements.txt)" >&2; exit 1; }
[[ -r $log ]] || { echo "$0: cannot read the PostgreSQL log $log (set TORO_PG_LOG)" >&2; exit 1; }
prefix=$(psql "$admin" -Atc "SHOW log_line_prefix")
[[ $prefix == *%p* && $prefix == *%d* ]] || { echo "$0: log_line_prefix '$prefix' lacks %p or %d" >&2; exit 1; }
scripts/services.sh
tag=diststmt_$$_$RANDOM
store=${admin%/*}/$tag
bus="nats://127.0.0.1:4222?prefix=$tag"
tmp=$(mktemp -d /tmp/dist-statements.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  psql "$admin" -qc "DROP DATABASE IF EXISTS $tag WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT
"$bin" kb build kb/docs -o "$tmp/kb.toro" >/dev/null 2>&1
psql "$admin" -qc "CREATE DATABASE $tag"
psql "$admin" -qc "ALTER DATABASE $tag SET log_min_duration_statement = 0"
"$bin" db migrate --store "$store" >/dev/null
export TORO_JWT_SECRET=bench-secret-$RANDOM$RANDOM-0123456789abcdefghijklmnop
start() { # name args...
  local name=$1; shift
  PGAPPNAME=$name "$bin" "$@" --store "$store" --bus "$bus" --log-level warn >"$tmp/$name.log" 2>&1 &
  pids+=($!)
}
for i in 1 2; do start process worker process --kb "$tmp/kb.toro" --concurrency 1; done
for i in 1 2; do start notify worker notify --concurrency 1; done
start api api --port 0 --rate-limit 0
for _ in $(seq 100); do grep -q "listening on" "$tmp/api.log" && break; sleep 0.1; done
port=$(sed -n 's/.*listening on .*:\([0-9]*\).*/\1/p' "$tmp/api.log" | head -1)
[[ -n $port ]] || { echo "$0: the api did not start: $(tail -5 "$tmp/api.log")" >&2; exit 1; }
"$PY" bench/e2e_latency.py "$port" --rate 20 --seconds 1 --drain 10 >/dev/null # warm-up: connections, prepares
sleep 1
from=$(stat -c %s "$log")
"$PY" bench/e2e_latency.py "$port" --rate "$rate" --seconds "$seconds" --drain 15 >"$tmp/load.json"
sleep 1
psql "$admin" -Atc "SELECT pid, application_name FROM pg_stat_activity WHERE datname = '$tag'" >"$tmp/pids"
tail -c +$((from + 1)) "$log" | grep -F "@$tag " >"$tmp/pg.log" || true
python3 - "$tmp/load.json" "$tmp/pids" "$tmp/pg.log" <<'EOF'
import collections, json, re, sys
load = json.load(open(sys.argv[1]))
role = dict(line.split("|", 1) for line in open(sys.argv[2]).read().split("\n") if "|" in line)
n = load["completed"]
runs, ms, other = collections.Counter(), collections.Counter(), collections.Counter()
pat = re.compile(r"\[(\d+)\] \S+ LOG:  duration: ([\d.]+) ms  (\w+)(?: [^:]*)?: (.*)")
for line in open(sys.argv[3]):
    m = pat.search(line)
    if not m:
        continue
    pid, dur, kind, sql = m.groups()
    who = role.get(pid, "gone")
    if kind in ("parse", "bind"):
        other[kind] += 1
        continue
    key = (who, " ".join(sql.split())[:70])
    runs[key] += 1
    ms[key] += float(dur)
total = sum(runs.values())
print("%d questions at %s q/s: completed %d, p50 %s ms, p99 %s ms" % (load["accepted"], load["offered_qps"], n,
                                                                    load["p50_ms"], load["p99_ms"]))
print("statements executed: %d = %.2f per question (parse %d, bind %d apart)" % (total, total / max(n, 1),
                                                                               other["parse"], other["bind"]))
print("%8s %9s %8s  %-8s %s" % ("per q", "runs", "ms", "process", "statement"))
for key, c in sorted(runs.items(), key=lambda kv: -kv[1]):
    print("%8.2f %9d %8.1f  %-8s %s" % (c / max(n, 1), c, ms[key], key[0], key[1]))
EOF
