#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Runs inside the booted test kernel (busybox sh, cwd = the payload dir).
# Each suite prints TAP; the exit status is non-zero if any suite failed.
# lifecycle_test unloads and reloads the module, so it runs last.
export KVMAS_KO=${KVMAS_KO:-/kvmas/mod/kvm_atomic_slots.ko}
export PATH="$PWD:$PATH"
rc=0
for t in session_test tools_test ring_test lifecycle_test; do
	echo "# suite: $t"
	"./$t" || rc=1
done
exit $rc
