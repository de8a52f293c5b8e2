/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The one place for differences between the kernels we build against
 * (Debian bookworm 6.1 and bookworm-backports 6.12). Force-included by
 * module/Kbuild before every source file; it includes the KVM header it
 * adapts so that its #ifdefs see KVM's own definitions. The KVMAS_HAVE_*
 * inputs come from header probes in Kbuild. No other file tests
 * LINUX_VERSION_CODE.
 */
#ifndef KVMAS_COMPAT_H
#define KVMAS_COMPAT_H

/* Every message of the module carries its name; must precede any printk.h. */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/kvm_host.h>

/*
 * Address spaces: 6.1 has the constant KVM_ADDRESS_SPACE_NUM; 6.8+ has a
 * maximum plus a per-VM count (x86 VMs with private memory drop SMM).
 */
#ifdef KVMAS_HAVE_NR_MEMSLOT_AS_IDS
#define kvmas_kvm_max_as() KVM_MAX_NR_ADDRESS_SPACES
#define kvmas_nr_as(kvm) kvm_arch_nr_memslot_as_ids(kvm)
#else
#define kvmas_kvm_max_as() KVM_ADDRESS_SPACE_NUM
#define kvmas_nr_as(kvm) KVM_ADDRESS_SPACE_NUM
#endif

/*
 * The ring-with-bitmap mode (6.2+) is per VM state in struct kvm, set once
 * under kvm->lock before any memslot exists; READ_ONCE pairs with no
 * barrier, it only asks for an untorn read of that one-way flag.
 */
#ifdef KVMAS_HAVE_DIRTY_RING_WITH_BITMAP
#define kvmas_ring_with_bitmap(kvm) READ_ONCE((kvm)->dirty_ring_with_bitmap)
#else
#define kvmas_ring_with_bitmap(kvm) false
#endif

/*
 * 6.12 counts dirty-logging slots for x86's eager page splitting; 6.1 has
 * no counter. Updated under slots_lock, like kvm_commit_memory_region().
 */
#ifdef KVMAS_HAVE_NR_MEMSLOTS_DIRTY_LOGGING
#define kvmas_dirty_logging_add(kvm, d)               \
	atomic_set(&(kvm)->nr_memslots_dirty_logging, \
		   atomic_read(&(kvm)->nr_memslots_dirty_logging) + (d))
#else
#define kvmas_dirty_logging_add(kvm, d) \
	do {                            \
	} while (0)
#endif

/* mmu_lock is an rwlock where KVM says so (x86, arm64), a spinlock elsewhere. */
#ifdef KVM_HAVE_MMU_RWLOCK
#define kvmas_mmu_write_lock(kvm) write_lock(&(kvm)->mmu_lock)
#define kvmas_mmu_write_unlock(kvm) write_unlock(&(kvm)->mmu_lock)
#else
#define kvmas_mmu_write_lock(kvm) spin_lock(&(kvm)->mmu_lock)
#define kvmas_mmu_write_unlock(kvm) spin_unlock(&(kvm)->mmu_lock)
#endif

#endif /* KVMAS_COMPAT_H */
