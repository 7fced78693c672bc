# Helpers shared by bench/run.sh and bench/tls.sh; sourced, not run.
#
# The caller sets, before sourcing: bench_tag (prefix of messages) and
# caller_dir (the directory the user called from). After sourcing it calls
# bench_tmp to make its temporary directory, which also installs the traps
# that stop every server started with `start` on exit.
# shellcheck shell=sh disable=SC2154  # bench_tag, caller_dir, root, python: set by the caller

die() {
  echo "$bench_tag: $*" >&2
  exit 1
}
say() {
  echo "$bench_tag: $*" >&2
}

# Paths given by the caller are relative to where they called from; the
# defaults are relative to the repository.
abspath() {
  case $1 in
    /*) printf '%s\n' "$1" ;;
    *) printf '%s\n' "$caller_dir/$1" ;;
  esac
}

# check_whole NAME=VALUE...: each VALUE must be a whole number.
check_whole() {
  for setting in "$@"; do
    case ${setting#*=} in
      '' | *[!0-9]*) die "${setting%%=*} must be a whole number, not '${setting#*=}'" ;;
    esac
  done
}

# Exit 0 while the process lives (a zombie counts as gone).
alive() {
  [ -r "/proc/$1/stat" ] || return 1
  state=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)
  [ -n "$state" ] && [ "$state" != Z ]
}

# shellcheck disable=SC2317  # called from the EXIT trap
cleanup() {
  for pid in $pids; do kill -TERM "$pid" 2>/dev/null || true; done
  deadline=$(( $(date +%s) + 15 ))
  for pid in $pids; do
    while alive "$pid" && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.1; done
    if alive "$pid"; then
      say "pid $pid did not stop on SIGTERM; killing it"
      # An nginx master killed outright leaves its workers: take them too.
      # shellcheck disable=SC2013  # the file is one line of pids
      for child in $(cat "/proc/$pid/task/$pid/children" 2>/dev/null); do
        kill -KILL "$child" 2>/dev/null || true
      done
      kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
  done
  pids=""
  rm -rf "$tmp"
}

# bench_tmp NAME: makes the run's temp dir ($tmp) and installs the traps.
bench_tmp() {
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
  pids=""
  trap cleanup EXIT
  trap 'say interrupted; exit 130' INT
  trap 'say terminated; exit 143' TERM
}

# shellcheck source=scripts/lib.sh
. "$root/scripts/lib.sh"

# free_ports N: N distinct free loopback ports, held open together while they
# are chosen, on one line.
free_ports() {
  "$python" -c '
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
' "$1"
}

# start NAME CPU COMMAND...: runs COMMAND pinned to CPU in the background,
# output to $tmp/NAME.log; sets $started to its pid.
start() {
  name=$1 cpu=$2
  shift 2
  taskset -c "$cpu" "$@" >"$tmp/$name.log" 2>&1 &
  started=$!
  pids="$pids $started"
}

# wait_ready NAME PID PORT: waits (at most 10 s) for PORT to accept.
wait_ready() {
  deadline=$(( $(date +%s) + 10 ))
  until port_open "$3"; do
    if ! alive "$2"; then
      tail -n 20 "$tmp/$1.log" >&2 || true
      die "$1 exited before listening on 127.0.0.1:$3 (its output is above)"
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      tail -n 20 "$tmp/$1.log" >&2 || true
      die "$1 did not accept connections on 127.0.0.1:$3 within 10 s"
    fi
    sleep 0.1
  done
  alive "$2" || die "$1 is gone, yet 127.0.0.1:$3 accepts: another program took the port; run again"
}

# cpu_ticks PID: user + system CPU time, in clock ticks, of PID and of its
# children (an nginx master's worker), as the kernel counts them.
cpu_ticks() {
  # shellcheck disable=SC2013  # the file is one line of pids
  for p in "$1" $(cat "/proc/$1/task/$1/children" 2>/dev/null); do
    sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null || true
  done | awk '{ t += $12 + $13 } END { print t + 0 }'
}

# wrk --latency output -> "REQUESTS_PER_S P99_MS ERRORS"
parse_wrk() {
  awk '
    /^Requests\/sec:/ { rps = $2 }
    $1 == "99%" {
      n = $2 + 0; u = $2; sub(/^[0-9.]+/, "", u)
      if (u == "us") p99 = n / 1000
      else if (u == "ms") p99 = n
      else if (u == "s") p99 = n * 1000
      else if (u == "m") p99 = n * 60000
      else if (u == "h") p99 = n * 3600000
    }
    /Non-2xx or 3xx responses:/ { errors += $NF }
    /Socket errors:/ { gsub(/,/, ""); errors += $4 + $6 + $8 + $10 }
    END {
      if (rps == "" || p99 == "") exit 1
      printf "%s %.3f %d\n", rps, p99, errors
    }' "$1"
}

# The middle value of the numbers on stdin (mean of the two middle ones for an even count).
median() {
  sort -g | awk '{ v[NR] = $1 } END {
    if (NR == 0) exit 1
    if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# sluice_version BIN: "sluice X.Y.Z, tree COMMIT[ + uncommitted changes]".
sluice_version() {
  if version_out=$(timeout 5 "$1" --version 2>&1) && [ -n "$version_out" ]; then
    version=$(printf '%s\n' "$version_out" | head -n 1)
  else
    version="(no --version output)"
  fi
  if commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null); then
    [ -z "$(git -C "$root" status --porcelain 2>/dev/null)" ] || commit="$commit + uncommitted changes"
  else
    commit="no commit yet"
  fi
  printf '%s, tree %s\n' "$version" "$commit"
}

cpu_model() {
  model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
  printf '%s\n' "${model:-unknown}"
}
