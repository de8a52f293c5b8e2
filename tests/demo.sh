#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# `make demo`: boots Debian's own kernels in QEMU with the module loaded and
# tells the story with numbers measured in that boot. Sets up everything it
# needs on a fresh Debian machine (like `make check`). KVMAS_LANES picks the
# kernels (default: 6.12 then 6.1; arm64-6.12 and arm64-6.1 tell the arm64
# story, where a hole is an abort injected into the guest).
set -euo pipefail
# shellcheck source=tests/common.sh
. "$(dirname "$0")/common.sh"
lanes=${KVMAS_LANES:-6.12 6.1}

say "preparing (apt packages, Debian kernels, module build)"
prepare_host "$lanes" >/dev/null
demo_logs=()
for lane in $lanes; do
	use_lane "$lane" 2>/dev/null
	ko=$(build_module "$ABI" "$KDIR" | tail -n 1)
	log=$out/logs/demo-$ABI.log
	kvmmod="kvm_amd + kvm_atomic_slots"
	[ "$ARCH" = x86_64 ] || kvmmod="KVM (built in, VHE) + kvm_atomic_slots"
	say "Debian $ABI (upstream $UPSTREAM) under QEMU TCG, $kvmmod loaded"
	"$vm/run.sh" --env "$ENV_FILE" --ko "$ko" --payload "$LANE_PAYLOAD" \
		--cmd ./demo-all.sh --tcg-thread multi --append maxcpus=1 \
		--log "$log" --quiet --timeout 900 >/dev/null 2>&1 || {
		echo "demo run failed; console log: $log" >&2
		tail -n 40 "$log" >&2
		exit 1
	}
	demo_logs+=("$log")
	# The story only, not the boot: from the demo's banner to its end.
	tr -d '\r' <"$log" | sed -n '/^== kvm-atomic-slots demo/,/^KVMAS-INIT done/p' |
		grep -vE '^\[ *[0-9]+\.[0-9]+\]|^KVMAS-|^\{"bench":'
	# QEMU 7.2's scene is x86's (an i440FX guest under kvm_amd).
	[ "$ARCH" = arm64 ] && continue
	# Scene: an unmodified VMM, Debian's QEMU 7.2, inside this kernel.
	log=$out/logs/demo-qemu72-$ABI.log
	echo
	echo "== Debian's own QEMU 7.2 (unmodified) as the VMM, -accel kvm inside $ABI"
	echo "   guest pamguest.elf: vCPU0 flips i440FX PAM registers (one PCI config write ="
	echo "   one QEMU memory transaction), vCPU1 runs code at 0xc4000, 0xf4000, 1 MiB, 4 MiB"
	"$vm/run.sh" --env "$ENV_FILE" --ko "$ko" --payload "$out/payload-qemu72" \
		--cmd 'QEMU72_TRACE=2 ./qemu72.sh' --log "$log" --quiet --timeout 600 \
		>/dev/null 2>&1 || echo "   (a check failed; console log: $log)"
	tr -d '\r' <"$log" | grep -E '^(ok|not ok) |^# (libkvmtrace|uncovered|  [0-9]|shim run|stock run)' |
		sed -e 's/^# /   /' -e 's/^ok [0-9]* - /-> /' -e 's/^not ok [0-9]* - /-> FAILED: /'
done

# The benchmarks' results of every lane, machine-readable (JSON lines) and
# drawn as one picture (tests/bench-plot.sh). A failed plot is reported
# and fails `make demo`, after everything above has been shown.
say "benchmark results of the lanes' boots (absolute times are TCG times)"
mkdir -p "$out/demo"
plot_rc=0
"$top/tests/bench-plot.sh" "${demo_logs[@]}" -o "$out/demo/bench.png" \
	-j "$out/demo/bench.jsonl" >"$out/logs/demo-plot.log" 2>&1 || plot_rc=$?
grep -v '^\(picture\|results\): ' "$out/logs/demo-plot.log" | sed 's/^/   /' || true
echo
if [ -s "$out/demo/bench.png" ]; then
	echo "picture: $out/demo/bench.png"
else
	echo "picture: none drawn (see $out/logs/demo-plot.log)"
fi
echo "results: $out/demo/bench.jsonl"
if [ "$plot_rc" -ne 0 ]; then
	echo "demo: bench-plot.sh failed (exit $plot_rc; $out/logs/demo-plot.log)" >&2
	exit 1
fi
