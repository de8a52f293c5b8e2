/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The one place for differences between the kernels we build against
 * (Debian bookworm 6.1 and bookworm-backports 6.12). Force-included by
 * module/Kbuild before every source file; it includes the KVM header it
 * adapts so that its #ifdefs see KVM's own definitions. The KVMAS_HAVE_*
 * inputs come from header probes in Kbuild (headers first; a version test
 * only where no header says it, and there is none today). No other file
 * tests a KVMAS_HAVE_* probe, a KVM feature macro or LINUX_VERSION_CODE;
 * the route (livepatch/kallsyms) and landing-pad checks in internals.c are
 * configuration, not kernel-version, differences.
 */
#ifndef KVMAS_COMPAT_H
#define KVMAS_COMPAT_H

/* Every message of the module carries its name; must precede any printk.h. */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/kvm_host.h>
#include <linux/lockdep.h>
#include <linux/pagemap.h>

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
 * no counter. Updated under slots_lock, like kvm_commit_memory_region(),
 * so a plain read-then-set is no lost update; atomic_t orders nothing here
 * (KVM's readers pair with no barrier of ours, they read it as a hint).
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
#define kvmas_lockdep_assert_mmu_write_held(kvm) \
	lockdep_assert_held_write(&(kvm)->mmu_lock)
#else
#define kvmas_mmu_write_lock(kvm) spin_lock(&(kvm)->mmu_lock)
#define kvmas_mmu_write_unlock(kvm) spin_unlock(&(kvm)->mmu_lock)
#define kvmas_lockdep_assert_mmu_write_held(kvm) \
	lockdep_assert_held(&(kvm)->mmu_lock)
#endif

/*
 * The fence KVM raises around mmu-notifier invalidations (internals.c):
 * 6.12 (kvm_mmu_invalidate_range_add() exists) keys it by gfn ranges added
 * between kvm_mmu_invalidate_begin(kvm) and _end(kvm); 6.1 by one host
 * virtual range passed to begin(kvm, start, end) and end(kvm, start, end).
 * kvmas_fence_by_gfn() is a constant, so the other form's calls are not
 * even emitted; kvmas_fence_call() calls begin or end in the kernel's form.
 */
#ifdef KVMAS_HAVE_INVALIDATE_RANGE_ADD
#define kvmas_fence_by_gfn() 1
#define kvmas_fence_call(fn, kvm, hva_lo, hva_hi) fn(kvm)
#else
#define kvmas_fence_by_gfn() 0
#define kvmas_fence_call(fn, kvm, hva_lo, hva_hi) fn(kvm, hva_lo, hva_hi)
#endif

/*
 * The dirty ring: x86 (6.1, 6.12) and arm64 from 6.2 select
 * HAVE_KVM_DIRTY_RING; Debian's arm64 6.1 does not, so no vCPU there ever
 * has a ring (KVM refuses KVM_CAP_DIRTY_LOG_RING) and the ring reset is
 * not offered (internals.c). Its kvm_flush_remote_tlbs() is also arm64's
 * own and not exported (HAVE_KVM_ARCH_TLB_FLUSH_ALL), so the reset's flush
 * is not built there: reaching it would mean a reset without a ring.
 */
/*
 * KVMAS_BATCH_ZAP_RANGE unmaps a removed slot's range with the exported
 * kvm_zap_gfn_range() on 6.12 (gfn-keyed fence) and with the internal
 * kvm_unmap_gfn_range() on 6.1 x86, where nothing exported does it.
 */
#define KVMAS_ZAP_RANGE_BY_INTERNAL \
	(IS_ENABLED(CONFIG_X86) && !kvmas_fence_by_gfn())

#ifdef CONFIG_HAVE_KVM_DIRTY_RING
#define kvmas_have_dirty_ring() true
#define kvmas_ring_flush_remote_tlbs(kvm) kvm_flush_remote_tlbs(kvm)
#else
#define kvmas_have_dirty_ring() false
#define kvmas_ring_flush_remote_tlbs(kvm) WARN_ON_ONCE(1)
#endif

/* guest_memfd slots (6.8+); a kernel without them has none. */
#ifdef KVM_MEM_GUEST_MEMFD
#define kvmas_slot_is_gmem(slot) (!!((slot)->flags & KVM_MEM_GUEST_MEMFD))
#else
#define kvmas_slot_is_gmem(slot) false
#endif

/*
 * Whether the VM accepts KVM_MEM_READONLY, as check_memory_region_flags()
 * decides it: 6.12 asks the architecture per VM (x86 defines a macro, the
 * generic fallback is an inline keyed by a Kconfig symbol); 6.1 has the
 * arch-wide __KVM_HAVE_READONLY_MEM.
 */
#if defined(kvm_arch_has_readonly_mem)
#define kvmas_has_readonly_mem(kvm) kvm_arch_has_readonly_mem(kvm)
#elif defined(CONFIG_HAVE_KVM_READONLY_MEM) || defined(__KVM_HAVE_READONLY_MEM)
#define kvmas_has_readonly_mem(kvm) true
#else
#define kvmas_has_readonly_mem(kvm) false
#endif

/*
 * What x86's kvm_arch_prepare_memory_region() allocates for a new slot
 * depends on one-way VM state that KVM flips under slots_arch_lock: rmaps
 * and write-tracking arrays appear with the first shadow root (and, where
 * the kernel has it, external write tracking). A batch that drops
 * slots_arch_lock between preparing and publishing (route A's INVALID
 * swap) compares this value to know whether its prepared slots are stale.
 */
#ifdef CONFIG_X86
static inline unsigned long kvmas_arch_prepare_epoch(struct kvm *kvm)
{
	/* Pairs with smp_store_release() in mmu_first_shadow_root_alloc(). */
	unsigned long e = smp_load_acquire(&kvm->arch.shadow_root_allocated);

#if defined(KVMAS_HAVE_EXTERNAL_WRITE_TRACKING) && \
	defined(CONFIG_KVM_EXTERNAL_WRITE_TRACKING)
	/* Pairs with smp_store_release() in kvm_enable_external_write_tracking(). */
	e |= (unsigned long)smp_load_acquire(
		     &kvm->arch.external_write_tracking_enabled)
	     << 1;
#endif
	return e;
}

/*
 * Whether the VM may have shadow pages accounted into memslot arch data
 * (shadow paging, nested guests), which must be zapped while their slot is
 * INVALID as KVM does. Caller holds slots_lock; the answer is stable only
 * while slots_arch_lock is held too, the lock shadow roots and rmaps are
 * first allocated under (a dry run reads it as a report).
 */
static inline bool kvmas_arch_shadow_mmu_in_use(struct kvm *kvm)
{
	struct kvm_memory_slot *s;
	int bkt;

	/* slots_lock: __kvm_memslots() below, without SRCU. */
	lockdep_assert_held(&kvm->slots_lock);
	/* Pairs with the smp_store_release() in mmu_first_shadow_root_alloc(). */
	if (smp_load_acquire(&kvm->arch.shadow_root_allocated))
		return true;
	/*
	 * Without the TDP MMU (e.g. kvm_amd npt=0) the flag above stays clear
	 * as long as the guest runs on direct roots, yet the legacy MMU keeps
	 * rmaps in every slot's arch data, all slots or none: one slot tells.
	 */
	kvm_for_each_memslot(s, bkt, __kvm_memslots(kvm, 0))
		return !!s->arch.rmap[0];
	return false;
}

/*
 * Whether kvm_arch_flush_shadow_memslot() zaps the whole VM whatever the
 * slot, so that one call covers every slot a batch removes:
 *  - 6.12: default VMs while KVM_X86_QUIRK_SLOT_ZAP_ALL is enabled (KVM's
 *    kvm_memslot_flush_zap_all()); otherwise it unmaps the slot's range.
 *  - 6.1: the flush calls every page-track notifier with the slot; the
 *    MMU's zaps everything, an external one (KVMGT) works per slot. Only
 *    the MMU's own node registered (mmu_sp_tracker) means zap-all.
 * A racing change (the quirk disabled, a notifier registered) is caught by
 * asking again after the swap (kvmas_publish_fenced()).
 */
#if defined(KVM_X86_QUIRK_SLOT_ZAP_ALL) && defined(KVMAS_HAVE_VM_TYPE)
static inline bool kvmas_arch_flush_zaps_all(struct kvm *kvm)
{
	/* Unordered like KVM's own kvm_check_has_quirk(); see above for races. */
	return kvm->arch.vm_type == KVM_X86_DEFAULT_VM &&
	       !(READ_ONCE(kvm->arch.disabled_quirks) &
		 KVM_X86_QUIRK_SLOT_ZAP_ALL);
}
#elif defined(KVMAS_HAVE_TRACK_NOTIFIER_HEAD)
static inline bool kvmas_arch_flush_zaps_all(struct kvm *kvm)
{
	struct kvm_page_track_notifier_head *head =
		&kvm->arch.track_notifier_head;
	struct kvm_page_track_notifier_node *n;
	bool mmu_only = true;
	int idx;

	/* The list is RCU-protected by track_srcu, as kvm_page_track_flush_slot() reads it. */
	idx = srcu_read_lock(&head->track_srcu);
	hlist_for_each_entry_srcu(n, &head->track_notifier_list, node,
				  srcu_read_lock_held(&head->track_srcu))
		if (n != &kvm->arch.mmu_sp_tracker)
			mmu_only = false;
	srcu_read_unlock(&head->track_srcu, idx);
	return mmu_only;
}
#else
static inline bool kvmas_arch_flush_zaps_all(struct kvm *kvm)
{
	return false;
}
#endif

/* A fault on an INVALID slot retries on x86 (kvm_faultin_pfn): hole-free. */
#define kvmas_arch_invalidate_route_ok() true
#else
static inline unsigned long kvmas_arch_prepare_epoch(struct kvm *kvm)
{
	return 0;
}

/*
 * arm64 treats an INVALID slot like a missing one (an instruction abort
 * there is injected into the guest): KVM's INVALID protocol is a hole, so
 * only the fence route is offered (docs/internals.md 7.5).
 */
#define kvmas_arch_invalidate_route_ok() false

/* Only x86 keeps shadow pages in memslot arch data. */
static inline bool kvmas_arch_shadow_mmu_in_use(struct kvm *kvm)
{
	return false;
}

/* arm64 unmaps the slot's own stage-2 range. */
static inline bool kvmas_arch_flush_zaps_all(struct kvm *kvm)
{
	return false;
}
#endif

/*
 * Whether [@p, @p + @len) can be written without a fault, probed without
 * writing a byte (fault_in_writeable() would store zeros): 0 or -EFAULT.
 * Commands prove their output buffers this way before they change
 * anything, so that no copy can fail after a change.
 */
static inline int kvmas_probe_writable(void __user *p, size_t len)
{
	return len && fault_in_safe_writeable(p, len) ? -EFAULT : 0;
}

#endif /* KVMAS_COMPAT_H */
