# Helpers shared by the bench scripts (run.sh, tls.sh, ws.sh, testssl.sh);
# sourced, not run.
#
# The caller sets, before sourcing: bench_tag (prefix of messages) and
# caller_dir (the directory the user called from). After sourcing it calls
# bench_tmp to make its temporary directory, which also installs the traps
# that stop every server started with `start` on exit.
#
# The helpers that compare targets read the caller's settings: targets,
# tests, runs, warmup, duration, proxy_cpu, load_cpu, clk_tck, nginx_bin and
# nginx_version. Each run's figures go to $tmp/results.TEST.TARGET, one line
# per run, fields separated by spaces.
# shellcheck shell=sh disable=SC2154  # bench_tag, caller_dir, root, python and the settings: set by the caller

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

# check_wrk_settings: the BENCH_* settings of the wrk-driven scripts (run.sh,
# tls.sh) are whole numbers that make a run.
check_wrk_settings() {
  check_whole "BENCH_DURATION=$duration" "BENCH_CONNECTIONS=$connections" \
    "BENCH_THREADS=$threads" "BENCH_RUNS=$runs" "BENCH_WARMUP=$warmup" \
    "BENCH_PROXY_CPU=$proxy_cpu" "BENCH_LOAD_CPU=$load_cpu"
  [ "$duration" -ge 1 ] || die "BENCH_DURATION must be at least 1"
  [ "$runs" -ge 1 ] || die "BENCH_RUNS must be at least 1"
  [ "$threads" -ge 1 ] || die "BENCH_THREADS must be at least 1"
  [ "$connections" -ge "$threads" ] || die "BENCH_CONNECTIONS must be at least BENCH_THREADS"
}

# check_targets: $targets must be a non-empty list of direct, nginx, sluice.
check_targets() {
  [ -n "$targets" ] || die "BENCH_TARGETS is empty"
  for t in $targets; do
    case $t in
      direct | nginx | sluice) ;;
      *) die "BENCH_TARGETS: unknown target '$t' (known: direct nginx sluice)" ;;
    esac
  done
}

# wants TARGET: exit 0 when TARGET is one of $targets.
wants() {
  case " $targets " in *" $1 "*) return 0 ;; *) return 1 ;; esac
}

# check_cpus WHAT: both CPUs can be pinned to; a warning when WHAT (the proxy
# or gateway under test) shares its CPU with the load.
check_cpus() {
  for cpu in "$proxy_cpu" "$load_cpu"; do
    taskset -c "$cpu" true 2>/dev/null || die "cannot pin to CPU $cpu (this machine has $(nproc) CPUs; set BENCH_PROXY_CPU / BENCH_LOAD_CPU)"
  done
  [ "$proxy_cpu" != "$load_cpu" ] || say "warning: the $1 and the load share CPU $proxy_cpu"
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

# serve NAME CPU PORT COMMAND...: `start`s COMMAND and waits until PORT
# accepts; sets NAME_pid.
serve() {
  serve_name=$1 serve_cpu=$2 serve_port=$3
  shift 3
  start "$serve_name" "$serve_cpu" "$@"
  eval "${serve_name}_pid=\$started"
  wait_ready "$serve_name" "$started" "$serve_port"
}

# serve_nginx NAME CPU PORT: serves nginx on the config $tmp/NAME/nginx.conf,
# with $tmp/NAME as its prefix and error log folder.
serve_nginx() {
  serve "$1" "$2" "$3" "$nginx_bin" -p "$tmp/$1" -e "$tmp/$1/error.log" -c "$tmp/$1/nginx.conf"
}

# cpu_ticks PID: user + system CPU time, in clock ticks, of PID and of its
# children (an nginx master's worker), as the kernel counts them.
cpu_ticks() {
  # shellcheck disable=SC2013  # the file is one line of pids
  for p in "$1" $(cat "/proc/$1/task/$1/children" 2>/dev/null); do
    sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null || true
  done | awk '{ t += $12 + $13 } END { print t + 0 }'
}

# cpu_busy CPU: "BUSY TOTAL" jiffies of one CPU so far, from /proc/stat.
cpu_busy() {
  awk -v c="cpu$1" '$1 == c { t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t }' /proc/stat
}

# cpu_start PID: notes the time, PID's CPU time (none when PID is empty) and
# how busy CPU $load_cpu has been so far, for cpu_since.
cpu_start() {
  cpu_pid=$1
  cpu_ticks0=0
  if [ -n "$cpu_pid" ]; then cpu_ticks0=$(cpu_ticks "$cpu_pid"); fi
  cpu_busy0=$(cpu_busy "$load_cpu")
  cpu_t0=$(date +%s.%N)
}

# cpu_since: "cpu PID_PERCENT LOAD_CPU_BUSY_PERCENT" since cpu_start: the CPU
# time PID used, in percent of one CPU, and how busy CPU $load_cpu was.
cpu_since() {
  cpu_t1=$(date +%s.%N)
  cpu_busy1=$(cpu_busy "$load_cpu")
  cpu_ticks1=0
  if [ -n "$cpu_pid" ]; then cpu_ticks1=$(cpu_ticks "$cpu_pid"); fi
  awk -v t0="$cpu_t0" -v t1="$cpu_t1" -v k0="$cpu_ticks0" -v k1="$cpu_ticks1" -v hz="$clk_tck" \
    -v b0="$cpu_busy0" -v b1="$cpu_busy1" 'BEGIN {
    split(b0, a, " "); split(b1, b, " ")
    load = (b[2] > a[2]) ? 100 * (b[1] - a[1]) / (b[2] - a[2]) : 0
    printf "cpu %.1f %.1f\n", 100 * (k1 - k0) / hz / (t1 - t0), load }'
}

# measure_all TOOL: a warm-up of $warmup seconds per test and target, then
# $runs rounds of every test on every target in turn; each run's figures go
# to $tmp/results.TEST.TARGET. The caller defines measure TEST TARGET SECONDS
# OUT (one run of TOOL, its output in OUT), parse_run OUT (OUT -> one line of
# figures) and say_run TEST TARGET REP FIGURES... (the progress line of a run).
measure_all() {
  if [ "$warmup" -gt 0 ]; then
    for test in $tests; do
      for t in $targets; do
        say "$t $test: warm-up ${warmup}s"
        measure "$test" "$t" "$warmup" "$tmp/warmup.out"
      done
    done
  fi
  rep=1
  while [ "$rep" -le "$runs" ]; do
    for test in $tests; do
      for t in $targets; do
        out="$tmp/run.$test.$t.$rep"
        measure "$test" "$t" "$duration" "$out"
        line=$(parse_run "$out") || { cat "$out" >&2; die "$t $test: could not read $1's output"; }
        echo "$line" >>"$tmp/results.$test.$t"
        # shellcheck disable=SC2086  # split into its fields
        say_run "$test" "$t" "$rep" $line
      done
    done
    rep=$((rep + 1))
  done
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

# col TEST TARGET N: the median of field N over the runs.
col() {
  cut -d' ' -f"$3" "$tmp/results.$1.$2" | median
}

# per_run TEST TARGET N: field N of every run, rounded, comma-separated.
per_run() {
  cut -d' ' -f"$3" "$tmp/results.$1.$2" | awk '{ printf "%s%.0f", (NR > 1 ? ", " : ""), $1 }'
}

# total TEST TARGET N: the sum of field N over the runs.
total() {
  awk -v n="$3" '{ s += $n } END { print s + 0 }' "$tmp/results.$1.$2"
}

# range TEST FIELD TARGET: "MIN MAX" of FIELD over the runs.
range() {
  cut -d' ' -f"$2" "$tmp/results.$1.$3" | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { print lo, hi }'
}

# verdict WHAT TEST FIELD KEY RATIO UNIT: "met"/"not met" for Sluice's median
# against RATIO x nginx's (higher is better), from TEST_sluice_KEY,
# TEST_nginx_KEY and TEST_sluice_errors; FIELD is KEY's field in the runs.
verdict() {
  eval "s=\$${2}_sluice_${4} n=\$${2}_nginx_${4} e=\$${2}_sluice_errors"
  # shellcheck disable=SC2154  # s, n, e: set by the eval above
  pct=$(awk -v s="$s" -v n="$n" 'BEGIN { printf "%.1f", 100 * s / n }')
  figures=$(printf 'Sluice %.0f %s, nginx %.0f %s (Sluice at %s%% of nginx)' "$s" "$6" "$n" "$6" "$pct")
  if [ "$5" = 1 ]; then bar="nginx's"; else bar="$5 × nginx's"; fi
  if [ "$e" -gt 0 ]; then
    printf '%s' "**$1: target not met**: Sluice's runs had $e errors; $figures."
  elif awk -v s="$s" -v n="$n" -v r="$5" 'BEGIN { exit !(s >= r * n) }'; then
    printf '%s' "**$1: target met**: Sluice's median is at or above $bar; $figures."
  else
    printf '%s' "**$1: target not met**: Sluice's median is below $bar; $figures."
  fi
  range "$2" "$3" sluice >"$tmp/range.s"
  range "$2" "$3" nginx >"$tmp/range.n"
  awk 'NR == FNR { slo = $1; shi = $2; next } { nlo = $1; nhi = $2 } END {
    if (slo <= nhi && nlo <= shi)
      printf " The per-run figures overlap (Sluice %.0f to %.0f, nginx %.0f to %.0f): the difference is within the run-to-run spread.", slo, shi, nlo, nhi
  }' "$tmp/range.s" "$tmp/range.n"
  echo
}

# label TARGET: the target's name in a report's table.
label() {
  case $1 in
    direct) echo "direct (baseline)" ;;
    nginx) echo "nginx ${nginx_version#nginx/}" ;;
    sluice) echo "Sluice" ;;
  esac
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

# sh_block LINE...: the lines as a Markdown code block of sh.
sh_block() {
  echo '```sh'
  printf '%s\n' "$@"
  echo '```'
}

# machine_lines: the report's lines on the machine, its load before and after
# the run ($load_before, $load_after) and $BENCH_NOTE.
machine_lines() {
  echo "- CPUs (nproc): $(nproc); CPU model: $(cpu_model); kernel: $(uname -sr)"
  echo "- Load average (1/5/15 min) before: $load_before; after: $load_after"
  if [ -n "${BENCH_NOTE:-}" ]; then echo "- Note: $BENCH_NOTE"; fi
}
