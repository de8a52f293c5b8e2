#!/usr/bin/env bash
# fetch-kernel.sh - fetch and unpack one of Debian's own kernels for VM tests.
#
# Usage: tests/vm/fetch-kernel.sh LANE        LANE = 6.1 | 6.12
#
#   6.1   bookworm(-security)            linux-image-6.1.0-N-amd64-unsigned
#   6.12  bookworm-security/-backports   linux-image-6.12.X+deb12-amd64-unsigned
#
# Prints the path of a shell-sourceable env file as the LAST line of stdout
# (everything else goes to stderr).  The env file defines:
#   LANE ABI UPSTREAM PKGVER VMLINUZ MODDIR KDIR VMLINUX
# KDIR is a working kbuild dir: `make -C "$KDIR" M=$PWD modules` builds
# against the extracted headers without installing anything into /usr.
#
# Environment:
#   KVMAS_CACHE      cache root (default ~/.cache/kvm-atomic-slots)
#   KVMAS_REFRESH=1  refresh the private apt lists now (default: if >6 h old)
#   KVMAS_ABI_6_1    pin the 6.1 ABI  (e.g. 6.1.0-56-amd64)
#   KVMAS_ABI_6_12   pin the 6.12 ABI (e.g. 6.12.117+deb12-amd64)
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
-h | --help) usage ;;
*) kvmas_die "unknown lane '$LANE' (want 6.1 or 6.12)" ;;
esac

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
"$(dirname "$0")/apt-sources.sh" bookworm bookworm-updates bookworm-security \
	bookworm-backports >"$APTDIR/sources.list.new"
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
		if pkg_exists "linux-headers-$abi"; then
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
pkg_exists "$IMG_PKG" || kvmas_die "$IMG_PKG is not in the apt lists (try KVMAS_REFRESH=1)"
pkg_exists "$HDR_PKG" || kvmas_die "$HDR_PKG is not in the apt lists (try KVMAS_REFRESH=1)"

# linux-headers-<abi> holds only the flavour's generated files; the sources
# are in linux-headers-<abi>-common and the host tools (fixdep, modpost,
# objtool...) in linux-kbuild-*.  Take both names from its Depends, with
# the exact version when the dependency pins one.
PKGS=("$IMG_PKG=$(pkg_version "$IMG_PKG")" "$HDR_PKG=$(pkg_version "$HDR_PKG")")
while read -r dep; do
	name=${dep%% *}
	case "$name" in
	linux-headers-*-common | linux-kbuild-*) ;;
	*) continue ;;
	esac
	if [[ "$dep" =~ \(=\ *([^\)]+)\) ]]; then
		PKGS+=("$name=${BASH_REMATCH[1]// /}")
	else
		PKGS+=("$name=$(pkg_version "$name")")
	fi
done < <(apt-cache "${APT_OPTS[@]}" show --no-all-versions "$HDR_PKG" |
	sed -n 's/^Depends: //p' | head -n1 | tr ',' '\n' |
	sed 's/|.*//; s/^ *//; s/ *$//')
((${#PKGS[@]} == 4)) || kvmas_die "unexpected Depends of $HDR_PKG: got ${PKGS[*]}"

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
mapfile -t KVM_STACK < <(kvmas_mod_closure "$ROOT/$MODDIR_REL" kvm_amd kvm_intel)
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
if ! make -s -C "$ROOT/$KDIR_REL" M="$smoke" modules >"$smoke/log" 2>&1; then
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
