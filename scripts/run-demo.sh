#!/bin/sh
# Runs the demo that `make run` shows: the two demo upstreams in the
# background, demo/backend.py (the static chat page and a few HTTP endpoints)
# on 127.0.0.1:9000 and demo/chat_server.js (the broadcast chat, Node's `ws`)
# on 127.0.0.1:9001, then the gateway in the foreground, in front of both.
#
#   sh scripts/run-demo.sh build/sluice conf/sluice.toml
#
# Ctrl-C reaches the gateway (it is the foreground job), which drains and
# exits; then the upstreams are stopped, so nothing is left running. The
# upstreams are started by this script and never signalled by anyone else's
# name: only their pids are. The exit status is the gateway's.
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
node=/usr/bin/node
[ -x "$node" ] || die "$node not found (run scripts/install-deps.sh as root)"
root=$(cd "$(dirname "$0")/.." && pwd)
[ -f "$root/demo/node_modules/ws/package.json" ] ||
  die "Node's ws is not installed in demo/ (run scripts/install-deps.sh as root)"
# The demo config sends its routes to 127.0.0.1:9000 and /chat to
# 127.0.0.1:9001; the overrides are for trying the script while a port is taken.
backend_port=${SLUICE_DEMO_BACKEND_PORT:-9000}
chat_port=${SLUICE_DEMO_CHAT_PORT:-9001}
ready_timeout=10   # seconds each upstream gets to accept connections

# shellcheck source=scripts/lib.sh
. "$root/scripts/lib.sh"

backend_pid=
chat_pid=
phase=starting   # starting -> gateway (running in the foreground) -> finished

# shellcheck disable=SC2317  # called from traps
stop_upstreams() {
  for pid in $chat_pid $backend_pid; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in $chat_pid $backend_pid; do
    wait "$pid" 2>/dev/null || true
  done
  chat_pid=
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
trap stop_upstreams EXIT
trap 'on_signal 130' INT
trap 'on_signal 143' TERM

# wait_listening NAME PID PORT: until the upstream accepts on 127.0.0.1:PORT;
# stops the script if it exits first or takes longer than ready_timeout.
wait_listening() {
  deadline=$(( $(date +%s) + ready_timeout ))
  until port_open "$3"; do
    kill -0 "$2" 2>/dev/null ||
      die "the $1 exited before listening on 127.0.0.1:$3 (see its message above)"
    if [ "$(date +%s)" -ge "$deadline" ]; then
      die "the $1 did not accept connections on 127.0.0.1:$3 within ${ready_timeout}s"
    fi
    sleep 0.1
  done
}

for port in "$backend_port" "$chat_port"; do
  if port_open "$port"; then
    die "something already listens on 127.0.0.1:$port; stop it first (the demo upstreams need ports $backend_port and $chat_port)"
  fi
done

"$python" "$root/demo/backend.py" --port "$backend_port" &
backend_pid=$!
"$node" "$root/demo/chat_server.js" --port "$chat_port" &
chat_pid=$!
wait_listening "demo backend" "$backend_pid" "$backend_port"
wait_listening "demo chat server" "$chat_pid" "$chat_port"

echo "Sluice: open https://localhost:8443/ or http://127.0.0.1:8080/  (Ctrl-C stops)"
echo "        a chat through Sluice's /chat WebSocket route; open it in two tabs to talk"
echo "        (the TLS certificate is self-signed, made by scripts/dev-cert.sh in conf/dev/:"
echo "        your browser will warn once)"
phase=gateway
status=0
"$gateway" -c "$config" || status=$?
phase=finished
exit "$status"
