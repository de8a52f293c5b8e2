#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# pkg-check.sh - the Debian packages as a user gets them.
#
#  1. builds kvm-atomic-slots-dkms, libkvmas2, libkvmas-dev and kvmas-tools
#     with `dpkg-buildpackage -b -us -uc` from a clean copy of the tree, and
#     runs lintian (pedantic, info and experimental tags: none may remain
#     unless overridden) and man --warnings on the man pages;
#  2. makes (once a day, cached) a minimal bookworm root with mmdebstrap from
#     the host's own apt sources, with the build tools DKMS needs and one
#     lane's kernel headers (the .debs fetch-kernel.sh keeps in the cache);
#  3. in a throw-away copy of that root: `apt-get install ./*.deb`, checks
#     that DKMS built and installed the module for that kernel (with its
#     livepatch relocations), that kvmas and its completion work, that
#     pkg-config finds kvmas and a program links against libkvmas.so.2;
#     then purges the packages and checks that no file is left behind.
# Prints TAP and "N passed, N failed".
#
# Environment: KVMAS_PKG_LANE (default 6.1), KVMAS_CACHE, KVMAS_KEEP_ROOT=1
# (keep build/pkg/root for inspection).
set -uo pipefail

# shellcheck source=tests/common.sh
. "$(dirname "$0")/common.sh"
lane=${KVMAS_PKG_LANE:-6.1}
cache=${KVMAS_CACHE:-${HOME:-/tmp}/.cache/kvm-atomic-slots}
pkg=$out/pkg
root=$pkg/root
log=$out/logs/pkg-check.log
pkgs=(kvm-atomic-slots-dkms libkvmas2 libkvmas-dev kvmas-tools)

pass=0
fail=0
n=0
ok() { n=$((n + 1)); pass=$((pass + 1)); echo "ok $n - $1"; }
nok() { n=$((n + 1)); fail=$((fail + 1)); echo "not ok $n - $1"; }
t() { local d=$1; shift; if "$@"; then ok "$d"; else nok "$d"; return 1; fi; }
# Runs a command, its output appended to the log and, on failure, shown
# as TAP comments (last lines).
logged() {
	local rc=0 tmp
	tmp=$(mktemp)
	"$@" >"$tmp" 2>&1 || rc=$?
	cat "$tmp" >>"$log"
	[ "$rc" -eq 0 ] || tail -n 25 "$tmp" | sed 's/^/# /'
	rm -f "$tmp"
	return "$rc"
}
finish() {
	[ -n "${KVMAS_KEEP_ROOT:-}" ] || rm -rf "$root"
	echo "1..$n"
	echo "$pass passed, $fail failed"
	[ "$fail" -eq 0 ]
	exit
}
# A command inside the root, in a private mount namespace: /proc, /sys and
# /dev are mounted for it and vanish with it.
in_root() {
	unshare --mount --propagation private /bin/sh -c '
		r=$1; shift
		mount -t proc proc "$r/proc" && mount -t sysfs sys "$r/sys" &&
		mount --bind /dev "$r/dev" || exit 125
		exec chroot "$r" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
			HOME=/root LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"
	' sh "$root" "$@"
}
# What the root holds, minus state that changes whatever is installed:
# dpkg/apt/ldconfig bookkeeping, logs, caches, and depmod's indexes (which
# belong to the kernel's module tree, rebuilt on every module change).
snapshot() {
	(cd "$root" && find . -xdev \( -path ./proc -o -path ./sys -o -path ./dev \
		-o -path ./tmp -o -path ./run -o -path ./var/log -o -path ./var/cache \
		-o -path ./var/lib/apt -o -path ./var/lib/dpkg \) -prune -o -print) |
		grep -v -e '^\./lib/modules/[^/]*/modules\.' \
			-e '^\./usr/lib/modules/[^/]*/modules\.' \
			-e '^\./etc/ld\.so\.cache$' | sort
}

mkdir -p "$pkg"
: >"$log"
say "packages: build, lintian, man pages (log: $log)" >&2

# ---- 1. build ---------------------------------------------------------------
rm -rf "$pkg"/*.deb "$pkg"/*.changes "$pkg"/*.buildinfo "$pkg/src" "$root"
mkdir -p "$pkg/src"
# Exactly what is tracked (plus new, not ignored files): no build outputs.
if git -C "$top" rev-parse --git-dir >/dev/null 2>&1; then
	(cd "$top" && git ls-files -co --exclude-standard | grep -v '^build/' |
		tar -cf - -T -) | tar -xf - -C "$pkg/src"
else
	(cd "$top" && tar -cf - --exclude=./build .) | tar -xf - -C "$pkg/src"
fi
t "dpkg-buildpackage -b -us -uc" \
	logged sh -c "cd '$pkg/src' && dpkg-buildpackage -b -us -uc"
version=$(sed -n 's/^PACKAGE_VERSION="\(.*\)"/\1/p' "$top/dkms.conf")
debs=()
for p in "${pkgs[@]}"; do
	f=$(find "$pkg" -maxdepth 1 -name "${p}_${version}_*.deb" | head -n 1)
	if [ -n "$f" ]; then
		ok "built $(basename "$f") (version from dkms.conf)"
		debs+=("$f")
	else
		nok "built ${p}_${version}_*.deb"
	fi
done
# lintian as root says so on stderr; tags go to stdout.
tags=$(lintian --pedantic -I -E --tag-display-limit 0 "$pkg"/*.changes 2>>"$log")
t "lintian: no tag (pedantic, info, experimental)" test -z "$tags" ||
	printf '# %s\n' "${tags//$'\n'/$'\n'# }"
for m in "$top"/man/*.[1-8]; do
	w=$(LC_ALL=C.UTF-8 MANROFFSEQ='' MANWIDTH=80 man --warnings -E UTF-8 -l \
		-Tutf8 -Z "$m" 2>&1 >/dev/null)
	t "man --warnings: $(basename "$m")" test -z "$w" || printf '# %s\n' "$w"
done
((${#debs[@]} == ${#pkgs[@]})) || finish

# ---- 2. the root ------------------------------------------------------------
use_lane "$lane" >/dev/null 2>>"$log" || { nok "kernel lane $lane"; finish; }
hdrs=()
for f in "$cache/debs/$ABI"/*.deb; do
	case $(basename "$f") in linux-headers-* | linux-kbuild-*) hdrs+=("$f") ;; esac
done
# Newer headers packages (6.12) depend on their image: the unsigned one the
# cache has satisfies that.
if dpkg-deb -f "$(printf '%s\n' "${hdrs[@]}" | grep "/linux-headers-${ABI}_" | head -n 1)" \
	Depends 2>/dev/null | grep -q "linux-image-$ABI"; then
	hdrs+=("$cache/debs/$ABI"/linux-image-"$ABI"-unsigned_*.deb)
fi
t "headers .debs of $ABI in the cache" test "${#hdrs[@]}" -ge 2 || finish

# The build tools a DKMS build needs and our packages' dependencies, so the
# test installs offline; headers and dwarves (Recommends) likewise.
include=dkms,gcc,make,libc6-dev,libelf-dev,pkgconf,kmod,dwarves,xz-utils,libnl-3-200,libnl-genl-3-200,bash-completion,linux-base
# The host's apt sources, never a mirror of our own.
mirrors=()
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
	[ -f "$f" ] && grep -qv -e '^[[:space:]]*#' -e '^[[:space:]]*$' "$f" && mirrors+=("$f")
done
key=$(printf '%s\n' "$include" "${hdrs[@]##*/}" "${mirrors[@]}" | cat - "${mirrors[@]}" |
	sha256sum | cut -c1-12)
rootdir=$cache/pkgroot
tarball=$rootdir/bookworm-$(date -u +%Y%m%d)-$key.tar
mkdir -p "$rootdir"
if [ ! -f "$tarball" ]; then
	say "mmdebstrap: bookworm root with $ABI headers (once a day)" >&2
	hookdir=$(mktemp -d)
	# mmdebstrap picks the output format from the name: keep ".tar".
	tmptar=$rootdir/.new-$key.tar
	cp "${hdrs[@]}" "$hookdir/"
	if logged mmdebstrap --variant=apt --include="$include" \
		--customize-hook="mkdir -p \"\$1/tmp/hdr\"" \
		--customize-hook="copy-in ${hookdir// /\\ }/. /tmp/hdr" \
		--customize-hook='chroot "$1" sh -c "apt-get install -y --no-install-recommends /tmp/hdr/*.deb && rm -rf /tmp/hdr"' \
		bookworm "$tmptar" "${mirrors[@]}"; then
		mv "$tmptar" "$tarball"
		# Roots of other days are stale (security updates).
		find "$rootdir" -maxdepth 1 -name 'bookworm-*.tar' \
			! -name "bookworm-$(date -u +%Y%m%d)-*" -delete
	fi
	rm -rf "$hookdir" "$tmptar"
fi
t "bookworm root with $ABI headers (mmdebstrap, host apt sources)" test -f "$tarball" ||
	finish
mkdir -p "$root"
t "fresh copy of the root" tar --numeric-owner -xpf "$tarball" -C "$root" || finish
before=$(snapshot)
# A few thousand entries: the comparison after the purge means something.
t "snapshot of the root ($(wc -l <<<"$before") entries)" test "$(wc -l <<<"$before")" -gt 1000

# ---- 3. install, use, purge -----------------------------------------------------
mkdir -p "$root/tmp/debs"
cp "${debs[@]}" "$root/tmp/debs/"
t "apt-get install ./*.deb" logged in_root sh -c 'cd /tmp/debs && apt-get install -y ./*.deb' || finish
rm -rf "$root/tmp/debs"

st=$(in_root dkms status -m kvm-atomic-slots 2>>"$log")
echo "# dkms status: $st"
t "DKMS built and installed the module for $ABI" \
	grep -q "^kvm-atomic-slots/$version, $ABI, x86_64: installed" <<<"$st"
ko=$(cd "$root" && find "lib/modules/$ABI" "usr/lib/modules/$ABI" -name 'kvm_atomic_slots.ko*' \
	2>/dev/null | head -n 1)
t "module installed under /lib/modules/$ABI/updates/dkms" \
	grep -q "modules/$ABI/updates/dkms/kvm_atomic_slots.ko" <<<"$ko"
vm=$(in_root modinfo -F vermagic "/$ko" 2>>"$log")
t "vermagic is $ABI ($vm)" grep -q "^$ABI " <<<"$vm"
# The DKMS build path of the package made the livepatch relocations too.
# DKMS keeps the module as the kernel compresses its own (6.12: .ko.xz).
built=$(find "$root/var/lib/dkms/kvm-atomic-slots/$version/$ABI" -name 'kvm_atomic_slots.ko*' |
	head -n 1)
case $built in
*.xz) xz -dc "$built" >"$pkg/dkms.ko" && built=$pkg/dkms.ko ;;
*.zst) zstd -qdc "$built" >"$pkg/dkms.ko" && built=$pkg/dkms.ko ;;
esac
if grep -qs '^CONFIG_LIVEPATCH=y' "$root/usr/src/linux-headers-$ABI/.config"; then
	make -s -C "$top/tools/klp-convert" klp-convert >>"$log" 2>&1
	t "klp-convert --check on the DKMS-built module" logged \
		"$top/tools/klp-convert/klp-convert" --check \
		"$root/usr/src/kvm-atomic-slots-$version/module/klp-syms.list" "$built"
fi
t "udev rule installed" test -f "$root/lib/udev/rules.d/60-kvm-atomic-slots.rules"
t "kvmas --help runs" logged in_root kvmas --help
err=$(in_root env KVMAS_DEVICE=/nonexistent kvmas caps --json 2>&1 >/dev/null)
t "kvmas caps explains a missing module" grep -q 'is the kvm_atomic_slots module loaded' <<<"$err"
t "bash completion registers kvmas" logged in_root bash -c \
	'. /usr/share/bash-completion/completions/kvmas && complete -p kvmas'
for m in man1/kvmas.1 man3/libkvmas.3 man3/kvmas_batch.3 man3/kvmas_ring.3 \
	man3/kvmas_session.3 man4/kvm_atomic_slots.4; do
	t "man page $m.gz" test -f "$root/usr/share/man/$m.gz"
done
# Every exported function has a page (the call-group pages, linked).
nopage=
for f in $(sed -n 's/^[[:space:]]*\(kvmas_[a-z0-9_]*\);/\1/p' "$top/lib/libkvmas.map"); do
	[ -e "$root/usr/share/man/man3/$f.3.gz" ] || nopage="$nopage $f"
done
t "man 3 page for every function of libkvmas.map" test -z "$nopage" ||
	echo "# no page:$nopage"
libs=$(in_root pkg-config --libs kvmas 2>>"$log" | xargs)
t "pkg-config --libs kvmas: $libs" test "$libs" = "-lkvmas"
cat >"$root/tmp/t.c" <<'EOF'
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <kvmas.h>

int main(void)
{
	struct kvmas *kv = NULL;
	int ret = kvmas_open(&kv);

	printf("%s: %s\n", kvmas_cap_name(KVMAS_CAP_BATCH_COMMIT),
	       kvmas_error_string(KVMAS_OP_OPEN, ret));
	return ret == -ENOENT && !kv &&
	       !strcmp(kvmas_cap_name(KVMAS_CAP_BATCH_COMMIT), "batch_commit") ? 0 : 1;
}
EOF
t "a program builds with pkg-config --cflags --libs kvmas" logged in_root \
	sh -c 'cc -Wall -Werror -o /tmp/t /tmp/t.c $(pkg-config --cflags --libs kvmas)'
t "it needs libkvmas.so.2" logged in_root sh -c \
	'readelf -d /tmp/t | grep -q "NEEDED.*\[libkvmas\.so\.2\]"'
t "it runs against the installed library" logged in_root \
	env KVMAS_DEVICE=/nonexistent /tmp/t
rm -f "$root/tmp/t" "$root/tmp/t.c"

t "apt-get purge" logged in_root apt-get purge -y "${pkgs[@]}"
t "DKMS forgot the module" test -z "$(in_root dkms status -m kvm-atomic-slots 2>>"$log")"
left=$(diff <(printf '%s\n' "$before") <(snapshot) | grep '^[<>]')
t "purge leaves no file behind" test -z "$left" || printf '# %s\n' "${left//$'\n'/$'\n'# }"
finish
