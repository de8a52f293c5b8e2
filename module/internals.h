/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The internals layer: the only way the rest of the module reaches KVM
 * functions that kvm.ko does not export. See internals.c for the routes.
 */
#ifndef KVMAS_INTERNALS_H
#define KVMAS_INTERNALS_H

#include <linux/kvm_host.h>

/*
 * Exactly one route is compiled into a build:
 *  - livepatch (x86_64 with CONFIG_LIVEPATCH): direct calls, turned into
 *    .klp.rela.kvm relocations after linking (tools/klp-convert); IBT-safe
 *    by construction, nothing is ever called through a pointer;
 *  - kallsyms (no livepatch: arm64 Debian, or the KVMAS_FORCE_KALLSYMS test
 *    build): addresses from kprobes, called only after a landing-pad check.
 */
#if IS_ENABLED(CONFIG_LIVEPATCH) && !defined(KVMAS_FORCE_KALLSYMS)
#define KVMAS_ROUTE_LIVEPATCH 1
#else
#define KVMAS_ROUTE_KALLSYMS 1
#endif

/* What a set of internals makes possible (reported as capabilities). */
#define KVMAS_FEAT_RING_RESET (1U << 0)
#define KVMAS_FEAT_BATCH_COMMIT (1U << 1)
#define KVMAS_FEAT_ZAP_RANGE (1U << 2)
#define KVMAS_FEAT_ALL \
	(KVMAS_FEAT_RING_RESET | KVMAS_FEAT_BATCH_COMMIT | KVMAS_FEAT_ZAP_RANGE)

int kvmas_internals_init(void);
void kvmas_internals_exit(void);

/* Features usable right now (all their internals resolved and enabled). */
unsigned int kvmas_internals_features(void);
bool kvmas_route_livepatch(void);
bool kvmas_route_kallsyms(void);
bool kvmas_hardened_reset_active(void);

/*
 * Every use of an internal is bracketed: get fails (false) when the feature
 * is not available, and put lets the livepatch be disabled only after every
 * user has left.
 */
bool kvmas_internals_get(unsigned int feature);
void kvmas_internals_put(void);

/*
 * Work a user hands to a worker that holds no bracket of its own (the batch
 * reaper): kvmas_internals_defer() is called inside the user's get/put and
 * counts one deferred user; kvmas_internals_undefer() ends it. Withdrawing
 * the features waits for every deferred user too, so nothing calls an
 * internal after kvmas_internals_set_features(0) returns.
 */
void kvmas_internals_defer(void);
void kvmas_internals_undefer(void);

/*
 * Grants (after the internals became callable) or withdraws features;
 * takes kvmas_internals_rwsem for write, so it waits for every user, and
 * when withdrawing all of them also for every deferred user.
 */
void kvmas_internals_set_features(unsigned int features);
/* Whether the hardened stock reset (livepatch.c) is installed. */
void kvmas_internals_set_hardened(bool on);

/*
 * The internals themselves, with KVM's own semantics and locking rules:
 * enable_log_dirty_pt_masked under mmu_lock for write; every memslot hook
 * under slots_lock, prepare and swap also under slots_arch_lock.
 */
void kvmas_k_enable_log_dirty_pt_masked(struct kvm *kvm,
					struct kvm_memory_slot *slot,
					gfn_t gfn_offset, unsigned long mask);

int kvmas_k_prepare_memory_region(struct kvm *kvm,
				  const struct kvm_memory_slot *old,
				  struct kvm_memory_slot *new,
				  enum kvm_mr_change change);
void kvmas_k_commit_memory_region(struct kvm *kvm, struct kvm_memory_slot *old,
				  const struct kvm_memory_slot *new,
				  enum kvm_mr_change change);
void kvmas_k_flush_shadow_memslot(struct kvm *kvm,
				  struct kvm_memory_slot *slot);
void kvmas_k_guest_memory_reclaimed(struct kvm *kvm);
#if KVMAS_ZAP_RANGE_BY_INTERNAL
/* 6.1 x86: KVMAS_BATCH_ZAP_RANGE's unmap. Caller holds mmu_lock for write. */
bool kvmas_k_unmap_gfn_range(struct kvm *kvm, struct kvm_gfn_range *range);
#endif
void kvmas_k_free_memslot(struct kvm *kvm, struct kvm_memory_slot *slot);
/* Caller holds slots_lock and slots_arch_lock; returns with the latter released. */
void kvmas_k_swap_active_memslots(struct kvm *kvm, int as_id);
/* Edits the inactive set of new's (or old's) address space. */
void kvmas_k_replace_memslot(struct kvm *kvm, struct kvm_memory_slot *old,
			     struct kvm_memory_slot *new);

/*
 * The fence KVM raises around mmu-notifier invalidations, around the gfn
 * ranges @r[0..n) (each [start, end)) or, on kernels whose fence is keyed by
 * host virtual address (6.1), around [@hva_lo, @hva_hi). While it is up,
 * vCPU faults that find a memslot in the fenced ranges retry.
 */
struct kvmas_gfn_range {
	gfn_t start, end;
};
void kvmas_k_fence_begin(struct kvm *kvm, const struct kvmas_gfn_range *r,
			 unsigned int n, unsigned long hva_lo,
			 unsigned long hva_hi);
void kvmas_k_fence_end(struct kvm *kvm, unsigned long hva_lo,
		       unsigned long hva_hi);

#endif /* KVMAS_INTERNALS_H */
