#!/bin/sh
# WebSocket relaying, Sluice against nginx's upgrade tunnel, each a one-worker
# gateway in front of the same echo upstream:
#
#   1. messages/s and round-trip latency: 64 B messages over 64 connections;
#   2. MB/s: 64 KiB messages over 8 connections;
#   3. gateway memory per idle WebSocket connection, 10,000 of them
#      (bench/ws_idle.py).
#
#   sh bench/ws.sh [SLUICE_BIN]        (default build/sluice)
#
# The load is closed-loop (bench/ws_load.cpp): each connection sends a masked
# binary message and waits for its echo before it sends the next; every echo
# is checked byte for byte and anything wrong counts as an error. The
# upstream is bench/ws_echo.cpp, an RFC 6455 echo server. The layout is
# bench/run.sh's: the gateway under test alone on CPU 0, ws_load and ws_echo
# on CPU 1, one worker each, medians of BENCH_RUNS runs taken alternately
# after a warm-up; a direct run (ws_load -> ws_echo) gives the baseline.
# ws_load and ws_echo run under SCHED_BATCH (chrt --batch): sharing CPU 1,
# with the default policy they preempt each other on every wakeup, and a run
# can fall into tiny batches that spend CPU 1 on context switches (the same
# gateway measured 56k and 94k msg/s in two runs); with SCHED_BATCH each runs
# its time slice and the runs agree. The gateways keep the default policy.
# Sluice runs on bench/sluice-ws.toml.in, nginx on bench/nginx-ws-proxy.conf.in.
# ws_load and ws_echo are built in $BENCH_BUILD/bench with cmake when missing.
#
# Settings (environment):
#   SLUICE_BIN              Sluice binary, when $1 is not given (default build/sluice)
#   BENCH_DURATION          seconds per run (default 10)
#   BENCH_RUNS              runs per target and test, alternating (default 3)
#   BENCH_WARMUP            seconds of discarded warm-up per target and test (default 2)
#   BENCH_TARGETS           which of "direct nginx sluice" to measure (default all)
#   BENCH_PROXY_CPU         CPU of the gateway under test (default 0)
#   BENCH_LOAD_CPU          CPU of ws_load and ws_echo (default 1)
#   WS_LOAD_SCHED           scheduling policy of ws_load and ws_echo: batch or normal (default batch)
#   WS_SMALL_CONNECTIONS    connections of test 1 (default 64)
#   WS_SMALL_BYTES          message size of test 1 (default 64)
#   WS_LARGE_CONNECTIONS    connections of test 2 (default 8)
#   WS_LARGE_BYTES          message size of test 2 (default 65536)
#   WS_IDLE_CONNECTIONS     idle connections of test 3 (default 10000; 0 skips it)
#   BENCH_BUILD             cmake build folder for the tools (default build)
#   BENCH_RESULTS           file whose "websocket" section is replaced (default bench/RESULTS-ws.md)
#   BENCH_NOTE              a sentence for the report's notes
#   NGINX                   the nginx binary (default: found on PATH)
#
# Everything runs on 127.0.0.1 on ports picked free at run time; every file it
# makes lives in one mktemp -d directory; every server it starts is stopped on
# exit, by pid, and ws_echo also stops by itself after the run's length. Every
# ws_load run is bounded by its own --duration and by `timeout`.
set -eu

bench_tag=bench-ws
caller_dir=$(pwd)
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/common.sh
. "$root/bench/common.sh"

sluice_arg=${1:-${SLUICE_BIN:-}}
if [ -n "$sluice_arg" ]; then sluice_bin=$(abspath "$sluice_arg"); else sluice_bin=$root/build/sluice; fi
if [ -n "${BENCH_RESULTS:-}" ]; then results=$(abspath "$BENCH_RESULTS"); else results=$root/bench/RESULTS-ws.md; fi
if [ -n "${BENCH_BUILD:-}" ]; then build=$(abspath "$BENCH_BUILD"); else build=$root/build; fi
duration=${BENCH_DURATION:-10}
runs=${BENCH_RUNS:-3}
warmup=${BENCH_WARMUP:-2}
targets=${BENCH_TARGETS:-direct nginx sluice}
proxy_cpu=${BENCH_PROXY_CPU:-0}
load_cpu=${BENCH_LOAD_CPU:-1}
small_conns=${WS_SMALL_CONNECTIONS:-64}
small_bytes=${WS_SMALL_BYTES:-64}
large_conns=${WS_LARGE_CONNECTIONS:-8}
large_bytes=${WS_LARGE_BYTES:-65536}
idle_conns=${WS_IDLE_CONNECTIONS:-10000}
load_sched=${WS_LOAD_SCHED:-batch}
nginx_bin=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
python=$(command -v python3 || echo /usr/bin/python3)
tests="small large"

# --- checks ----------------------------------------------------------------

check_whole "BENCH_DURATION=$duration" "BENCH_RUNS=$runs" "BENCH_WARMUP=$warmup" \
  "BENCH_PROXY_CPU=$proxy_cpu" "BENCH_LOAD_CPU=$load_cpu" \
  "WS_SMALL_CONNECTIONS=$small_conns" "WS_SMALL_BYTES=$small_bytes" \
  "WS_LARGE_CONNECTIONS=$large_conns" "WS_LARGE_BYTES=$large_bytes" "WS_IDLE_CONNECTIONS=$idle_conns"
if [ "$duration" -lt 1 ] || [ "$duration" -gt 600 ]; then die "BENCH_DURATION must be in 1..600"; fi
[ "$runs" -ge 1 ] || die "BENCH_RUNS must be at least 1"
[ "$warmup" -le 600 ] || die "BENCH_WARMUP must be at most 600"
for n in "$small_conns" "$large_conns"; do
  if [ "$n" -lt 1 ] || [ "$n" -gt 10000 ]; then die "WS_*_CONNECTIONS must be in 1..10000"; fi
done
for n in "$small_bytes" "$large_bytes"; do
  if [ "$n" -lt 1 ] || [ "$n" -gt 16777216 ]; then die "WS_*_BYTES must be in 1..16777216 (Sluice's max_frame_bytes here)"; fi
done
case $load_sched in
  batch) sched="chrt --batch 0" ;;
  normal) sched="" ;;
  *) die "WS_LOAD_SCHED must be batch or normal, not '$load_sched'" ;;
esac
check_targets
gateways=""
for t in $targets; do [ "$t" = direct ] || gateways="${gateways:+$gateways }$t"; done

if wants nginx; then
  [ -x "$nginx_bin" ] || die "nginx not found (install nginx-light: sh scripts/install-deps.sh --bench)"
fi
if wants sluice; then
  [ -x "$sluice_bin" ] || die "$sluice_bin: no Sluice binary (make build, or pass its path; BENCH_TARGETS='direct nginx' skips it)"
fi
for tool in taskset chrt timeout cmake getconf "$python"; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found"
done
check_cpus gateway
clk_tck=$(getconf CLK_TCK)

# --- the tools ---------------------------------------------------------------

tools=$build/bench
if [ ! -f "$build/CMakeCache.txt" ]; then
  say "configuring $build (Release)"
  generator=""
  if command -v ninja >/dev/null 2>&1; then generator="-G Ninja"; fi
  # shellcheck disable=SC2086  # generator is zero or two words
  cmake -S "$root" -B "$build" $generator -DCMAKE_BUILD_TYPE=Release >/dev/null || die "cmake could not configure $build"
fi
# A no-op when they are up to date; never builds Sluice itself.
cmake --build "$build" --target ws_load ws_echo >"${TMPDIR:-/tmp}/sluice-ws-build.$$.log" 2>&1 || {
  cat "${TMPDIR:-/tmp}/sluice-ws-build.$$.log" >&2
  rm -f "${TMPDIR:-/tmp}/sluice-ws-build.$$.log"
  die "could not build ws_load and ws_echo in $build"
}
rm -f "${TMPDIR:-/tmp}/sluice-ws-build.$$.log"
if [ ! -x "$tools/ws_load" ] || [ ! -x "$tools/ws_echo" ]; then
  die "$tools: no ws_load or ws_echo after building (is SLUICE_BENCH off in $build?)"
fi

# --- temp dir, servers ---------------------------------------------------------

bench_tmp sluice-bench-ws

# One binary for the whole run, even if build/sluice is rebuilt meanwhile;
# its version and tree are read now, for the same reason.
if wants sluice; then
  cp "$sluice_bin" "$tmp/sluice-under-test" || die "cannot copy $sluice_bin"
  sluice_version=$(sluice_version "$tmp/sluice-under-test")
  sluice_bin=$tmp/sluice-under-test
fi

ports=$(free_ports 3)
read -r echo_port nginx_port sluice_port <<EOF
$ports
EOF
# shellcheck disable=SC2034  # read through eval as ${target}_port
direct_port=$echo_port

ntests=2
ntargets=0
for t in $targets; do ntargets=$((ntargets + 1)); done
estimate=$(( ntests * ntargets * (warmup + runs * (duration + 1)) ))

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started_at=$(date -u '+%Y-%m-%d %H:%M:%S UTC')

# ws_echo stops by itself after the whole run could have taken, and more.
# shellcheck disable=SC2086  # sched is zero or three words
serve echo "$load_cpu" "$echo_port" $sched "$tools/ws_echo" --port "$echo_port" --deadline $((estimate + 600))

if wants nginx; then
  mkdir "$tmp/nginx"
  sed -e "s|@DIR@|$tmp/nginx|g" -e "s|@PORT@|$nginx_port|g" -e "s|@ECHO_PORT@|$echo_port|g" \
    -e "s|@WORKER_CONNECTIONS@|4096|g" "$root/bench/nginx-ws-proxy.conf.in" >"$tmp/nginx/nginx.conf"
  serve_nginx nginx "$proxy_cpu" "$nginx_port"
fi

if wants sluice; then
  sed -e "s|@PORT@|$sluice_port|g" -e "s|@ECHO_PORT@|$echo_port|g" -e "s|@MAX_CONNECTIONS@|100000|g" \
    "$root/bench/sluice-ws.toml.in" >"$tmp/sluice.toml"
  serve sluice "$proxy_cpu" "$sluice_port" "$sluice_bin" -c "$tmp/sluice.toml"
fi

# Each path must carry WebSocket messages before anything is measured.
for t in $targets; do
  eval "port=\$${t}_port"
  # shellcheck disable=SC2154  # port: set by the eval above
  timeout -k 5 60 "$tools/ws_load" --port "$port" --connections 2 --size "$large_bytes" --duration 1 \
    >"$tmp/probe.$t.out" 2>"$tmp/probe.$t.err" || {
    cat "$tmp/probe.$t.err" "$tmp/probe.$t.out" >&2
    die "$t: WebSocket messages through 127.0.0.1:$port fail (ws_load's output is above)"
  }
done

# --- measuring --------------------------------------------------------------

# field NAME FILE: the value of NAME=... on ws_load's result line.
field() {
  sed -n "s/^result .* $1=\([^ ]*\).*/\1/p" "$2"
}

# measure TEST TARGET SECONDS OUT: one ws_load run; OUT gets its output and a
# line "cpu GATEWAY_PERCENT LOAD_CPU_BUSY_PERCENT".
measure() {
  eval "port=\$${2}_port"
  if [ "$1" = small ]; then set -- "$@" "$small_conns" "$small_bytes"; else set -- "$@" "$large_conns" "$large_bytes"; fi
  pid=""
  if [ "$2" != direct ]; then eval "pid=\$${2}_pid"; fi
  cpu_start "$pid"
  rc=0
  # --foreground keeps ws_load in our process group, so Ctrl-C reaches it at once.
  # shellcheck disable=SC2086  # sched is zero or three words
  timeout --foreground -k 5 $(($3 + 60)) taskset -c "$load_cpu" $sched "$tools/ws_load" --port "$port" \
    --connections "$5" --size "$6" --duration "$3" >"$4" 2>"$4.err" || rc=$?
  cpu_line=$(cpu_since)
  if [ -n "$pid" ]; then
    alive "$pid" || { tail -n 20 "$tmp/$2.log" >&2; die "$2 died during the run"; }
  fi
  # 0: no error; 3: finished, with errors (counted in the table); else it failed.
  if [ "$rc" != 0 ] && [ "$rc" != 3 ]; then
    cat "$4.err" "$4" >&2
    die "$2 $1: ws_load failed (exit $rc)"
  fi
  echo "$cpu_line" >>"$4"
}

# ws_load output + cpu line -> "MSGS_S MB_S P50_US P99_US ERRORS GATEWAY_CPU% LOAD_CPU%"
parse_run() {
  m=$(field msgs_per_s "$1") mb=$(field mb_per_s "$1") p50=$(field p50_us "$1") p99=$(field p99_us "$1")
  e=$(field errors "$1")
  cpu=$(awk '$1 == "cpu" { print $2, $3 }' "$1")
  [ -n "$m" ] && [ -n "$mb" ] && [ -n "$p50" ] && [ -n "$p99" ] && [ -n "$e" ] && [ -n "$cpu" ] || return 1
  echo "$m $mb $p50 $p99 $e $cpu"
}

# say_run TEST TARGET REP MSGS_S MB_S P50_US P99_US ERRORS GATEWAY_CPU% LOAD_CPU%
say_run() {
  say "$2 $1 run $3/$runs: $4 msg/s, $5 MB/s, p50 $6 µs, p99 $7 µs, errors $8, gateway CPU $9%, CPU $load_cpu busy ${10}%"
}

say "ports: echo $echo_port, nginx $nginx_port, sluice $sluice_port; about ${estimate}s of load follows"
measure_all ws_load

# --- idle connections -----------------------------------------------------------

idle_md=$tmp/idle.md
idle_out=$tmp/idle.out
if [ "$idle_conns" -gt 0 ] && [ -n "$gateways" ]; then
  say "idle connections: $idle_conns per gateway (bench/ws_idle.py)"
  timeout -k 10 900 "$python" "$root/bench/ws_idle.py" --connections "$idle_conns" --sluice "$sluice_bin" \
    --nginx "$nginx_bin" --tools "$tools" --targets "$gateways" --proxy-cpu "$proxy_cpu" \
    --load-cpu "$load_cpu" --deadline 600 --out "$idle_out" >"$idle_md" || die "bench/ws_idle.py failed"
fi

load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# --- report -----------------------------------------------------------------

nginx_version=""
if wants nginx; then nginx_version=$("$nginx_bin" -v 2>&1 | sed 's/^nginx version: //'); fi

path() {
  case $1 in
    direct) echo "ws_load → ws_echo" ;;
    nginx) echo "ws_load → nginx → ws_echo" ;;
    sluice) echo "ws_load → Sluice → ws_echo" ;;
  esac
}
# size BYTES: "64 B", "64 KiB".
size() {
  awk -v b="$1" 'BEGIN { if (b >= 1048576 && b % 1048576 == 0) printf "%d MiB", b / 1048576;
    else if (b >= 1024 && b % 1024 == 0) printf "%d KiB", b / 1024; else printf "%d B", b }'
}

# table TEST: the Markdown table of TEST; sets TEST_TARGET_{msgs,mb,p99,cpu,errors}.
table() {
  busy="CPU $load_cpu busy: ws_load + ws_echo (median)"
  if [ "$1" = small ]; then
    echo "| Target | Path | Messages/s (median) | p50 (median) | p99 (median) | Messages/s per run | Gateway CPU (median) | Gateway CPU per message (median) | $busy | Errors |"
    echo "|---|---|---:|---:|---:|---|---:|---:|---:|---:|"
  else
    echo "| Target | Path | MB/s (median) | Messages/s (median) | p99 (median) | MB/s per run | Gateway CPU (median) | Gateway CPU per MB (median) | $busy | Errors |"
    echo "|---|---|---:|---:|---:|---|---:|---:|---:|---:|"
  fi
  for t in $targets; do
    msgs=$(col "$1" "$t" 1)
    mb=$(col "$1" "$t" 2)
    p50=$(col "$1" "$t" 3)
    p99=$(col "$1" "$t" 4)
    gcpu=$(col "$1" "$t" 6)
    lcpu=$(col "$1" "$t" 7)
    errs=$(total "$1" "$t" 5)
    eval "${1}_${t}_msgs=\$msgs ${1}_${t}_mb=\$mb ${1}_${t}_p99=\$p99 ${1}_${t}_cpu=\$gcpu ${1}_${t}_errors=\$errs"
    if [ "$t" = direct ]; then
      cpu_cells="| — | —"
    elif [ "$1" = small ]; then
      # CPU time per message, per run: percent of a CPU / rate.
      us=$(awk '{ printf "%.2f\n", ($1 > 0) ? $6 / 100 / $1 * 1e6 : 0 }' "$tmp/results.$1.$t" | median)
      cpu_cells=$(printf '| %.0f%% | %.2f µs' "$gcpu" "$us")
    else
      ms=$(awk '{ printf "%.3f\n", ($2 > 0) ? $6 / 100 / $2 * 1e3 : 0 }' "$tmp/results.$1.$t" | median)
      cpu_cells=$(printf '| %.0f%% | %.3f ms' "$gcpu" "$ms")
    fi
    if [ "$1" = small ]; then
      printf '| %s | %s | %.0f | %.3f ms | %.3f ms | %s %s | %.0f%% | %d |\n' "$(label "$t")" "$(path "$t")" \
        "$msgs" "$(awk -v u="$p50" 'BEGIN { print u / 1000 }')" "$(awk -v u="$p99" 'BEGIN { print u / 1000 }')" \
        "$(per_run "$1" "$t" 1)" "$cpu_cells" "$lcpu" "$errs"
    else
      printf '| %s | %s | %.0f | %.0f | %.3f ms | %s %s | %.0f%% | %d |\n' "$(label "$t")" "$(path "$t")" \
        "$mb" "$msgs" "$(awk -v u="$p99" 'BEGIN { print u / 1000 }')" \
        "$(per_run "$1" "$t" 2)" "$cpu_cells" "$lcpu" "$errs"
    fi
  done
}
small_table=$tmp/small.md
large_table=$tmp/large.md
table small >"$small_table"
table large >"$large_table"

# limit TEST: a sentence when neither gateway used its whole CPU.
limit() {
  eval "sc=\$${1}_sluice_cpu nc=\$${1}_nginx_cpu"
  # shellcheck disable=SC2154  # sc, nc: set by the eval above
  awk -v sc="$sc" -v nc="$nc" -v cpu="$load_cpu" 'BEGIN {
    sc = int(sc + 0.5); nc = int(nc + 0.5)
    if (sc < 90 && nc < 90)
      printf "Neither gateway used all of its CPU (Sluice %.0f%%, nginx %.0f%%): the load side on CPU %s was the limit; the CPU time per unit of work in the table is what compares the gateways there.\n", sc, nc, cpu }'
}

verdicts=$tmp/verdicts.md
: >"$verdicts"
if wants sluice && wants nginx; then
  # shellcheck disable=SC2154  # set by table
  {
    verdict "Messages/s ($(size "$small_bytes"), $small_conns connections)" small 1 msgs 1 "msg/s"
    echo
    echo "p99 round trip: Sluice $(awk -v u="$small_sluice_p99" 'BEGIN { printf "%.3f", u / 1000 }') ms, nginx $(awk -v u="$small_nginx_p99" 'BEGIN { printf "%.3f", u / 1000 }') ms."
    limit small
    echo
    verdict "MB/s ($(size "$large_bytes"), $large_conns connections)" large 2 mb 0.9 "MB/s"
    limit large
    echo
  } >>"$verdicts"
else
  echo "**Targets not evaluated**: this run did not measure both Sluice and nginx (BENCH_TARGETS=\"$targets\")." >>"$verdicts"
  echo >>"$verdicts"
fi
if [ -s "$idle_out" ]; then
  sluice_idle=$(sed -n 's/^target=sluice .*per_conn_echo=\([^ ]*\).*/\1/p' "$idle_out")
  sluice_idle_open=$(sed -n 's/^target=sluice .*per_conn_open=\([^ ]*\).*/\1/p' "$idle_out")
  idle_n=$(sed -n 's/^target=[a-z]* connections=\([0-9]*\).*/\1/p' "$idle_out" | head -n 1)
  if [ -n "$sluice_idle" ]; then
    worst=$(awk -v a="$sluice_idle" -v b="$sluice_idle_open" 'BEGIN { print (a > b) ? a : b }')
    figures=$(printf '%.2f KiB per idle WebSocket connection (%.2f KiB before its first echo), over %s connections' "$sluice_idle" "$sluice_idle_open" "$idle_n")
    if awk -v w="$worst" 'BEGIN { exit !(w <= 4) }'; then
      echo "**Idle memory: target met**: Sluice holds $figures; the target is at most 4 KiB." >>"$verdicts"
    else
      echo "**Idle memory: target not met**: Sluice holds $figures; the target is at most 4 KiB." >>"$verdicts"
    fi
  fi
fi

env_line="${BENCH_BUILD:+BENCH_BUILD=$BENCH_BUILD }BENCH_DURATION=$duration BENCH_RUNS=$runs BENCH_WARMUP=$warmup BENCH_TARGETS=\"$targets\""
env_line="$env_line BENCH_PROXY_CPU=$proxy_cpu BENCH_LOAD_CPU=$load_cpu WS_SMALL_CONNECTIONS=$small_conns WS_SMALL_BYTES=$small_bytes"
env_line="$env_line WS_LARGE_CONNECTIONS=$large_conns WS_LARGE_BYTES=$large_bytes WS_IDLE_CONNECTIONS=$idle_conns"
env_line="$env_line WS_LOAD_SCHED=$load_sched"
env_line="$env_line sh bench/ws.sh ${sluice_arg:-build/sluice}"

section=$tmp/section.md
{
  echo "## WebSocket: messages through one gateway worker"
  echo
  echo "Written by \`bench/ws.sh\` on $started_at."
  echo
  echo "### Messages/s: $(size "$small_bytes") messages over $small_conns connections"
  echo
  cat "$small_table"
  echo
  echo "### MB/s: $(size "$large_bytes") messages over $large_conns connections"
  echo
  cat "$large_table"
  echo
  if [ -s "$idle_md" ]; then
    echo "### Gateway memory per idle WebSocket connection"
    echo
    cat "$idle_md"
    echo
  fi
  cat "$verdicts"
  echo
  echo "Medians of $runs runs of ${duration}s per target and test, taken alternately after a ${warmup}s warm-up each."
  echo "Closed loop: each connection sends one masked binary message (one frame, a fresh mask key each) and"
  echo "waits for its whole echo before the next. Round trip: from handing the message to the socket to the"
  echo "echo's last byte. MB/s is 10^6 bytes of echoed payload per second (each byte crossed the gateway twice)."
  echo "Errors: every echo is compared byte for byte with what was sent; wrong length, opcode or content,"
  echo "framing errors, failed handshakes, closes not asked for and close handshakes that did not end (1000"
  echo "both ways) are counted, summed over the runs. Gateway CPU is its user + system time (nginx: master and"
  echo "worker) over the run, in percent of one CPU; CPU $load_cpu busy is the whole CPU $load_cpu."
  if [ -s "$idle_md" ]; then
    echo
    echo "Idle memory (\`bench/ws_idle.py\`): a fresh gateway and upstream per gateway; 200 connections opened,"
    echo "used once and closed (warm-up), 200 opened, used once and held (so memory the warm-up freed is not"
    echo "counted as free for the measured ones), VmRSS read; then the measured connections opened through the"
    echo "gateway to ws_echo and left silent (VmRSS: \"after open\"), one 64-byte message echoed on each (VmRSS:"
    echo "\"after one echo each\"). Per idle connection = (after − before) / count, the gateway's own VmRSS"
    echo "(nginx: master + worker) from /proc; the gateway then held two more file descriptors per connection."
  fi
  echo
  echo "### Machine"
  echo
  machine_lines
  versions=""
  if wants nginx; then versions="$nginx_version; "; fi
  if wants sluice; then versions="$versions$sluice_version; "; fi
  echo "- Versions: ${versions}libuv $(pkg-config --modversion libuv 2>/dev/null || echo '?') (ws_load, ws_echo)"
  echo
  echo "### Setup"
  echo
  echo "- Upstream: \`bench/ws_echo.cpp\`, one thread, pinned to CPU $load_cpu: RFC 6455 handshake, unmasks each"
  echo "  client frame and echoes it unmasked as its bytes arrive, answers ping and close."
  echo "- Gateways under test, pinned to CPU $proxy_cpu, one worker each, access log off: nginx"
  echo "  (\`bench/nginx-ws-proxy.conf.in\`: \`proxy_http_version 1.1\`, \`Upgrade \$http_upgrade\`,"
  echo "  \`Connection \"upgrade\"\`, default buffers) and Sluice (\`bench/sluice-ws.toml.in\`: one \`[[route]]\` with"
  echo "  \`[route.websocket]\` allow_missing_origin, 16 MiB frame and message limits, ping interval 1h)."
  echo "- Load: \`bench/ws_load.cpp\`, one thread, pinned to CPU $load_cpu beside the upstream, on 127.0.0.1."
  if [ "$load_sched" = batch ]; then
    echo "- ws_load and ws_echo run under SCHED_BATCH (\`chrt --batch 0\`), the gateways under the default policy:"
    echo "  two processes sharing CPU $load_cpu otherwise preempt each other on every wakeup and a run can fall"
    echo "  into small batches that spend the CPU on context switches (runs of one gateway then differ by 40%)."
  fi
  echo "- The direct baseline is ws_load against ws_echo with no gateway between."
  echo
  echo "### Command"
  echo
  sh_block "$env_line"
  echo
  echo "which runs, for each target and run:"
  echo
  load_cmd="taskset -c $load_cpu ${sched:+$sched }build/bench/ws_load --port PORT"
  set -- "$load_cmd --connections $small_conns --size $small_bytes --duration $duration" \
    "$load_cmd --connections $large_conns --size $large_bytes --duration $duration"
  if [ -s "$idle_md" ]; then
    set -- "$@" "# and once:" "python3 bench/ws_idle.py --connections $idle_conns --targets \"$gateways\""
  fi
  sh_block "$@"
} >"$section"

# Replace this script's section of the results file (between its BEGIN and
# END markers), or append it; the rest of the file is left as it is.
mkdir -p "$(dirname "$results")"
"$python" - "$results" "$section" <<'PY' || die "could not write $results"
import os, sys
path, section = sys.argv[1], open(sys.argv[2], encoding="utf-8").read().strip("\n")
begin, end = "<!-- BEGIN websocket -->", "<!-- END websocket -->"
try:
    doc = open(path, encoding="utf-8").read()
except FileNotFoundError:
    doc = ""
block = f"{begin}\n<a id=\"websocket\"></a>\n\n{section}\n{end}\n"
if begin in doc and end in doc:
    i, j = doc.index(begin), doc.index(end) + len(end)
    doc = doc[:i] + block.rstrip("\n") + doc[j:]
else:
    doc = doc.rstrip("\n") + ("\n\n" if doc else "") + block
tmp = f"{path}.tmp.{os.getpid()}"
with open(tmp, "w", encoding="utf-8") as f:
    f.write(doc)
os.replace(tmp, path)
PY

echo
cat "$small_table"
echo
cat "$large_table"
if [ -s "$idle_md" ]; then
  echo
  cat "$idle_md"
fi
echo
cat "$verdicts"
say "report written to $results (section \"websocket\")"
