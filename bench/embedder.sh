#!/usr/bin/env bash
# Retrieval / embedder figures (issue 13): embedding throughput when building
# the sample KB (chunks/s), snapshot size with and without vectors, `toro ask`
# latency p50/p90 (one process per question, as a user runs it) in hybrid and
# lexical mode, and the embedded service end to end (POST -> completed update,
# bench/e2e_latency.py, open loop) at a few offered rates with the e5
# embedder and with --embedder none, with the server's CPU time per question
# (from /proc, user + system). Those runs make every question unique, so each
# one is embedded (the query-vector cache never helps: a worst case); a last
# run at the highest rate cycles through 20 questions, so the cache serves
# all but the first 20. CPU times are the figures to compare on a shared,
# busy machine; latencies need a quiet one. Starts its own toro processes on
# free loopback ports in a temporary directory and stops them by pid.
# Asserts nothing.
# Usage: bench/embedder.sh [seconds per rate] ["rates"]   e.g. bench/embedder.sh 8 "20 40 60"
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-8}
rates=${2:-"20 40 60"}
[[ -x .venv-bench/bin/python ]] || { python3 -m venv .venv-bench && .venv-bench/bin/pip install -q -r bench/requirements.txt; }
scripts/build.sh build >/dev/null
bin=./build/toro
tmp=$(mktemp -d)
pid=
trap '[[ -n $pid ]] && kill $pid 2>/dev/null; [[ -n $pid ]] && wait $pid 2>/dev/null; rm -rf "$tmp"' EXIT
export TORO_JWT_SECRET=${TORO_JWT_SECRET:-bench-secret-0123456789-abcdefghijklmnopq}

echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(uname -sr), OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-unset}"
echo "== build the sample KB (kb/docs) =="
"$bin" kb build kb/docs -o "$tmp/lex.toro" --embedder none | sed -n 's/^  input/  lexical:/p'
TIMEFORMAT='  e5 build: %R s wall, %U s user + %S s system CPU'
time "$bin" kb build kb/docs -o "$tmp/e5.toro" --embedder e5 | sed -n 's/^  vectors/  e5 vectors:/p'
echo "  snapshot size: lexical $(stat -c %s "$tmp/lex.toro") bytes, with vectors $(stat -c %s "$tmp/e5.toro") bytes"

echo "== toro ask (one process per question, 20 distinct in-scope questions from kb/eval) =="
.venv-bench/bin/python - "$bin" "$tmp/e5.toro" <<'PY'
import json, resource, statistics, subprocess, sys, time
bin_, kb = sys.argv[1], sys.argv[2]
qs = [json.loads(l)["question"] for l in open("kb/eval/questions.jsonl") if l.strip() and json.loads(l).get("relevant")]
qs = qs[:20]
for label, opts in (("hybrid (e5)", ["--embedder", "e5"]), ("lexical (none)", ["--embedder", "none"])):
    ms = []
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    for q in qs:
        t = time.perf_counter()
        subprocess.run([bin_, "ask", "--kb", kb, q] + opts, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        ms.append((time.perf_counter() - t) * 1000)
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime) * 1000 / len(qs)
    ms.sort()
    print("  %-15s p50 %.1f ms  p90 %.1f ms  cpu %.1f ms/question  (n=%d)" %
          (label, statistics.median(ms), ms[int(0.9 * len(ms))], cpu, len(ms)))
PY

start_server() { # $1 = embedder
  "$bin" serve --port 0 --data "$tmp/data-$1" --kb "$tmp/e5.toro" --embedder "$1" --rate-limit 0 --log-level warn \
    >"$tmp/out-$1" 2>"$tmp/err-$1" &
  pid=$!
  for _ in $(seq 300); do grep -q listening "$tmp/out-$1" 2>/dev/null && break; sleep 0.1; done
  port=$(sed -n 's/.*:\([0-9]*\)$/\1/p' "$tmp/out-$1" | head -1)
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
run_rate() { # $1 = embedder, $2 = rate, $3.. = extra e2e_latency.py options
  local emb=$1 r=$2
  shift 2
  start_server "$emb"
  local c0 res c1
  c0=$(cpu_ticks "$pid")
  res=$(.venv-bench/bin/python bench/e2e_latency.py "$port" --rate "$r" --seconds "$secs" "$@")
  c1=$(cpu_ticks "$pid")
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
  echo "$res" | .venv-bench/bin/python -c 'import json,sys; d=json.load(sys.stdin); t=int(sys.argv[1]) / int(sys.argv[2]); print("  offered %(offered_qps)5.0f q/s  achieved %(achieved_qps)5.1f  completed %(completed)5d  missing %(missing)d  p50 %(p50_ms)s ms  p99 %(p99_ms)s ms" % d + "  server cpu %.1f ms/question" % (t * 1000 / max(1, d["completed"])))' \
    "$((c1 - c0))" "$(getconf CLK_TCK)"
}
for emb in e5 none; do
  echo "== service end to end, --embedder $emb (open loop, ${secs}s per rate, every question unique) =="
  for r in $rates; do run_rate "$emb" "$r"; done
done
top=$(echo $rates | tr ' ' '\n' | sort -n | tail -1)
echo "== service end to end, --embedder e5, 20 distinct questions repeated (query-vector cache) =="
run_rate e5 "$top" --distinct 20
