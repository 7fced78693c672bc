#!/bin/sh
# Installs Sluice's build and test dependencies from Debian's packages.
# Idempotent and quiet: it does nothing (and prints nothing) when all is there.
set -eu

# Each entry is "package:file-that-proves-it-is-installed".
need="
build-essential:/usr/bin/g++
cmake:/usr/bin/cmake
ninja-build:/usr/bin/ninja
pkg-config:/usr/bin/pkg-config
libuv1-dev:/usr/include/uv.h
libssl-dev:/usr/include/openssl/ssl.h
openssl:/usr/bin/openssl
libtomlplusplus-dev:/usr/include/toml++/toml.h
catch2:/usr/include/catch2/catch.hpp
node-llhttp:/usr/share/llhttp/llhttp.c
curl:/usr/bin/curl
python3:/usr/bin/python3
"
if [ "${1:-}" = "--test" ] || [ "${1:-}" = "--bench" ]; then
  need="$need
nginx-light:/usr/sbin/nginx
python3-websockets:/usr/lib/python3/dist-packages/websockets/__init__.py
nodejs:/usr/bin/node
npm:/usr/bin/npm
wrk:/usr/bin/wrk
"
fi
if [ "${1:-}" = "--fuzz" ]; then
  need="$need
clang-14:/usr/bin/clang++-14
clang:/usr/bin/clang++
libclang-rt-14-dev:/usr/lib/llvm-14/lib/clang/14.0.6/lib/linux/libclang_rt.fuzzer-x86_64.a
"
fi
if [ "${1:-}" = "--bench" ]; then
  need="$need
util-linux:/usr/bin/taskset
"
fi

# Node packages for the test peers, from the npm registry, pinned by
# tests/node/package-lock.json (run after the Debian packages are in).
node_peers() {
  [ "${1:-}" = "--test" ] || [ "${1:-}" = "--bench" ] || return 0
  dir=$(dirname "$0")/../tests/node
  [ -f "$dir/node_modules/ws/package.json" ] && return 0
  echo "install-deps: installing the Node test peers (npm ci in tests/node)" >&2
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
}

missing=""
for entry in $need; do
  pkg=${entry%%:*}
  file=${entry#*:}
  [ -e "$file" ] || missing="$missing $pkg"
done
if [ -z "$missing" ]; then
  node_peers "${1:-}"
  exit 0
fi

if [ "$(id -u)" != 0 ]; then
  echo "install-deps: missing packages:$missing (run as root, or install them with apt-get)" >&2
  exit 1
fi
echo "install-deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
node_peers "${1:-}"
