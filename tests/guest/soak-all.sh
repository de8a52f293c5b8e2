#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# The soak (soak_test.c) in a boot with multi-threaded TCG: `make soak`
# runs it for KVMAS_SOAK_SECONDS (default there 300), race-all.sh runs a
# short one in `make check`.
export KVMAS_KO=${KVMAS_KO:-/kvmas/mod/kvm_atomic_slots.ko}
. ./parallel.sh
echo "# suite: soak_test, ${KVMAS_SOAK_SECONDS:-60} s"
./soak_test
rc=$?
kill "$holder"
exit $rc
