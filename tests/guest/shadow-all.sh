#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Runs inside the test kernel booted with kvm_amd npt=0 (shadow paging):
# every batch takes the invalidate route there. The batch suite (a shorter
# hammer), the contracts and the differential oracle.
export PATH="$PWD:$PATH"
rc=0
for t in "env KVMAS_HAMMER_ITERS=3000 ./batch_test" ./contract_test ./oracle_test; do
	echo "# suite: $t"
	$t || rc=1
done
exit $rc
