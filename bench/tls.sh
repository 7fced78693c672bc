#!/bin/sh
# TLS termination, Sluice against nginx, each as a one-worker reverse proxy
# with a TLS 1.3 listener in front of the same plain-HTTP backend:
#
#   1. handshakes/s: every request on a new connection with a full handshake
#      (wrk -H 'Connection: close'; no session resumption is possible, below);
#   2. keep-alive GET requests/s and p99 latency over TLS (wrk https://).
#
#   sh bench/tls.sh
#
# The layout is bench/run.sh's: the proxy under test alone on CPU 0, the
# shared nginx backend and wrk on CPU 1, one worker each, medians of
# BENCH_RUNS runs taken alternately. Both proxies use the same ECDSA P-256
# certificate, made at run time with the openssl CLI, TLS 1.3 only.
#
# Why no resumption: wrk closes a connection with SSL_shutdown + SSL_clear and
# reconnects with the same SSL object, which keeps its session, so with
# 'Connection: close' it offers every new connection the previous session
# and resumes whenever the server lets it. Both servers under test are
# therefore set up so that resumption is impossible: Sluice with
# session_tickets = false (it never keeps a session cache), nginx with
# ssl_session_tickets off and ssl_session_cache off. The script checks both
# (openssl s_client -sess_out / -sess_in must not resume) and, for the
# record, shows wrk resuming against a third nginx that allows it.
#
# Besides requests/s, it reads each proxy's CPU time (utime + stime from
# /proc, an nginx master plus its worker) over every run: when the load
# generator, not the proxy, is the limit, CPU time per handshake is what
# tells the two apart.
#
# Settings (environment), as in bench/run.sh:
#   SLUICE_BIN         Sluice binary (default build/sluice)
#   BENCH_DURATION     seconds per wrk run (default 10)
#   BENCH_CONNECTIONS  wrk connections (default 50)
#   BENCH_THREADS      wrk threads (default 1)
#   BENCH_RUNS         runs per target and test, alternating (default 3)
#   BENCH_WARMUP       seconds of discarded warm-up per target and test (default 2)
#   BENCH_PROXY_CPU    CPU of the proxy under test (default 0)
#   BENCH_LOAD_CPU     CPU of the backend and wrk (default 1)
#   BENCH_TLS_RESULTS  the results file whose "tls" section it replaces
#                      (default bench/RESULTS-tls.md; see bench/results_section.py)
#   BENCH_NOTE         a sentence for the report's notes
#   NGINX, WRK, OPENSSL  the binaries (default: found on PATH)
#
# Everything runs on 127.0.0.1 on ports picked free at run time; every file it
# makes (the key too) lives in one mktemp -d directory; every server it starts
# is stopped on exit, by pid. Every wrk and openssl run is bounded by timeout.
set -eu

bench_tag=bench-tls
caller_dir=$(pwd)
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/common.sh
. "$root/bench/common.sh"

if [ -n "${SLUICE_BIN:-}" ]; then sluice_bin=$(abspath "$SLUICE_BIN"); else sluice_bin=$root/build/sluice; fi
if [ -n "${BENCH_TLS_RESULTS:-}" ]; then results=$(abspath "$BENCH_TLS_RESULTS"); else results=$root/bench/RESULTS-tls.md; fi
duration=${BENCH_DURATION:-10}
connections=${BENCH_CONNECTIONS:-50}
threads=${BENCH_THREADS:-1}
runs=${BENCH_RUNS:-3}
warmup=${BENCH_WARMUP:-2}
proxy_cpu=${BENCH_PROXY_CPU:-0}
load_cpu=${BENCH_LOAD_CPU:-1}
nginx_bin=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
wrk_bin=${WRK:-$(command -v wrk || echo wrk)}
openssl_bin=${OPENSSL:-$(command -v openssl || echo openssl)}
python=$(command -v python3 || echo /usr/bin/python3)
targets="nginx sluice"
tests="handshake keepalive"

# --- checks ----------------------------------------------------------------

check_wrk_settings

[ -x "$nginx_bin" ] || die "nginx not found (install nginx-light: sh scripts/install-deps.sh --bench)"
"$nginx_bin" -V 2>&1 | grep -q -- --with-http_ssl_module || die "$nginx_bin has no http_ssl_module"
command -v "$wrk_bin" >/dev/null 2>&1 || die "wrk not found (install it: sh scripts/install-deps.sh --bench)"
ldd "$(command -v "$wrk_bin")" 2>/dev/null | grep -q libssl || say "warning: $wrk_bin does not seem to link OpenSSL; https:// may fail"
command -v "$openssl_bin" >/dev/null 2>&1 || die "openssl not found (apt-get install openssl)"
for tool in taskset timeout curl getconf "$python"; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found"
done
[ -x "$sluice_bin" ] || die "$sluice_bin: no Sluice binary (build it with make build, or set SLUICE_BIN)"
check_cpus proxy
clk_tck=$(getconf CLK_TCK)

# --- temp dir, certificate, servers ---------------------------------------------

bench_tmp sluice-bench-tls
cert=$tmp/cert.pem
key=$tmp/key.pem
(umask 077 && timeout 30 "$openssl_bin" req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
  -noenc -sha256 -days 2 -subj /CN=localhost \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -keyout "$key" -out "$cert") >"$tmp/openssl-req.log" 2>&1 ||
  { cat "$tmp/openssl-req.log" >&2; die "openssl could not make the certificate"; }

ports=$(free_ports 4)
read -r backend_port nginx_port sluice_port probe_port <<EOF
$ports
EOF

# fill TEMPLATE OUT DIR PORT: a config from a template in bench/.
fill() {
  sed -e "s|@DIR@|$3|g" -e "s|@PORT@|$4|g" -e "s|@BACKEND_PORT@|$backend_port|g" \
    -e "s|@CERT@|$cert|g" -e "s|@KEY@|$key|g" "$root/bench/$1" >"$2"
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started_at=$(date -u '+%Y-%m-%d %H:%M:%S UTC')

mkdir "$tmp/backend" "$tmp/nginx" "$tmp/probe"
fill nginx-backend.conf.in "$tmp/backend/nginx.conf" "$tmp/backend" "$backend_port"
serve_nginx backend "$load_cpu" "$backend_port"

fill nginx-tls-proxy.conf.in "$tmp/nginx/nginx.conf" "$tmp/nginx" "$nginx_port"
serve_nginx nginx "$proxy_cpu" "$nginx_port"

fill sluice-tls.toml.in "$tmp/sluice.toml" "$tmp" "$sluice_port"
serve sluice "$proxy_cpu" "$sluice_port" "$sluice_bin" -c "$tmp/sluice.toml"

expected_body="Hello from the Sluice bench backend"
for t in $targets; do
  eval "port=\$${t}_port"
  # shellcheck disable=SC2154  # set by the eval above
  body=$(curl -sS --max-time 5 --cacert "$cert" "https://localhost:$port/" \
    --resolve "localhost:$port:127.0.0.1") || die "$t: GET https://127.0.0.1:$port/ failed"
  [ "$body" = "$expected_body" ] || die "$t: unexpected answer to GET /: $body"
done

# --- what the servers negotiate, and that neither resumes --------------------

request='GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n'

# s_client PORT ARGS...: one request over a new connection; the transcript on stdout.
s_client() {
  port=$1
  shift
  # shellcheck disable=SC2059  # the request's escapes are meant
  printf "$request" | timeout 10 "$openssl_bin" s_client -connect "127.0.0.1:$port" \
    -servername localhost -ign_eof "$@" 2>&1 || true
}

for t in $targets; do
  eval "port=\$${t}_port"
  s_client "$port" -sess_out "$tmp/$t.session" >"$tmp/$t.s_client"
  grep -q "^New, TLSv1.3, Cipher is" "$tmp/$t.s_client" || {
    cat "$tmp/$t.s_client" >&2
    die "$t: openssl s_client did not get a TLS 1.3 connection"
  }
  cipher=$(sed -n 's/^New, TLSv1.3, Cipher is //p' "$tmp/$t.s_client" | head -n 1)
  group=$(sed -n 's/^Server Temp Key: //p' "$tmp/$t.s_client" | head -n 1)
  sig=$(sed -n 's/^Peer signature type: //p' "$tmp/$t.s_client" | head -n 1)
  digest=$(sed -n 's/^Peer signing digest: //p' "$tmp/$t.s_client" | head -n 1)
  # shellcheck disable=SC2034  # read through eval
  negotiated="TLSv1.3, $cipher, key exchange $group, $sig signature with $digest"
  eval "${t}_negotiated=\$negotiated"
  # shellcheck disable=SC2034  # read through eval
  if [ -s "$tmp/$t.session" ]; then
    # The server sent a ticket: offering it must still give a full handshake.
    s_client "$port" -sess_in "$tmp/$t.session" >"$tmp/$t.s_client2"
    if grep -q "^Reused" "$tmp/$t.s_client2"; then
      die "$t resumed a TLS session: the handshake benchmark would not be one full handshake per connection"
    fi
    grep -q "^New" "$tmp/$t.s_client2" || { cat "$tmp/$t.s_client2" >&2; die "$t: second s_client connection failed"; }
    resumption="a session ticket was sent, but offering it gave a new full handshake"
  else
    resumption="no session ticket sent, nothing to resume"
  fi
  eval "${t}_resumption=\$resumption"
done

# For the record: does wrk resume when the server allows it?
fill nginx-tls-resume.conf.in "$tmp/probe/nginx.conf" "$tmp/probe" "$probe_port"
serve_nginx probe "$load_cpu" "$probe_port"
: >"$tmp/probe/access.log"
timeout --foreground -k 5 30 taskset -c "$load_cpu" "$wrk_bin" -t1 -c10 -d2s \
  -H 'Connection: close' "https://127.0.0.1:$probe_port/" >"$tmp/probe.wrk" 2>&1 ||
  { cat "$tmp/probe.wrk" >&2; die "the resumption probe's wrk run failed"; }
# shellcheck disable=SC2154  # probe_pid: set by serve_nginx
kill -TERM "$probe_pid" 2>/dev/null || true
probe_total=$(grep -c . "$tmp/probe/access.log" || true)
probe_reused=$(grep -c '^r$' "$tmp/probe/access.log" || true)
say "resumption probe: wrk with Connection: close resumed $probe_reused of $probe_total connections on a server that allows it"

# --- measuring --------------------------------------------------------------

# measure TEST TARGET SECONDS OUT: one wrk run; appends to OUT wrk's output and
# then a line "cpu PROXY_PERCENT LOAD_CPU_BUSY_PERCENT".
measure() {
  eval "port=\$${2}_port pid=\$${2}_pid"
  cpu_start "$pid"
  # --foreground keeps wrk in our process group, so Ctrl-C reaches it at once.
  if [ "$1" = handshake ]; then
    set -- "$@" -H "Connection: close"
  fi
  timeout --foreground -k 5 $(( $3 + 30 )) taskset -c "$load_cpu" \
    "$wrk_bin" -t"$threads" -c"$connections" -d"$3"s --latency ${5+"$5"} ${6+"$6"} \
    "https://127.0.0.1:$port/" >"$4" 2>&1 || { cat "$4" >&2; die "$2: wrk failed or timed out"; }
  cpu_line=$(cpu_since)
  alive "$pid" || { tail -n 20 "$tmp/$2.log" >&2; die "$2 died during the run"; }
  echo "$cpu_line" >>"$4"
}

# wrk output + cpu line -> "RPS P99_MS ERRORS PROXY_CPU% LOAD_CPU%"
parse_run() {
  line=$(parse_wrk "$1") || return 1
  cpu=$(awk '$1 == "cpu" { print $2, $3 }' "$1")
  [ -n "$cpu" ] || return 1
  echo "$line $cpu"
}

estimate=$(( 2 * 2 * (warmup + runs * duration) ))
# say_run TEST TARGET REP RPS P99_MS ERRORS PROXY_CPU% LOAD_CPU%
say_run() {
  say "$2 $1 run $3/$runs: $4 req/s, p99 $5 ms, errors $6, proxy CPU $7%, CPU $load_cpu busy $8%"
}

say "ports: backend $backend_port, nginx $nginx_port, sluice $sluice_port; about ${estimate}s of load follows"
measure_all wrk

load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# --- report -----------------------------------------------------------------

nginx_version=$("$nginx_bin" -v 2>&1 | sed 's/^nginx version: //')
wrk_version=$("$wrk_bin" -v 2>&1 | head -n 1 | sed 's/ *Copyright.*//')
openssl_version=$("$openssl_bin" version)
sluice_version=$(sluice_version "$sluice_bin")

# table TEST: the Markdown table of TEST's results; sets TEST_TARGET_{rps,p99,cpu,us,load,errors}.
table() {
  if [ "$1" = handshake ]; then
    echo "| Proxy | Handshakes/s (median) | Handshakes/s per run | Proxy CPU (median) | Proxy CPU per handshake (median) | CPU $load_cpu busy: wrk + backend (median) | Errors |"
    echo "|---|---:|---|---:|---:|---:|---:|"
  else
    echo "| Proxy | Requests/s (median) | p99 latency (median) | Requests/s per run | Proxy CPU (median) | Proxy CPU per request (median) | CPU $load_cpu busy: wrk + backend (median) | Errors |"
    echo "|---|---:|---:|---|---:|---:|---:|---:|"
  fi
  for t in $targets; do
    rps=$(col "$1" "$t" 1)
    p99=$(col "$1" "$t" 2)
    pcpu=$(col "$1" "$t" 4)
    lcpu=$(col "$1" "$t" 5)
    # CPU time per operation, per run: percent of a CPU / rate.
    us=$(awk '{ printf "%.1f\n", ($1 > 0) ? $4 / 100 / $1 * 1e6 : 0 }' "$tmp/results.$1.$t" | median)
    errs=$(total "$1" "$t" 3)
    eval "${1}_${t}_rps=\$rps ${1}_${t}_p99=\$p99 ${1}_${t}_cpu=\$pcpu ${1}_${t}_us=\$us ${1}_${t}_load=\$lcpu ${1}_${t}_errors=\$errs"
    if [ "$1" = handshake ]; then
      printf '| %s | %.0f | %s | %.0f%% | %.0f µs | %.0f%% | %d |\n' "$(label "$t")" "$rps" \
        "$(per_run "$1" "$t" 1)" "$pcpu" "$us" "$lcpu" "$errs"
    else
      printf '| %s | %.0f | %.2f ms | %s | %.0f%% | %.1f µs | %.0f%% | %d |\n' "$(label "$t")" "$rps" "$p99" \
        "$(per_run "$1" "$t" 1)" "$pcpu" "$us" "$lcpu" "$errs"
    fi
  done
}
hs_table="$tmp/hs.md"
ka_table="$tmp/ka.md"
table handshake >"$hs_table"
table keepalive >"$ka_table"

# cost TEST NOUN: what limited the runs, and the proxies' CPU time per NOUN.
cost() {
  eval "sc=\$${1}_sluice_cpu nc=\$${1}_nginx_cpu su=\$${1}_sluice_us nu=\$${1}_nginx_us"
  eval "sl=\$${1}_sluice_load nl=\$${1}_nginx_load"
  # shellcheck disable=SC2154  # sc, nc, su, nu, sl, nl: set by the evals above
  awk -v sc="$sc" -v nc="$nc" -v su="$su" -v nu="$nu" -v sl="$sl" -v nl="$nl" \
      -v cpu="$load_cpu" -v noun="$2" 'BEGIN {
    sc = int(sc + 0.5); nc = int(nc + 0.5)
    if (sc < 90 && nc < 90)
      printf "Neither proxy used all of its CPU (Sluice %.0f%%, nginx %.0f%%) while CPU %s, where wrk and the backend run, was %.0f%% and %.0f%% busy: the load side was the limit, so the rates above say more about wrk than about the proxies. ", sc, nc, cpu, sl, nl
    else if (sc < 90 || nc < 90)
      printf "One proxy used less than 90%% of its CPU (Sluice %.0f%%, nginx %.0f%%; CPU %s busy %.0f%% and %.0f%%). ", sc, nc, cpu, sl, nl
    printf "The proxies'\'' own cost, CPU time per %s: Sluice %.1f µs, nginx %.1f µs (Sluice %s), i.e. about %.0f and %.0f %ss per CPU-second.\n", noun, su, nu, (su <= nu) ? sprintf("%.0f%% less", 100 * (nu - su) / nu) : sprintf("%.0f%% more", 100 * (su - nu) / nu), 1e6 / su, 1e6 / nu, noun
  }'
}

# shellcheck disable=SC2154  # handshake_*, keepalive_*: set by table
{
  verdict "Handshakes/s" handshake 1 rps 1 "handshakes/s"
  echo
  cost handshake handshake
  echo
  verdict "Keep-alive requests/s over TLS" keepalive 1 rps 1 "req/s"
  echo
  echo "p99 latency over TLS: Sluice $(printf '%.2f' "$keepalive_sluice_p99") ms, nginx $(printf '%.2f' "$keepalive_nginx_p99") ms."
  echo
  cost keepalive request
} >"$tmp/verdicts.md"

section="$tmp/section.md"
# shellcheck disable=SC2154  # *_resumption, *_negotiated: set through eval
{
  echo "## TLS: handshakes and keep-alive GET through one proxy worker"
  echo
  echo "Written by \`bench/tls.sh\` on $started_at."
  echo
  echo "### New connection, full TLS 1.3 handshake, one GET each"
  echo
  cat "$hs_table"
  echo
  echo "### Keep-alive GET over TLS 1.3"
  echo
  cat "$ka_table"
  echo
  cat "$tmp/verdicts.md"
  echo
  echo "Medians of $runs runs of ${duration}s per proxy and test, taken alternately after a ${warmup}s warm-up each."
  echo "Errors are wrk's non-2xx/3xx answers plus socket errors, summed over the runs. Proxy CPU is the"
  echo "proxy's user + system time (nginx: master and worker) over the run, in percent of one CPU;"
  echo "CPU $load_cpu busy is the whole CPU $load_cpu (wrk, the backend, and anything else that ran there)."
  echo
  echo "### How the handshakes are made"
  echo
  echo "wrk with \`-H 'Connection: close'\`: each response closes its connection and wrk opens a new one,"
  echo "so handshakes/s = requests/s. wrk reconnects with the same SSL object after \`SSL_shutdown\` +"
  echo "\`SSL_clear\`, which keep the session, so it offers every new connection the previous session."
  echo "Checked in this run against a separate nginx with tickets and a session cache on: wrk resumed"
  echo "$probe_reused of $probe_total connections in 2 s. Hence both servers under test allow no resumption at all:"
  echo
  echo "- nginx: \`ssl_session_tickets off; ssl_session_cache off; ssl_conf_command NumTickets 0;\` — checked with openssl s_client: $nginx_resumption."
  echo "- Sluice: \`session_tickets = false\` (Sluice keeps no server-side session cache) — checked: $sluice_resumption."
  echo
  echo "\`openssl s_time -new\` would also make only full handshakes, but it is single-threaded, sequential"
  echo "(one connection at a time) and uses the same OpenSSL client code, so it adds nothing over wrk."
  echo
  echo "Negotiated (openssl s_client with its defaults, like wrk):"
  echo
  echo "- nginx: $nginx_negotiated"
  echo "- Sluice: $sluice_negotiated"
  echo
  echo "### Machine"
  echo
  machine_lines
  echo "- Versions: $nginx_version; $wrk_version; $openssl_version; $sluice_version"
  echo
  echo "### Setup"
  echo
  echo "- Backend: nginx, 1 worker, \`return 200\` of a 36-byte body, keep-alive (\`bench/nginx-backend.conf.in\`),"
  echo "  pinned to CPU $load_cpu, plain HTTP."
  echo "- Proxies under test, pinned to CPU $proxy_cpu, one worker each, access log off, keep-alive pool of 64 to the"
  echo "  backend, TLS 1.3 only, one ECDSA P-256 certificate (self-signed, made for the run with"
  echo "  \`openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256\`): nginx (\`bench/nginx-tls-proxy.conf.in\`)"
  echo "  and Sluice (\`bench/sluice-tls.toml.in\`)."
  echo "- Load: wrk, pinned to CPU $load_cpu beside the backend, on 127.0.0.1."
  echo
  echo "### Command"
  echo
  sh_block "SLUICE_BIN=${SLUICE_BIN:-build/sluice} BENCH_DURATION=$duration BENCH_CONNECTIONS=$connections BENCH_THREADS=$threads BENCH_RUNS=$runs BENCH_WARMUP=$warmup BENCH_PROXY_CPU=$proxy_cpu BENCH_LOAD_CPU=$load_cpu sh bench/tls.sh"
  echo
  echo "which runs, for each proxy and run:"
  echo
  sh_block "# handshakes" \
    "taskset -c $load_cpu wrk -t$threads -c$connections -d${duration}s --latency -H 'Connection: close' https://127.0.0.1:PORT/" \
    "# keep-alive" \
    "taskset -c $load_cpu wrk -t$threads -c$connections -d${duration}s --latency https://127.0.0.1:PORT/"
} >"$section"

mkdir -p "$(dirname "$results")"
"$python" "$root/bench/results_section.py" "$results" tls <"$section" ||
  die "could not write $results"

echo
echo "Handshakes (new connection each):"
cat "$hs_table"
echo
echo "Keep-alive over TLS:"
cat "$ka_table"
echo
cat "$tmp/verdicts.md"
echo
say "report written to $results (section \"tls\")"
