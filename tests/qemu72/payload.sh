#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# payload.sh OUTDIR - the payload of the qemu72 boot (tests/qemu72/qemu72.sh):
# the host's own Debian QEMU 7.2 binary (tests/vm/run.sh copies its shared
# libraries in, via ldd), the firmware it needs for a -nodefaults multiboot
# boot (SeaBIOS, the multiboot/linuxboot option ROMs, kvmvapic), pamguest.elf,
# the static kvmas CLI (module counters) and, if it can be built, the
# LD_PRELOAD shim libkvmas-preload.so (lib/; KVMAS_PRELOAD_SO=path overrides).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
out=${1:?usage: payload.sh OUTDIR}
mkdir -p "$out" && out=$(cd "$out" && pwd)

rm -rf "$out"
mkdir -p "$out/qemu-fw"
make -s -C "$here" OUT="$out" "$out/pamguest.elf" "$out/libkvmtrace.so"
install -m 0755 "$here/qemu72.sh" "$out/qemu72.sh"
install -m 0755 "$(command -v qemu-system-x86_64)" "$out/qemu-system-x86_64"
# Debian's QEMU looks in /usr/share/qemu, then /usr/share/seabios (its
# firmware path); the guest gets them in one -L directory.
for f in bios-256k.bin multiboot_dma.bin linuxboot_dma.bin kvmvapic.bin; do
	src=""
	for d in /usr/share/qemu /usr/share/seabios; do
		[ -e "$d/$f" ] && src=$d/$f && break
	done
	[ -n "$src" ] || { echo "payload.sh: no $f (qemu-system-x86 / seabios)" >&2; exit 1; }
	cp -L "$src" "$out/qemu-fw/$f"
done
if [ -x "$top/tools/kvmas.static" ]; then
	install -m 0755 "$top/tools/kvmas.static" "$out/kvmas"
fi
so=${KVMAS_PRELOAD_SO:-}
if [ -z "$so" ] && make -s -C "$top/lib" -n libkvmas-preload.so >/dev/null 2>&1; then
	make -s -C "$top/lib" libkvmas-preload.so
	so=$top/lib/libkvmas-preload.so
fi
if [ -n "$so" ]; then
	install -m 0755 "$so" "$out/libkvmas-preload.so"
fi
