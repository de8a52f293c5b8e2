#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# `make install` into a DESTDIR puts every piece where it belongs, and
# `make uninstall` with the same variables leaves no file behind.
# Host-only (no DKMS call: DESTDIR installs only copy the DKMS source).
# Prints TAP and "N passed, N failed".
#
# usage: tests/install-check.sh
set -u

top=$(cd "$(dirname "$0")/.." && pwd)
version=$(sed -n 's/^PACKAGE_VERSION="\(.*\)"/\1/p' "$top/dkms.conf")
pass=0
fail=0
n=0
ok() { n=$((n + 1)); pass=$((pass + 1)); echo "ok $n - $1"; }
nok() { n=$((n + 1)); fail=$((fail + 1)); echo "not ok $n - $1"; }
t() { local d=$1; shift; if "$@"; then ok "$d"; else nok "$d"; fi; }
# Runs a command with its output in the log, shown (as TAP comments) on failure.
logged() {
	"$@" >"$dest.log" 2>&1 && return 0
	sed 's/^/# /' "$dest.log"
	return 1
}

dest=$(mktemp -d)
trap 'rm -rf "$dest" "$dest.log"' EXIT
vars=(DESTDIR="$dest" PREFIX=/usr/local)

t "make install into a DESTDIR" logged make -s -C "$top" install "${vars[@]}"
for f in usr/local/bin/kvmas usr/local/lib/libkvmas.so.2 \
	usr/local/lib/libkvmas.a usr/local/lib/pkgconfig/kvmas.pc \
	usr/local/include/kvmas.h usr/local/include/linux/kvm_atomic_slots.h \
	usr/local/share/bash-completion/completions/kvmas \
	usr/local/share/man/man1/kvmas.1 usr/local/share/man/man3/libkvmas.3 \
	usr/local/share/man/man3/kvmas_batch.3 \
	usr/local/share/man/man4/kvm_atomic_slots.4 \
	lib/udev/rules.d/60-kvm-atomic-slots.rules \
	"usr/src/kvm-atomic-slots-$version/dkms.conf" \
	"usr/src/kvm-atomic-slots-$version/module/build.sh" \
	"usr/src/kvm-atomic-slots-$version/tools/klp-convert/klp-convert.c"; do
	t "installed $f" test -e "$dest/$f"
done
t "libkvmas.so points at the soname" \
	test "$(readlink "$dest/usr/local/lib/libkvmas.so")" = libkvmas.so.2
t "kvmas.pc names the install prefix" \
	grep -qx 'libdir=/usr/local/lib' "$dest/usr/local/lib/pkgconfig/kvmas.pc"
t "the installed kvmas runs" logged "$dest/usr/local/bin/kvmas" help
installed=$(find "$dest" ! -type d | wc -l)

t "make uninstall" logged make -s -C "$top" uninstall "${vars[@]}"
left=$(find "$dest" ! -type d | sed "s|^$dest||")
t "uninstall leaves none of the $installed installed files" test -z "$left" ||
	printf '# left: %s\n' $left
t "uninstall twice is harmless" logged make -s -C "$top" uninstall "${vars[@]}"
rm -f "$dest.log"

echo "1..$n"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
