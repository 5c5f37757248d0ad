#!/usr/bin/env bash
# Builds the zip of toro's Lambda functions (deploy/aws/template.yaml): the
# toro binary, `bootstrap` (the provided.al2023 entry point: it execs
# `toro lambda`, the handler coming from _HANDLER), the shared libraries the
# binary needs beyond glibc (lib/, on LD_LIBRARY_PATH), and the knowledge-base
# snapshot kb.toro (TORO_KB=/var/task/kb.toro), built from kb/docs unless
# --kb FILE gives one.
#
# Usage: scripts/lambda-package.sh [--build DIR] [--kb FILE] [--out ZIP]
#   default build dir build-lambda (Release, no tests), zip build/lambda/toro-lambda.zip
#
# The binary links against this machine's glibc: built on Debian 12 (glibc
# 2.36) it needs symbols Amazon Linux 2023 (glibc 2.34) may lack, which this
# script reports. Build on Amazon Linux 2023 (or in its container image,
# public.ecr.aws/amazonlinux/amazonlinux:2023) for a zip that surely runs.
set -euo pipefail
cd "$(dirname "$0")/.."
build=build-lambda kb="" out=build/lambda/toro-lambda.zip
while [ $# -gt 0 ]; do
    case "$1" in
    --build) build=$2; shift 2 ;;
    --kb) kb=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "lambda-package: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
scripts/build.sh "$build" -DCMAKE_BUILD_TYPE=Release -DTORO_TESTS=OFF -DTORO_SANITIZE=OFF
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/lib" "$(dirname "$out")"
cp "$build/toro" "$stage/toro"
strip "$stage/toro" 2>/dev/null || true
if [ -z "$kb" ]; then
    "$build/toro" kb build kb/docs -o "$stage/kb.toro" >/dev/null
else
    cp "$kb" "$stage/kb.toro"
fi
# every shared library but glibc's own (the runtime provides those)
ldd "$build/toro" | awk '/=> \// {print $3}' | while read -r lib; do
    case "$(basename "$lib")" in
    libc.so.*|libm.so.*|libpthread.so.*|libdl.so.*|librt.so.*|ld-linux*|libresolv.so.*) ;;
    *) cp -L "$lib" "$stage/lib/" ;;
    esac
done
cat > "$stage/bootstrap" <<'SH'
#!/bin/sh
# provided.al2023 runs this; _HANDLER (the function's Handler) picks the toro function.
set -eu
export LD_LIBRARY_PATH="${LAMBDA_TASK_ROOT:-/var/task}/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
exec "${LAMBDA_TASK_ROOT:-/var/task}/toro" lambda
SH
chmod 755 "$stage/bootstrap" "$stage/toro"
rm -f "$out"
abs_out=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")
(cd "$stage" && zip -qr -X "$abs_out" bootstrap toro kb.toro lib)
glibc=$(objdump -T "$stage/toro" "$stage"/lib/* 2>/dev/null | grep -o 'GLIBC_2\.[0-9]*' | sort -t. -k2 -n -u | tail -1)
echo "lambda-package: $out ($(du -h "$out" | cut -f1)); needs ${glibc:-GLIBC ?} (Amazon Linux 2023 has GLIBC_2.34)"
