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
nodejs:/usr/bin/node
npm:/usr/bin/npm
"
if [ "${1:-}" = "--test" ] || [ "${1:-}" = "--bench" ]; then
  need="$need
nginx-light:/usr/sbin/nginx
python3-websockets:/usr/lib/python3/dist-packages/websockets/__init__.py
wrk:/usr/bin/wrk
"
fi
# The browser test drives Debian's chromium (never a downloaded browser).
if [ "${1:-}" = "--test" ]; then
  need="$need
chromium:/usr/bin/chromium
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

# Node packages from the npm registry, pinned by each folder's
# package-lock.json (run after the Debian packages are in): demo/ (the demo
# chat server's `ws`) always, tests/node (the test peers' `ws`, and
# playwright-core for the browser test) for --test and --bench. A folder is
# installed again when its lock file is newer than the record npm keeps of
# its last install (node_modules/.package-lock.json). No browser is ever
# downloaded: playwright-core has no install step that would, and
# PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 says so should that change.
npm_folder() {
  dir=$(dirname "$0")/../$1
  installed=$dir/node_modules/.package-lock.json
  [ -f "$installed" ] && [ -z "$(find "$dir/package-lock.json" -newer "$installed")" ] &&
    return 0
  echo "install-deps: installing Node packages (npm ci in $1)" >&2
  (cd "$dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 \
    npm ci --no-audit --no-fund --loglevel=error >/dev/null)
}
node_packages() {
  npm_folder demo
  [ "${1:-}" = "--test" ] || [ "${1:-}" = "--bench" ] || return 0
  npm_folder tests/node
}

missing=""
for entry in $need; do
  pkg=${entry%%:*}
  file=${entry#*:}
  [ -e "$file" ] || missing="$missing $pkg"
done
if [ -z "$missing" ]; then
  node_packages "${1:-}"
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
node_packages "${1:-}"
