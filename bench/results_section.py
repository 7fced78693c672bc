#!/usr/bin/python3
"""Replace one section of bench/RESULTS-tls.md, leaving the others as they are.

    python3 bench/results_section.py FILE NAME < section.md

bench/RESULTS.md belongs to bench/run.sh, which rewrites it whole. The TLS
figures, idle memory and testssl findings come from three other scripts run
at different times, so they share a second file, RESULTS-tls.md, in which
each script owns the text between

    <!-- BEGIN NAME -->
    <!-- END NAME -->

and replaces only that. NAME is one of SECTIONS; a missing file or marker
pair is created, in the order of SECTIONS. The file is replaced atomically.
Also importable: write_section(path, name, text).
"""
import os
import sys

SECTIONS = ("tls", "idle-memory", "testssl")

HEADER = """# Sluice benchmarks: TLS, idle memory, testssl

Three parts, each written by its own script, which replaces only its part
(between the `BEGIN`/`END` comments) when it runs; the plain-HTTP benchmark
is in [RESULTS.md](RESULTS.md), written by `bench/run.sh`.

- [TLS handshakes and keep-alive over TLS](#tls): `sh bench/tls.sh`
- [Idle memory per connection](#idle-memory): `python3 bench/idle_memory.py`
- [testssl.sh scan](#testssl): `sh bench/testssl.sh`
"""


def _markers(name):
    return f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"


def _placeholder(name):
    begin, end = _markers(name)
    return f"{begin}\n<a id=\"{name}\"></a>\n\n(not run yet)\n{end}\n"


def write_section(path, name, text):
    if name not in SECTIONS:
        raise ValueError(f"unknown section {name!r} (known: {', '.join(SECTIONS)})")
    try:
        with open(path, encoding="utf-8") as f:
            doc = f.read()
    except FileNotFoundError:
        doc = HEADER
    for n in SECTIONS:
        begin, end = _markers(n)
        if begin not in doc or end not in doc:
            # Insert before the first later section that exists, else at the end.
            later = [doc.index(_markers(m)[0]) for m in SECTIONS[SECTIONS.index(n) + 1:]
                     if _markers(m)[0] in doc]
            at = min(later) if later else len(doc)
            if at == len(doc) and not doc.endswith("\n\n"):
                doc += "\n" if doc.endswith("\n") else "\n\n"
                at = len(doc)
            doc = doc[:at] + _placeholder(n) + "\n" + doc[at:]
    begin, end = _markers(name)
    i = doc.index(begin)
    j = doc.index(end, i)
    body = f"<a id=\"{name}\"></a>\n\n" + text.strip("\n") + "\n"
    doc = doc[:i] + begin + "\n" + body + doc[j:]
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(doc)
    os.replace(tmp, path)


def main(argv):
    if len(argv) != 3:
        sys.stderr.write(__doc__)
        return 2
    write_section(argv[1], argv[2], sys.stdin.read())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
