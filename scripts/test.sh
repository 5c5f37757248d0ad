#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to every test: installs what the
# tests need, builds with warnings as errors, runs the suite (unit tests and
# end-to-end tests against the real binary), then builds again with
# AddressSanitizer + UndefinedBehaviorSanitizer and runs the suite again, then
# runs each libFuzzer harness for a bounded time (TORO_FUZZ_SECONDS, default 20).
# TORO_CTEST_ARGS adds ctest arguments to the two suites (e.g. "-E distributed_faults").
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

scripts/install-deps.sh --test

# Python tooling for the end-to-end tests (a real HTTP and WebSocket client).
req=tests/requirements.txt
stamp=.venv/.req-$(sha256sum "$req" | cut -c1-16)
if [[ ! -f "$stamp" ]]; then
  rm -rf .venv
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -r "$req"
  touch "$stamp"
fi

# Node tooling for the browser test (playwright-core driving Debian's Chromium).
lock=tests/browser/package-lock.json
npm_stamp=tests/browser/node_modules/.lock-$(sha256sum "$lock" | cut -c1-16)
if [[ ! -f "$npm_stamp" ]]; then
  (cd tests/browser && npm ci --no-audit --no-fund)
  touch "$npm_stamp"
fi

# PostgreSQL and nats-server for the distributed-mode tests (started if not running).
scripts/services.sh

status=0
scripts/check-source.sh || status=1 # banned functions, README layer map, include cycles, function length, copies
echo "== build (warnings are errors) and test =="
scripts/build.sh build -DTORO_WERROR=ON -DTORO_SANITIZE=OFF -DTORO_TESTS=ON
# shellcheck disable=SC2086 # TORO_CTEST_ARGS is a word list
(cd build && ctest --output-on-failure --timeout 900 ${TORO_CTEST_ARGS:-}) || status=1

echo "== AddressSanitizer + UndefinedBehaviorSanitizer build and test =="
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:halt_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
scripts/build.sh build-asan -DTORO_WERROR=ON -DTORO_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug -DTORO_TESTS=ON
# shellcheck disable=SC2086
(cd build-asan && ctest --output-on-failure --timeout 900 ${TORO_CTEST_ARGS:-}) || status=1

echo "== libFuzzer harnesses: bounded runs from the seed corpus in tests/fuzz/corpus =="
CC=clang scripts/build.sh build-fuzz -DTORO_WERROR=ON -DTORO_FUZZ=ON -DTORO_FUZZ_SECONDS="${TORO_FUZZ_SECONDS:-20}"
(cd build-fuzz && ctest -R '^fuzz\.' --output-on-failure --timeout 900) || status=1

exit $status
