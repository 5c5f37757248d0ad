#!/usr/bin/env bash
# Cost of the distributed mode per question (issue 15): embedded vs
# distributed (2 process + 2 notify worker processes) at the same open-loop
# offered loads — throughput, p50/p99/p99.9 submit -> completed-update
# latency, CPU seconds per 1,000 questions of every process (toro serve/api/
# workers, the PostgreSQL backends of its database, nats-server; the load
# generator apart) from /proc — the issue's two ratios, and 1 -> 2 -> 4
# process workers with the answerer slowed by 20 ms (TORO_FAULT_ANSWERER=
# delay:20:*). The driver is bench/dist_cost.py (its docstring says what is
# counted and how). Own PostgreSQL database and NATS prefix, removed at the
# end; stops only the processes it started, by pid; talks only to 127.0.0.1.
# At most ~10 min with the defaults (the ladders stop at saturation), under 2 min
# with --quick.
# Usage: bench/dist_cost.sh [--quick] [--build DIR] [--json FILE] [dist_cost.py options...]
set -euo pipefail
cd "$(dirname "$0")/.."
build=build
args=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --build) build=$2; shift ;;
    *) args+=("$1") ;;
  esac
  shift
done
PY=.venv-bench/bin/python
if ! "$PY" -c "import websockets" 2>/dev/null; then
  python3 -m venv .venv-bench && .venv-bench/bin/pip install -q -r bench/requirements.txt
fi
[[ -x $build/toro ]] || scripts/build.sh "$build" >/dev/null
scripts/services.sh
tmp=$(mktemp -d /tmp/dist-cost-kb.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
"$build/toro" kb build kb/docs -o "$tmp/kb.toro" >/dev/null 2>&1
export TORO_JWT_SECRET=bench-secret-$RANDOM$RANDOM-0123456789abcdefghijklmnop
"$PY" bench/dist_cost.py --bin "$build/toro" --kb "$tmp/kb.toro" "${args[@]}"
