#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The benchmarks' machine-readable results, out of the console logs they were
# printed to, and one picture of their latency distributions.
#
# usage: tests/bench-plot.sh LOG... -o OUT.png [-j OUT.jsonl]
#
# Every line of a LOG (a guest console log, one per boot: `make demo` has one
# per kernel lane) that holds {"bench": is a result of tests/bench_batch or
# tests/bench_ring (schema: tests/bench_common.h). They are written, in log
# order and verbatim, to OUT.jsonl, one JSON object per line; python3 parses
# them (tests/vm/deps.sh installs it) and gnuplot (gnuplot-nox, pngcairo
# terminal, else png) draws OUT.png, one panel per measurement found:
#   (a) commit latency of 64 slot resizes: 64 stock DELETE+CREATE pairs vs
#       one batch, per boot (kernel) and condition (idle | running vCPU);
#   (b) the same for one resize;
#   (c) stall of a vCPU outside the changed range per update: pause-all
#       (stock, vCPUs paused around it) vs batch, per kernel and zap mode;
#   (d) dirty-ring harvest-to-reset latency, stock vs ours, per kernel and
#       variant (only when bench_ring's lines are there).
# A panel with no lines in the logs is left out (and said so). Each box is
# the distribution of one measurement's rounds on a log time axis; each
# group's label names the kernel, the condition and the ratio the benchmark
# states. Absolute times are QEMU TCG times: only ratios within one boot
# mean anything (the picture's title says so).
#
# Prints one line per panel (drawn or left out) and the paths written.
# Exit status: 0 when every result line parsed and the picture was drawn;
# 1 when a result line did not parse (the others are still written and
# drawn), no result was found, or drawing failed; 2 for bad usage.
set -uo pipefail

usage() {
	sed -n '4,/^set -uo/{/^#/s/^# \{0,1\}//p}' "$0" >&2
	exit 2
}

logs=()
png=""
jsonl=""
while [ $# -gt 0 ]; do
	case $1 in
	-o) [ $# -ge 2 ] || usage; png=$2; shift ;;
	-j) [ $# -ge 2 ] || usage; jsonl=$2; shift ;;
	-h | --help) usage ;;
	-*) echo "bench-plot: unknown option $1" >&2; usage ;;
	*) logs+=("$1") ;;
	esac
	shift
done
{ [ ${#logs[@]} -gt 0 ] && [ -n "$png" ]; } || usage
for l in "${logs[@]}"; do
	[ -r "$l" ] || { echo "bench-plot: cannot read $l" >&2; exit 2; }
done
for t in python3 gnuplot; do
	command -v "$t" >/dev/null || {
		echo "bench-plot: $t not installed (tests/vm/deps.sh installs it)" >&2
		exit 1
	}
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
[ -n "$jsonl" ] || jsonl=$tmp/results.jsonl
mkdir -p "$(dirname "$png")" "$(dirname "$jsonl")"
rm -f "$png" "$jsonl"

term=png
font=""
if gnuplot -e 'set terminal pngcairo' </dev/null >/dev/null 2>&1; then
	term=pngcairo
	font='font "sans,10"'
fi

# Parses the logs, writes the .jsonl, the panels' data and the gnuplot
# script; exits 1 if a result line did not parse (after writing the rest).
prc=0
python3 - "$tmp" "$jsonl" "$png" "$term" "$font" "${logs[@]}" <<'PY' || prc=$?
import json, math, os, sys

tmp, jsonl_path, png, term, font = sys.argv[1:6]
logs = sys.argv[6:]
MARK = '{"bench":'
dec = json.JSONDecoder()

recs, bad = [], 0
with open(jsonl_path, "w") as out:
    for boot, path in enumerate(logs):
        with open(path, "rb") as f:
            for n, raw in enumerate(f, 1):
                line = raw.decode("utf-8", "replace").replace("\r", "").rstrip("\n")
                i = line.find(MARK)
                if i < 0:
                    continue
                try:
                    d, end = dec.raw_decode(line, i)
                    if not isinstance(d, dict) or "case" not in d:
                        raise ValueError("not a result object")
                except ValueError as e:
                    bad += 1
                    print("bench-plot: %s:%d: not a JSON result (%s): %.120s"
                          % (path, n, e, line[i:]), file=sys.stderr)
                    continue
                out.write(line[i:end] + "\n")
                d["_boot"] = boot
                recs.append(d)

if not recs:
    print("bench-plot: no {\"bench\": lines in %s" % " ".join(logs), file=sys.stderr)
    sys.exit(1)

# One label per boot: its kernel, with the log's name where two boots ran
# the same kernel.
kern = {}
for r in recs:
    kern.setdefault(r["_boot"], r.get("kernel", "?"))
seen = {}
for b, k in kern.items():
    seen[k] = seen.get(k, 0) + 1
def boot_label(b):
    k = kern[b]
    return k if seen[k] == 1 else "%s [%s]" % (k, os.path.basename(logs[b]))

def quantile(s, q):
    s = sorted(s)
    if len(s) == 1:
        return s[0]
    x = q * (len(s) - 1)
    i = int(math.floor(x))
    j = min(i + 1, len(s) - 1)
    return s[i] + (s[j] - s[i]) * (x - i)

def fmt_ratio(x):
    if x is None:
        return "n/a"
    return "%.3gx" % x

def gq(s):
    """A gnuplot double-quoted string."""
    return '"' + s.replace('"', '\\"') + '"'

def median(s):
    return quantile(s, 0.5)

# Panel definitions: which lines, how they group, which two methods are
# compared (the "before" one first), and the ratio each group states.
def resize_ratio(case):
    def f(boot, cond, by):
        for r in recs:
            if (r["_boot"] == boot and r.get("bench") == "batch" and r.get("case") == case
                    and r.get("condition") == cond and r.get("method") == "ratio"):
                return "stock/batch %s (p50 of rounds)" % fmt_ratio(r.get("p50"))
        a, b = by.get("stock"), by.get("batch")
        if a and b and median(b) > 0:
            return "stock/batch %s (p50s)" % fmt_ratio(median(a) / median(b))
        return ""
    return f

def stall_ratio(boot, mode, by):
    a, b = by.get("pause_all"), by.get("batch")
    if a and b and sum(a) > 0:
        return "batch/pause-all %s (means)" % fmt_ratio((sum(b) / len(b)) / (sum(a) / len(a)))
    return ""

def ring_ratio(boot, variant, by):
    for r in recs:
        if (r["_boot"] == boot and r.get("bench") == "ring" and r.get("case") == "harvest_reset_ratio"
                and r.get("variant") == variant):
            return "stock/ours\\np50 %s, p99 %s" % (fmt_ratio(r.get("p50_ratio")),
                                                 fmt_ratio(r.get("p99_ratio")))
    a, b = by.get("stock"), by.get("ours")
    if a and b and median(b) > 0:
        return "stock/ours %s (p50s)" % fmt_ratio(median(a) / median(b))
    return ""

PANELS = [
    dict(tag="a", bench="batch", case="resize64", group="condition",
         methods=[("stock", "stock: 64 DELETE+CREATE pairs"), ("batch", "one batch of 64 resizes")],
         title="(a) commit latency, 64 slot resizes: 64 stock DELETE+CREATE pairs vs one batch",
         ratio=resize_ratio("resize64"), glabel=lambda g: "vCPU " + g if g == "running" else g),
    dict(tag="b", bench="batch", case="resize1", group="condition",
         methods=[("stock", "stock: DELETE+CREATE"), ("batch", "a one-resize batch")],
         title="(b) commit latency, one slot resize: stock DELETE+CREATE vs a one-op batch",
         ratio=resize_ratio("resize1"), glabel=lambda g: "vCPU " + g if g == "running" else g),
    dict(tag="c", bench="batch", case="stall", group="mode",
         methods=[("pause_all", "pause-all (pause vCPUs, stock update, resume)"),
                  ("batch", "batch (vCPUs keep running)")],
         title="(c) stall of a vCPU outside the changed range, per update: pause-all vs batch",
         ratio=stall_ratio, glabel=lambda g: g.replace("_", "-") + " zaps"),
    dict(tag="d", bench="ring", case="harvest_reset", group="variant",
         methods=[("stock", "stock dirty-ring reset"), ("ours", "ours (per-vCPU reset)")],
         title="(d) dirty-ring harvest-to-reset latency per round: stock vs ours",
         ratio=ring_ratio, glabel=lambda g: g),
]
COLORS = ["#d95f02", "#1b9e77"]

drawn = []
for p in PANELS:
    methods = [m for m, _ in p["methods"]]
    groups, order = {}, []
    unit = "us"
    for r in recs:
        if r.get("bench") != p["bench"] or r.get("case") != p["case"]:
            continue
        if r.get("method") not in methods or not isinstance(r.get("samples"), list):
            continue
        key = (r["_boot"], str(r.get(p["group"], "?")))
        if key not in groups:
            groups[key] = {}
            order.append(key)
        s = [float(v) for v in r["samples"] if isinstance(v, (int, float))]
        groups[key].setdefault(r["method"], []).extend(s)
        unit = r.get("unit", unit)
    order = [k for k in order if any(groups[k].get(m) for m in methods)]
    if not order:
        print("(%s) %s: no lines, left out" % (p["tag"], p["case"]))
        continue
    p.update(groups=groups, order=order, unit=unit)
    drawn.append(p)

npan = len(drawn)
boots = []
for b in sorted(kern):
    r = next(x for x in recs if x["_boot"] == b)
    boots.append("%s (%s, %s guest CPUs, TCG %s)" % (boot_label(b), r.get("arch", "?"),
                                                    r.get("cpus", "?"), r.get("tcg", "?")))
gp = []
maxg = max(len(p["order"]) for p in drawn) if drawn else 1
w = max(1500, 210 * maxg + 150)
# The boots, a few to a title line.
blines, cur = [], "boots: "
for i, b in enumerate(boots):
    piece = b + (";  " if i + 1 < len(boots) else "")
    if len(cur) + len(piece) > w // 9 and cur != "boots: ":
        blines.append(cur)
        cur = ""
    cur += piece
blines.append(cur)
title = "\\n".join([
    "kvm-atomic-slots benchmarks. Absolute times are QEMU TCG (emulated CPU) times: "
    "only ratios within one boot mean anything.",
    "Boxes: quartiles, bar: median, whiskers: min to max, dots: every round."] + blines)
h = 60 + 450 * npan + 18 * (len(blines) + 1)
gp.append("set terminal %s size %d,%d %s noenhanced" % (term, w, h, font))
gp.append("set output %s" % gq(png))
gp.append("set encoding utf8")
gp.append("set multiplot layout %d,1 title %s font \",12\"" % (npan, gq(title)))
gp.append("set logscale y")
gp.append("set grid ytics mytics lc rgb '#dddddd'")
gp.append("set key outside top right horizontal")
gp.append("set bmargin 6")
gp.append("set lmargin 11")
gp.append("set rmargin 4")
gp.append("set style fill solid 0.35 border")

for p in drawn:
    tag = p["tag"]
    methods = [m for m, _ in p["methods"]]
    vals = [v for k in p["order"] for m in methods for v in p["groups"][k].get(m, [])]
    pos = [v for v in vals if v > 0]
    floor = None
    if len(pos) < len(vals):
        floor = 10 ** (math.floor(math.log10(min(pos))) - 1) if pos else 0.1
    # Plotted in seconds (the axis prints SI prefixes) where the unit is a
    # time; zeros (no stall at all) sit on a "0" line a decade below the
    # smallest value, as a log axis has no 0.
    scale = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}.get(p["unit"])
    def cl(v):
        return (v if floor is None or v > floor else floor) * (scale or 1.0)
    box = open(os.path.join(tmp, "box-%s.dat" % tag), "w")
    dots = open(os.path.join(tmp, "dots-%s.dat" % tag), "w")
    tics = []
    for gi, key in enumerate(p["order"]):
        by = p["groups"][key]
        center = gi * 3 + 1.5
        for mi, m in enumerate(methods):
            s = by.get(m)
            if not s:
                continue
            x = gi * 3 + 1 + mi
            q = [cl(quantile(s, f)) for f in (0, 0.25, 0.5, 0.75, 1)]
            box.write("%g %g %g %g %g %g %d\n" % (x, q[1], q[0], q[4], q[3], q[2], mi))
            for i, v in enumerate(s):
                jit = ((i * 0.6180339887) % 1.0 - 0.5) * 0.5
                dots.write("%g %g %d\n" % (x + jit, cl(v), mi))
        lab = "%s\\n%s\\n%s" % (boot_label(key[0]), p["glabel"](key[1]),
                                p["ratio"](key[0], key[1], by))
        tics.append("%s %g" % (gq(lab), center))
    box.close()
    dots.close()
    gp.append("set title %s font \",11\"" % gq(p["title"]))
    gp.append("set xrange [0:%g]" % (len(p["order"]) * 3))
    gp.append("set xtics (%s) nomirror scale 0" % ", ".join(tics))
    per = "update" if tag == "c" else "round"
    if scale:
        gp.append("set format y '%.0s %cs'")
        ylabel = "time per %s (log scale)" % per
    else:
        gp.append("set format y '%g'")
        ylabel = "%s per %s (log scale)" % (p["unit"], per)
    gp.append("set ylabel %s" % gq(ylabel))
    gp.append("set ytics autofreq")
    if floor is not None:
        gp.append("set ytics add (\"0\" %g)" % cl(floor))
        gp.append("set yrange [%g:*]" % (cl(floor) / 1.5))
    else:
        gp.append("set yrange [*:*]")
    cmds = []
    for mi, (m, mlabel) in enumerate(p["methods"]):
        cmds.append("NaN with boxes lc rgb '%s' title %s" % (COLORS[mi], gq(mlabel)))
    bf = gq(os.path.join(tmp, "box-%s.dat" % tag))
    df = gq(os.path.join(tmp, "dots-%s.dat" % tag))
    # One candlestick plot per method, each in its colour (works on the
    # png terminal too); the median is a zero-height candlestick.
    for mi in range(len(methods)):
        cmds.append("%s using ($7==%d?$1:NaN):2:3:4:5:(0.7) with candlesticks whiskerbars 0.5 "
                    "lc rgb '%s' lw 1.5 notitle" % (bf, mi, COLORS[mi]))
        cmds.append("%s using ($7==%d?$1:NaN):6:6:6:6:(0.7) with candlesticks lc rgb '#000000' "
                    "lw 2.5 notitle" % (bf, mi))
        cmds.append("%s using ($3==%d?$1:NaN):2 with points pt 7 ps 0.45 lc rgb '%s' notitle"
                    % (df, mi, COLORS[mi]))
    gp.append("plot " + ", \\\n     ".join(cmds))
    print("(%s) %s: %d group(s) drawn" % (tag, p["case"], len(p["order"])))

if not drawn:
    print("bench-plot: none of the plotted measurements in the logs (%d result lines)" % len(recs),
          file=sys.stderr)
    sys.exit(1)
gp.append("unset multiplot")
with open(os.path.join(tmp, "plot.gp"), "w") as f:
    f.write("\n".join(gp) + "\n")
with open(os.path.join(tmp, "count"), "w") as f:
    f.write("%d\n" % len(recs))
sys.exit(1 if bad else 0)
PY
[ -s "$tmp/plot.gp" ] || exit 1
if ! gnuplot "$tmp/plot.gp" 2>"$tmp/gnuplot.err"; then
	echo "bench-plot: gnuplot failed:" >&2
	cat "$tmp/gnuplot.err" >&2
	exit 1
fi
# A warning is not fatal (a font fallback), but the operator should see it.
[ ! -s "$tmp/gnuplot.err" ] || sed 's/^/bench-plot: gnuplot: /' "$tmp/gnuplot.err" >&2
if [ "$(head -c 8 "$png" 2>/dev/null | od -An -tx1 | tr -d ' \n')" != 89504e470d0a1a0a ]; then
	echo "bench-plot: $png is not a PNG" >&2
	exit 1
fi
if [ "$jsonl" != "$tmp/results.jsonl" ]; then
	echo "results: $jsonl ($(cat "$tmp/count") lines)"
fi
echo "picture: $png ($term)"
exit "$prc"
