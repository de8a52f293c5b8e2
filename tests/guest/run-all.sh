#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Runs inside the booted test kernel (busybox sh, cwd = the payload dir).
# Each suite prints TAP; the exit status is non-zero if any suite failed.
# lifecycle_test and variants_test unload and reload the module, so they
# run last. Test builds of the module (variants) sit in the payload.
# The soak and ring4_test run short here (single-threaded TCG: every part
# of the load, interleaved); `make soak` runs them long on parallel CPUs.
export KVMAS_KO=${KVMAS_KO:-/kvmas/mod/kvm_atomic_slots.ko}
export PATH="$PWD:$PATH"
export KVMAS_SOAK_SECONDS=${KVMAS_SOAK_SECONDS:-20} KVMAS_SOAK_PARTS=${KVMAS_SOAK_PARTS:-0x27}
export KVMAS_RING4_SECONDS=${KVMAS_RING4_SECONDS:-5} KVMAS_RING4_SLOTS=${KVMAS_RING4_SLOTS:-1}
suites="session_test tools_test batch_validation_test batch_rollback_test batch_dirty_test batch_concurrency_test batch_hammer_test zap_range_test contract_test oracle_test fuzz_test ring_test ringreset_test its_bitmap_test soak_test ring4_test preload_test lifetime_test lifecycle_test variants_test"
# The arm64 payload is the static programs only: no CLI (it links libnl),
# no preload shim (dynamic), no test builds of the module (variants).
if [ "$(uname -m)" = aarch64 ]; then
	suites=$(echo "$suites" | sed -e 's/ tools_test//' -e 's/ preload_test//' -e 's/ variants_test//')
fi
rc=0
for t in $suites; do
	echo "# suite: $t"
	"./$t" || rc=1
done
exit $rc
