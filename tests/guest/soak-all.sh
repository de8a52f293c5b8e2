#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# The soak (soak_test.c) in a boot with multi-threaded TCG: `make soak`
# runs it for KVMAS_SOAK_SECONDS (default there 300), then ring4_test for
# KVMAS_RING4_ROUNDS; race-all.sh runs short ones in `make check`.
export KVMAS_KO=${KVMAS_KO:-/kvmas/mod/kvm_atomic_slots.ko}
. ./parallel.sh
echo "# suite: soak_test, ${KVMAS_SOAK_SECONDS:-60} s, parts ${KVMAS_SOAK_PARTS:=0x5}"
KVMAS_SOAK_PARTS=$KVMAS_SOAK_PARTS ./soak_test
rc=$?
# And the 4-vCPU ring workload, module beside stock, round after round.
echo "# suite: ring4_test, ${KVMAS_RING4_ROUNDS:=5} rounds"
KVMAS_RING4_ROUNDS=$KVMAS_RING4_ROUNDS ./ring4_test || rc=1
kill "$holder"
exit $rc
