#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Runs inside the test kernel booted with kvm_amd npt=0 (shadow paging):
# every batch takes the invalidate route there. The batch suites (a shorter
# hammer), the contracts and the differential oracle.
export PATH="$PWD:$PATH"
rc=0
for t in ./batch_validation_test ./batch_rollback_test ./batch_dirty_test \
	./batch_concurrency_test "env KVMAS_HAMMER_ITERS=${KVMAS_HAMMER_ITERS:-3000} ./batch_hammer_test" \
	./contract_test ./oracle_test; do
	echo "# suite: $t"
	$t || rc=1
done
exit $rc
