#!/usr/bin/env bash
# kb_build.sh: index-build figures only (not a timed test): `toro kb build` on
# N synthetic chunks (bench/gen_corpus.c) with 1 thread and with the default
# (one per CPU), and SQLite FTS5 (insert + optimize, journal off, as in
# bench/retrieval.py) on the same chunk texts read back from the snapshot, in
# one run. Prints wall and CPU seconds (user+sys of the process, from
# /usr/bin/time: on a shared machine CPU seconds are the steadier figure),
# chunks/s on both, and peak RSS.
# usage: bench/kb_build.sh [BUILD_DIR] [CHUNKS] [REPS]   (defaults: build, 1000000, 1)
# A second toro binary to compare against: OLD_TORO=/path/to/toro bench/kb_build.sh ...
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="${1:-$ROOT/build}"
N="${2:-1000000}"
REPS="${3:-1}"
TORO="$BUILD/toro"
WORK="${TMPDIR:-/tmp}/toro-kb-build-bench"
PY="${PY:-$ROOT/.venv/bin/python}"
[ -x "$PY" ] || PY=python3
[ -x "$TORO" ] || { echo "build toro first ($TORO)" >&2; exit 1; }
mkdir -p "$WORK"
SYN="$WORK/syn-$N"
if [ ! -f "$SYN/.done" ]; then
  rm -rf "$SYN"
  cc -O2 -o "$WORK/gen_corpus" "$ROOT/bench/gen_corpus.c" -lm
  "$WORK/gen_corpus" "$SYN" "$N" >/dev/null
  touch "$SYN/.done"
fi
echo "== $N synthetic chunks ($(du -sm "$SYN" | cut -f1) MB), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
printf "%-26s %10s %8s %8s %12s %12s %8s\n" engine chunks wall_s cpu_s chunks/s_wall chunks/s_cpu rss_MB

run_toro() { # run_toro LABEL BINARY [ARGS...]
  local label=$1 bin=$2
  shift 2
  rm -f "$WORK/syn.kb"
  /usr/bin/time -f "TIME %e %U %S %M" "$bin" kb build "$SYN" -o "$WORK/syn.kb" "$@" >"$WORK/out.txt" 2>&1
  local chunks
  chunks=$(awk '/^  chunks/ {print $2}' "$WORK/out.txt")
  awk -v l="$label" -v c="$chunks" '/^TIME/ {cpu = $3 + $4;
      printf "%-26s %10d %8.2f %8.2f %12.0f %12.0f %8.0f\n", l, c, $2, cpu, c / $2, c / cpu, $5 / 1024}' \
    "$WORK/out.txt"
}

run_fts5() {
  "$PY" - "$WORK/syn.kb" "$WORK/fts5.db" <<'PY'
import os, resource, sqlite3, sys, time
snap, fp = sys.argv[1:3]
db = sqlite3.connect(snap)
texts = ["%s\n%s\n%s" % (r[0] or "", r[1] or "", r[2] or "")
         for r in db.execute("SELECT title, section, text FROM chunks ORDER BY id")]
db.close()
if os.path.exists(fp):
    os.remove(fp)
r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
con = sqlite3.connect(fp)
con.execute("PRAGMA journal_mode=OFF")
con.execute("PRAGMA synchronous=OFF")
con.execute("CREATE VIRTUAL TABLE fts USING fts5(body)")
con.executemany("INSERT INTO fts(rowid, body) VALUES(?, ?)", enumerate(texts))
con.commit()
con.execute("INSERT INTO fts(fts) VALUES('optimize')")
con.commit()
con.close()
wall, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
n = len(texts)
print("%-26s %10d %8.2f %8.2f %12.0f %12.0f %8s" % ("sqlite-fts5 (insert+opt)", n, wall, cpu, n / wall, n / cpu, "-"))
os.remove(fp)
PY
}

for r in $(seq "$REPS"); do
  [ -n "${OLD_TORO:-}" ] && run_toro "toro (OLD_TORO) " "$OLD_TORO"
  run_toro "toro (default threads)" "$TORO"
  run_fts5
  run_toro "toro --threads 1" "$TORO" --threads 1
done
