#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# The kernel's own KVM selftests (built from Debian's linux-source of this
# lane, tests/kselftest/build-kvm.sh, in ./kselftests) in three modes, one
# TAP stream per mode:
#   module  the module loaded (as booted; its livepatch hardens the stock
#           KVM_RESET_DIRTY_RINGS the dirty-ring test uses)
#   shim    the module + LD_PRELOAD=libkvmas-preload.so (memslot DELETEs
#           held and committed as batches)
#   stock   the module unloaded (`kvmas unload`): Debian's KVM as shipped
# Every test must pass in every mode. Each result line carries the MMIO
# SPTEs KVM created while it ran (tracepoint kvmmmu:mark_mmio_spte, the
# same event that bumps the vCPU stat pf_mmio_spte_created, counted
# VM-wide and surviving the test's exit): where a test races vCPUs against
# memslot changes (set_memory_region_test's move test) that is the number
# of holes vCPUs ran into. In shim mode the shim's counters are added.
export PATH="$PWD:$PATH"
KO=${KVMAS_KO:-/kvmas/mod/kvm_atomic_slots.ko}
SHIM=$PWD/libkvmas-preload.so
TR=/sys/kernel/debug/tracing
[ -d "$TR/events" ] || TR=/sys/kernel/tracing
rc=0

# name|command (small enough for a 3 GiB TCG guest; dirty_log_test needs -i > 2)
TESTS="set_memory_region_test|set_memory_region_test
memslot_modification_stress_test|memslot_modification_stress_test -i 100 -v 2 -b 64M
memslot_perf_test|memslot_perf_test -s 64 -l 1 -r 1 -f 2 -e 4
dirty_log_test-bitmap|dirty_log_test -M dirty-log -i 3
dirty_log_test-ring|dirty_log_test -M dirty-ring -i 3
dirty_log_perf_test|dirty_log_perf_test -i 2 -v 2 -b 64M"
NTESTS=$(echo "$TESTS" | wc -l)

trace_on() {
	echo 0 >"$TR/tracing_on"
	echo 8192 >"$TR/buffer_size_kb"
	echo >"$TR/trace"
	echo 1 >"$TR/events/kvmmmu/mark_mmio_spte/enable"
	echo 1 >"$TR/tracing_on"
}

# MMIO SPTEs created since trace_on ("?" if the buffer overran).
trace_count() {
	echo 0 >"$TR/tracing_on"
	echo 0 >"$TR/events/kvmmmu/mark_mmio_spte/enable"
	over=$(grep -h '^overrun:' "$TR"/per_cpu/cpu*/stats 2>/dev/null |
		awk '{ s += $2 } END { print s + 0 }')
	n=$(grep -c 'mark_mmio_spte' "$TR/trace")
	if [ "$over" != 0 ]; then echo "$n+overrun"; else echo "$n"; fi
}

run_mode() {
	mode=$1
	echo "# mode: $mode"
	echo "TAP version 13"
	echo "1..$NTESTS"
	i=0
	echo "$TESTS" | while IFS='|' read -r name cmd; do
		i=$((i + 1))
		log=/tmp/ksft-$mode-$name.log
		cnt=/tmp/ksft-$mode-$name.counters
		rm -f "$cnt"
		trace_on
		t0=$(cut -d' ' -f1 /proc/uptime)
		if [ "$mode" = shim ]; then
			# shellcheck disable=SC2086
			env LD_PRELOAD="$SHIM" KVMAS_PRELOAD_LOG="$cnt" \
				./kselftests/$cmd >"$log" 2>&1
		else
			# shellcheck disable=SC2086
			./kselftests/$cmd >"$log" 2>&1
		fi
		st=$?
		t1=$(cut -d' ' -f1 /proc/uptime)
		mmio=$(trace_count)
		extra=""
		if [ "$mode" = shim ]; then
			if [ -s "$cnt" ]; then
				extra=" $(grep -E '^(held|batched|ops_batched|batch_failed|passed_through|fallbacks|flush_timer|flush_mm|flush_vcpu_ioctl|flush_complete|vcpu_waits)=' "$cnt" | tr '\n' ' ')"
			else
				extra=" no-counters"
				st=1
			fi
			# The shim must have worked, not fallen back, and held
			# the DELETEs of the tests that delete slots.
			# (A VM of another type, e.g. a protected one, is not
			# the shim's: passed through, with its own fallback.)
			grep -Eq '^fallback_reason=(none|VM type)' "$cnt" 2>/dev/null || st=1
			case $name in
			set_memory_region_test | memslot_modification_stress_test)
				grep -q '^held=0$' "$cnt" && st=1
				grep -q '^batch_failed=0$' "$cnt" || st=1
				;;
			esac
		fi
		secs=$(awk "BEGIN { printf \"%.1f\", $t1 - $t0 }")
		if [ "$st" = 0 ]; then
			echo "ok $i $mode/$name # mmio_sptes=$mmio time=${secs}s$extra"
		else
			echo "not ok $i $mode/$name # exit=$st mmio_sptes=$mmio time=${secs}s$extra"
			sed 's/^/#   /' "$log" | tail -n 25
			echo fail >/tmp/ksft-failed
		fi
	done
}

rm -f /tmp/ksft-failed
echo "# kselftests: $(cat kselftests/SOURCE 2>/dev/null)"
[ -e /dev/kvm-atomic-slots ] || { echo "# module not loaded at boot"; exit 1; }
./kvmas caps >/dev/null 2>&1 || true
run_mode module
run_mode shim
echo "# unloading the module for the stock mode"
if ! ./kvmas unload; then
	echo "# kvmas unload failed"
	exit 1
fi
if [ -e /dev/kvm-atomic-slots ] || grep -q '^kvm_atomic_slots ' /proc/modules; then
	echo "# module still loaded"
	exit 1
fi
run_mode stock
# Leave the module as we found it (and prove it loads again).
insmod "$KO" || rc=1
t=0
while [ "$(cat /sys/kernel/livepatch/kvm_atomic_slots/transition 2>/dev/null)" = 1 ] && [ $t -lt 300 ]; do
	sleep 0.1
	t=$((t + 1))
done
[ -e /tmp/ksft-failed ] && rc=1
exit $rc
