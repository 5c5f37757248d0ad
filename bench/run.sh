#!/usr/bin/env bash
# bench/run.sh: the one benchmark entry point (`make bench`); never part of the
# tests, asserts nothing, prints figures and writes BENCHMARKS.md (quick mode
# writes bench-quick.md in the temp dir instead, unless --out is given).
#   HTTP ceiling   nginx fixed JSON vs toro GET /healthz vs toro POST /questions (wrk)
#   end to end     open-loop POST -> completed-update latency ladder (embedded),
#                  bench/distributed.sh when PostgreSQL + NATS work
#   dist cost      bench/dist_cost.sh: CPU per 1,000 questions of every process,
#                  embedded vs distributed at the same open-loop loads, and
#                  1 -> 2 -> 4 process workers with a 20 ms answerer delay
#   WebSocket      10,000 connections: RSS per connection, time to deliver one
#                  update to each (toro vs a Python `websockets` server; C client)
#   retrieval      toro vs bm25s vs SQLite FTS5: qps one thread, p50/p99, nDCG@10
#   index build    1M synthetic chunks: chunks/s, MB/s (toro, FTS5, bm25s)
# All load is on 127.0.0.1, bounded in count and time; every process started
# here is stopped by its pid. usage: bench/run.sh [--quick] [--out FILE] [--skip SECTION,...] [--only SECTION]
# (sections: http,e2e,dist,distcost,ws,kb,build)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
QUICK=0; OUTMD=""; SKIP=","
while [[ $# -gt 0 ]]; do
  case $1 in
    --quick) QUICK=1 ;;
    --out) OUTMD=$2; shift ;;
    --skip) SKIP=",$2,"; shift ;;
    --only) SKIP=",http,e2e,dist,distcost,ws,kb,build,"; SKIP=${SKIP/,$2,/,}; shift ;;
    *) echo "usage: bench/run.sh [--quick] [--out FILE] [--skip http,e2e,dist,distcost,ws,kb,build] [--only SECTION]" >&2; exit 2 ;;
  esac
  shift
done
if ((QUICK)); then
  REPS=${REPS:-2}; WRK_S=3; E2E_S=3; E2E_RATES="100 400 800"; WS_N=2000; SYN_N=100000; DIST_N=200
else
  REPS=${REPS:-3}; WRK_S=10; E2E_S=8; E2E_RATES="100 200 400 600 700 800 900 1000 1200 1500 2000"; WS_N=10000; SYN_N=1000000; DIST_N=600
fi
WRK_T=2; WRK_C=64
skip() { [[ $SKIP == *",$1,"* ]]; }

# --- tools ---------------------------------------------------------------
need_apt=()
command -v wrk >/dev/null || need_apt+=(wrk)
[[ -x /usr/sbin/nginx ]] || need_apt+=(nginx-light)
if ((${#need_apt[@]})); then
  [[ $(id -u) -eq 0 ]] || { echo "install ${need_apt[*]} (needs root)" >&2; exit 1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
PY=$ROOT/.venv-bench/bin/python
if ! "$PY" -c "import bm25s, Stemmer, websockets, numpy" 2>/dev/null; then
  python3 -m venv .venv-bench && .venv-bench/bin/pip install -q -r bench/requirements.txt
fi
echo "== build (scripts/build.sh build, RelWithDebInfo)"
scripts/build.sh build >/dev/null
TORO=$ROOT/build/toro
tmp=$(mktemp -d /tmp/toro-bench.XXXXXX)
RES=$tmp/results.jsonl; : >"$RES"
LIBS="$(pkg-config --libs jansson sqlite3 libutf8proc openssl libcurl libpq libnats) -lstemmer -lpthread -lm -fopenmp"  # -fopenmp: the e5 engine in libtoro_lib uses OpenMP
cc -O2 -Isrc -o "$tmp/kb_search_bench" bench/kb_search_bench.c build/libtoro_lib.a $LIBS
cc -O2 -o "$tmp/gen_corpus" bench/gen_corpus.c -lm
cc -O2 -o "$tmp/ws_client" bench/ws_client.c
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
export TORO_JWT_SECRET=bench-secret-$RANDOM$RANDOM-0123456789abcdefghijklmnop

pids=()
stop() { # stop PID: TERM, wait
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
cleanup() {
  for p in "${pids[@]}"; do stop "$p"; done
  rm -rf "$tmp/data-"* "$tmp"/syn* "$tmp/fts5.db" 2>/dev/null || true
  [[ -n "${KEEP_TMP:-}" ]] || rm -rf "$tmp"
}
trap cleanup EXIT
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
start_toro() { # start_toro NAME [extra args] -> $SPID $SPORT
  "$TORO" serve --port 0 --data "$tmp/data-$1" --kb "$tmp/sample.kb" --rate-limit 0 --log-level warn "${@:2}" \
    >"$tmp/$1.out" 2>"$tmp/$1.err" &
  SPID=$!; pids+=("$SPID")
  for _ in $(seq 200); do grep -q "listening on" "$tmp/$1.out" 2>/dev/null && break; sleep 0.05; done
  SPORT=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$tmp/$1.out")
  [[ -n $SPORT ]] || { cat "$tmp/$1.err" >&2; exit 1; }
}
stop_toro() { stop "$SPID"; pids=("${pids[@]/$SPID}"); rm -rf "$tmp/data-$1"; }
rec() { # rec SECTION NAME REP JSON -> results
  "$PY" -c 'import json,sys; o=json.loads(sys.argv[4]); o.update(section=sys.argv[1], name=sys.argv[2], rep=int(sys.argv[3])); print(json.dumps(o))' \
    "$1" "$2" "$3" "$4" | tee -a "$RES"
}
load() { cut -d' ' -f1-3 /proc/loadavg; }
note() { echo "$*" >>"$tmp/notes.txt"; echo "  note: $*"; }

"$TORO" kb build kb/docs -o "$tmp/sample.kb" >/dev/null 2>&1
echo "{\"quick\": $QUICK, \"reps\": $REPS, \"wrk\": \"wrk -t$WRK_T -c$WRK_C -d${WRK_S}s\", \"e2e_s\": $E2E_S, \"ws_n\": $WS_N, \"syn_n\": $SYN_N, \"started\": \"$(date -u +%FT%TZ)\", \"commit\": \"$(git rev-parse --short HEAD 2>/dev/null)\", \"dirty\": $(git status --porcelain 2>/dev/null | grep -qv '^??' && echo true || echo false)}" >"$tmp/meta.json"
: >"$tmp/notes.txt"; : >"$tmp/load.txt"
section_load() { echo "$1 $(load)" >>"$tmp/load.txt"; echo "== $1 (load average $(load))"; }

# --- HTTP ceiling ----------------------------------------------------------
if ! skip http; then
  section_load http
  TOKENS=$("$PY" bench/tokens.py 64 wrk)
  mkdir -p "$tmp/nginx"; NPORT=$(free_port)
  start_toro http-body; body=$(curl -s "http://127.0.0.1:$SPORT/healthz"); stop_toro http-body
  sed -e "s#@PREFIX@#$tmp/nginx#g" -e "s#@PORT@#$NPORT#g" -e "s#@BODY@#$body#g" bench/nginx.conf >"$tmp/nginx/nginx.conf"
  /usr/sbin/nginx -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" -g 'daemon off;' 2>"$tmp/nginx/stderr" &
  NPID=$!; pids+=("$NPID")
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$NPORT/" >/dev/null && break; sleep 0.05; done
  for r in $(seq "$REPS"); do
    # a fresh toro per repetition: the POST run leaves a backlog of questions
    # being answered, which would load the next /healthz run
    start_toro "http$r"
    rec http nginx "$r" "$(wrk -t$WRK_T -c$WRK_C -d${WRK_S}s -s bench/report.lua "http://127.0.0.1:$NPORT/" | tail -1)"
    rec http healthz "$r" "$(wrk -t$WRK_T -c$WRK_C -d${WRK_S}s -s bench/report.lua "http://127.0.0.1:$SPORT/healthz" | tail -1)"
    rec http post "$r" "$(TORO_TOKENS=$TOKENS TORO_WRK_REPORT=bench/report.lua wrk -t$WRK_T -c$WRK_C -d${WRK_S}s -s bench/post.lua "http://127.0.0.1:$SPORT/questions" | tail -1)"
    stop_toro "http$r"
  done
  stop "$NPID"
fi

# --- end to end (embedded) ------------------------------------------------
if ! skip e2e; then
  section_load e2e
  for rate in $E2E_RATES; do
    fail=0
    for r in $(seq "$REPS"); do
      start_toro "e2e$rate-$r"   # fresh data directory per run
      o=$("$PY" bench/e2e_latency.py "$SPORT" --users 16 --rate "$rate" --seconds "$E2E_S")
      stop_toro "e2e$rate-$r"
      rec e2e "embedded@$rate" "$r" "$o" >/dev/null
      echo "  rate $rate rep $r: $o"
      "$PY" -c 'import json,sys; o=json.loads(sys.argv[1]); sys.exit(0 if o["p99_ms"] is not None and o["p99_ms"] < 50 and o["missing"] == 0 and o["errors"] == 0 and o["achieved_qps"] >= 0.95*o["offered_qps"] else 1)' "$o" || fail=$((fail+1))
    done
    if ((fail * 2 > REPS)); then echo "  p99 >= 50 ms (or losses) at $rate q/s in most runs: ladder stops"; break; fi
  done
fi

# --- distributed -------------------------------------------------------------
if ! skip dist; then
  section_load dist
  if timeout 360 bench/distributed.sh "$DIST_N" build >"$tmp/dist.txt" 2>"$tmp/dist.err"; then
    cat "$tmp/dist.txt"
  else
    note "distributed mode: bench/distributed.sh failed or is not ready (exit $?); last lines: $(tail -3 "$tmp/dist.err" | tr '\n' ' ')"
    : >"$tmp/dist.txt"
  fi
fi

# --- distributed cost per question (issue 15) -------------------------------
if ! skip distcost; then
  section_load distcost
  qflag=(); ((QUICK)) && qflag=(--quick)
  if timeout 900 bench/dist_cost.sh "${qflag[@]}" --build build --json "$tmp/dist_cost.json" >"$tmp/dist_cost.txt" 2>"$tmp/dist_cost.err"; then
    cat "$tmp/dist_cost.txt"
  else
    note "distributed cost: bench/dist_cost.sh failed (exit $?); last lines: $(tail -3 "$tmp/dist_cost.err" | tr '\n' ' ')"
    : >"$tmp/dist_cost.txt"
  fi
fi

# --- WebSocket capacity ----------------------------------------------------
if ! skip ws; then
  section_load ws
  for r in $(seq "$REPS"); do
    start_toro "ws$r" --max-ws-per-user $((WS_N + 10)) --max-connections $((WS_N + 1000))
    rec ws toro "$r" "$("$tmp/ws_client" "$SPORT" "$SPID" "$WS_N" toro "$("$PY" bench/tokens.py 1 ws)")"
    stop_toro "ws$r"
    BPORT=$(free_port)
    "$PY" bench/ws10k.py serve "$BPORT" 2>"$tmp/wsbase.err" & BPID=$!; pids+=("$BPID")
    for _ in $(seq 100); do "$PY" -c "import socket,sys; socket.create_connection(('127.0.0.1',$BPORT),0.2)" 2>/dev/null && break; sleep 0.1; done
    rec ws python-websockets "$r" "$("$tmp/ws_client" "$BPORT" "$BPID" "$WS_N" baseline)"
    stop "$BPID"
  done
fi

# --- retrieval: sample KB and BEIR ----------------------------------------
if ! skip kb; then
  section_load kb
  "$PY" bench/retrieval.py prep-sample kb/eval/questions.jsonl "$tmp/r-sample"
  "$PY" bench/retrieval.py run "$tmp/sample.kb" "$tmp/r-sample" --bench "$tmp/kb_search_bench" --reps 20 |
    while read -r l; do rec kb-sample "$(jq -r .engine <<<"$l")" 1 "$l"; done
  BEIR=$ROOT/../shared/datasets/aia-bde-pt
  if [[ -d $BEIR ]]; then
    "$TORO" kb eval --beir "$BEIR" --embedder none --keep "$tmp/beir.kb" --json >"$tmp/beir-eval.json"
    "$PY" bench/retrieval.py prep-beir "$BEIR" "$tmp/r-beir"
    "$PY" bench/retrieval.py run "$tmp/beir.kb" "$tmp/r-beir" --bench "$tmp/kb_search_bench" --reps 5 |
      while read -r l; do rec kb-beir "$(jq -r .engine <<<"$l")" 1 "$l"; done
  else
    note "BEIR data set $BEIR not found: skipped"
  fi
fi

# --- index build: synthetic chunks ------------------------------------------
if ! skip build; then
  section_load build
  t0=$(date +%s.%N)
  "$tmp/gen_corpus" "$tmp/syn" "$SYN_N"
  echo "  generated $SYN_N chunks ($(du -sm "$tmp/syn" | cut -f1) MB) in $(echo "$(date +%s.%N) - $t0" | bc) s"
  for r in $(seq "$REPS"); do
    rm -f "$tmp/syn.kb"
    /usr/bin/time -f "peak_rss_kb %M" "$TORO" kb build "$tmp/syn" -o "$tmp/syn.kb" >"$tmp/build.out" 2>&1
    o=$("$PY" - "$tmp/build.out" "$tmp/syn.kb" <<'PY'
import json, os, re, sys
t = open(sys.argv[1]).read()
m = re.search(r"chunks\s+(\d+).*?input\s+([\d.]+) MB in ([\d.]+) s \(([\d.]+) MB/s, (\d+) chunks/s\)", t, re.S)
rss = re.search(r"peak_rss_kb (\d+)", t)
print(json.dumps({"chunks": int(m.group(1)), "mb": float(m.group(2)), "build_s": float(m.group(3)),
                  "build_mb_s": float(m.group(4)), "build_chunks_s": int(m.group(5)),
                  "peak_rss_mb": round(int(rss.group(1)) / 1024, 1), "snapshot_mb": round(os.path.getsize(sys.argv[2]) / 1e6, 1)}))
PY
)
    rec build toro "$r" "$o"
  done
  SRCB=$(du -sb --apparent-size "$tmp/syn" | cut -f1)
  rm -rf "$tmp/syn"
  "$PY" bench/retrieval.py prep-synth "$tmp/r-syn"
  "$PY" bench/retrieval.py run "$tmp/syn.kb" "$tmp/r-syn" --bench "$tmp/kb_search_bench" --reps 1 --source-bytes "$SRCB" --fts-queries 40 |
    while read -r l; do rec kb-syn "$(jq -r .engine <<<"$l")" 1 "$l"; done
fi

section_load end
if [[ -z $OUTMD ]]; then
  if ((QUICK)); then OUTMD=$tmp/bench-quick.md; KEEP_TMP=1; else OUTMD=$ROOT/BENCHMARKS.md; fi
fi
"$PY" bench/report.py "$tmp" "$OUTMD"
echo "== wrote $OUTMD"
