# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=sh
#
# Sourced by the scripts of multi-threaded TCG boots, which start with
# maxcpus=1 (tests/check.sh, tests/demo.sh): the module's livepatch has
# patched kernel text on one CPU; the VM holder now flips KVM's static keys
# (also text patching) once, still on one CPU, and keeps them still; only
# then does CPU 1 come up. Sets $holder (the holder's pid).
./vmholder &
holder=$!
sleep 1
if [ -e /sys/devices/system/cpu/cpu1/online ] &&
   [ "$(cat /sys/devices/system/cpu/cpu1/online)" = 0 ]; then
	echo 1 >/sys/devices/system/cpu/cpu1/online || exit 1
fi
echo "# cpus online: $(cat /sys/devices/system/cpu/online)"
