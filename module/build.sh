#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Builds kvm_atomic_slots.ko for one kernel and, where the module uses the
# livepatch route, turns its references to KVM internals into livepatch
# relocations before anything (DKMS, sign-file) gets to see the .ko.
# Used by `make module`, tests/common.sh and dkms.conf alike.
#
#   module/build.sh KDIR [extra make arguments]
#   KVMAS_EXTRA_CFLAGS: test builds (-DKVMAS_FORCE_KALLSYMS,
#                       -DKVMAS_TEST_MISSING_SYMBOL)
set -eu

kdir=${1:?usage: module/build.sh KDIR [make args]}
shift
root=$(cd "$(dirname "$0")/.." && pwd)
ko=$root/module/kvm_atomic_slots.ko
extra=${KVMAS_EXTRA_CFLAGS:-}

make -C "$kdir" M="$root" KVMAS_EXTRA_CFLAGS="$extra" "$@" modules

# The route is decided by the kernel's configuration, like in internals.h.
if ! grep -qs '^CONFIG_LIVEPATCH=y' "$kdir/.config" "$kdir/include/config/auto.conf"; then
	exit 0
fi
case " $extra " in *-DKVMAS_FORCE_KALLSYMS*) exit 0 ;; esac

# A host tool: the kernel's CC (which DKMS exports) may be a cross compiler.
make -s -C "$root/tools/klp-convert" CC="${HOSTCC:-cc}" klp-convert
list=$root/module/klp-syms.list
case " $extra " in
*-DKVMAS_TEST_MISSING_SYMBOL*)
	list=$root/module/.klp-syms-test.list
	{ cat "$root/module/klp-syms.list"; echo "kvm kvmas_test_no_such_kvm_function"; } >"$list"
	;;
esac
"$root/tools/klp-convert/klp-convert" "$list" "$ko" "$ko"
# The static proof: no weak reference left, every internal only called directly.
"$root/tools/klp-convert/klp-convert" --check "$list" "$ko"
