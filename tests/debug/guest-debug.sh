#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Runs inside the debug kernel (tests/debug/check-debug.sh), cwd = payload.
#   guest-debug.sh main     checks the debug features are live, runs the
#                           fail-nth driver, then every suite of run-all.sh
#   guest-debug.sh shadow   the same checks, then shadow-all.sh (npt=0)
# The suites' sizes come from the environment (KVMAS_HAMMER_ITERS, ...).
# Lockdep, KASAN and KFENCE reports are judged on the host from the console
# (tests/vm/run.sh); this script adds TAP lines proving the detectors were
# armed before and still armed after the suites (lockdep switches itself
# off after its first report or when it runs out of table space).
export PATH="$PWD:$PATH"
mode=${1:-main}
n=0
rc=0
tap() {
	n=$((n + 1))
	if [ "$1" = 0 ]; then
		echo "ok $n debug_kernel.$2"
	else
		echo "not ok $n debug_kernel.$2"
		rc=1
	fi
}
armed() {
	grep -q 'debug_locks: *1' /proc/lockdep_stats
	tap $? "$1_lockdep_on"
	grep -q 'enabled: *1' /sys/kernel/debug/kfence/stats
	tap $? "$1_kfence_on"
}

echo "# suite: debug-kernel ($mode)"
mount -t debugfs none /sys/kernel/debug 2>/dev/null
armed before
dmesg | grep -q 'KernelAddressSanitizer initialized'
tap $? kasan_on
[ "$(cat /sys/kernel/livepatch/kvm_atomic_slots/enabled 2>/dev/null)" = 1 ]
tap $? livepatch_enabled
[ -w /proc/thread-self/fail-nth ]
tap $? fail_nth_present

case $mode in
main)
	# Failed allocations print page-allocation-failure stacks (warn_alloc)
	# that tests/vm/run.sh would take for a splat: keep KERN_WARNING and
	# below off the console while the driver runs, and judge that window
	# here from the kernel log instead. KASAN/KFENCE (KERN_ERR) still reach
	# the console, and panic_on_warn still panics on any WARN.
	echo "# suite: failnth"
	dmesg -c >/dev/null
	echo "kvmas-failnth: start" >/dev/kmsg
	dmesg -n 4
	./failnth || rc=1
	dmesg -n 8
	dmesg >/tmp/failnth.kmsg
	echo "# failnth: $(grep -c 'page allocation failure\|vmalloc error\|Unable to allocate' /tmp/failnth.kmsg) allocation-failure reports in the kernel log"
	# The whole window must still be in the log buffer to be judged.
	grep -q 'kvmas-failnth: start' /tmp/failnth.kmsg
	tap $? failnth_kmsg_complete
	! grep -E 'WARNING:|BUG:|Oops|KASAN|KFENCE|circular locking|suspicious RCU|sleeping function|inconsistent lock|recursive locking|list_(add|del) corruption|refcount_t' /tmp/failnth.kmsg
	tap $? failnth_no_kernel_reports
	./run-all.sh || rc=1
	;;
shadow)
	[ "$(cat /sys/module/kvm_amd/parameters/npt)" = N ]
	tap $? shadow_paging
	# shadow-all.sh's suites, with the scaled hammer (it pins 3000).
	for t in batch_validation_test batch_rollback_test batch_dirty_test \
		batch_concurrency_test batch_hammer_test contract_test oracle_test; do
		echo "# suite: $t"
		./$t || rc=1
	done
	;;
esac
# lifecycle_test/variants_test reload the module: lockdep must survive it.
echo "# suite: debug-kernel (after)"
armed after
grep -E 'debug_locks|lock-classes|direct dependencies|dependency chains' /proc/lockdep_stats | sed 's/^ */# /'
sed 's/^/# kfence /' /sys/kernel/debug/kfence/stats
exit $rc
