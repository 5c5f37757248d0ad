#!/usr/bin/env bash
# kb_bench.sh: knowledge-base figures (not a timed test): build throughput
# (MB/s, chunks/s) and search latency p50/p99 on the sample KB (kb/docs) and
# on a synthetic corpus, plus eval scores on kb/eval and BEIR (if present).
# usage: bench/kb_bench.sh [BUILD_DIR] [SYNTH_CHUNKS]   (defaults: build-kb, 1000000)
# (bench/run.sh has the comparable figures against bm25s and FTS5; this is the quick look.)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="${1:-$ROOT/build-kb}"
SYN="${2:-1000000}"
TORO="$BUILD/toro"
WORK="${TMPDIR:-/tmp}/toro-kb-bench"
mkdir -p "$WORK"
[ -x "$TORO" ] || { echo "build toro first ($TORO)" >&2; exit 1; }

latency() { # latency SNAPSHOT QUERIES_FILE : p50/p99 of `kb search` inside one process via eval timing
  python3 - "$TORO" "$1" "$2" <<'PY'
import json, subprocess, sys, time
toro, snap, qfile = sys.argv[1:4]
qs = [json.loads(l)["question"] if l.startswith("{") else l.strip() for l in open(qfile) if l.strip()]
lat = []
for q in qs:
    out = subprocess.run([toro, "kb", "search", snap, q, "-k", "10", "--json"], capture_output=True, text=True)
    lat.append(json.loads(out.stdout)["took_ms"])
lat.sort()
p = lambda x: lat[min(len(lat) - 1, int(x * len(lat)))]
print("  search latency over %d queries (in-process took_ms, k=10): p50 %.2f ms  p99 %.2f ms" % (len(lat), p(0.50), p(0.99)))
PY
}

echo "== sample KB ($ROOT/kb/docs)"
"$TORO" kb build "$ROOT/kb/docs" -o "$WORK/sample.kb"
if [ -f "$ROOT/kb/eval/questions.jsonl" ]; then
  latency "$WORK/sample.kb" "$ROOT/kb/eval/questions.jsonl"
  "$TORO" kb eval "$WORK/sample.kb" "$ROOT/kb/eval/questions.jsonl"
fi

BEIR="$ROOT/../shared/datasets/aia-bde-pt"
if [ -d "$BEIR" ]; then
  echo "== BEIR $BEIR"
  "$TORO" kb eval --beir "$BEIR"
fi

echo "== synthetic corpus: $SYN chunks"
SYNDIR="$WORK/syn-$SYN"
if [ ! -f "$SYNDIR/.done" ]; then
  rm -rf "$SYNDIR"
  cc -O2 -o "$WORK/gen_corpus" "$ROOT/bench/gen_corpus.c" -lm
  "$WORK/gen_corpus" "$SYNDIR" "$SYN"
  touch "$SYNDIR/.done"
fi
/usr/bin/time -f "  peak RSS %M KB" "$TORO" kb build "$SYNDIR" -o "$WORK/syn.kb" 2>&1 | grep -v '^\[' || true
ls -l "$WORK/syn.kb" | awk '{printf "  snapshot size %.1f MB\n", $5/1e6}'
QF="$WORK/syn-queries.txt"
python3 - "$QF" <<'PY'
import random, sys
w = "cdb fgc garantia tesouro selic imposto renda liquidez prazo dividendos previdência pgbl taxa juros ipca termo15 termo300 termo5000 fundo ações".split()
r = random.Random(7)
open(sys.argv[1], "w").write("\n".join(" ".join(r.sample(w, r.randint(2, 5))) for _ in range(200)) + "\n")
PY
latency "$WORK/syn.kb" "$QF"
