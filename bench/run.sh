#!/bin/sh
# Keep-alive GET throughput and p99 latency of Sluice against nginx, each as a
# one-worker reverse proxy in front of the same backend, measured with wrk.
#
#   sh bench/run.sh            (or: make bench)
#
# Layout on a 2-CPU machine: the proxy under test runs alone on CPU 0; the
# shared backend (its own nginx, one worker, a fixed small body) and wrk share
# CPU 1. Both proxies get exactly the same pinning, backend and load. A direct
# wrk -> backend run gives the baseline. Each target is measured BENCH_RUNS
# times, alternating, and the median is reported. The table is printed and
# written to bench/RESULTS.md.
#
# Settings (environment):
#   SLUICE_BIN         Sluice binary (default build/sluice)
#   BENCH_DURATION     seconds per wrk run (default 10)
#   BENCH_CONNECTIONS  wrk connections (default 50)
#   BENCH_THREADS      wrk threads (default 1)
#   BENCH_RUNS         runs per target, alternating (default 3)
#   BENCH_WARMUP       seconds of discarded warm-up per target (default 2)
#   BENCH_TARGETS      which of "direct nginx sluice" to measure (default all)
#   BENCH_PROXY_CPU    CPU of the proxy under test (default 0)
#   BENCH_LOAD_CPU     CPU of the backend and wrk (default 1)
#   BENCH_RESULTS      where to write the report (default bench/RESULTS.md)
#   BENCH_NOTE         a sentence for the report's Notes (e.g. other load on the machine)
#   NGINX, WRK         the nginx and wrk binaries (default: found on PATH)
#
# Everything runs on 127.0.0.1 on ports picked free at run time; every file it
# makes lives in one mktemp -d directory; every server it starts is stopped on
# exit, by pid. Every wrk run is bounded by `timeout`.
set -eu

bench_tag=bench
caller_dir=$(pwd)
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/common.sh
. "$root/bench/common.sh"

if [ -n "${SLUICE_BIN:-}" ]; then sluice_bin=$(abspath "$SLUICE_BIN"); else sluice_bin=$root/build/sluice; fi
if [ -n "${BENCH_RESULTS:-}" ]; then results=$(abspath "$BENCH_RESULTS"); else results=$root/bench/RESULTS.md; fi
duration=${BENCH_DURATION:-10}
connections=${BENCH_CONNECTIONS:-50}
threads=${BENCH_THREADS:-1}
runs=${BENCH_RUNS:-3}
warmup=${BENCH_WARMUP:-2}
targets=${BENCH_TARGETS:-direct nginx sluice}
proxy_cpu=${BENCH_PROXY_CPU:-0}
load_cpu=${BENCH_LOAD_CPU:-1}
nginx_bin=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
wrk_bin=${WRK:-$(command -v wrk || echo wrk)}
python=$(command -v python3 || echo /usr/bin/python3)

# --- checks ----------------------------------------------------------------

check_wrk_settings
check_targets

[ -x "$nginx_bin" ] || die "nginx not found (install nginx-light: sh scripts/install-deps.sh --bench)"
command -v "$wrk_bin" >/dev/null 2>&1 || die "wrk not found (install it: sh scripts/install-deps.sh --bench)"
for tool in taskset timeout curl "$python"; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found"
done
if wants sluice; then
  [ -x "$sluice_bin" ] || die "$sluice_bin: no Sluice binary (build it with make build, or set SLUICE_BIN; BENCH_TARGETS='direct nginx' skips it)"
fi
check_cpus proxy

# --- temp dir, servers, cleanup ----------------------------------------------

bench_tmp sluice-bench

# fill TEMPLATE OUT DIR PORT: a config from a template in bench/.
fill() {
  sed -e "s|@DIR@|$3|g" -e "s|@PORT@|$4|g" -e "s|@BACKEND_PORT@|$backend_port|g" \
    "$root/bench/$1" >"$2"
}

# Three distinct free loopback ports, held open together while they are chosen.
ports=$(free_ports 3)
read -r backend_port nginx_port sluice_port <<EOF
$ports
EOF
# shellcheck disable=SC2034  # read through eval as ${target}_port
direct_port=$backend_port

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started_at=$(date -u '+%Y-%m-%d %H:%M:%S UTC')

mkdir "$tmp/backend"
fill nginx-backend.conf.in "$tmp/backend/nginx.conf" "$tmp/backend" "$backend_port"
serve_nginx backend "$load_cpu" "$backend_port"

if wants nginx; then
  mkdir "$tmp/nginx"
  fill nginx-proxy.conf.in "$tmp/nginx/nginx.conf" "$tmp/nginx" "$nginx_port"
  serve_nginx nginx "$proxy_cpu" "$nginx_port"
fi

if wants sluice; then
  fill sluice.toml.in "$tmp/sluice.toml" "$tmp" "$sluice_port"
  serve sluice "$proxy_cpu" "$sluice_port" "$sluice_bin" -c "$tmp/sluice.toml"
fi

expected_body="Hello from the Sluice bench backend"
for t in $targets; do
  eval "port=\$${t}_port"
  # shellcheck disable=SC2154  # set by the eval above
  body=$(curl -sS --max-time 5 "http://127.0.0.1:$port/") ||
    die "$t: GET http://127.0.0.1:$port/ failed"
  [ "$body" = "$expected_body" ] || die "$t: unexpected answer to GET /: $body"
done

# --- measuring --------------------------------------------------------------

wrk_cmd="taskset -c $load_cpu wrk -t$threads -c$connections -d${duration}s --latency http://127.0.0.1:PORT/"

# measure TARGET SECONDS OUT: one wrk run against TARGET.
measure() {
  eval "port=\$${1}_port"
  # --foreground keeps wrk in our process group, so Ctrl-C reaches it at once.
  timeout --foreground -k 5 $(( $2 + 30 )) taskset -c "$load_cpu" \
    "$wrk_bin" -t"$threads" -c"$connections" -d"$2"s --latency "http://127.0.0.1:$port/" \
    >"$3" 2>&1 || { cat "$3" >&2; die "$1: wrk failed or timed out"; }
  if [ "$1" != direct ]; then
    eval "pid=\$${1}_pid"
    alive "$pid" || { tail -n 20 "$tmp/$1.log" >&2; die "$1 died during the run"; }
  fi
}

ntargets=0
for t in $targets; do ntargets=$((ntargets + 1)); done
estimate=$(( ntargets * (warmup + runs * duration) ))
say "ports: backend $backend_port, nginx $nginx_port, sluice $sluice_port; about ${estimate}s of load follows"

if [ "$warmup" -gt 0 ]; then
  for t in $targets; do
    say "$t: warm-up ${warmup}s"
    measure "$t" "$warmup" "$tmp/warmup.out"
  done
fi

rep=1
while [ "$rep" -le "$runs" ]; do
  for t in $targets; do
    out="$tmp/wrk.$t.$rep"
    measure "$t" "$duration" "$out"
    line=$(parse_wrk "$out") || { cat "$out" >&2; die "$t: could not read wrk's output"; }
    echo "$line" >>"$tmp/results.$t"
    # shellcheck disable=SC2086  # split into its three fields
    set -- $line
    say "$t run $rep/$runs: $1 req/s, p99 $2 ms, errors $3"
  done
  rep=$((rep + 1))
done

load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# --- report -----------------------------------------------------------------

nginx_version=$("$nginx_bin" -v 2>&1 | sed 's/^nginx version: //')
wrk_version=$("$wrk_bin" -v 2>&1 | head -n 1 | sed 's/ *Copyright.*//')
if wants sluice; then sluice_version=$(sluice_version "$sluice_bin"); fi
cpu_model=$(cpu_model)

env_line="SLUICE_BIN=${SLUICE_BIN:-build/sluice} BENCH_DURATION=$duration BENCH_CONNECTIONS=$connections"
env_line="$env_line BENCH_THREADS=$threads BENCH_RUNS=$runs BENCH_WARMUP=$warmup"
env_line="$env_line BENCH_TARGETS=\"$targets\" BENCH_PROXY_CPU=$proxy_cpu BENCH_LOAD_CPU=$load_cpu sh bench/run.sh"

table="$tmp/table.md"
{
  echo "| Target | Path | Requests/s (median) | p99 latency (median) | Requests/s per run | Errors |"
  echo "|---|---|---:|---:|---|---:|"
  for t in $targets; do
    case $t in
      direct) label="direct (baseline)" path="wrk → backend" ;;
      nginx) label="nginx ${nginx_version#nginx/}" path="wrk → nginx → backend" ;;
      sluice) label="Sluice" path="wrk → Sluice → backend" ;;
    esac
    rps=$(cut -d' ' -f1 "$tmp/results.$t" | median)
    p99=$(cut -d' ' -f2 "$tmp/results.$t" | median)
    per_run=$(cut -d' ' -f1 "$tmp/results.$t" | awk '{ printf "%s%.0f", (NR > 1 ? ", " : ""), $1 }')
    errors=$(awk '{ s += $3 } END { print s + 0 }' "$tmp/results.$t")
    eval "${t}_rps=\$rps ${t}_errors=\$errors"
    printf '| %s | %s | %.0f | %.2f ms | %s | %d |\n' "$label" "$path" "$rps" "$p99" "$per_run" "$errors"
  done
} >"$table"

# shellcheck disable=SC2154  # sluice_rps, nginx_rps, sluice_errors: set by the eval above
if wants sluice && wants nginx; then
  ratio=$(awk -v s="$sluice_rps" -v n="$nginx_rps" 'BEGIN { printf "%.1f", 100 * s / n }')
  figures=$(printf 'Sluice %.0f req/s, nginx %.0f req/s (Sluice at %s%% of nginx)' "$sluice_rps" "$nginx_rps" "$ratio")
  if [ "$sluice_errors" -gt 0 ]; then
    verdict="**Target not met**: Sluice's runs had $sluice_errors errors (non-2xx answers or socket errors); $figures."
  elif awk -v s="$sluice_rps" -v n="$nginx_rps" 'BEGIN { exit !(s >= n) }'; then
    verdict="**Target met**: Sluice's median requests/s is at or above nginx's; $figures."
  else
    verdict="**Target not met**: Sluice's median requests/s is below nginx's; $figures."
  fi
else
  verdict="**Target not evaluated**: this run did not measure both Sluice and nginx (BENCH_TARGETS=\"$targets\")."
fi

report="$tmp/RESULTS.md"
{
  echo "# Sluice benchmark: keep-alive GET through one proxy worker"
  echo
  echo "Written by \`bench/run.sh\` (\`make bench\`) on $started_at."
  echo
  echo "## Result"
  echo
  cat "$table"
  echo
  echo "$verdict"
  echo
  echo "Medians of $runs runs of ${duration}s per target, taken alternately after a ${warmup}s warm-up each."
  echo "Errors are wrk's non-2xx/3xx answers plus socket errors, summed over the runs."
  echo
  echo "## Machine"
  echo
  echo "- CPUs (nproc): $(nproc)"
  echo "- CPU model: $cpu_model"
  echo "- Kernel: $(uname -sr)"
  echo "- Load average (1/5/15 min) before: $load_before; after: $load_after"
  if [ -n "${BENCH_NOTE:-}" ]; then
    echo
    echo "Note: $BENCH_NOTE"
  fi
  echo
  echo "## Versions"
  echo
  echo "- nginx: $nginx_version"
  echo "- wrk: $wrk_version"
  if wants sluice; then echo "- Sluice: $sluice_version"; fi
  echo
  echo "## Setup"
  echo
  echo "- Backend: nginx, 1 worker, \`return 200\` of a 36-byte text body, keep-alive"
  echo "  (\`bench/nginx-backend.conf.in\`), pinned to CPU $load_cpu."
  echo "- Proxies under test, pinned to CPU $proxy_cpu, one worker each, access log off, keep-alive"
  echo "  pool of 64 to the backend: nginx (\`bench/nginx-proxy.conf.in\`: \`proxy_http_version 1.1\`,"
  echo "  \`Connection \"\"\`, and the same forwarding headers Sluice sets: Host kept, X-Forwarded-For/-Proto/-Host, Via)"
  echo "  and Sluice (\`bench/sluice.toml.in\`)."
  echo "- Load: wrk, pinned to CPU $load_cpu beside the backend, on 127.0.0.1."
  echo "- The direct baseline is wrk against the backend with no proxy between."
  echo
  echo "## Command"
  echo
  sh_block "$env_line"
  echo
  echo "which runs, for each target and run:"
  echo
  sh_block "$wrk_cmd"
  echo
  echo "with the servers started as"
  echo
  set -- "# the backend" "taskset -c $load_cpu nginx -p TMP/backend -c TMP/backend/nginx.conf"
  if wants nginx; then
    set -- "$@" "# nginx under test" "taskset -c $proxy_cpu nginx -p TMP/nginx -c TMP/nginx/nginx.conf"
  fi
  if wants sluice; then
    set -- "$@" "# Sluice under test" "taskset -c $proxy_cpu ${SLUICE_BIN:-build/sluice} -c TMP/sluice.toml"
  fi
  sh_block "$@"
  echo
  echo "TMP is the run's mktemp -d directory; the configs there are the bench/*.in templates with the ports filled in."
  echo
  echo "## TLS, idle memory, testssl"
  echo
  echo "In [RESULTS-tls.md](RESULTS-tls.md), written by \`bench/tls.sh\`, \`bench/idle_memory.py\` and \`bench/testssl.sh\`."
} >"$report"

mkdir -p "$(dirname "$results")"
cp "$report" "$results.tmp.$$" && mv "$results.tmp.$$" "$results"

echo
cat "$table"
echo
echo "$verdict"
echo
say "report written to $results"
