#!/usr/bin/env bash
# The fresh-machine check: does the README's run command work on a clean
# Debian 12? Builds (or reuses from the cache) a debootstrap --variant=minbase
# root of bookworm, copies into it the checkout (tracked files plus untracked,
# not ignored ones: uncommitted changes are checked too; in CI's clean clone
# that is exactly HEAD) and this machine's CA bundle, pip/npm/apt settings and
# proxy environment (so the package registries answer as they do here), then
# runs `scripts/run.sh --port 0` inside it until /healthz answers, stops it
# with SIGTERM and expects a clean exit.
#
# Isolation: the root runs in its own PID namespace (it cannot see or signal
# the host's processes, nats-server and PostgreSQL included) and its own mount
# namespace (/proc, /dev, /dev/pts, /dev/shm are mounted there and vanish with
# it, even on failure); the network is shared, since it needs the registries.
# Nothing of the host is changed but the cache directory and the temporary
# root, which is removed at the end (TORO_FRESH_KEEP=1 keeps it).
#
# Usage (as root): scripts/fresh-check.sh [--shell] [-- COMMAND...]
#   (no argument)   the check above
#   -- COMMAND...   run COMMAND (in the checkout, inside the root) instead of
#                   the check, e.g. `scripts/fresh-check.sh -- scripts/test.sh`
#   --shell         an interactive shell in a fresh root (for debugging)
# Environment:
#   TORO_FRESH_CACHE    cache directory (default /var/cache/toro-fresh): the base
#                       root tarball and the downloaded .deb files
#   TORO_FRESH_NOCACHE  1: ignore the cache (a cold run; the cache is not written)
#   TORO_FRESH_TIMEOUT  seconds to wait for /healthz (default 1800)
#   TORO_FRESH_MIRROR   Debian mirror (default: this machine's, else deb.debian.org)
#   TORO_FRESH_KEEP     1: keep the root and its log afterwards
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

cache=${TORO_FRESH_CACHE:-/var/cache/toro-fresh}
nocache=${TORO_FRESH_NOCACHE:-0}
timeout=${TORO_FRESH_TIMEOUT:-1800}
suite=bookworm
mode=check
cmd=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --shell) mode=shell; shift ;;
    --) shift; mode=command; cmd=("$@"); break ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "fresh-check.sh: unknown argument '$1' (--help)" >&2; exit 2 ;;
  esac
done
if [[ $mode == command && ${#cmd[@]} -eq 0 ]]; then
  echo "fresh-check.sh: -- needs a command" >&2
  exit 2
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "fresh-check.sh: needs root (debootstrap, chroot, namespaces); run it as root" >&2
  exit 1
fi
for tool in debootstrap unshare chroot curl; do
  if ! command -v "$tool" >/dev/null; then
    case "$tool" in
      debootstrap|curl)
        echo "fresh-check.sh: installing $tool" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$tool" >/dev/null ;;
      *) echo "fresh-check.sh: $tool is missing" >&2; exit 1 ;;
    esac
  fi
done

mirror=${TORO_FRESH_MIRROR:-}
if [[ -z $mirror ]]; then
  mirror=$(grep -h -m1 -E '^URIs:.*/debian/?$' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | head -1 || true)
  [[ -n $mirror ]] || mirror=http://deb.debian.org/debian
fi

t0=$(date +%s)
work=$(mktemp -d /var/tmp/toro-fresh.XXXXXX)
root=$work/root
log=$work/run.log
ns_pid=

cleanup() {
  local rc=$?
  if [[ -n $ns_pid ]] && kill -0 "$ns_pid" 2>/dev/null; then
    # unshare --kill-child: its child, the namespace's PID 1, gets SIGKILL and
    # with it every process of the namespace
    kill -KILL "$ns_pid" 2>/dev/null || true
    wait "$ns_pid" 2>/dev/null || true
  fi
  save_debs || true
  # The mounts live in the namespaces' own mount tables and are gone with
  # them; should anything still be mounted under the work directory here,
  # unmount it (deepest first) and refuse to delete what stays mounted.
  local m
  for m in $(awk -v w="$work/" 'index($2, w) == 1 {print $2}' /proc/self/mounts | sort -r); do
    umount -l "$m" 2>/dev/null || true
  done
  if [[ ${TORO_FRESH_KEEP:-0} == 1 ]]; then
    echo "fresh-check.sh: kept $work" >&2
  elif [[ -d $work ]]; then
    if grep -q " $work" /proc/self/mounts; then
      echo "fresh-check.sh: something is still mounted under $work; not removing it" >&2
    else
      rm -rf --one-file-system "$work"
    fi
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# 1. The base root: debootstrap once, then from the cache.
mkdir -p "$root"
base=$cache/$suite-minbase.tar.gz
if [[ $nocache != 1 && -f $base ]]; then
  echo "== base root from the cache ($base)"
  tar -C "$root" -xzf "$base"
else
  echo "== debootstrap --variant=minbase $suite ($mirror)"
  # in a mount namespace of its own: its /proc, /sys, /dev mounts of the
  # target never reach the host's mount table, even if it is killed
  unshare --mount --propagation private -- \
    debootstrap --variant=minbase "$suite" "$root" "$mirror" >"$work/debootstrap.log" 2>&1 ||
    { tail -20 "$work/debootstrap.log" >&2; echo "fresh-check.sh: debootstrap failed" >&2; exit 1; }
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*_Packages
  if [[ $nocache != 1 ]]; then
    mkdir -p "$cache"
    tar -C "$root" -czf "$base.tmp" . && mv "$base.tmp" "$base"
  fi
fi
echo "   ($(($(date +%s) - t0)) s)"

# 2. This machine's settings for reaching the registries.
copy() { # copy SRC (file or directory) into the root at the same path, when it exists
  [[ -e $1 ]] || return 0
  if [[ -d $1 ]]; then
    mkdir -p "$root$1"
    cp -a "$1/." "$root$1/"
  else
    mkdir -p "$root$(dirname "$1")"
    cp -a "$1" "$root$1"
  fi
}
cp -L /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
[[ -e $root/etc/hosts ]] || printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
mkdir -p "$root/etc/ssl/certs"
cp -L /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt" 2>/dev/null || true
copy /usr/local/share/ca-certificates   # kept when the root's ca-certificates package rebuilds the bundle
for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list; do
  [[ -e $f ]] && cp -a "$f" "$root/etc/apt/sources.list.d/"
done
if ls "$root"/etc/apt/sources.list.d/*.sources >/dev/null 2>&1; then
  rm -f "$root/etc/apt/sources.list"   # the same suites as the host, not twice
fi
for f in /etc/apt/apt.conf.d/*; do     # proxies and mirror settings, not docker's cleaning hooks
  grep -qi 'acquire' "$f" 2>/dev/null && cp -a "$f" "$root/etc/apt/apt.conf.d/"
done
copy /etc/pip.conf
copy /etc/xdg/pip
copy /root/.config/pip
copy /root/.pip
copy /root/.npmrc
copy /etc/npmrc
env_pass=()
while IFS='=' read -r name _; do
  env_pass+=("$name=${!name}")
done < <(env | grep -E '^(PIP_[A-Z_]*|NPM_CONFIG_[A-Za-z_]*|npm_config_[A-Za-z_]*|https?_proxy|HTTPS?_PROXY|no_proxy|NO_PROXY|SSL_CERT_FILE|SSL_CERT_DIR|REQUESTS_CA_BUNDLE|CURL_CA_BUNDLE|NODE_EXTRA_CA_CERTS|PIP_CERT)=' || true)

# Downloaded .deb files are kept between runs (what apt would fetch again):
# linked into the root now, the new ones linked back into the cache at the
# end, so parallel checks never share apt's lock.
save_debs() {
  [[ $nocache != 1 && -d $root/var/cache/apt/archives ]] || return 0
  find "$root/var/cache/apt/archives" -maxdepth 1 -name '*.deb' -exec cp -n --link -t "$cache/apt-archives" {} + \
    2>/dev/null || find "$root/var/cache/apt/archives" -maxdepth 1 -name '*.deb' -exec cp -n -t "$cache/apt-archives" {} +
}
if [[ $nocache != 1 ]]; then
  mkdir -p "$cache/apt-archives"
  find "$cache/apt-archives" -maxdepth 1 -name '*.deb' -exec cp -n --link -t "$root/var/cache/apt/archives" {} + \
    2>/dev/null || find "$cache/apt-archives" -maxdepth 1 -name '*.deb' -exec cp -n -t "$root/var/cache/apt/archives" {} +
fi

# 3. The checkout.
mkdir -p "$root/src/toro"
git -C "$repo" ls-files -z --cached --others --exclude-standard |
  (cd "$repo" && while IFS= read -r -d '' f; do [[ -e $f || -L $f ]] && printf '%s\0' "$f"; done) |
  tar -C "$repo" --null -T - -cf - | tar -C "$root/src/toro" -xf -
echo "== checkout copied ($(git -C "$repo" rev-parse --short HEAD)$(git -C "$repo" diff --quiet HEAD 2>/dev/null || echo ' + uncommitted changes'))"

# 4. The inner script: PID 1 of the new namespaces. Mounts /proc and a
# minimal /dev, then runs the command in the chroot.
cat >"$work/pid1.sh" <<'EOF'
#!/bin/bash
set -eu
root=$1; shift
mount -t proc proc "$root/proc"
mount -t tmpfs -o mode=755,nosuid dev "$root/dev"
for d in null zero full random urandom tty; do
  touch "$root/dev/$d"
  mount --bind "/dev/$d" "$root/dev/$d"
done
mkdir -p "$root/dev/pts" "$root/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666 devpts "$root/dev/pts"
ln -s pts/ptmx "$root/dev/ptmx"
mount -t tmpfs -o mode=1777,nosuid,nodev shm "$root/dev/shm"
ln -s /proc/self/fd "$root/dev/fd"
ln -s /proc/self/fd/0 "$root/dev/stdin"
ln -s /proc/self/fd/1 "$root/dev/stdout"
ln -s /proc/self/fd/2 "$root/dev/stderr"
child=
trap '[[ -n $child ]] && kill -TERM "$child" 2>/dev/null' TERM INT
chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  LANG=C.UTF-8 TERM="${TERM:-dumb}" "$@" &
child=$!
set +e
wait "$child"
rc=$?
if [[ $rc -gt 128 ]]; then wait "$child"; rc=$?; fi   # interrupted by our trap: wait for the real end
exit $rc
EOF
chmod +x "$work/pid1.sh"
# runs the words after it inside the root, in the checkout
in_root=(unshare --pid --fork --kill-child=SIGKILL --mount --propagation private --
         "$work/pid1.sh" "$root" env "${env_pass[@]}" /bin/bash -c 'cd /src/toro && exec "$@"' bash)

case $mode in
  shell) "${in_root[@]}" /bin/bash -i; exit $? ;;
  command)
    t1=$(date +%s)
    set +e
    "${in_root[@]}" "${cmd[@]}"
    rc=$?
    set -e
    echo "== '${cmd[*]}' exited $rc after $(($(date +%s) - t1)) s (total $(($(date +%s) - t0)) s)"
    exit $rc ;;
esac

# 5. The check: the README's run command, on a free port.
echo "== scripts/run.sh --port 0 in the fresh root (log: $log)"
t1=$(date +%s)
"${in_root[@]}" scripts/run.sh --port 0 >"$log" 2>&1 &
ns_pid=$!
port=
deadline=$(($(date +%s) + timeout))
while [[ $(date +%s) -lt $deadline ]]; do
  if ! kill -0 "$ns_pid" 2>/dev/null; then
    tail -40 "$log" >&2
    echo "fresh-check.sh: FAILED: scripts/run.sh exited before serving" >&2
    exit 1
  fi
  if [[ -z $port ]]; then
    port=$(sed -n 's|^listening on https\?://[^:]*:\([0-9]*\)$|\1|p' "$log" | head -1)
  fi
  if [[ -n $port ]] && body=$(curl -sf --max-time 5 "http://127.0.0.1:$port/healthz"); then
    break
  fi
  sleep 1
done
if [[ -z ${body:-} ]]; then
  tail -40 "$log" >&2
  echo "fresh-check.sh: FAILED: no /healthz answer within $timeout s" >&2
  exit 1
fi
echo "   /healthz on port $port after $(($(date +%s) - t1)) s: $body"

# 6. Stop it: SIGTERM to the namespace's PID 1, which passes it to run.sh's
# `exec toro serve`; a clean shutdown exits 0.
pid1=$(pgrep -P "$ns_pid" | head -1 || true)
if [[ -z $pid1 ]]; then
  echo "fresh-check.sh: FAILED: cannot find the namespace's PID 1" >&2
  exit 1
fi
kill -TERM "$pid1"
set +e
wait "$ns_pid"
rc=$?
set -e
ns_pid=
if [[ $rc -ne 0 ]]; then
  tail -20 "$log" >&2
  echo "fresh-check.sh: FAILED: toro serve exited $rc after SIGTERM" >&2
  exit 1
fi
# 7. The run command installs what running needs, not the test tools.
extra=()
for p in libcmocka-dev clang postgresql nats-server chromium; do
  chroot "$root" dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" && extra+=("$p")
done
if [[ ${#extra[@]} -gt 0 ]]; then
  echo "fresh-check.sh: FAILED: scripts/run.sh installed test packages: ${extra[*]}" >&2
  exit 1
fi
echo "== fresh-machine check passed in $(($(date +%s) - t0)) s"
