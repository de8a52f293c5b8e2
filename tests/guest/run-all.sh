#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Runs inside the booted test kernel (busybox sh, cwd = the payload dir).
# Each suite prints TAP; the exit status is non-zero if any suite failed.
# lifecycle_test and variants_test unload and reload the module, so they
# run last. Test builds of the module (variants) sit in the payload.
export KVMAS_KO=${KVMAS_KO:-/kvmas/mod/kvm_atomic_slots.ko}
export PATH="$PWD:$PATH"
rc=0
for t in session_test tools_test batch_validation_test batch_rollback_test batch_dirty_test batch_concurrency_test batch_hammer_test contract_test oracle_test fuzz_test ring_test ringreset_test preload_test lifetime_test lifecycle_test variants_test; do
	echo "# suite: $t"
	"./$t" || rc=1
done
exit $rc
