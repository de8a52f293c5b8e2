#!/usr/bin/env bash
# deps.sh - install the host packages the VM test harness needs (Debian bookworm, root).
#
# Usage: tests/vm/deps.sh
#
# Fast no-op when everything is installed: dpkg-query is consulted first, so
# CI can call this unconditionally without touching the network.  Only the
# missing packages are installed, after one `apt-get update`.
set -euo pipefail

PKGS=(
	qemu-system-x86 # boots Debian's kernels under TCG (the host kernel has no modules)
	qemu-system-arm # the same for the arm64 lanes (qemu-system-aarch64, -M virt)
	gcc-aarch64-linux-gnu  # arm64 lanes: cross-builds the module (gcc-12, as the headers expect)
	libc6-dev-arm64-cross  # arm64 lanes: static aarch64 test binaries
	busybox-static  # the guest's only userland (PID 1 is a busybox sh script)
	cpio            # packs the initramfs (newc)
	xz-utils        # Debian 6.12 ships .ko.xz; busybox insmod wants plain .ko
	zstd            # same for kernels that ship .ko.zst
	kmod            # host-side modinfo computes the module load order
	dkms            # the project also ships a DKMS package
	gcc             # gcc-12: the compiler Debian's 6.1 and 6.12 headers expect
	make
	libelf-dev  # kbuild/objtool and our ELF post-link step
	bc          # kbuild
	flex        # kbuild
	bison       # kbuild
	dwarves     # pahole: Debian 6.12 headers generate BTF for modules
	libc6-dev   # static test binaries and the static CLI
	pkg-config
	libnl-genl-3-dev # userspace tools talk generic netlink
	libnl-3-dev
	debhelper  # tests/pkg-check.sh: dpkg-buildpackage of debian/
	dh-dkms
	lintian
	mmdebstrap # a fresh bookworm root to install the packages into
	man-db     # man --warnings on the man pages
	python3    # tests/json-check.sh, tests/bench-plot.sh: JSON through python3's json
	gnuplot-nox # tests/bench-plot.sh: make demo's benchmark picture (pngcairo)
	abigail-tools # lib abi-check: abidiff against the release's ABI dump
	clang-format # tests/source-check.sh: no drift from the kernel's .clang-format
	libssl-dev # kbuild host tools of the debug kernel (tests/debug, make check-debug)
)

missing=()
for p in "${PKGS[@]}"; do
	# "install ok installed" is the only state that means usable; anything
	# else (not-installed, half-configured, config-files) gets (re)installed.
	st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	if [[ "$st" != "install ok installed" ]]; then
		missing+=("$p")
	fi
done

if ((${#missing[@]} == 0)); then
	exit 0
fi

if ((EUID != 0)); then
	echo "deps.sh: missing packages (${missing[*]}) and not root: run as root" >&2
	exit 1
fi

echo "deps.sh: installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# Another apt/dpkg may hold the lock (unattended upgrades, a parallel job):
# wait for it instead of failing straight away.
APT_OPTS=(-o DPkg::Lock::Timeout=600 -o Acquire::Retries=3)
apt-get "${APT_OPTS[@]}" update -qq >&2
apt-get "${APT_OPTS[@]}" install -y -qq --no-install-recommends "${missing[@]}" >&2
