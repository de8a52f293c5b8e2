#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# `make check`: everything, on a fresh Debian machine.
#  1. host dependencies (apt), host-side checks (library unit tests);
#  2. per kernel lane (Debian bookworm 6.1, bookworm-backports 6.12, and the
#     same two series built for arm64, booted by qemu-system-aarch64): resolve
#     the newest ABI, fetch image + headers, build the module against exactly
#     those headers with W=1 (any warning fails), build it again through DKMS
#     (the "rebuilds on kernel upgrade" path), boot the kernel in QEMU TCG with
#     panic_on_warn=1 and run every suite there;
#  3. a TAP summary per kernel and a total.
# KVMAS_LANES="6.12" narrows the lanes (6.1 6.12 arm64-6.12 arm64-6.1);
# KVMAS_ABI_6_1=... (KVMAS_ABI_ARM64_6_12=...) pins an ABI.
set -euo pipefail

# shellcheck source=tests/common.sh
. "$(dirname "$0")/common.sh"
lanes=${KVMAS_LANES:-6.1 6.12 arm64-6.12 arm64-6.1}

say "host dependencies and payload"
prepare_host "$lanes"
summaries=()
total_pass=0
total_fail=0
failed=0

# Adds one "LABEL: N passed, N failed" line to the totals.
count() {
	local p f
	p=$(sed -n 's/.*: \([0-9]*\) passed.*/\1/p' <<<"$1")
	f=$(sed -n 's/.* \([0-9]*\) failed.*/\1/p' <<<"$1")
	total_pass=$((total_pass + ${p:-0}))
	total_fail=$((total_fail + ${f:-0}))
	summaries+=("$1")
}

# Host-side suites print their own "N passed, N failed" closing line.
host_suite() {
	local label=$1 res rc=0
	shift
	say "host: $label"
	res=$("$@" 2>&1) || rc=$?
	printf '%s\n' "$res"
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' <<<"$res" | tail -n 1)
	count "$label: ${line:-0 passed, 1 failed}"
	if [ "$rc" -ne 0 ] || [ -z "$line" ]; then
		failed=1
		[ -n "$line" ] || echo "$label: no result line" >&2
	fi
}

# One boot of the current lane's kernel running one guest script; its TAP
# is summarised under @label.
boot_suites() {
	local ko=$1 script=$2 label=$3 tcg=$4 rc=0 line f
	local log=$out/logs/$label.log modprobe=() append=() mem=${BOOT_MEM:-1G}

	[ -z "${5:-}" ] || modprobe=(--modprobe "$5")
	# Multi-threaded TCG: boot on one CPU, so loading the module (ftrace
	# patching by the livepatch) and the first VM (static keys) patch
	# kernel text while no other vCPU executes it; race-all.sh brings CPU 1
	# online after that (see tests/vm/run.sh --tcg-thread).
	[ "$tcg" != multi ] || append=(--append maxcpus=1)
	say "$label: boot ($tcg-threaded TCG) and run $script"
	"$vm/run.sh" --env "$ENV_FILE" --ko "$ko" --payload "$payload" \
		--cmd "$script" --log "$log" --timeout "${KVMAS_TIMEOUT:-900}" \
		--tcg-thread "$tcg" --mem "$mem" "${modprobe[@]}" "${append[@]}" --quiet || rc=$?
	# The TAP stream, not the boot noise, so CI logs read like kselftest.
	grep -E '^(not )?ok |^# |^TAP|^1\.\.' "$log" | tr -d '\r' || true
	line=$("$vm/tap-summary.sh" "$log" "$label") || rc=1
	count "$line"
	f=$(sed -n 's/.* \([0-9]*\) failed.*/\1/p' <<<"$line")
	if [ "$rc" -ne 0 ]; then
		failed=1
		[ "${f:-0}" -gt 0 ] || count "$label-run: 0 passed, 1 failed"
		echo "run $label failed (see $log)" >&2
	fi
}

# An arm64 lane (kallsyms route, KVM built in): every suite that has a
# meaning there, single-threaded; then the epochs and the hammer on
# parallel CPUs where the kernel has a dirty ring (6.12). No shadow MMU,
# no livepatch (so no variants or hardened stock reset), no QEMU 7.2 lane.
arm64_lane() {
	local ko=$1
	payload=$LANE_PAYLOAD
	boot_suites "$ko" ./run-all.sh "$ABI" single
	boot_suites "$ko" ./race-arm64.sh "$ABI-mttcg" multi
	host_suite "$ABI-bench-plot" "$top/tests/bench-plot-check.sh" "$out/logs/$ABI-mttcg.log"
	# A skip is not a pass where the kernel has the dirty ring (arm64
	# 6.2+): the ring suites must really have run there.
	if [ "$UPSTREAM" != "${UPSTREAM#6.1.}" ]; then
		return 0
	fi
	if grep -qs 'SKIP no dirty ring' "$out/logs/$ABI.log" "$out/logs/$ABI-mttcg.log"; then
		echo "$ABI: ring suites skipped on a kernel with a dirty ring" >&2
		count "$ABI-ring-coverage: 0 passed, 1 failed"
		failed=1
	else
		count "$ABI-ring-coverage: 1 passed, 0 failed"
	fi
}

host_suite libkvmas make -s -C "$top/lib" test
host_suite kvmas-cli make -s -C "$top/tools" test
host_suite klp-convert make -s -C "$top/tools/klp-convert" test
host_suite source-check "$top/tests/source-check.sh"
# The benchmark plotter (tests/bench-plot.sh) on a synthetic log with every
# panel; each lane's multi-threaded boot feeds it real results below.
host_suite bench-plot "$top/tests/bench-plot-check.sh"
host_suite install "$top/tests/install-check.sh"
# The Debian packages built, lintian-clean, installed into a fresh bookworm
# root (DKMS builds there against the first x86 lane's headers: the root is
# the host's architecture) and purged.
pkg_lane=6.12
for l in $lanes; do
	case $l in arm64-*) ;; *) pkg_lane=$l && break ;; esac
done
KVMAS_PKG_LANE=$pkg_lane host_suite packages "$top/tests/pkg-check.sh"
for lane in $lanes; do
	say "lane $lane"
	use_lane "$lane"
	say "$ABI (upstream $UPSTREAM): build W=1"
	if ! ko=$(build_module "$ABI" "$KDIR" | tail -n 1); then
		count "$ABI-build: 0 passed, 1 failed"
		failed=1
		continue
	fi
	# DKMS: the path a kernel upgrade takes (a cross lane builds as a
	# packager's build host would).
	say "$ABI: dkms build"
	if ! dkms_build "$ABI" "$KDIR"; then
		count "$ABI-dkms: 0 passed, 1 failed"
		failed=1
	fi
	if [ "$ARCH" = arm64 ]; then
		arm64_lane "$ko"
		continue
	fi
	host_suite "$ABI-static" "$top/tests/static-check.sh" "$ko"
	# Test builds the guest loads in place of the real module, in a
	# payload of this lane's own (variants_test.c).
	payload=$out/$ABI/payload
	rm -rf "$payload"
	cp -r "$out/payload" "$payload"
	for v in kallsyms:KVMAS_FORCE_KALLSYMS missing:KVMAS_TEST_MISSING_SYMBOL; do
		if vko=$(KVMAS_EXTRA_CFLAGS=-D${v#*:} build_module "$ABI" "$KDIR" "-${v%%:*}" | tail -n 1); then
			cp "$vko" "$payload/kvm_atomic_slots-${v%%:*}.ko"
		else
			count "$ABI-build-${v%%:*}: 0 passed, 1 failed"
			failed=1
		fi
	done
	ibt=0
	grep -qs '^CONFIG_X86_KERNEL_IBT=y' "$KDIR/.config" && ibt=1

	# Boot 1: every suite, single-threaded TCG (deterministic vCPU
	# interleaving; see tests/vm/run.sh --tcg-thread).
	boot_suites "$ko" "KVMAS_KERNEL_IBT=$ibt ./run-all.sh" "$ABI" single
	# `kvmas --json` as the guest printed it, re-parsed by python3 here.
	host_suite "$ABI-json" "$top/tests/json-check.sh" "$out/logs/$ABI.log"
	# Boot 2: the races that need truly parallel vCPUs.
	boot_suites "$ko" ./race-all.sh "$ABI-mttcg" multi
	# Its benchmarks' JSON lines (bench_ring, bench_batch stall) through
	# the plotter: a PNG and one .jsonl line per result.
	host_suite "$ABI-bench-plot" "$top/tests/bench-plot-check.sh" "$out/logs/$ABI-mttcg.log"
	# Boot 3: batch commits under shadow paging (kvm_amd npt=0), where
	# every batch takes the invalidate route: the batch suite, the
	# contracts and the differential oracle again.
	boot_suites "$ko" ./shadow-all.sh "$ABI-shadow" single "kvm_amd npt=0"
	# Boot 4: the kernel's own KVM selftests (from this lane's Debian
	# linux-source) with the module, with module + LD_PRELOAD shim, and
	# stock (module unloaded); see tests/guest/kvm-selftests.sh.
	if ks=$("$top/tests/kselftest/build-kvm.sh" "$lane" | tail -n 1); then
		rm -rf "$payload/kselftests"
		cp -r "$ks" "$payload/kselftests"
		BOOT_MEM=3G boot_suites "$ko" ./kvm-selftests.sh "$ABI-kselftests" single
	else
		count "$ABI-kselftests-build: 0 passed, 1 failed"
		failed=1
	fi
	# Boot 5: Debian's unmodified QEMU 7.2 as the VMM of a 2-vCPU guest
	# that remaps memory under a running vCPU, stock and with the
	# LD_PRELOAD shim (tests/qemu72/qemu72.sh).
	payload=$out/payload-qemu72
	boot_suites "$ko" ./qemu72.sh "$ABI-qemu72" single
done

say "summary"
printf '%s\n' "${summaries[@]}"
echo "total: $total_pass passed, $total_fail failed"
exit $failed
