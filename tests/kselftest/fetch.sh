#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Provides the kernel's kselftest harness (kselftest_harness.h, kselftest.h)
# to our test programs. They are GPL-2.0 kernel files, so we take them at
# build time from Debian's linux-source package rather than carrying a copy;
# the same tarball later builds the KVM selftests we run as peer suites.
# Prints the directory holding the headers as the last line of stdout.
set -euo pipefail

cache=${KVMAS_CACHE:-$HOME/.cache/kvm-atomic-slots}
pkg=${KVMAS_KSELFTEST_SOURCE:-linux-source-6.12}
dest=$cache/kselftest/$pkg
if [ -s "$dest/kselftest_harness.h" ] && [ -s "$dest/kselftest.h" ]; then
	echo "$dest"
	exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
apt_dir=$cache/apt-kselftest
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$dest"
# The host's own Debian archive (mirror/proxy) and security archive.
"$(dirname "$0")/../vm/apt-sources.sh" bookworm-backports bookworm-security \
	>"$apt_dir/sources.list"
opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
      -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache"
      -o Dir::State::status=/var/lib/dpkg/status -o Debug::NoLocking=1
      -o APT::Sandbox::User=root)
apt-get "${opts[@]}" -qq update >&2
(cd "$work" && apt-get "${opts[@]}" -qq download "$pkg" >&2)
dpkg-deb --fsys-tarfile "$work"/"$pkg"_*.deb |
	tar -x -C "$work" --wildcards '*.tar.xz'
tarball=$(find "$work" -name 'linux-source-*.tar.xz' | head -n 1)
[ -n "$tarball" ] || { echo "fetch.sh: no source tarball in $pkg" >&2; exit 1; }
top=$(basename "$tarball" .tar.xz)
tar -xJf "$tarball" -C "$work" \
	"$top/tools/testing/selftests/kselftest_harness.h" \
	"$top/tools/testing/selftests/kselftest.h"
cp "$work/$top/tools/testing/selftests/kselftest_harness.h" \
   "$work/$top/tools/testing/selftests/kselftest.h" "$dest/"
# Keep the tarball: the KVM selftests (peer suites) build from it.
mv "$tarball" "$cache/kselftest/" 2>/dev/null || true
echo "$dest"
