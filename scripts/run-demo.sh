#!/bin/sh
# Runs the demo that `make run` shows: demo/backend.py on 127.0.0.1:9000 in the
# background and the gateway in the foreground, in front of it.
#
#   sh scripts/run-demo.sh build/sluice conf/sluice.toml
#
# Ctrl-C reaches the gateway (it is the foreground job), which drains and
# exits; then the backend is stopped, so nothing is left running. The backend
# is started by this script and never by anyone else's name: only its pid is
# signalled. The exit status is the gateway's.
set -eu

usage() {
  echo "usage: sh scripts/run-demo.sh SLUICE_BINARY CONFIG" >&2
  exit 2
}
die() {
  echo "run-demo: $*" >&2
  exit 1
}

[ $# -eq 2 ] || usage
gateway=$1
config=$2
[ -x "$gateway" ] || die "$gateway: not an executable (build it first: make build)"
[ -r "$config" ] || die "$config: cannot read the config"

python=/usr/bin/python3
[ -x "$python" ] || die "$python not found (install python3)"
root=$(cd "$(dirname "$0")/.." && pwd)
backend_script="$root/demo/backend.py"
# The demo config sends its routes to 127.0.0.1:9000; the override is for
# trying the script while that port is taken.
port=${SLUICE_DEMO_BACKEND_PORT:-9000}
ready_timeout=10   # seconds the backend gets to accept connections

# shellcheck source=scripts/lib.sh
. "$root/scripts/lib.sh"

backend_pid=
phase=starting   # starting -> gateway (running in the foreground) -> finished

# shellcheck disable=SC2317  # called from traps
stop_backend() {
  [ -n "$backend_pid" ] || return 0
  kill -TERM "$backend_pid" 2>/dev/null || true
  wait "$backend_pid" 2>/dev/null || true
  backend_pid=
}

# While the gateway runs, Ctrl-C is the gateway's to handle (it gets the same
# SIGINT from the terminal and drains); the trap runs once the gateway has
# exited, and the script then exits with the gateway's status. Before that,
# a signal ends the script at once.
# shellcheck disable=SC2317  # called from traps
on_signal() {
  [ "$phase" = gateway ] && return 0
  exit "$1"
}
trap stop_backend EXIT
trap 'on_signal 130' INT
trap 'on_signal 143' TERM

if port_open "$port"; then
  die "something already listens on 127.0.0.1:$port; stop it first (the demo backend needs that port)"
fi

"$python" "$backend_script" --port "$port" &
backend_pid=$!

deadline=$(( $(date +%s) + ready_timeout ))
until port_open "$port"; do
  if ! kill -0 "$backend_pid" 2>/dev/null; then
    wait "$backend_pid" 2>/dev/null || true
    backend_pid=
    die "the demo backend exited before listening on 127.0.0.1:$port (see its message above)"
  fi
  if [ "$(date +%s)" -ge "$deadline" ]; then
    die "the demo backend did not accept connections on 127.0.0.1:$port within ${ready_timeout}s"
  fi
  sleep 0.1
done

echo "Sluice: open http://127.0.0.1:8080/ or https://localhost:8443/  (Ctrl-C stops)"
echo "        (the TLS certificate is self-signed, made by scripts/dev-cert.sh in conf/dev/)"
phase=gateway
status=0
"$gateway" -c "$config" || status=$?
phase=finished
exit "$status"
