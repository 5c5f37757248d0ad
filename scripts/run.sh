#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to a running toro: installs the
# packages, builds, builds the sample knowledge base and serves it on the
# embedded defaults (http://127.0.0.1:8080, data in ./data). Extra arguments go
# to `toro serve` (for example --port 9090).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh build
./build/toro kb build kb/docs -o build/sample-kb.toro --embedder "${TORO_EMBEDDER:-auto}"  # auto: e5 when built in (hybrid retrieval)
exec ./build/toro serve --data "${TORO_DATA:-data}" --kb build/sample-kb.toro "$@"
