#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# `make check-debug`: the module under a debug kernel (lockdep + PROVE_RCU,
# DEBUG_ATOMIC_SLEEP, KASAN, KFENCE, DEBUG_LIST, fault injection).
#  1. build (once per machine, cached) the kernel: tests/debug/build-kernel.sh;
#  2. build the module against it with build_module (W=1), plus the two test
#     variants variants_test loads;
#  3. boot it with panic_on_warn=1 and run: the debug-feature checks, the
#     fail-nth allocation-failure driver and every suite of run-all.sh
#     (scaled down: KASAN+lockdep under TCG is ~5-10x slower), then a boot
#     with `kvm_amd npt=0` for shadow-all.sh (KVMAS_DEBUG_SHADOW=0 skips it).
# A boot fails on any lockdep, RCU, atomic-sleep, KASAN or KFENCE report
# (tests/vm/run.sh judges the console: all of them print "WARNING:" or
# "BUG:"), any WARNING/BUG/Oops, or a missing sentinel.
# Prints TAP per boot and a final "N passed, N failed" line.
set -euo pipefail

# shellcheck source=tests/common.sh
. "$(dirname "$0")/../common.sh"
dbg=$top/tests/debug
t_start=$(date +%s)

say "host dependencies and payload"
prepare_host
say "debug kernel (built once per machine; see tests/debug/build-kernel.sh)"
t0=$(date +%s)
env_file=$("$dbg/build-kernel.sh" | tail -n 1)
# shellcheck source=/dev/null
. "$env_file"
echo "$ABI: $env_file (build: $(cat "$(dirname "$env_file")/build-seconds") s once; this step $(($(date +%s) - t0)) s)"

pass=0
fail=0
summaries=()
count() {
	local p f
	p=$(sed -n 's/.*: \([0-9]*\) passed.*/\1/p' <<<"$1")
	f=$(sed -n 's/.* \([0-9]*\) failed.*/\1/p' <<<"$1")
	pass=$((pass + ${p:-0}))
	fail=$((fail + ${f:-0}))
	summaries+=("$1")
}

say "$ABI: module build W=1"
if ! ko=$(build_module "$ABI" "$KDIR" | tail -n 1); then
	count "$ABI-build: 0 passed, 1 failed"
	echo "$pass passed, $fail failed"
	exit 1
fi
# The livepatch-relocation proof on this kernel's build of the module.
make -s -C "$top/tools/klp-convert" klp-convert
res=$("$top/tests/static-check.sh" "$ko" 2>&1) || true
printf '%s\n' "$res"
line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' <<<"$res" | tail -n 1)
count "$ABI-static: ${line:-0 passed, 1 failed}"
payload=$out/$ABI/payload
rm -rf "$payload"
cp -r "$out/payload" "$payload"
for v in kallsyms:KVMAS_FORCE_KALLSYMS missing:KVMAS_TEST_MISSING_SYMBOL; do
	if vko=$(KVMAS_EXTRA_CFLAGS=-D${v#*:} build_module "$ABI" "$KDIR" "-${v%%:*}" | tail -n 1); then
		cp "$vko" "$payload/kvm_atomic_slots-${v%%:*}.ko"
	else
		count "$ABI-build-${v%%:*}: 0 passed, 1 failed"
	fi
done
install -m 0755 "$dbg/guest-debug.sh" "$payload/"
# The fail-nth driver, built like the suites (tests/Makefile's flags).
ksft=$("$top/tests/kselftest/fetch.sh" | tail -n 1)
(cd "$top/tests" && gcc -O2 -g -Wall -Wextra -Werror -Wno-unused-parameter \
	-Wno-sign-compare -Wno-clobbered -D_GNU_SOURCE -I../uapi -I../lib -I. \
	-I"$ksft" -pthread -o "$payload/failnth" "$dbg/failnth.c" workload.c \
	ringvm.c ../lib/libkvmas.a -static -pthread)
ibt=0
grep -qs '^CONFIG_X86_KERNEL_IBT=y' "$KDIR/.config" && ibt=1

# Sizes: the defaults take 10-20 min on a stock kernel under TCG.
knobs="KVMAS_KERNEL_IBT=$ibt KVMAS_HAMMER_ITERS=${KVMAS_HAMMER_ITERS:-400}"
knobs+=" KVMAS_ORACLE_CASES=${KVMAS_ORACLE_CASES:-400}"
knobs+=" KVMAS_FUZZ_CALLS=${KVMAS_FUZZ_CALLS:-4000}"
knobs+=" KVMAS_RING_EPOCHS=${KVMAS_RING_EPOCHS:-100}"

boot() {
	local label=$1 cmd=$2 rc=0 line t1
	shift 2
	local log=$out/logs/$label.log
	say "$label: boot (single-threaded TCG, panic_on_warn=1) and run $cmd"
	t1=$(date +%s)
	"$vm/run.sh" --env "$env_file" --ko "$ko" --payload "$payload" \
		--cmd "$cmd" --log "$log" --timeout "${KVMAS_TIMEOUT:-3600}" \
		--mem 2G --quiet "$@" || rc=$?
	grep -E '^(not )?ok |^# |^TAP|^1\.\.' "$log" | tr -d '\r' || true
	line=$("$vm/tap-summary.sh" "$log" "$label") || rc=1
	count "$line"
	# Lockdep/KASAN/KFENCE reports, for the log reader (run.sh judged them).
	grep -nE 'possible circular locking|suspicious RCU usage|sleeping function called|inconsistent lock state|possible recursive locking|BUG: KASAN|BUG: KFENCE|WARNING:|BUG:' "$log" |
		sed 's/^/# report: /' || true
	if [ "$rc" -ne 0 ]; then
		f=$(sed -n 's/.* \([0-9]*\) failed.*/\1/p' <<<"$line")
		[ "${f:-0}" -gt 0 ] || count "$label-run: 0 passed, 1 failed"
		echo "run $label failed (see $log)" >&2
	fi
	echo "# $label: $(($(date +%s) - t1)) s"
}

boot "$ABI" "$knobs ./guest-debug.sh main"
if [ "${KVMAS_DEBUG_SHADOW:-1}" = 1 ]; then
	boot "$ABI-shadow" "$knobs ./guest-debug.sh shadow" --modprobe "kvm_amd npt=0"
fi

say "summary ($(($(date +%s) - t_start)) s)"
printf '%s\n' "${summaries[@]}"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
