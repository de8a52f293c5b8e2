#!/usr/bin/env bash
# tap-summary.sh - count the TAP results in a VM console log.
#
# Usage: tests/vm/tap-summary.sh LOGFILE LABEL
#
# Prints one line:  LABEL: N passed, N failed[, N skipped]
# (", N skipped" only when something was skipped).  LABEL should be one word
# so the line doubles as CI's plain "N passed, N failed" closing line.
#
# Counted: top-level result lines of the kselftest harness, i.e. lines that
# START with `ok ` / `not ok ` (after removing the console's \r).  Indented
# or `# `-prefixed lines are nested subtests or comments, not counted.
#   ok N ... # SKIP ...      -> skipped (also `not ok ... # SKIP`)
#   ok N ... # XFAIL ...     -> passed (an expected failure is a pass)
#   not ok N ... # TODO ...  -> skipped (TAP: a TODO failure is not a failure)
#   Bail out!                -> one failure
# Plans (`1..N` at column 0) are summed: results missing from a plan (a
# test that crashed or hung mid-way) count as failures, with a note on stderr.
#
# Exit status: 1 if anything failed or nothing passed, else 0.
set -euo pipefail

if (($# != 2)); then
	sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}" >&2
	exit 2
fi
LOGFILE=$1 LABEL=$2
[[ -r "$LOGFILE" ]] || {
	echo "tap-summary: cannot read $LOGFILE" >&2
	exit 2
}

# awk does the counting; LC_ALL=C so odd console bytes cannot upset it.
read -r passed failed skipped missing < <(LC_ALL=C awk '
	{ sub(/\r+$/, ""); gsub(/\r/, "") }
	/^(not )?ok( |$)/ {
		notok = ($0 ~ /^not ok/)
		# Directive: text after the first " # " (TAP allows "#" right after
		# the description too; kselftest always writes " # ").
		dir = ""
		if (match($0, / # */)) dir = toupper(substr($0, RSTART + RLENGTH))
		total++
		if (dir ~ /^SKIP/) { skipped++; next }
		if (notok && dir ~ /^TODO/) { skipped++; next }
		if (notok) failed++; else passed++
		next
	}
	/^1\.\.[0-9]+/ { split($0, a, /[^0-9.]/); sub(/^1\.\./, "", a[1]); planned += a[1] + 0; next }
	/^Bail out!/ { failed++; next }
	END {
		missing = planned - total
		if (missing < 0) missing = 0
		printf "%d %d %d %d\n", passed, failed + missing, skipped, missing
	}
' "$LOGFILE")

if ((missing > 0)); then
	echo "tap-summary: $missing planned result(s) missing from $LOGFILE (counted as failed)" >&2
fi

line="$LABEL: $passed passed, $failed failed"
((skipped == 0)) || line+=", $skipped skipped"
echo "$line"

if ((failed > 0 || passed == 0)); then
	exit 1
fi
exit 0
