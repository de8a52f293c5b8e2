#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Host-side check that tests/bench-plot.sh turns benchmark output into
# machine-readable results and a picture. Prints TAP and "N passed, N failed".
#
# usage: tests/bench-plot-check.sh [BOOT-LOG...]
#
# Without a log: a synthetic console log (\r line ends, kernel messages
# between the results) with lines for every panel, (a) to (d), must give a
# valid PNG with all four panels and one .jsonl line per result; a result
# line cut by a kernel message must make the plotter fail while it still
# writes the other results.
# With logs (`make check` passes each lane's multi-threaded boot, which runs
# `bench_batch stall` and `bench_ring`): for each log holding {"bench":
# lines, the plotter must succeed, draw a valid PNG of non-trivial size,
# draw the panel of every plotted measurement in the log, and write exactly
# as many .jsonl lines as the log has {"bench": lines, each one JSON. A log
# without such lines (a boot that never got there fails on its own) is a
# skip.
set -u

top=$(cd "$(dirname "$0")/.." && pwd)
plot=$top/tests/bench-plot.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0 pass=0 fail=0

ok() { n=$((n + 1)); pass=$((pass + 1)); echo "ok $n - $1"; }
nok() {
	n=$((n + 1)); fail=$((fail + 1)); echo "not ok $n - $1"
	[ -z "${2:-}" ] || sed 's/^/# /' "$2"
}
check() { # what, command...
	local what=$1
	shift
	if "$@" >"$tmp/why" 2>&1; then ok "$what"; else nok "$what" "$tmp/why"; fi
}

# A PNG whose signature, chunk CRCs, IHDR (at least MINW x MINH) and IEND
# all hold, of at least MINBYTES.
png_valid() { # file minbytes minw minh
	python3 - "$@" <<'PY'
import struct, sys, zlib
path, minbytes, minw, minh = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
b = open(path, "rb").read()
if len(b) < minbytes:
    sys.exit("%s: %d bytes, expected at least %d" % (path, len(b), minbytes))
if b[:8] != b"\x89PNG\r\n\x1a\n":
    sys.exit("%s: no PNG signature" % path)
i, chunks = 8, []
while i < len(b):
    ln, typ = struct.unpack(">I4s", b[i:i + 8])
    data = b[i + 8:i + 8 + ln]
    crc, = struct.unpack(">I", b[i + 8 + ln:i + 12 + ln])
    if zlib.crc32(typ + data) & 0xffffffff != crc:
        sys.exit("%s: bad CRC in chunk %r" % (path, typ))
    chunks.append((typ, data))
    i += 12 + ln
if chunks[0][0] != b"IHDR" or chunks[-1][0] != b"IEND":
    sys.exit("%s: chunks %s" % (path, [c[0] for c in chunks]))
w, h = struct.unpack(">II", chunks[0][1][:8])
if w < minw or h < minh:
    sys.exit("%s: %dx%d, expected at least %dx%d" % (path, w, h, minw, minh))
if not any(c[0] == b"IDAT" for c in chunks):
    sys.exit("%s: no image data" % path)
print("%s: %dx%d, %d bytes" % (path, w, h, len(b)))
PY
}

# Every line of FILE is one JSON object with bench and case; N of them.
jsonl_valid() { # file n
	python3 - "$@" <<'PY'
import json, sys
lines = open(sys.argv[1]).read().splitlines()
for l in lines:
    d = json.loads(l)
    assert isinstance(d, dict) and "bench" in d and "case" in d, l
if len(lines) != int(sys.argv[2]):
    sys.exit("%d lines in %s, the input has %s {\"bench\": lines" % (len(lines), sys.argv[1], sys.argv[2]))
PY
}

# The panel of every plotted measurement present in LOG was drawn
# (the plotter says "(x) CASE: N group(s) drawn").
panels_drawn() { # log plotter-output
	local c rc=0
	for c in resize64 resize1 stall harvest_reset; do
		tr -d '\r' <"$1" | grep -aq "{\"bench\":.*\"case\":\"$c\".*\"samples\":\[[0-9]" || continue
		grep -q "^([a-d]) $c: [0-9]* group(s) drawn" "$2" || {
			echo "$c results in $1 but no panel for them:"
			cat "$2"
			rc=1
		}
	done
	return $rc
}

synthetic() {
	python3 - >"$tmp/synth.log" <<'PY'
import json, random
random.seed(7)
def line(k, **f):
    d = {"bench": f.pop("bench", "batch"), "case": f.pop("case"), "kernel": k,
         "arch": "x86_64", "cpus": 2, "tcg": "multi"}
    d.update(f)
    return json.dumps(d, separators=(",", ":"))
def s(mu, n):
    return [round(random.lognormvariate(mu, 0.5), 3) for _ in range(n)]
out = ["[    1.000000] Linux version (synthetic)", "== batch-commit benchmark"]
for k in ("6.12.0-test-amd64", "6.1.0-test-amd64"):
    for cond in ("idle", "running"):
        for case, mu in (("resize64", 8), ("resize1", 4.5)):
            out.append(line(k, case=case, condition=cond, method="stock", ops=1, samples=s(mu + 1, 21), unit="us"))
            out.append(line(k, case=case, condition=cond, method="batch", ops=1, samples=s(mu, 21), unit="us"))
            out.append(line(k, case=case, condition=cond, method="ratio", unit="x", rounds=21, p50=2.5))
            out.append("[   12.345678] kvm_atomic_slots: a kernel message between results")
    out.append(line(k, case="stall", mode="kvm_default", method="batch", updates=200,
                    samples=[0, 0, 1.5, 0, 3.25, 0, 0, 0.5, 0, 0], unit="us"))
    out.append(line(k, case="stall", mode="kvm_default", method="pause_all", updates=200,
                    samples=s(6, 200), unit="us"))
    for v in ("idle", "backlog"):
        for m, mu in (("stock", 7), ("ours", 5)):
            out.append(line(k, bench="ring", case="harvest_reset", variant=v, method=m,
                            samples=s(mu, 100), unit="us"))
        out.append(line(k, bench="ring", case="harvest_reset_ratio", variant=v,
                        p50_ratio=7.4, p99_ratio=11.0, target=10, met=True))
    out.append(line(k, case="marginal", unit="us", marginal_per_op=27.5))
print("\r\n".join(out), end="\r\n")
PY
}

if [ $# -eq 0 ]; then
	synthetic
	want=$(grep -ac '{"bench":' "$tmp/synth.log")
	if "$plot" "$tmp/synth.log" -o "$tmp/s.png" -j "$tmp/s.jsonl" >"$tmp/out" 2>&1; then
		ok "synthetic log: the plotter succeeds"
	else
		nok "synthetic log: the plotter succeeds" "$tmp/out"
	fi
	check "synthetic log: a valid PNG of non-trivial size" png_valid "$tmp/s.png" 20000 1000 1200
	check "synthetic log: one .jsonl line per {\"bench\": line ($want)" jsonl_valid "$tmp/s.jsonl" "$want"
	check "synthetic log: panels (a) to (d) drawn" panels_drawn "$tmp/synth.log" "$tmp/out"
	# A result cut by a kernel message: reported, the rest still written.
	{ cat "$tmp/synth.log"; printf '{"bench":"batch","case":"resize1","sam[   13.0] printk\r\nples":[1]}\r\n'; } >"$tmp/cut.log"
	rc=0
	"$plot" "$tmp/cut.log" -o "$tmp/c.png" -j "$tmp/c.jsonl" >"$tmp/out" 2>&1 || rc=$?
	if [ "$rc" = 1 ] && grep -q 'cut.log:[0-9]*: not a JSON result' "$tmp/out" &&
	   jsonl_valid "$tmp/c.jsonl" "$want" >>"$tmp/out" 2>&1 && [ -s "$tmp/c.png" ]; then
		ok "a cut result line fails the plotter (exit 1, named), the others are written"
	else
		echo "exit status $rc" >>"$tmp/out"
		nok "a cut result line fails the plotter (exit 1, named), the others are written" "$tmp/out"
	fi
fi

for log in "$@"; do
	name=$(basename "$log")
	want=$(grep -ac '{"bench":' "$log" 2>/dev/null)
	if [ "${want:-0}" -eq 0 ]; then
		n=$((n + 1))
		echo "ok $n - $name: plotted # SKIP no {\"bench\": lines in $log"
		continue
	fi
	if "$plot" "$log" -o "$tmp/$name.png" -j "$tmp/$name.jsonl" >"$tmp/out" 2>&1; then
		ok "$name: the plotter succeeds on the boot's $want results"
	else
		nok "$name: the plotter succeeds on the boot's $want results" "$tmp/out"
	fi
	check "$name: a valid PNG of non-trivial size" png_valid "$tmp/$name.png" 10000 1000 400
	check "$name: one .jsonl line per {\"bench\": line ($want)" jsonl_valid "$tmp/$name.jsonl" "$want"
	check "$name: a panel for every plotted measurement in the log" panels_drawn "$log" "$tmp/out"
done
echo "1..$n"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
