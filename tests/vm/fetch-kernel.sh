#!/usr/bin/env bash
# fetch-kernel.sh - fetch and unpack one of Debian's own kernels for VM tests.
#
# Usage: tests/vm/fetch-kernel.sh LANE
#        LANE = 6.1 | 6.12 | arm64-6.1 | arm64-6.12
#
#   6.1         bookworm(-security)            linux-image-6.1.0-N-amd64-unsigned
#   6.12        bookworm-security/-backports   linux-image-6.12.X+deb12-amd64-unsigned
#   arm64-6.1   bookworm(-security)            linux-image-6.1.0-N-arm64-unsigned
#   arm64-6.12  bookworm-security/-backports   linux-image-6.12.X+deb12-arm64-unsigned
#
# Prints the path of a shell-sourceable env file as the LAST line of stdout
# (everything else goes to stderr).  The env file defines:
#   LANE ABI UPSTREAM PKGVER VMLINUZ MODDIR KDIR VMLINUX ARCH CROSS_COMPILE
# and, for arm64 lanes, IMAGE (the uncompressed Image QEMU boots) and
# BUSYBOX (busybox-static for arm64, the guest's userland).
# KDIR is a working kbuild dir: `make -C "$KDIR" M=$PWD ARCH=$ARCH
# CROSS_COMPILE=$CROSS_COMPILE modules` builds against the extracted headers
# without installing anything into /usr (arm64: a cross build on the
# amd64 host, with gcc-aarch64-linux-gnu).
#
# Environment:
#   KVMAS_CACHE      cache root (default ~/.cache/kvm-atomic-slots)
#   KVMAS_REFRESH=1  refresh the private apt lists now (default: if >6 h old)
#   KVMAS_ABI_6_1    pin the 6.1 ABI  (e.g. 6.1.0-56-amd64)
#   KVMAS_ABI_6_12   pin the 6.12 ABI (e.g. 6.12.117+deb12-amd64)
#   KVMAS_ABI_ARM64_6_1, KVMAS_ABI_ARM64_6_12  the same for the arm64 lanes
#
# Several ABIs are published at once and they rotate, so the newest one is
# resolved at run time; a module must be built against the headers of the
# exact ABI it is loaded into (vermagic + modversions).
#
# apt runs with a PRIVATE configuration (own sources.list, lists and cache
# under the cache root); the system's apt config and state are never touched.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export KVMAS_PROG=fetch-kernel
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

usage() {
	sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}" >&2
	exit 2
}

(($# == 1)) || usage
LANE=$1
# Debian architecture of the lane's kernel; the host (and its kbuild tools)
# stays amd64.
DEB_ARCH=amd64
case "$LANE" in
6.1)
	# Generic flavour only: the number is directly followed by -amd64, which
	# excludes -rt-amd64 and -cloud-amd64.
	IMG_RE='^linux-image-6\.1\.0-[0-9]+-amd64-unsigned$'
	PIN=${KVMAS_ABI_6_1:-}
	;;
6.12)
	# e.g. 6.12.117+deb12-amd64, and respins like 6.12.90+deb12.1-amd64.
	IMG_RE='^linux-image-6\.12\.[0-9]+\+deb12[.0-9]*-amd64-unsigned$'
	PIN=${KVMAS_ABI_6_12:-}
	;;
arm64-6.1)
	IMG_RE='^linux-image-6\.1\.0-[0-9]+-arm64-unsigned$'
	PIN=${KVMAS_ABI_ARM64_6_1:-}
	DEB_ARCH=arm64
	;;
arm64-6.12)
	IMG_RE='^linux-image-6\.12\.[0-9]+\+deb12[.0-9]*-arm64-unsigned$'
	PIN=${KVMAS_ABI_ARM64_6_12:-}
	DEB_ARCH=arm64
	;;
-h | --help) usage ;;
*) kvmas_die "unknown lane '$LANE' (want 6.1, 6.12, arm64-6.1 or arm64-6.12)" ;;
esac
# Foreign-architecture packages are named with their :arch qualifier (apt
# resolves a bare name to the host's architecture); x86 lanes use bare names.
Q=""
[[ "$DEB_ARCH" == amd64 ]] || Q=":$DEB_ARCH"

CACHE=${KVMAS_CACHE:-${HOME:-/tmp}/.cache/kvm-atomic-slots}
APTDIR=$CACHE/apt
mkdir -p "$APTDIR/lists/partial" "$APTDIR/cache/archives/partial" "$CACHE/kernels" "$CACHE/debs"

# One fetch at a time per cache: two lanes fetched in parallel would race on
# the shared apt lists and on half-extracted trees.
exec 9>"$CACHE/.lock"
flock 9

# Scratch dirs of an interrupted run (we hold the lock, so they are stale);
# also our own scratch on exit.
rm -rf "$CACHE"/kernels/*.tmp.* "$CACHE"/debs/*.tmp.*
SCRATCH=()
# shellcheck disable=SC2317 # invoked by the trap
cleanup() { ((${#SCRATCH[@]} == 0)) || rm -rf "${SCRATCH[@]}"; }
trap cleanup EXIT

# VMLINUX: the uncompressed ELF vmlinux from the bzImage, for run.sh --pvh
# (skips the in-guest decompressor; see lib.sh).  Trees cached before this
# existed get it on their next fetch; empty if the image has no PVH entry.
add_vmlinux() {
	local kroot=$CACHE/kernels/$1 out
	out=$kroot/vmlinux
	if kvmas_extract_vmlinux "$kroot/root/boot/vmlinuz-$1" "$out.tmp" &&
		kvmas_has_pvh_note "$out.tmp"; then
		mv "$out.tmp" "$out"
	else
		rm -f "$out.tmp"
		kvmas_log "warning: no PVH-bootable vmlinux in $1 (run.sh --pvh unavailable)"
		out=""
	fi
	printf 'VMLINUX=%q\n' "$out" >>"$kroot/env"
}

emit_env() {
	grep -q '^VMLINUX=' "$CACHE/kernels/$1/env" || add_vmlinux "$1"
	# Trees cached before the arm64 lanes existed are x86, built natively.
	grep -q '^ARCH=' "$CACHE/kernels/$1/env" ||
		printf 'ARCH=x86_64\nCROSS_COMPILE=\n' >>"$CACHE/kernels/$1/env"
	# The contract: the env file path is the last line of stdout.
	printf '%s\n' "$CACHE/kernels/$1/env"
	exit 0
}

newest_cached() {
	# Newest already-extracted ABI of this lane (offline fallback).
	local d abi
	for d in "$CACHE"/kernels/*/env; do
		[[ -f "$d" ]] || continue
		abi=$(basename "$(dirname "$d")")
		if [[ "linux-image-$abi-unsigned" =~ $IMG_RE ]]; then printf '%s\n' "$abi"; fi
	done | sort -V | tail -n1
}

# A pinned ABI that is already cached needs no apt at all (works offline).
if [[ -n "$PIN" && -f "$CACHE/kernels/$PIN/env" ]]; then
	emit_env "$PIN"
fi

# ---- private apt -----------------------------------------------------------
# The archive location comes from the host's apt configuration (a local
# mirror or proxy is used as configured there); see apt-sources.sh.
# Every lane shares one set of lists that carries both architectures
# (amd64: x86 kernels and the host's kbuild tools; arm64: the arm64
# kernels), so switching lanes never invalidates them.
"$(dirname "$0")/apt-sources.sh" bookworm bookworm-updates bookworm-security \
	bookworm-backports | sed 's/^deb \[/deb [arch=amd64,arm64 /' >"$APTDIR/sources.list.new"
if ! cmp -s "$APTDIR/sources.list.new" "$APTDIR/sources.list" 2>/dev/null; then
	mv "$APTDIR/sources.list.new" "$APTDIR/sources.list"
	rm -f "$APTDIR/updated" # sources changed: the lists are stale
else
	rm -f "$APTDIR/sources.list.new"
fi

APT_OPTS=(
	-o "Dir::Etc::SourceList=$APTDIR/sources.list"
	-o Dir::Etc::SourceParts=/dev/null
	-o "Dir::State::Lists=$APTDIR/lists"
	-o "Dir::Cache=$APTDIR/cache"
	-o Dir::State::status=/var/lib/dpkg/status
	# The host's dpkg need not know arm64: name both architectures here,
	# with amd64 (the host's) first as the native one.
	-o APT::Architecture=amd64
	-o "APT::Architectures=amd64,arm64"
	-o Debug::NoLocking=1
	# The cache usually lives under /root, which the _apt sandbox user
	# cannot enter: download as the caller instead of warning about it.
	-o APT::Sandbox::User="$(id -un)"
	-o Acquire::Languages=none
	-o Acquire::Retries=3
	# No pinning from the system's preferences: a system pin must not
	# change which package we resolve.
	-o Dir::Etc::Preferences=/dev/null
	-o Dir::Etc::PreferencesParts=/dev/null
)

refresh_lists() {
	kvmas_log "refreshing private apt lists in $APTDIR"
	# -q keeps progress bars out of logs; output goes to stderr (stdout is
	# reserved for the env path).
	if apt-get "${APT_OPTS[@]}" -q update >&2; then
		touch "$APTDIR/updated"
		return 0
	fi
	return 1
}

have_lists() { compgen -G "$APTDIR/lists/*_Packages*" >/dev/null; }

# Refresh when asked, when never done, or when older than 6 h (ABIs rotate;
# an old list may name .debs the mirror no longer has).
if [[ "${KVMAS_REFRESH:-0}" == 1 || ! -f "$APTDIR/updated" ]] ||
	[[ -n "$(find "$APTDIR/updated" -mmin +360 2>/dev/null)" ]]; then
	if ! refresh_lists; then
		if have_lists; then
			kvmas_log "warning: apt update failed; using the stale lists"
		else
			fb=$(newest_cached)
			[[ -n "$fb" ]] || kvmas_die "apt update failed and nothing is cached for lane $LANE"
			kvmas_log "warning: apt update failed; using cached ABI $fb"
			emit_env "$fb"
		fi
	fi
fi

pkg_exists() { apt-cache "${APT_OPTS[@]}" show --no-all-versions "$1" >/dev/null 2>&1; }
# Candidate version (what `apt-get download NAME` would fetch).
pkg_version() {
	apt-cache "${APT_OPTS[@]}" show --no-all-versions "$1" 2>/dev/null |
		sed -n 's/^Version: //p' | head -n1
}

# ---- resolve the ABI -------------------------------------------------------
if [[ -n "$PIN" ]]; then
	ABI=$PIN
	[[ "linux-image-$ABI-unsigned" =~ $IMG_RE ]] ||
		kvmas_die "pinned ABI '$ABI' does not belong to lane $LANE"
else
	# Newest generic ABI that has both an unsigned image and headers (signed
	# images are sometimes published for ABIs whose other packages rotated
	# out).  sort -V orders 6.12.9 < 6.12.95 < 6.12.117 correctly.
	ABI=""
	while read -r abi; do
		if pkg_exists "linux-headers-$abi$Q"; then
			ABI=$abi
			break
		fi
	done < <(apt-cache "${APT_OPTS[@]}" search --names-only "${IMG_RE}" 2>/dev/null |
		awk '{print $1}' | grep -E "$IMG_RE" |
		sed 's/^linux-image-//; s/-unsigned$//' | sort -Vr)
	if [[ -z "$ABI" ]]; then
		fb=$(newest_cached)
		[[ -n "$fb" ]] || kvmas_die "no $LANE kernel found in the apt lists"
		kvmas_log "warning: no $LANE kernel in the apt lists; using cached ABI $fb"
		emit_env "$fb"
	fi
fi
kvmas_log "lane $LANE -> ABI $ABI"

KROOT_FINAL=$CACHE/kernels/$ABI
if [[ -f "$KROOT_FINAL/env" ]]; then
	emit_env "$ABI"
fi

# ---- download --------------------------------------------------------------
IMG_PKG=linux-image-$ABI-unsigned
HDR_PKG=linux-headers-$ABI
pkg_exists "$IMG_PKG$Q" || kvmas_die "$IMG_PKG$Q is not in the apt lists (try KVMAS_REFRESH=1)"
pkg_exists "$HDR_PKG$Q" || kvmas_die "$HDR_PKG$Q is not in the apt lists (try KVMAS_REFRESH=1)"

# linux-headers-<abi> holds only the flavour's generated files; the sources
# are in linux-headers-<abi>-common and the host tools (fixdep, modpost,
# objtool...) in linux-kbuild-*.  Take both names from its Depends, with
# the exact version when the dependency pins one.
PKGS=("$IMG_PKG$Q=$(pkg_version "$IMG_PKG$Q")" "$HDR_PKG$Q=$(pkg_version "$HDR_PKG$Q")")
while read -r dep; do
	name=${dep%% *}
	case "$name" in
	linux-headers-*-common) ;;
	linux-kbuild-*)
		# Cross lanes: kbuild's tools (fixdep, modpost, genksyms...) run on
		# the build host, so take the host's (amd64) build of the same
		# package instead of the arm64 binaries the headers depend on.
		# They are built from the same kernel source and handle any target
		# (modpost reads the module's ELF class and byte order); running
		# the arm64 ones under qemu-user would work too, at a cost on every
		# build, and rebuilding them would need the full source.
		[[ -z "$Q" ]] || name=$name:amd64
		;;
	*) continue ;;
	esac
	if [[ "$dep" =~ \(=\ *([^\)]+)\) ]]; then
		PKGS+=("$name=${BASH_REMATCH[1]// /}")
	else
		PKGS+=("$name=$(pkg_version "$name")")
	fi
done < <(apt-cache "${APT_OPTS[@]}" show --no-all-versions "$HDR_PKG$Q" |
	sed -n 's/^Depends: //p' | head -n1 | tr ',' '\n' |
	sed 's/|.*//; s/^ *//; s/ *$//')
((${#PKGS[@]} == 4)) || kvmas_die "unexpected Depends of $HDR_PKG: got ${PKGS[*]}"
if [[ -n "$Q" ]]; then
	# The host's kbuild: the very version the headers were made with when
	# the archive still has it (the Depends is only ">="); otherwise the
	# newer one of the same series, whose host tools read the same formats
	# (an arm64 ABI can trail amd64's kbuild by a point release).
	hver=${PKGS[1]#*=}
	for i in "${!PKGS[@]}"; do
		p=${PKGS[$i]}
		[[ "$p" == linux-kbuild-* && "${p#*=}" != "$hver" ]] || continue
		if apt-cache "${APT_OPTS[@]}" madison "${p%%=*}" |
			awk -v v="$hver" '$3 == v { f = 1 } END { exit !f }'; then
			PKGS[$i]=${p%%=*}=$hver
		else
			kvmas_log "note: ${p%%=*} $hver is gone from the archive; using ${p#*=}"
		fi
	done
	# The guest's userland: the host's busybox is amd64.  Cached with the
	# lane's tree (it lands in root/bin/busybox).
	PKGS+=("busybox-static$Q=$(pkg_version "busybox-static$Q")")
fi

DEBDIR=$CACHE/debs/$ABI
if [[ ! -f "$DEBDIR/.complete" ]]; then
	tmp=$(mktemp -d "$CACHE/debs/$ABI.tmp.XXXXXX")
	SCRATCH+=("$tmp")
	kvmas_log "downloading ${PKGS[*]}"
	(cd "$tmp" && apt-get "${APT_OPTS[@]}" -q download "${PKGS[@]}" >&2)
	n=$(find "$tmp" -maxdepth 1 -name '*.deb' | wc -l)
	((n == ${#PKGS[@]})) || kvmas_die "expected ${#PKGS[@]} .debs, got $n"
	touch "$tmp/.complete"
	rm -rf "$DEBDIR"
	mv "$tmp" "$DEBDIR"
fi

# ---- extract ---------------------------------------------------------------
# Build in a scratch dir and rename at the end: a half-done tree never
# looks cached.
KTMP=$(mktemp -d "$CACHE/kernels/$ABI.tmp.XXXXXX")
SCRATCH+=("$KTMP")
ROOT=$KTMP/root
mkdir -p "$ROOT"
for deb in "$DEBDIR"/*.deb; do
	kvmas_log "extracting $(basename "$deb")"
	dpkg-deb -x "$deb" "$ROOT"
done

# Debian's kernel .debs still install under /lib (pre-usrmerge layout).
MODDIR_REL=lib/modules/$ABI
[[ -d "$ROOT/$MODDIR_REL" ]] || MODDIR_REL=usr/lib/modules/$ABI
[[ -d "$ROOT/$MODDIR_REL/kernel" ]] || kvmas_die "no modules in the image package"
KDIR_REL=usr/src/linux-headers-$ABI
[[ -f "$ROOT/$KDIR_REL/Makefile" ]] || kvmas_die "no $KDIR_REL/Makefile"
VMLINUZ_REL=boot/vmlinuz-$ABI
[[ -f "$ROOT/$VMLINUZ_REL" ]] || kvmas_die "no $VMLINUZ_REL in the image package"

# arm64: QEMU boots the plain Image (the arm64 boot protocol).  Debian's
# bookworm vmlinuz already is one (seen on 6.1 and 6.12); should a later
# one be gzip-compressed, inflate it once here rather than rely on QEMU's
# size-capped gunzip.  Either way the Image header's magic ("ARM\x64" at
# offset 0x38) must be there.
IMAGE_REL=""
if [[ "$DEB_ARCH" == arm64 ]]; then
	if [[ "$(head -c 2 "$ROOT/$VMLINUZ_REL" | od -An -tx1 | tr -d ' ')" == 1f8b ]]; then
		IMAGE_REL=Image
		gzip -dc <"$ROOT/$VMLINUZ_REL" >"$KTMP/$IMAGE_REL"
	else
		IMAGE_REL=root/$VMLINUZ_REL
	fi
	[[ "$(tail -c +57 "$KTMP/$IMAGE_REL" | head -c 4 | od -An -tx1 | tr -d ' ')" == 41524d64 ]] ||
		kvmas_die "$VMLINUZ_REL is not an arm64 Image (gzip or plain)"
	[[ -x "$ROOT/bin/busybox" ]] || kvmas_die "no bin/busybox in busybox-static$Q"
fi

# ---- make the headers work where they are ----------------------------------
# 1. Absolute symlinks (lib/modules/<abi>/build and source ->
#    /usr/src/linux-headers-*) point into the host's /usr: re-point them
#    inside ROOT, as RELATIVE links so the cache stays relocatable.  (The
#    scripts/tools links to ../../lib/linux-kbuild-* are already relative.)
while IFS= read -r -d '' link; do
	target=$(readlink "$link")
	rel=$(realpath -s -m --relative-to="$(dirname "$link")" "$ROOT$target")
	ln -sfn "$rel" "$link"
done < <(find "$ROOT" -type l -lname '/*' -print0)

# 2. The flavour Makefile is one line, `include /usr/src/linux-headers-
#    <abi>-common/Makefile`, an absolute path.  Make it relative to the
#    Makefile's own (physical) directory.  The common Makefile derives
#    srctree from its own location and objtree from $(CURDIR), so nothing
#    else needs changing.
mk=$ROOT/$KDIR_REL/Makefile
common=$(sed -n 's#^include /usr/src/\(linux-headers-[^/]*-common\)/Makefile$#\1#p' "$mk")
[[ -n "$common" && -f "$ROOT/usr/src/$common/Makefile" ]] ||
	kvmas_die "unexpected $KDIR_REL/Makefile: $(cat "$mk")"
cp "$mk" "$mk.debian"
# shellcheck disable=SC2016 # $(...) here is make syntax, written literally
printf 'include $(realpath $(dir $(lastword $(MAKEFILE_LIST))))/../%s/Makefile\n' \
	"$common" >"$mk"

# 3. Any absolute /usr/src or linux-kbuild path left in a kbuild file would
#    silently use (or miss) the host's /usr: refuse rather than guess.
if grep -rIl -e "/usr/src/linux-headers-" -e "/usr/lib/linux-kbuild" \
	--include=Makefile --include='Makefile.*' --include='Kbuild' --include='*.mk' \
	--include=.kernelvariables "$ROOT/$KDIR_REL" "$ROOT/usr/src/$common" 2>/dev/null |
	grep -v '/Makefile\.debian$' | grep -q .; then
	kvmas_die "absolute paths left in the kbuild files of $ABI"
fi

[[ -x "$ROOT/$KDIR_REL/scripts/basic/fixdep" && -x "$ROOT/$KDIR_REL/scripts/mod/modpost" ]] ||
	kvmas_die "kbuild host tools missing under $KDIR_REL/scripts"

# ---- modules: decompress what the initramfs loads ----------------------------
# 6.12 ships .ko.xz and busybox insmod needs plain .ko: decompress the KVM
# stack (kvm, kvm-amd, kvm-intel and their dependencies) in place.  run.sh
# also decompresses on the fly, so other modules work too.
# arm64 builds KVM into the kernel: no stack to decompress there.
KVM_VENDORS=(kvm_amd kvm_intel)
[[ "$DEB_ARCH" == amd64 ]] || KVM_VENDORS=()
mapfile -t KVM_STACK < <(kvmas_mod_closure "$ROOT/$MODDIR_REL" "${KVM_VENDORS[@]}")
for line in "${KVM_STACK[@]}"; do
	f=${line#* }
	case "$f" in
	*.ko) ;;
	*.ko.*)
		kvmas_decompress "$f" "${f%.*}"
		rm -f -- "$f"
		;;
	esac
done
# Keep modules.dep etc. consistent with the renamed files (host depmod, -b
# = the extracted root; harmless if the .deb shipped none).
depmod -b "$ROOT" "$ABI" 2>/dev/null || kvmas_log "warning: depmod -b failed (ignored)"

# ---- env file --------------------------------------------------------------
KDIR_FINAL=$KROOT_FINAL/root/$KDIR_REL
verh=$ROOT/$KDIR_REL/include/generated/uapi/linux/version.h
if [[ -f "$verh" ]] && grep -q LINUX_VERSION_SUBLEVEL "$verh"; then
	# version.h spells out MAJOR/PATCHLEVEL/SUBLEVEL (the packed
	# LINUX_VERSION_CODE caps the sublevel at 255).
	UPSTREAM=$(awk '/define LINUX_VERSION_(MAJOR|PATCHLEVEL|SUBLEVEL)/{v[$2]=$3}
		END{print v["LINUX_VERSION_MAJOR"]"."v["LINUX_VERSION_PATCHLEVEL"]"."v["LINUX_VERSION_SUBLEVEL"]}' "$verh")
else
	# package.h: #define LINUX_PACKAGE_ID " Debian 6.1.192-2"
	UPSTREAM=$(sed -n 's/.*LINUX_PACKAGE_ID " *Debian \([0-9.]*\).*/\1/p' \
		"$ROOT/$KDIR_REL/include/generated/package.h")
fi
PKGVER=$(sed -n 's/.*LINUX_PACKAGE_ID " *Debian \([^"]*\)".*/\1/p' \
	"$ROOT/$KDIR_REL/include/generated/package.h" 2>/dev/null || true)
[[ "$UPSTREAM" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || kvmas_die "cannot tell the upstream version of $ABI"

{
	echo "# Generated by tests/vm/fetch-kernel.sh; shell-sourceable."
	printf 'LANE=%q\n' "$LANE"
	printf 'ABI=%q\n' "$ABI"
	printf 'UPSTREAM=%q\n' "$UPSTREAM"
	printf 'PKGVER=%q\n' "$PKGVER"
	printf 'VMLINUZ=%q\n' "$KROOT_FINAL/root/$VMLINUZ_REL"
	printf 'MODDIR=%q\n' "$KROOT_FINAL/root/$MODDIR_REL"
	printf 'KDIR=%q\n' "$KDIR_FINAL"
	if [[ "$DEB_ARCH" == amd64 ]]; then
		printf 'ARCH=x86_64\nCROSS_COMPILE=\n'
	else
		printf 'ARCH=arm64\nCROSS_COMPILE=aarch64-linux-gnu-\n'
		printf 'IMAGE=%q\n' "$KROOT_FINAL/$IMAGE_REL"
		printf 'BUSYBOX=%q\n' "$KROOT_FINAL/root/bin/busybox"
		# PVH boot is x86's; nothing for add_vmlinux to do.
		printf 'VMLINUX=\n'
	fi
} >"$KTMP/env"

# ---- smoke test: build a trivial module against the new KDIR ----------------
# Proves the symlink/Makefile fixes and the host compiler (Debian's 6.1 and
# 6.12 headers want gcc-12) before the tree is published as cached, and that
# the result carries this ABI's vermagic.
smoke=$KTMP/smoke
mkdir -p "$smoke"
cat >"$smoke/smoke.c" <<'EOC'
// SPDX-License-Identifier: GPL-2.0
#include <linux/module.h>
static int __init smoke_init(void) { return 0; }
static void __exit smoke_exit(void) { }
module_init(smoke_init);
module_exit(smoke_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("fetch-kernel.sh smoke test");
EOC
echo 'obj-m := smoke.o' >"$smoke/Kbuild"
XBUILD=()
[[ "$DEB_ARCH" == amd64 ]] || XBUILD=(ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu-)
if ! make -s -C "$ROOT/$KDIR_REL" M="$smoke" "${XBUILD[@]}" modules >"$smoke/log" 2>&1; then
	cat "$smoke/log" >&2
	kvmas_die "a trivial module does not build against $KDIR_REL"
fi
vermagic=$(modinfo -F vermagic "$smoke/smoke.ko")
[[ "$vermagic" == "$ABI "* ]] || kvmas_die "smoke module has vermagic '$vermagic', expected $ABI"
rm -rf "$smoke"

rm -rf "$KROOT_FINAL"
mv "$KTMP" "$KROOT_FINAL"
kvmas_log "ready: $ABI (upstream $UPSTREAM, Debian $PKGVER)"

emit_env "$ABI"
