/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The one place for differences between the kernels we build against
 * (Debian bookworm 6.1 and bookworm-backports 6.12). Force-included by
 * module/Kbuild before every source file, so it may only define macros that
 * expand later; the KVMAS_HAVE_* inputs come from header probes in Kbuild.
 * No other file tests LINUX_VERSION_CODE.
 */
#ifndef KVMAS_COMPAT_H
#define KVMAS_COMPAT_H

/*
 * Address spaces: 6.1 has the constant KVM_ADDRESS_SPACE_NUM; 6.8+ has a
 * maximum plus a per-VM count (x86 VMs with private memory drop SMM).
 */
#ifdef KVMAS_HAVE_NR_MEMSLOT_AS_IDS
#define kvmas_kvm_max_as()	KVM_MAX_NR_ADDRESS_SPACES
#define kvmas_nr_as(kvm)	kvm_arch_nr_memslot_as_ids(kvm)
#else
#define kvmas_kvm_max_as()	KVM_ADDRESS_SPACE_NUM
#define kvmas_nr_as(kvm)	KVM_ADDRESS_SPACE_NUM
#endif

/* The ring-with-bitmap mode (6.2+) is per VM state in struct kvm. */
#ifdef KVMAS_HAVE_DIRTY_RING_WITH_BITMAP
#define kvmas_ring_with_bitmap(kvm)	READ_ONCE((kvm)->dirty_ring_with_bitmap)
#else
#define kvmas_ring_with_bitmap(kvm)	false
#endif

#endif /* KVMAS_COMPAT_H */
