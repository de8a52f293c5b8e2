#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Builds the kernel's own KVM selftests we run as peer suites from Debian's
# linux-source-<VER> (tests/kselftest/fetch.sh downloads it), once per source
# tarball: the binaries are cached under $KVMAS_CACHE/kvm-selftests/ by the
# tarball's checksum. Dynamically linked (the selftests' own Makefile), so
# libkvmas-preload.so can be preloaded into them; run.sh copies their libs.
#
# Usage: build-kvm.sh 6.1|6.12   (prints the binaries' directory last)
#
# 6.1 needs linux-source-6.1's selftests: 6.12's kvm_util creates every
# memslot with KVM_SET_USER_MEMORY_REGION2, which 6.1 does not have.
set -euo pipefail

ver=${1:?usage: build-kvm.sh 6.1|6.12}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${KVMAS_CACHE:-$HOME/.cache/kvm-atomic-slots}
pkg=linux-source-$ver
tarball=$cache/kselftest/$pkg.tar.xz
progs="set_memory_region_test memslot_modification_stress_test memslot_perf_test dirty_log_test dirty_log_perf_test"

if [ ! -s "$tarball" ]; then
	# fetch.sh skips the download when it has the harness headers.
	rm -rf "$cache/kselftest/$pkg"
	KVMAS_KSELFTEST_SOURCE=$pkg "$here/fetch.sh" >&2
fi
[ -s "$tarball" ] || { echo "build-kvm.sh: no $tarball" >&2; exit 1; }
sum=$(sha256sum "$tarball" | cut -c1-16)
dest=$cache/kvm-selftests/$ver-$sum
if [ -f "$dest/.done" ]; then
	echo "$dest"
	exit 0
fi

work=$cache/kvm-selftests/work-$ver.$$
trap 'rm -rf "$work"' EXIT
mkdir -p "$work"
echo "build-kvm.sh: extracting $pkg" >&2
tar -xJf "$tarball" -C "$work"
src=$(find "$work" -mindepth 1 -maxdepth 1 -type d -name 'linux-source-*' | head -n 1)
[ -n "$src" ] || { echo "build-kvm.sh: no source tree in $tarball" >&2; exit 1; }
echo "build-kvm.sh: headers and selftests of $(basename "$src")" >&2
make -s -C "$src" O="$work/obj" headers -j2 >&2
khdr="-isystem $work/obj/usr/include"
# Debian's 6.1.192 backported a dirty_log_test.c that uses TEST_ASSERT_EQ,
# which its test_util.h lacks.
if ! grep -q 'define TEST_ASSERT_EQ' "$src/tools/testing/selftests/kvm/include/test_util.h"; then
	echo '#define TEST_ASSERT_EQ(a, b) TEST_ASSERT((a) == (b), "%s == %s", #a, #b)' \
		>"$work/assert-eq.h"
	khdr="$khdr -include $work/assert-eq.h"
fi
make -s -C "$src/tools/testing/selftests/kvm" OUTPUT="$work/out" \
	LINUX_HDR_PATH="$work/obj/usr/include/" KHDR_INCLUDES="$khdr" \
	TEST_GEN_PROGS_x86_64="$progs" TEST_GEN_PROGS_EXTENDED_x86_64= \
	-j2 >"$work/build.log" 2>&1 || { tail -n 30 "$work/build.log" >&2; exit 1; }
rm -rf "$dest"
mkdir -p "$dest"
for p in $progs; do
	install -m 0755 "$work/out/$p" "$dest/$p"
done
basename "$src" >"$dest/SOURCE"
touch "$dest/.done"
echo "$dest"
