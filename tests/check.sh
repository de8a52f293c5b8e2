#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# `make check`: everything, on a fresh Debian machine.
#  1. host dependencies (apt), host-side checks (library unit tests);
#  2. per kernel lane (Debian bookworm 6.1, bookworm-backports 6.12): resolve
#     the newest ABI, fetch image + headers, build the module against exactly
#     those headers with W=1 (any warning fails), build it again through DKMS
#     (the "rebuilds on kernel upgrade" path), boot the kernel in QEMU TCG with
#     panic_on_warn=1 and run every suite there;
#  3. a TAP summary per kernel and a total.
# KVMAS_LANES="6.12" narrows the lanes; KVMAS_ABI_6_1=... pins an ABI.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
vm=$top/tests/vm
out=$top/build
lanes=${KVMAS_LANES:-6.1 6.12}
version=$(sed -n 's/^PACKAGE_VERSION="\(.*\)"/\1/p' "$top/dkms.conf")
mkdir -p "$out/logs"

say() { printf '== %s\n' "$*"; }

say "host dependencies"
"$vm/deps.sh"

say "host-side checks"
make -s -C "$top/lib" test
make -s -C "$top/tools" static
make -s -C "$top/tests" OUT="$out/payload"
install -m 0755 "$top/tools/kvmas.static" "$out/payload/kvmas"

# Builds the module for one kernel from a copy of exactly what DKMS ships, so
# both lanes can build from one checkout and nothing is built in-tree.
build_module() {
	local abi=$1 kdir=$2 src=$out/$abi/src log=$out/logs/$abi-build.log

	rm -rf "$src"
	mkdir -p "$src"
	cp -r "$top/Kbuild" "$top/dkms.conf" "$top/module" "$top/uapi" "$src/"
	if ! make -C "$kdir" M="$src" W=1 modules >"$log" 2>&1; then
		cat "$log" >&2
		echo "module build failed for $abi" >&2
		return 1
	fi
	if grep -E 'warning:|error:' "$log" >&2; then
		echo "module build for $abi is not warning-free (W=1)" >&2
		return 1
	fi
	echo "$src/module/kvm_atomic_slots.ko"
}

# DKMS in a private tree: add + build against this ABI's headers, exactly as
# a host's kernel-upgrade hook would, without touching /var/lib/dkms.
dkms_build() {
	local abi=$1 kdir=$2 d=$out/$abi/dkms log=$out/logs/$abi-dkms.log

	rm -rf "$d"
	mkdir -p "$d/tree" "$d/install"
	make -s -C "$top" dkms-install DESTDIR="$d/root" >/dev/null
	if ! { dkms --dkmstree "$d/tree" --sourcetree "$d/root/usr/src" \
		   --installtree "$d/install" add -m kvm-atomic-slots -v "$version" &&
	       dkms --dkmstree "$d/tree" --sourcetree "$d/root/usr/src" \
		   --installtree "$d/install" build -m kvm-atomic-slots \
		   -v "$version" -k "$abi" --kernelsourcedir "$kdir"; } >"$log" 2>&1; then
		cat "$log" >&2
		echo "dkms build failed for $abi" >&2
		return 1
	fi
	local ko
	ko=$(find "$d/tree" -name 'kvm_atomic_slots.ko*' | head -n 1)
	[ -n "$ko" ] || { echo "dkms produced no module for $abi" >&2; return 1; }
	echo "dkms build ok for $abi: ${ko#"$d"/}"
}

declare -A summary
total_pass=0
total_fail=0
failed=0
for lane in $lanes; do
	say "lane $lane"
	env_file=$("$vm/fetch-kernel.sh" "$lane" | tail -n 1)
	# shellcheck disable=SC1090
	. "$env_file"
	say "$ABI (upstream $UPSTREAM): build W=1"
	ko=$(build_module "$ABI" "$KDIR" | tail -n 1) || { failed=1; continue; }
	say "$ABI: dkms build"
	dkms_build "$ABI" "$KDIR" || failed=1

	say "$ABI: boot and run suites"
	log=$out/logs/$ABI.log
	rc=0
	"$vm/run.sh" --env "$env_file" --ko "$ko" --payload "$out/payload" \
		--cmd ./run-all.sh --log "$log" --timeout "${KVMAS_TIMEOUT:-900}" \
		--quiet || rc=$?
	# Show the TAP stream (not the boot noise) so CI logs read like kselftest.
	grep -E '^(not )?ok |^# |^TAP|^1\.\.' "$log" | tr -d '\r' || true
	line=$("$vm/tap-summary.sh" "$log" "$ABI") || rc=1
	summary[$ABI]=$line
	p=$(sed -n 's/.*: \([0-9]*\) passed.*/\1/p' <<<"$line")
	f=$(sed -n 's/.* \([0-9]*\) failed.*/\1/p' <<<"$line")
	total_pass=$((total_pass + ${p:-0}))
	total_fail=$((total_fail + ${f:-0}))
	if [ "$rc" -ne 0 ]; then
		failed=1
		[ "${f:-0}" -gt 0 ] || total_fail=$((total_fail + 1))
		echo "run on $ABI failed (see $log)" >&2
	fi
done

say "summary"
for abi in "${!summary[@]}"; do
	echo "${summary[$abi]}"
done
echo "total: $total_pass passed, $total_fail failed"
exit $failed
