#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# The arm64 lanes' boot with multi-threaded TCG: vCPUs, harvesters and
# committers on different host threads of a weakly ordered guest CPU.
# race_test is x86's (it needs the livepatched stock reset); here the
# per-vCPU reset and the harvest library go through their epochs (1,000
# each, every page's value checked) and the hammer commits under two
# truly parallel vCPUs.
export KVMAS_KO=${KVMAS_KO:-/kvmas/mod/kvm_atomic_slots.ko}
. ./parallel.sh
rc=0
echo "# suite: ringreset_test, epochs on parallel CPUs"
./ringreset_test -f ep || rc=1
echo "# suite: batch_hammer_test, parallel vCPUs"
KVMAS_HAMMER_ITERS=2000 ./batch_hammer_test || rc=1
# Every batch-commit measurement in quick mode (3 rounds, short phases):
# proves each runs and prints its JSON lines; `make demo` runs them full.
echo "# bench: bench_batch (quick)"
KVMAS_BENCH_QUICK=1 ./bench_batch || rc=1
kill "$holder"
exit $rc
