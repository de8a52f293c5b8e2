#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Checks of the kvmas CLI that need no module: usage, and the messages a
# missing module must produce. With the module loaded, the "not loaded"
# checks are skipped (the harness covers that case).
#
# usage: test_cli.sh [path/to/kvmas]

KVMAS=${1:-./kvmas}
pass=0
fail=0
skipped=0
n=0

check() {	# description, expected status, expected stderr substring, cmd...
	desc=$1 want=$2 msg=$3
	shift 3
	n=$((n + 1))
	err=$("$@" 2>&1 >/dev/null)
	got=$?
	if [ "$got" = "$want" ] && { [ -z "$msg" ] || printf '%s' "$err" | grep -qF -- "$msg"; }; then
		pass=$((pass + 1))
		echo "ok $n - $desc"
	else
		fail=$((fail + 1))
		echo "not ok $n - $desc (status $got, stderr: $err)"
	fi
}

skip() {
	n=$((n + 1))
	skipped=$((skipped + 1))
	echo "ok $n - $1 # SKIP $2"
}

# A failing command must leave stdout empty: JSON consumers read it whole.
check_quiet() {	# description, cmd...
	desc=$1
	shift
	n=$((n + 1))
	out=$("$@" 2>/dev/null)
	if [ -z "$out" ]; then
		pass=$((pass + 1))
		echo "ok $n - $desc"
	else
		fail=$((fail + 1))
		echo "not ok $n - $desc (stdout: $out)"
	fi
}

check "help exits 0" 0 "" "$KVMAS" help
n=$((n + 1))
if out=$("$KVMAS" help) && for c in caps stats sessions vms monitor help; do
	printf '%s\n' "$out" | grep -q "^  $c" || exit 1; done; then
	pass=$((pass + 1)); echo "ok $n - help lists every command"
else
	fail=$((fail + 1)); echo "not ok $n - help lists every command"
fi
check "no command is a usage error" 2 "missing command" "$KVMAS"
check "unknown command is a usage error" 2 "unknown command 'frob'" \
	"$KVMAS" frob
check "stray argument is a usage error" 2 "unexpected argument 'x'" \
	"$KVMAS" stats x
check "stats --vm needs an argument" 2 "--vm needs an argument" \
	"$KVMAS" stats --vm
check "stats --vm rejects an empty VM" 2 "bad VM ''" "$KVMAS" stats --vm ""
check "stats --vm rejects a bad session id" 2 "bad VM '12x'" \
	"$KVMAS" stats --vm 12x
check "stats --vm rejects a bad VM id" 2 "bad VM 'vm:1x'" \
	"$KVMAS" stats --vm vm:1x
check "vms takes no argument" 2 "unexpected argument 'x'" "$KVMAS" vms x
check "monitor rejects --count 0" 2 "bad count '0'" "$KVMAS" monitor --count 0
check "monitor rejects --count junk" 2 "bad count '3x'" \
	"$KVMAS" monitor --count 3x
check "caps on a missing node" 1 \
	"cannot open /nonexistent: device node not found (is the kvm_atomic_slots module loaded?)" \
	env KVMAS_DEVICE=/nonexistent "$KVMAS" caps
check "caps on a foreign device" 1 \
	"cannot open /dev/null: device does not speak the kvm-atomic-slots protocol" \
	env KVMAS_DEVICE=/dev/null "$KVMAS" caps
check "caps --json on a missing node" 1 "cannot open /nonexistent" \
	env KVMAS_DEVICE=/nonexistent "$KVMAS" caps --json
check_quiet "caps --json failure prints nothing on stdout" \
	env KVMAS_DEVICE=/nonexistent "$KVMAS" caps --json
check "--json before the command" 1 "cannot open /nonexistent" \
	env KVMAS_DEVICE=/nonexistent "$KVMAS" --json caps
check "--json does not hide a stray argument" 2 "unexpected argument 'x'" \
	"$KVMAS" stats --json x
check "--json with an unknown command" 2 "unknown command 'frob'" \
	"$KVMAS" --json frob
check "monitor --json still checks --count" 2 "bad count '0'" \
	"$KVMAS" monitor --json --count 0
n=$((n + 1))
if "$KVMAS" help | grep -q -- '--json'; then
	pass=$((pass + 1)); echo "ok $n - help documents --json"
else
	fail=$((fail + 1)); echo "not ok $n - help documents --json"
fi

# The bash completion offers every command of `kvmas help` and the options.
comp=$(dirname "$0")/kvmas.bash-completion
complete_words() {	# the words completed for a command line ending in a space or a prefix
	bash -c '. "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1));
		_kvmas; printf "%s\n" "${COMPREPLY[@]}"' sh "$comp" "$@"
}
if ! command -v bash >/dev/null 2>&1 || [ ! -f "$comp" ]; then
	skip "bash completion" "no bash or no $comp"
else
	n=$((n + 1))
	words=$(complete_words kvmas "")
	missing=
	for c in $("$KVMAS" help | sed -n 's/^  \([a-z]\{1,\}\).*/\1/p') --json; do
		printf '%s\n' "$words" | grep -qx -- "$c" || missing="$missing $c"
	done
	if [ -z "$missing" ]; then
		pass=$((pass + 1)); echo "ok $n - completion offers every command"
	else
		fail=$((fail + 1)); echo "not ok $n - completion lacks:$missing"
	fi
	n=$((n + 1))
	if [ "$(complete_words kvmas monitor --c)" = "--count" ] &&
	   [ "$(complete_words kvmas --json sta)" = "stats" ] &&
	   [ "$(complete_words kvmas stats --v)" = "--vm" ] &&
	   [ "$(complete_words kvmas vms --j)" = "--json" ] &&
	   [ -z "$(complete_words kvmas monitor --count "")" ]; then
		pass=$((pass + 1)); echo "ok $n - completion of options and after --json"
	else
		fail=$((fail + 1)); echo "not ok $n - completion of options and after --json"
	fi
fi

# The family name comes from the uapi header; the wording is what matters.
notloaded="module not loaded (no generic netlink family "
if [ -d /sys/module/kvm_atomic_slots ]; then
	for c in stats sessions vms "stats --vm" monitor "stats --json" \
		"sessions --json" "monitor --json"; do
		skip "$c without the module" "module is loaded"
	done
else
	check "stats without the module" 1 "$notloaded" "$KVMAS" stats
	check "sessions without the module" 1 "$notloaded" "$KVMAS" sessions
	check "vms without the module" 1 "$notloaded" "$KVMAS" vms
	check "stats --vm without the module" 1 "$notloaded" \
		"$KVMAS" stats --vm kvm-1
	check_quiet "stats --vm --json failure prints nothing on stdout" \
		"$KVMAS" stats --vm kvm-1 --json
	check "monitor without the module" 1 "$notloaded" \
		"$KVMAS" monitor --count 1
	check "stats --json without the module" 1 "$notloaded" \
		"$KVMAS" stats --json
	check_quiet "sessions --json failure prints nothing on stdout" \
		"$KVMAS" sessions --json
	check "monitor --json without the module" 1 "$notloaded" \
		"$KVMAS" --json monitor --count 1
fi

echo "1..$n"
echo "$pass passed, $fail failed, $skipped skipped"
[ "$fail" -eq 0 ]
