#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# `make demo` inside the guest, booted with multi-threaded TCG and
# maxcpus=1 (see tests/demo.sh): a VM holder keeps KVM's static keys still,
# then the second CPU comes online, so vCPUs and the VMM really run in
# parallel, as the stall and scaling figures need.
export PATH="$PWD:$PATH"
. ./parallel.sh
rc=0
./demo || rc=1
echo
./bench_batch || rc=1
echo
./bench_ring || rc=1
echo
# The CLI links libnl: the arm64 payload has none.
if [ -x ./kvmas ]; then ./kvmas stats || rc=1; fi
kill "$holder"
exit $rc
