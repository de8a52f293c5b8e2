#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# `make demo` inside the guest, booted with multi-threaded TCG and
# maxcpus=1 (see tests/demo.sh): a VM holder keeps KVM's static keys still,
# then the second CPU comes online, so vCPUs and the VMM really run in
# parallel, as the stall and scaling figures need.
export PATH="$PWD:$PATH"
./vmholder &
holder=$!
sleep 1
if [ -e /sys/devices/system/cpu/cpu1/online ] &&
   [ "$(cat /sys/devices/system/cpu/cpu1/online)" = 0 ]; then
	echo 1 >/sys/devices/system/cpu/cpu1/online || exit 1
fi
rc=0
./demo || rc=1
echo
./bench_batch || rc=1
echo
echo "== dirty-ring reset benchmark (ratios within one boot)"
./bench_ring || rc=1
echo
./kvmas stats || rc=1
kill "$holder"
exit $rc
