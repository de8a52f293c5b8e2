#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Source checks of the static lane (no kernel needed), run by `make check`
# as a host suite:
#  1. the include graph of module/ has no cycle. Nodes are units (foo.c and
#     foo.h are one unit "foo"); an edge foo -> bar is an #include "bar.h"
#     in foo.c or foo.h. Every function the module calls across files has
#     its prototype in its unit's header (W=1 makes a missing prototype an
#     error), so an acyclic include graph is an acyclic call graph between
#     files: internals <- session <- ring/batch <- livepatch/netlink <- main;
#  2. kernel differences live in module/compat.h only: no other file tests
#     a KVMAS_HAVE_* probe, LINUX_VERSION_CODE/KERNEL_VERSION or a KVM
#     feature macro;
#  3. no clang-format drift against the tree's .clang-format (the kernel's)
#     in any C source or header, except uapi/linux/kvm_atomic_slots.h, left
#     out on purpose: its aligned tables of ioctl numbers and flags read
#     better than clang-format's layout, like many uapi headers upstream.
# Prints TAP and "N passed, N failed".
#   tests/source-check.sh
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1
n=0 pass=0 fail=0
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT

check() {
	local what=$1
	shift
	n=$((n + 1))
	if "$@" >"$tmp" 2>&1; then
		echo "ok $n - $what"
		pass=$((pass + 1))
	else
		echo "not ok $n - $what"
		sed 's/^/# /' "$tmp"
		fail=$((fail + 1))
	fi
}

# "from to" pairs of units, one per local #include.
include_edges() {
	local f unit h
	for f in module/*.c module/*.h; do
		unit=$(basename "${f%.*}")
		sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f" |
			while read -r h; do
				h=$(basename "${h%.*}")
				[ "$h" = "$unit" ] || echo "$unit $h"
			done
	done
}

no_include_cycle() {
	local edges
	edges=$(include_edges)
	[ -n "$edges" ] || { echo "no local includes found in module/"; return 1; }
	# tsort reports every loop it finds on stderr and fails.
	tsort <<<"$edges" >/dev/null
}

compat_only_in_compat_h() {
	! grep -nE '^[[:space:]]*#[[:space:]]*(if|ifdef|ifndef|elif).*(KVMAS_HAVE_|LINUX_VERSION_CODE|KERNEL_VERSION|KVM_MEM_GUEST_MEMFD|KVM_HAVE_MMU_RWLOCK|__KVM_HAVE_)' \
		module/*.c module/*.h | grep -v '^module/compat\.h:'
}

no_format_drift() {
	local f rc=0
	command -v clang-format >/dev/null || { echo "clang-format not installed"; return 1; }
	while read -r f; do
		[ "$f" = uapi/linux/kvm_atomic_slots.h ] && continue
		if ! clang-format --style=file --dry-run --Werror "$f" 2>/dev/null; then
			echo "$f: $(clang-format --style=file --dry-run "$f" 2>&1 | grep -c 'warning:') lines differ (clang-format -i --style=file $f)"
			rc=1
		fi
	done < <(git ls-files '*.c' '*.h' 2>/dev/null || find . -name '*.[ch]' -not -path './build/*' | sed 's|^\./||')
	return $rc
}

# The checks must be able to fail: a cycle planted in a scratch copy of the
# graph has to be caught, or the first check proves nothing.
cycle_detector_works() {
	! tsort <<<"$(include_edges; echo "internals main")" >/dev/null 2>&1
}

echo "TAP version 13"
check "module/ include graph has no cycle (units: foo.c + foo.h)" no_include_cycle
check "the cycle check catches a planted cycle (internals -> main)" cycle_detector_works
check "kernel differences only in module/compat.h" compat_only_in_compat_h
check "no clang-format drift (kernel .clang-format; uapi header excluded)" no_format_drift
echo "1..$n"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
