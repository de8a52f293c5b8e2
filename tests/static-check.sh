#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Static proof for one built module (x86_64, livepatch route) that no KVM
# internal is ever called through a resolved pointer, so IBT's sealed
# ENDBRs cannot bite:
#  1. klp-convert --check: no weak undefined symbol is left, every listed
#     internal is a .klp.sym.kvm symbol reached only by direct call/jmp
#     relocations in .klp.rela.kvm sections;
#  2. no symbol resolution at run time: no kallsyms/kprobe imports;
#  3. no indirect call or jump at all in the module's code (no retpoline
#     thunk relocations, no call/jmp through a register or memory).
# Prints TAP and "N passed, N failed".
#   tests/static-check.sh KO
set -uo pipefail

ko=${1:?usage: static-check.sh KO}
top=$(cd "$(dirname "$0")/.." && pwd)
n=0 pass=0 fail=0

check() {
	local what=$1
	shift
	n=$((n + 1))
	if "$@" >/tmp/static-check.$$ 2>&1; then
		echo "ok $n - $what"
		pass=$((pass + 1))
	else
		echo "not ok $n - $what"
		sed 's/^/# /' /tmp/static-check.$$
		fail=$((fail + 1))
	fi
	rm -f /tmp/static-check.$$
}

no_runtime_resolution() {
	! nm -u "$ko" | grep -E 'kallsyms|kprobe|__symbol_get'
}

no_indirect_branches() {
	! objdump -dr "$ko" |
		grep -E 'indirect_thunk|indirect_call|(call|jmp)[a-z]* +\*'
}

livepatch_module() {
	[ "$(modinfo -F livepatch "$ko")" = Y ]
}

echo "TAP version 13"
echo "# $ko"
check "internals only through .klp.rela.kvm direct calls (klp-convert --check)" \
	"$top/tools/klp-convert/klp-convert" --check "$top/module/klp-syms.list" "$ko"
check "a livepatch module (relocations resolved by the livepatch core)" livepatch_module
check "no kallsyms/kprobe imports (nothing resolved at run time)" no_runtime_resolution
check "no indirect call or jump anywhere in the module" no_indirect_branches
echo "1..$n"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
