// SPDX-License-Identifier: GPL-2.0
/*
 * The internals layer: every use of a KVM function that kvm.ko does not
 * export goes through this file, and no other file names one.
 *
 * Livepatch route (x86_64 Debian 6.1/6.12). The internals are declared
 * __weak here and called directly. Weak undefined references are invisible
 * to modpost and would be resolved to 0 by the plain module loader, so after
 * the final link tools/klp-convert rewrites every one of them (listed in
 * module/klp-syms.list) into a .klp.rela.kvm.* relocation against a
 * .klp.sym.kvm.<name>,0 symbol, and refuses any reference that is not a
 * direct call. The livepatch core resolves those relocations into direct
 * calls inside klp_enable_patch(), before which nothing here calls an
 * internal. No function is ever called through a pointer, so IBT's sealed
 * ENDBRs (Debian 6.12) do not matter.
 *
 * One module, not a core + livepatch pair: the relocations are the reason
 * the module is a livepatch, and they are needed by the same code that owns
 * the device. The price is the unload sequence: the patch holds a reference
 * on this module until it is disabled through
 * /sys/kernel/livepatch/kvm_atomic_slots/enabled, so rmmod is refused
 * (EAGAIN) until then and the transition has finished. Disabling runs pre_unpatch, which withdraws
 * every feature that needs an internal and waits for in-flight users; the
 * device stays registered and answers with the features withdrawn until
 * rmmod. replace = false: we never disable a distribution's livepatches.
 *
 * The same patch earns its keep: it replaces kvm_dirty_ring_reset() with a
 * bounded version, hardening stock KVM_RESET_DIRTY_RINGS for every VMM while
 * the module is loaded. The klp objects, callbacks and that replacement live
 * in livepatch.c; this file only declares and calls the internals, so the
 * layers stay one-directional (internals <- ring <- livepatch).
 *
 * Kallsyms route (no livepatch: arm64 Debian kernels, or the test build
 * with KVMAS_FORCE_KALLSYMS). Addresses come from kprobes (kallsyms_lookup_name
 * is not exported). Reading data through them is safe; a function is called
 * through its address only if it starts with a landing pad the CPU accepts
 * for an indirect call (ENDBR64 when the kernel is built with IBT; BTI C /
 * PACIASP when arm64 is built with kernel BTI). Otherwise the feature that
 * needs it is reported unavailable; nothing crashes.
 */
#include <linux/kvm_host.h>
#include <linux/lockdep.h>
#include <linux/module.h>
#include <linux/rwsem.h>
#include <linux/wait.h>

#include "internals.h"

/* Features that may be used now; changed only with kvmas_internals_rwsem held for write. */
static unsigned int kvmas_features;
static DECLARE_RWSEM(kvmas_internals_rwsem);
static bool kvmas_hardened_active;
/* Deferred users (kvmas_internals_defer()); set_features(0) waits for 0. */
static atomic_t kvmas_deferred_users = ATOMIC_INIT(0);
static DECLARE_WAIT_QUEUE_HEAD(kvmas_deferred_wq);

bool kvmas_internals_get(unsigned int feature)
{
	might_sleep();
	down_read(&kvmas_internals_rwsem);
	if ((kvmas_features & feature) == feature)
		return true;
	up_read(&kvmas_internals_rwsem);
	return false;
}

void kvmas_internals_put(void)
{
	lockdep_assert_held_read(&kvmas_internals_rwsem);
	up_read(&kvmas_internals_rwsem);
}

void kvmas_internals_defer(void)
{
	/* Counted inside a get/put: a withdrawal cannot have passed yet. */
	lockdep_assert_held_read(&kvmas_internals_rwsem);
	atomic_inc(&kvmas_deferred_users);
}

void kvmas_internals_undefer(void)
{
	/* Full barrier (value-returning atomic): the user's calls come first. */
	if (atomic_dec_and_test(&kvmas_deferred_users))
		wake_up_all(&kvmas_deferred_wq);
}

unsigned int kvmas_internals_features(void)
{
	/* A snapshot for reporting; users take kvmas_internals_get(). */
	return READ_ONCE(kvmas_features);
}

void kvmas_internals_set_features(unsigned int features)
{
	might_sleep();
	down_write(&kvmas_internals_rwsem);
	/* Pairs with the READ_ONCE() in kvmas_internals_features(). */
	WRITE_ONCE(kvmas_features, features);
	up_write(&kvmas_internals_rwsem);
	/*
	 * No defer() can follow (it needs a feature granted); wait for the
	 * ones before. wait_event()'s barrier pairs with the full barrier of
	 * atomic_dec_and_test() in kvmas_internals_undefer().
	 */
	if (!features)
		wait_event(kvmas_deferred_wq,
			   !atomic_read(&kvmas_deferred_users));
}

bool kvmas_hardened_reset_active(void)
{
	/* Pairs with WRITE_ONCE() in kvmas_internals_set_hardened(). */
	return READ_ONCE(kvmas_hardened_active);
}

void kvmas_internals_set_hardened(bool on)
{
	/*
	 * Pairs with READ_ONCE() in kvmas_hardened_reset_active(). Set by
	 * post_patch once every task runs the replacement; cleared by
	 * pre_unpatch after the features were withdrawn (livepatch.c).
	 */
	WRITE_ONCE(kvmas_hardened_active, on);
}

/* ------------------------------------------------------------------------ */
/*
 * Prototypes the headers lack: kvm_main.c's static helpers (Debian's builds
 * keep them as local symbols, same prototype in 6.1 and 6.12), and
 * kvm_mmu_invalidate_range_add(), which 6.1 does not have (compat.h:
 * kvmas_fence_by_gfn() is then a constant false and no call is emitted).
 */
void kvm_swap_active_memslots(struct kvm *kvm, int as_id);
void kvm_replace_memslot(struct kvm *kvm, struct kvm_memory_slot *old,
			 struct kvm_memory_slot *new);
void kvm_mmu_invalidate_range_add(struct kvm *kvm, gfn_t start, gfn_t end);

#ifdef KVMAS_ROUTE_LIVEPATCH
/*
 * The internals, weak: see the top of the file. Each one is listed in
 * module/klp-syms.list; klp-convert --check fails the build if a weak
 * undefined symbol is not listed or is used other than by a direct call.
 * Redeclared with the prototype KVM's headers (or the lines above) give,
 * only to add __weak.
 */
extern typeof(kvm_arch_mmu_enable_log_dirty_pt_masked)
	kvm_arch_mmu_enable_log_dirty_pt_masked __weak;
extern typeof(kvm_arch_prepare_memory_region) kvm_arch_prepare_memory_region
	__weak;
extern typeof(kvm_arch_commit_memory_region) kvm_arch_commit_memory_region
	__weak;
extern typeof(kvm_arch_flush_shadow_memslot) kvm_arch_flush_shadow_memslot
	__weak;
extern typeof(kvm_arch_guest_memory_reclaimed) kvm_arch_guest_memory_reclaimed
	__weak;
extern typeof(kvm_arch_free_memslot) kvm_arch_free_memslot __weak;
extern typeof(kvm_mmu_invalidate_begin) kvm_mmu_invalidate_begin __weak;
extern typeof(kvm_mmu_invalidate_end) kvm_mmu_invalidate_end __weak;
extern typeof(kvm_mmu_invalidate_range_add) kvm_mmu_invalidate_range_add __weak;
extern typeof(kvm_swap_active_memslots) kvm_swap_active_memslots __weak;
extern typeof(kvm_replace_memslot) kvm_replace_memslot __weak;
#if KVMAS_ZAP_RANGE_BY_INTERNAL
extern typeof(kvm_unmap_gfn_range) kvm_unmap_gfn_range __weak;
#endif

/* A direct call, turned into a .klp.rela.kvm relocation by klp-convert. */
#define KVMAS_CALL(i, sym) sym

bool kvmas_route_livepatch(void)
{
	return true;
}

bool kvmas_route_kallsyms(void)
{
	return false;
}

#else /* KVMAS_ROUTE_KALLSYMS */
#include <linux/kallsyms.h>
#include <linux/kprobes.h>
#include <linux/uaccess.h>

enum {
	KVMAS_I_ENABLE_LOG_DIRTY,
	KVMAS_I_SWAP_ACTIVE_MEMSLOTS,
	KVMAS_I_REPLACE_MEMSLOT,
	KVMAS_I_PREPARE,
	KVMAS_I_COMMIT,
	KVMAS_I_FLUSH_SHADOW,
	KVMAS_I_RECLAIMED,
	KVMAS_I_FREE_MEMSLOT,
	KVMAS_I_INVALIDATE_BEGIN,
	KVMAS_I_INVALIDATE_END,
	KVMAS_I_INVALIDATE_RANGE_ADD,
	KVMAS_I_UNMAP_GFN_RANGE,
	KVMAS_I_COUNT
};

struct kvmas_internal {
	const char *name;
	/* what cannot work without it; 0: this kernel has no such function */
	unsigned int features;
	void *fn; /* callable entry, NULL if refused */
};

static struct kvmas_internal kvmas_internals[KVMAS_I_COUNT] = {
	/* Only the ring reset needs it; no ring, no reset (compat.h). */
	[KVMAS_I_ENABLE_LOG_DIRTY] = { "kvm_arch_mmu_enable_log_dirty_pt_masked",
				       kvmas_have_dirty_ring() ?
					       KVMAS_FEAT_RING_RESET :
					       0 },
	/* Static in kvm_main.c, kept as local symbols: never an ENDBR. */
	[KVMAS_I_SWAP_ACTIVE_MEMSLOTS] = { "kvm_swap_active_memslots",
					   KVMAS_FEAT_BATCH_COMMIT },
	[KVMAS_I_REPLACE_MEMSLOT] = { "kvm_replace_memslot",
				      KVMAS_FEAT_BATCH_COMMIT },
	[KVMAS_I_PREPARE] = { "kvm_arch_prepare_memory_region",
			      KVMAS_FEAT_BATCH_COMMIT },
	[KVMAS_I_COMMIT] = { "kvm_arch_commit_memory_region",
			     KVMAS_FEAT_BATCH_COMMIT },
	[KVMAS_I_FLUSH_SHADOW] = { "kvm_arch_flush_shadow_memslot",
				   KVMAS_FEAT_BATCH_COMMIT },
	[KVMAS_I_RECLAIMED] = { "kvm_arch_guest_memory_reclaimed",
				KVMAS_FEAT_BATCH_COMMIT },
	[KVMAS_I_FREE_MEMSLOT] = { "kvm_arch_free_memslot",
				   KVMAS_FEAT_BATCH_COMMIT },
	[KVMAS_I_INVALIDATE_BEGIN] = { "kvm_mmu_invalidate_begin",
				       KVMAS_FEAT_BATCH_COMMIT },
	[KVMAS_I_INVALIDATE_END] = { "kvm_mmu_invalidate_end",
				     KVMAS_FEAT_BATCH_COMMIT },
	[KVMAS_I_INVALIDATE_RANGE_ADD] = { "kvm_mmu_invalidate_range_add",
					   kvmas_fence_by_gfn() ?
						   KVMAS_FEAT_BATCH_COMMIT :
						   0 },
	/* Elsewhere ZAP_RANGE needs no internal (compat.h). */
	[KVMAS_I_UNMAP_GFN_RANGE] = { "kvm_unmap_gfn_range",
				      KVMAS_ZAP_RANGE_BY_INTERNAL ?
					      KVMAS_FEAT_ZAP_RANGE :
					      0 },
};

bool kvmas_route_livepatch(void)
{
	return false;
}

bool kvmas_route_kallsyms(void)
{
	return true;
}

/* A kprobe reports where a probe on @name would sit; nothing is left armed. */
static unsigned long kvmas_kprobe_lookup(const char *name)
{
	struct kprobe kp = { .symbol_name = name };
	unsigned long addr;

	if (register_kprobe(&kp))
		return 0;
	addr = (unsigned long)kp.addr;
	unregister_kprobe(&kp);
	return addr;
}

/* True if @addr is exactly the start of a symbol (offset 0). */
static bool __maybe_unused kvmas_is_symbol_start(unsigned long addr)
{
	char buf[KSYM_SYMBOL_LEN];

	sprint_symbol(buf, addr);
	return strstr(buf, "+0x0/") != NULL;
}

/*
 * A64 encodings of the instructions an indirect call may land on with BTI
 * enabled (Arm ARM: BTI c/jc; PACIxSP are implicit BTI c landing pads).
 */
#define KVMAS_A64_BTI_C 0xd503245fU
#define KVMAS_A64_BTI_JC 0xd50324dfU
#define KVMAS_A64_PACIASP 0xd503233fU
#define KVMAS_A64_PACIBSP 0xd503237fU

/*
 * Returns the entry to call for a function whose probe address is @addr,
 * or NULL with @why set if an indirect call there would not be accepted.
 */
static void *kvmas_landing_pad(unsigned long addr, const char **why)
{
	u32 insn;

#if defined(CONFIG_X86_KERNEL_IBT)
	/*
	 * kprobes skip a live ENDBR64, so a callable function's probe sits 4
	 * bytes past its start. An ENDBR sealed at boot (objtool: address
	 * never taken) reads as a NOP and the probe sits at the start.
	 */
	addr -= ENDBR_INSN_SIZE;
	if (copy_from_kernel_nofault(&insn, (void *)addr, sizeof(insn)) ||
	    !is_endbr(insn) || !kvmas_is_symbol_start(addr)) {
		*why = "no live ENDBR64 (sealed or never emitted)";
		return NULL;
	}
	return (void *)addr;
#elif defined(CONFIG_ARM64_BTI_KERNEL)
	if (copy_from_kernel_nofault(&insn, (void *)addr, sizeof(insn)) ||
	    !(insn == KVMAS_A64_BTI_C || insn == KVMAS_A64_BTI_JC ||
	      insn == KVMAS_A64_PACIASP || insn == KVMAS_A64_PACIBSP)) {
		*why = "no BTI landing pad";
		return NULL;
	}
	return (void *)addr;
#else
	(void)insn;
	if (!kvmas_is_symbol_start(addr)) {
		*why = "probe address is not the function's start";
		return NULL;
	}
	return (void *)addr;
#endif
}

static unsigned int kvmas_kallsyms_resolve(void)
{
	unsigned int missing = 0, all = 0;
	const char *why;
	int i;

	for (i = 0; i < KVMAS_I_COUNT; i++) {
		struct kvmas_internal *in = &kvmas_internals[i];
		unsigned long addr;

		if (!in->features)
			continue;
		addr = kvmas_kprobe_lookup(in->name);
		all |= in->features;
		why = "symbol not found";
		in->fn = addr ? kvmas_landing_pad(addr, &why) : NULL;
		if (!in->fn) {
			missing |= in->features;
			pr_info("kallsyms route: %s unusable: %s\n", in->name,
				why);
		} else {
			pr_info("kallsyms route: %s callable at %pS\n",
				in->name, in->fn);
		}
	}
	/* Without an internal of its own, ZAP_RANGE comes with the batch. */
	if (!KVMAS_ZAP_RANGE_BY_INTERNAL)
		all |= KVMAS_FEAT_ZAP_RANGE;
	return all & ~missing;
}

/* A call through the address checked by kvmas_landing_pad(). */
#define KVMAS_CALL(i, sym) ((typeof(&sym))kvmas_internals[i].fn)
#endif /* KVMAS_ROUTE_KALLSYMS */

/*
 * The internals, with KVM's semantics; each asserts the locks KVM's own
 * caller (kvm_set_memslot() and friends, 6.1 and 6.12) holds around it.
 */
void kvmas_k_enable_log_dirty_pt_masked(struct kvm *kvm,
					struct kvm_memory_slot *slot,
					gfn_t gfn_offset, unsigned long mask)
{
	kvmas_lockdep_assert_mmu_write_held(kvm);
	KVMAS_CALL(KVMAS_I_ENABLE_LOG_DIRTY,
		   kvm_arch_mmu_enable_log_dirty_pt_masked)
	(kvm, slot, gfn_offset, mask);
}

#if KVMAS_ZAP_RANGE_BY_INTERNAL
bool kvmas_k_unmap_gfn_range(struct kvm *kvm, struct kvm_gfn_range *range)
{
	/*
	 * KVM's mmu-notifier path holds mmu_lock for write around it, and
	 * kvm->srcu for the slot; we pass a slot slots_lock keeps alive.
	 */
	lockdep_assert_held(&kvm->slots_lock);
	kvmas_lockdep_assert_mmu_write_held(kvm);
	return KVMAS_CALL(KVMAS_I_UNMAP_GFN_RANGE, kvm_unmap_gfn_range)(kvm,
									range);
}
#endif

int kvmas_k_prepare_memory_region(struct kvm *kvm,
				  const struct kvm_memory_slot *old,
				  struct kvm_memory_slot *new,
				  enum kvm_mr_change change)
{
	lockdep_assert_held(&kvm->slots_lock);
	lockdep_assert_held(&kvm->slots_arch_lock);
	return KVMAS_CALL(KVMAS_I_PREPARE, kvm_arch_prepare_memory_region)(
		kvm, old, new, change);
}

void kvmas_k_commit_memory_region(struct kvm *kvm, struct kvm_memory_slot *old,
				  const struct kvm_memory_slot *new,
				  enum kvm_mr_change change)
{
	lockdep_assert_held(&kvm->slots_lock);
	KVMAS_CALL(KVMAS_I_COMMIT, kvm_arch_commit_memory_region)
	(kvm, old, new, change);
}

void kvmas_k_flush_shadow_memslot(struct kvm *kvm, struct kvm_memory_slot *slot)
{
	lockdep_assert_held(&kvm->slots_lock);
	KVMAS_CALL(KVMAS_I_FLUSH_SHADOW, kvm_arch_flush_shadow_memslot)
	(kvm, slot);
}

void kvmas_k_guest_memory_reclaimed(struct kvm *kvm)
{
	lockdep_assert_held(&kvm->slots_lock);
	KVMAS_CALL(KVMAS_I_RECLAIMED, kvm_arch_guest_memory_reclaimed)(kvm);
}

void kvmas_k_free_memslot(struct kvm *kvm, struct kvm_memory_slot *slot)
{
	lockdep_assert_held(&kvm->slots_lock);
	KVMAS_CALL(KVMAS_I_FREE_MEMSLOT, kvm_arch_free_memslot)(kvm, slot);
}

void kvmas_k_swap_active_memslots(struct kvm *kvm, int as_id)
{
	lockdep_assert_held(&kvm->slots_lock);
	lockdep_assert_held(&kvm->slots_arch_lock);
	KVMAS_CALL(KVMAS_I_SWAP_ACTIVE_MEMSLOTS, kvm_swap_active_memslots)
	(kvm, as_id);
}

void kvmas_k_replace_memslot(struct kvm *kvm, struct kvm_memory_slot *old,
			     struct kvm_memory_slot *new)
{
	/* The inactive set is the writer's: slots_lock (KVM adds no other). */
	lockdep_assert_held(&kvm->slots_lock);
	KVMAS_CALL(KVMAS_I_REPLACE_MEMSLOT, kvm_replace_memslot)(kvm, old, new);
}

/*
 * The fence, raised and dropped under mmu_lock for write as KVM itself does
 * (6.12 requires begin and its ranges in one mmu_lock section). compat.h
 * gives the kernel's form: gfn ranges added after begin, or one hva range.
 */
#define KVMAS_INVALIDATE_BEGIN \
	KVMAS_CALL(KVMAS_I_INVALIDATE_BEGIN, kvm_mmu_invalidate_begin)
#define KVMAS_INVALIDATE_END \
	KVMAS_CALL(KVMAS_I_INVALIDATE_END, kvm_mmu_invalidate_end)
#define KVMAS_INVALIDATE_RANGE_ADD \
	KVMAS_CALL(KVMAS_I_INVALIDATE_RANGE_ADD, kvm_mmu_invalidate_range_add)

void kvmas_k_fence_begin(struct kvm *kvm, const struct kvmas_gfn_range *r,
			 unsigned int n, unsigned long hva_lo,
			 unsigned long hva_hi)
{
	unsigned int i;

	lockdep_assert_held(&kvm->slots_lock);
	kvmas_mmu_write_lock(kvm);
	kvmas_fence_call(KVMAS_INVALIDATE_BEGIN, kvm, hva_lo, hva_hi);
	for (i = 0; kvmas_fence_by_gfn() && i < n; i++)
		KVMAS_INVALIDATE_RANGE_ADD(kvm, r[i].start, r[i].end);
	kvmas_mmu_write_unlock(kvm);
}

void kvmas_k_fence_end(struct kvm *kvm, unsigned long hva_lo,
		       unsigned long hva_hi)
{
	lockdep_assert_held(&kvm->slots_lock);
	kvmas_mmu_write_lock(kvm);
	kvmas_fence_call(KVMAS_INVALIDATE_END, kvm, hva_lo, hva_hi);
	kvmas_mmu_write_unlock(kvm);
}

/* ------------------------------------------------------------------------ */

#ifdef KVMAS_ROUTE_LIVEPATCH
int kvmas_internals_init(void)
{
	/*
	 * Nothing is callable until livepatch.c has enabled the patch, whose
	 * relocations resolve the internals; it grants the features then.
	 */
	kvmas_internals_set_features(0);
	return 0;
}

#else /* KVMAS_ROUTE_KALLSYMS */

int kvmas_internals_init(void)
{
	unsigned int features = kvmas_kallsyms_resolve();

	kvmas_internals_set_features(features);
	pr_info("KVM internals via kallsyms with landing-pad checks: features %#x\n",
		features);
	return 0;
}
#endif

void kvmas_internals_exit(void)
{
	/*
	 * Livepatch route: we only get here after the patch was disabled and
	 * freed (it holds a module reference until then), and pre_unpatch has
	 * withdrawn the features. Kallsyms route: nothing is left armed.
	 */
	kvmas_internals_set_features(0);
}
