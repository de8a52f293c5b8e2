# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash
#
# Shared by tests/check.sh and tests/demo.sh: host preparation, the guest
# payload, and building the module for one Debian kernel ABI.

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
vm=$top/tests/vm
out=$top/build
version=$(sed -n 's/^PACKAGE_VERSION="\(.*\)"/\1/p' "$top/dkms.conf")
mkdir -p "$out/logs"

say() { printf '== %s\n' "$*"; }

# Host packages, then everything that runs inside the guest: the suites,
# the demo and the static CLI, all statically linked; with the lanes to be
# run as arguments, also the arm64 payload if one of them is arm64 (the
# same suites cross-built static; tests/Makefile: no CLI, no preload shim).
prepare_host() {
	"$vm/deps.sh"
	make -s -C "$top/lib"
	make -s -C "$top/tools" static
	rm -rf "$out/payload"
	make -s -C "$top/tests" OUT="$out/payload"
	install -m 0755 "$top/tools/kvmas.static" "$out/payload/kvmas"
	# Debian's own QEMU 7.2 as the guest's VMM (tests/qemu72).
	"$top/tests/qemu72/payload.sh" "$out/payload-qemu72"
	case " $* " in
	*" arm64-"*)
		rm -rf "$out/payload-arm64"
		make -s -C "$top/tests" OUT="$out/payload-arm64" \
			CROSS_COMPILE=aarch64-linux-gnu-
		;;
	esac
}

# Builds the module for one kernel from a copy of exactly what DKMS ships,
# so both lanes build from one checkout and nothing is built in-tree.
# Prints the .ko path; any compiler warning (W=1) is a failure. An optional
# third argument names a test variant built with KVMAS_EXTRA_CFLAGS.
# Cross lanes (arm64): ARCH and CROSS_COMPILE come from the lane's env
# file (use_lane); x86 lanes build natively with nothing added.
build_module() {
	local abi=$1 kdir=$2 variant=${3:-}
	local src=$out/$abi/src$variant log=$out/logs/$abi-build$variant.log
	local xbuild=()
	[ "${ARCH:-x86_64}" = x86_64 ] || xbuild=(ARCH="$ARCH" CROSS_COMPILE="${CROSS_COMPILE:-}")

	rm -rf "$src"
	mkdir -p "$src/tools/klp-convert"
	cp -r "$top/Kbuild" "$top/dkms.conf" "$top/module" "$top/uapi" "$src/"
	cp "$top/tools/klp-convert/klp-convert.c" "$top/tools/klp-convert/Makefile" \
		"$src/tools/klp-convert/"
	if ! KVMAS_EXTRA_CFLAGS=${KVMAS_EXTRA_CFLAGS:-} \
	     sh "$src/module/build.sh" "$kdir" W=1 "${xbuild[@]}" >"$log" 2>&1; then
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
	local abi=$1 kdir=$2
	local d=$out/$abi/dkms log=$out/logs/$abi-dkms.log
	local opts=(--dkmstree "$d/tree" --sourcetree "$d/root/usr/src"
		    --installtree "$d/install")
	local xenv=()
	# A cross lane: DKMS files the build under the target's arch, and the
	# kernel's make (module/build.sh) takes ARCH/CROSS_COMPILE from the
	# environment, as on a distro's cross-building host.
	if [ "${ARCH:-x86_64}" != x86_64 ]; then
		opts+=(-a "$(case $ARCH in arm64) echo aarch64 ;; *) echo "$ARCH" ;; esac)")
		xenv=(ARCH="$ARCH" CROSS_COMPILE="${CROSS_COMPILE:-}")
	fi

	rm -rf "$d"
	mkdir -p "$d/tree" "$d/install"
	make -s -C "$top" dkms-install DESTDIR="$d/root" >/dev/null
	# Run DKMS as a host's package hook would: outside any make (dkms
	# asks make for the kernel's CC, and a parent make's MAKEFLAGS/MAKELEVEL
	# turn that answer into "make[1]: Entering directory ...").
	if ! { env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS "${xenv[@]}" \
		dkms "${opts[@]}" add -m kvm-atomic-slots -v "$version" &&
	       env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS "${xenv[@]}" \
		dkms "${opts[@]}" build -m kvm-atomic-slots -v "$version" \
		   -k "$abi" --kernelsourcedir "$kdir"; } >"$log" 2>&1; then
		cat "$log" >&2
		echo "dkms build failed for $abi" >&2
		return 1
	fi
	local ko
	ko=$(find "$d/tree" -name 'kvm_atomic_slots.ko*' | head -n 1)
	[ -n "$ko" ] || { echo "dkms produced no module for $abi" >&2; return 1; }
	# The DKMS path must produce the same livepatch relocations.
	if grep -qs '^CONFIG_LIVEPATCH=y' "$kdir/.config"; then
		"$top/tools/klp-convert/klp-convert" --check \
			"$top/module/klp-syms.list" "$ko" >&2 || return 1
	fi
	echo "dkms build ok for $abi: ${ko#"$d"/}"
}

# Resolves (and fetches if needed) a lane's kernel; sets ENV_FILE and the
# env variables (ABI, UPSTREAM, KDIR, VMLINUZ, ARCH, CROSS_COMPILE, ...).
# Lanes: 6.1, 6.12 (x86_64) and arm64-6.1, arm64-6.12 (cross-built, see
# tests/vm/fetch-kernel.sh).  LANE_PAYLOAD is the guest programs built for
# the lane's architecture (prepare_host).
use_lane() {
	ENV_FILE=$("$vm/fetch-kernel.sh" "$1" | tail -n 1)
	# Cached x86 env files may predate ARCH/CROSS_COMPILE (fetch-kernel.sh
	# adds them on its next run); never inherit another lane's values.
	ARCH=x86_64 CROSS_COMPILE=""
	# shellcheck disable=SC1090
	. "$ENV_FILE"
	# shellcheck disable=SC2034 # for the callers
	if [ "$ARCH" = x86_64 ]; then LANE_PAYLOAD=$out/payload; else LANE_PAYLOAD=$out/payload-$ARCH; fi
}
