#!/bin/sh
# Makes the self-signed certificate that the TLS listener of conf/sluice.toml
# uses for `make run` and the tests: ECDSA P-256, CN=localhost, names
# localhost, 127.0.0.1 and ::1, valid 825 days. For development only.
# Idempotent and quiet: it does nothing (and prints nothing) when
# conf/dev/localhost.pem and conf/dev/localhost.key are both there. Delete
# them to get a new pair.
set -eu
cd "$(dirname "$0")/.."

dir=conf/dev
cert=$dir/localhost.pem
key=$dir/localhost.key
[ -f "$cert" ] && [ -f "$key" ] && exit 0

command -v openssl >/dev/null 2>&1 || {
  echo "dev-cert: openssl not found (run scripts/install-deps.sh as root)" >&2
  exit 1
}
mkdir -p "$dir"

# Two builds started together must not each write one half of a pair: the
# second waits for the first, then finds both files and stops.
lock=$dir/.lock
tries=0
until mkdir "$lock" 2>/dev/null; do
  tries=$((tries + 1))
  if [ "$tries" -ge 30 ]; then
    echo "dev-cert: $lock has been held for 30s; remove it if no build is running" >&2
    exit 1
  fi
  sleep 1
done
tmp_cert=$cert.tmp.$$
tmp_key=$key.tmp.$$
log=$dir/.openssl.log.$$
trap 'rm -f "$tmp_cert" "$tmp_key" "$log"; rmdir "$lock"' EXIT
trap 'exit 1' HUP INT TERM
[ -f "$cert" ] && [ -f "$key" ] && exit 0

# umask 077: the key is never readable by others, not even before the chmod.
if ! (umask 077 && openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
      -noenc -sha256 -days 825 -subj /CN=localhost \
      -addext "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1" \
      -keyout "$tmp_key" -out "$tmp_cert") >"$log" 2>&1; then
  cat "$log" >&2
  echo "dev-cert: openssl failed to make $cert" >&2
  exit 1
fi
chmod 600 "$tmp_key"
chmod 644 "$tmp_cert"
mv -f "$tmp_key" "$key"
mv -f "$tmp_cert" "$cert"
echo "dev-cert: wrote $cert and $key (self-signed for localhost, development only)" >&2
