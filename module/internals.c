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
 * bounded version (below), hardening stock KVM_RESET_DIRTY_RINGS for every
 * VMM while the module is loaded.
 *
 * Kallsyms route (no livepatch: arm64 Debian kernels, or the test build
 * with KVMAS_FORCE_KALLSYMS). Addresses come from kprobes (kallsyms_lookup_name
 * is not exported). Reading data through them is safe; a function is called
 * through its address only if it starts with a landing pad the CPU accepts
 * for an indirect call (ENDBR64 when the kernel is built with IBT; BTI C /
 * PACIASP when arm64 is built with kernel BTI). Otherwise the feature that
 * needs it is reported unavailable; nothing crashes.
 */
#include <linux/kvm_dirty_ring.h>
#include <linux/kvm_host.h>
#include <linux/module.h>
#include <linux/rwsem.h>
#include <linux/sched/signal.h>

#include "internals.h"
#include "ring.h"

/* Features that may be used now; changed only with kvmas_internals_rwsem held for write. */
static unsigned int kvmas_features;
static DECLARE_RWSEM(kvmas_internals_rwsem);
static bool kvmas_hardened_active;

bool kvmas_internals_get(unsigned int feature)
{
	down_read(&kvmas_internals_rwsem);
	if ((kvmas_features & feature) == feature)
		return true;
	up_read(&kvmas_internals_rwsem);
	return false;
}

void kvmas_internals_put(void)
{
	up_read(&kvmas_internals_rwsem);
}

unsigned int kvmas_internals_features(void)
{
	/* A snapshot for reporting; users take kvmas_internals_get(). */
	return READ_ONCE(kvmas_features);
}

static void kvmas_set_features(unsigned int features)
{
	down_write(&kvmas_internals_rwsem);
	/* Pairs with the READ_ONCE() in kvmas_internals_features(). */
	WRITE_ONCE(kvmas_features, features);
	up_write(&kvmas_internals_rwsem);
}

bool kvmas_hardened_reset_active(void)
{
	/* Pairs with WRITE_ONCE() in the patch callbacks; a report only. */
	return READ_ONCE(kvmas_hardened_active);
}

/* ------------------------------------------------------------------------ */
#ifdef KVMAS_ROUTE_LIVEPATCH
#include <linux/livepatch.h>

MODULE_INFO(livepatch, "Y");

/*
 * The internals, weak: see the top of the file. Each one is listed in
 * module/klp-syms.list; klp-convert --check fails the build if a weak
 * undefined symbol is not listed or is used other than by a direct call.
 */
extern void kvm_arch_mmu_enable_log_dirty_pt_masked(
	struct kvm *kvm, struct kvm_memory_slot *slot, gfn_t gfn_offset,
	unsigned long mask) __weak;

extern int kvm_arch_prepare_memory_region(struct kvm *kvm,
					  const struct kvm_memory_slot *old,
					  struct kvm_memory_slot *new,
					  enum kvm_mr_change change) __weak;
extern void kvm_arch_commit_memory_region(struct kvm *kvm,
					  struct kvm_memory_slot *old,
					  const struct kvm_memory_slot *new,
					  enum kvm_mr_change change) __weak;
extern void kvm_arch_flush_shadow_memslot(struct kvm *kvm,
					  struct kvm_memory_slot *slot) __weak;
extern void kvm_arch_guest_memory_reclaimed(struct kvm *kvm) __weak;
extern void kvm_arch_free_memslot(struct kvm *kvm,
				  struct kvm_memory_slot *slot) __weak;
#ifdef KVMAS_HAVE_INVALIDATE_RANGE_ADD
extern void kvm_mmu_invalidate_begin(struct kvm *kvm) __weak;
extern void kvm_mmu_invalidate_range_add(struct kvm *kvm, gfn_t start,
					 gfn_t end) __weak;
extern void kvm_mmu_invalidate_end(struct kvm *kvm) __weak;
#else
extern void kvm_mmu_invalidate_begin(struct kvm *kvm, unsigned long start,
				     unsigned long end) __weak;
extern void kvm_mmu_invalidate_end(struct kvm *kvm, unsigned long start,
				   unsigned long end) __weak;
#endif
/* Static in kvm_main.c; Debian's builds keep them as local symbols. */
extern void kvm_swap_active_memslots(struct kvm *kvm, int as_id) __weak;
extern void kvm_replace_memslot(struct kvm *kvm, struct kvm_memory_slot *old,
				struct kvm_memory_slot *new) __weak;

#ifdef KVMAS_TEST_MISSING_SYMBOL
/* Test build: a symbol kvm.ko does not have; klp_enable_patch must fail. */
extern void kvmas_test_no_such_kvm_function(void) __weak;
static bool kvmas_test_call_missing;
#endif

bool kvmas_route_livepatch(void)
{
	return true;
}

bool kvmas_route_kallsyms(void)
{
	return false;
}

void kvmas_k_enable_log_dirty_pt_masked(struct kvm *kvm,
					struct kvm_memory_slot *slot,
					gfn_t gfn_offset, unsigned long mask)
{
	kvm_arch_mmu_enable_log_dirty_pt_masked(kvm, slot, gfn_offset, mask);
}

int kvmas_k_prepare_memory_region(struct kvm *kvm,
				  const struct kvm_memory_slot *old,
				  struct kvm_memory_slot *new,
				  enum kvm_mr_change change)
{
	return kvm_arch_prepare_memory_region(kvm, old, new, change);
}

void kvmas_k_commit_memory_region(struct kvm *kvm, struct kvm_memory_slot *old,
				  const struct kvm_memory_slot *new,
				  enum kvm_mr_change change)
{
	kvm_arch_commit_memory_region(kvm, old, new, change);
}

void kvmas_k_flush_shadow_memslot(struct kvm *kvm, struct kvm_memory_slot *slot)
{
	kvm_arch_flush_shadow_memslot(kvm, slot);
}

void kvmas_k_guest_memory_reclaimed(struct kvm *kvm)
{
	kvm_arch_guest_memory_reclaimed(kvm);
}

void kvmas_k_free_memslot(struct kvm *kvm, struct kvm_memory_slot *slot)
{
	kvm_arch_free_memslot(kvm, slot);
}

void kvmas_k_swap_active_memslots(struct kvm *kvm, int as_id)
{
	kvm_swap_active_memslots(kvm, as_id);
}

void kvmas_k_replace_memslot(struct kvm *kvm, struct kvm_memory_slot *old,
			     struct kvm_memory_slot *new)
{
	kvm_replace_memslot(kvm, old, new);
}

#define KVMAS_CALL_INVALIDATE_BEGIN(...) kvm_mmu_invalidate_begin(__VA_ARGS__)
#define KVMAS_CALL_INVALIDATE_END(...) kvm_mmu_invalidate_end(__VA_ARGS__)
#define KVMAS_CALL_INVALIDATE_RANGE_ADD(...) \
	kvm_mmu_invalidate_range_add(__VA_ARGS__)

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
#ifdef KVMAS_HAVE_INVALIDATE_RANGE_ADD
	KVMAS_I_INVALIDATE_RANGE_ADD,
#endif
	KVMAS_I_COUNT
};

struct kvmas_internal {
	const char *name;
	unsigned int features; /* what cannot work without it */
	void *fn; /* callable entry, NULL if refused */
};

static struct kvmas_internal kvmas_internals[KVMAS_I_COUNT] = {
	[KVMAS_I_ENABLE_LOG_DIRTY] = { "kvm_arch_mmu_enable_log_dirty_pt_masked",
				       KVMAS_FEAT_RING_RESET },
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
#ifdef KVMAS_HAVE_INVALIDATE_RANGE_ADD
	[KVMAS_I_INVALIDATE_RANGE_ADD] = { "kvm_mmu_invalidate_range_add",
					   KVMAS_FEAT_BATCH_COMMIT },
#endif
};

/* Calls internal @i with the prototype of KVM's function @proto. */
#define KVMAS_KCALL(i, proto, ...) \
	((typeof(&proto))kvmas_internals[i].fn)(__VA_ARGS__)

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
	if (copy_from_kernel_nofault(&insn, (void *)(addr - 4), sizeof(insn)) ||
	    !is_endbr(insn) || !kvmas_is_symbol_start(addr - 4)) {
		*why = "no live ENDBR64 (sealed or never emitted)";
		return NULL;
	}
	return (void *)(addr - 4);
#elif defined(CONFIG_ARM64_BTI_KERNEL)
	if (copy_from_kernel_nofault(&insn, (void *)addr, sizeof(insn)) ||
	    !(insn == 0xd503245f || insn == 0xd50324df || /* BTI C, BTI JC */
	      insn == 0xd503233f ||
	      insn == 0xd503237f)) { /* PACIASP, PACIBSP */
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
		unsigned long addr = kvmas_kprobe_lookup(in->name);

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
	return all & ~missing;
}

void kvmas_k_enable_log_dirty_pt_masked(struct kvm *kvm,
					struct kvm_memory_slot *slot,
					gfn_t gfn_offset, unsigned long mask)
{
	KVMAS_KCALL(KVMAS_I_ENABLE_LOG_DIRTY,
		    kvm_arch_mmu_enable_log_dirty_pt_masked, kvm, slot,
		    gfn_offset, mask);
}

int kvmas_k_prepare_memory_region(struct kvm *kvm,
				  const struct kvm_memory_slot *old,
				  struct kvm_memory_slot *new,
				  enum kvm_mr_change change)
{
	return KVMAS_KCALL(KVMAS_I_PREPARE, kvm_arch_prepare_memory_region, kvm,
			   old, new, change);
}

void kvmas_k_commit_memory_region(struct kvm *kvm, struct kvm_memory_slot *old,
				  const struct kvm_memory_slot *new,
				  enum kvm_mr_change change)
{
	KVMAS_KCALL(KVMAS_I_COMMIT, kvm_arch_commit_memory_region, kvm, old,
		    new, change);
}

void kvmas_k_flush_shadow_memslot(struct kvm *kvm, struct kvm_memory_slot *slot)
{
	KVMAS_KCALL(KVMAS_I_FLUSH_SHADOW, kvm_arch_flush_shadow_memslot, kvm,
		    slot);
}

void kvmas_k_guest_memory_reclaimed(struct kvm *kvm)
{
	KVMAS_KCALL(KVMAS_I_RECLAIMED, kvm_arch_guest_memory_reclaimed, kvm);
}

void kvmas_k_free_memslot(struct kvm *kvm, struct kvm_memory_slot *slot)
{
	KVMAS_KCALL(KVMAS_I_FREE_MEMSLOT, kvm_arch_free_memslot, kvm, slot);
}

/* KVM's static helpers, with their prototypes from kvm_main.c. */
void kvm_swap_active_memslots(struct kvm *kvm, int as_id);
void kvm_replace_memslot(struct kvm *kvm, struct kvm_memory_slot *old,
			 struct kvm_memory_slot *new);

void kvmas_k_swap_active_memslots(struct kvm *kvm, int as_id)
{
	KVMAS_KCALL(KVMAS_I_SWAP_ACTIVE_MEMSLOTS, kvm_swap_active_memslots, kvm,
		    as_id);
}

void kvmas_k_replace_memslot(struct kvm *kvm, struct kvm_memory_slot *old,
			     struct kvm_memory_slot *new)
{
	KVMAS_KCALL(KVMAS_I_REPLACE_MEMSLOT, kvm_replace_memslot, kvm, old,
		    new);
}

#define KVMAS_CALL_INVALIDATE_BEGIN(...)                                \
	KVMAS_KCALL(KVMAS_I_INVALIDATE_BEGIN, kvm_mmu_invalidate_begin, \
		    __VA_ARGS__)
#define KVMAS_CALL_INVALIDATE_END(...) \
	KVMAS_KCALL(KVMAS_I_INVALIDATE_END, kvm_mmu_invalidate_end, __VA_ARGS__)
#define KVMAS_CALL_INVALIDATE_RANGE_ADD(...)      \
	KVMAS_KCALL(KVMAS_I_INVALIDATE_RANGE_ADD, \
		    kvm_mmu_invalidate_range_add, __VA_ARGS__)
#endif /* KVMAS_ROUTE_KALLSYMS */

/*
 * The fence, raised and dropped under mmu_lock for write as KVM itself does
 * (6.12 requires begin and its ranges in one mmu_lock section).
 */
void kvmas_k_fence_begin(struct kvm *kvm, const struct kvmas_gfn_range *r,
			 unsigned int n, unsigned long hva_lo,
			 unsigned long hva_hi)
{
	unsigned int i;

	kvmas_mmu_write_lock(kvm);
#ifdef KVMAS_HAVE_INVALIDATE_RANGE_ADD
	KVMAS_CALL_INVALIDATE_BEGIN(kvm);
	for (i = 0; i < n; i++)
		KVMAS_CALL_INVALIDATE_RANGE_ADD(kvm, r[i].start, r[i].end);
#else
	(void)r;
	(void)i;
	(void)n;
	KVMAS_CALL_INVALIDATE_BEGIN(kvm, hva_lo, hva_hi);
#endif
	kvmas_mmu_write_unlock(kvm);
}

void kvmas_k_fence_end(struct kvm *kvm, unsigned long hva_lo,
		       unsigned long hva_hi)
{
	kvmas_mmu_write_lock(kvm);
#ifdef KVMAS_HAVE_INVALIDATE_RANGE_ADD
	KVMAS_CALL_INVALIDATE_END(kvm);
#else
	KVMAS_CALL_INVALIDATE_END(kvm, hva_lo, hva_hi);
#endif
	kvmas_mmu_write_unlock(kvm);
}

/* ------------------------------------------------------------------------ */

#ifdef KVMAS_ROUTE_LIVEPATCH
/*
 * Replacement for kvm_dirty_ring_reset(), installed by our livepatch.
 *
 * Stock walks from reset_index while entries carry RESET and never stops on
 * its own: the flags live in memory the VMM can write, so a thread that keeps
 * setting RESET ahead of the walker keeps KVM_RESET_DIRTY_RINGS spinning
 * with slots_lock held, uninterruptibly (fixed upstream only in 2025).
 *
 * This version returns the same count as stock for every VMM that follows
 * the documented protocol, and differs only for hostile input:
 *  - at most ring->size entries per call: an honest ring never holds more
 *    harvested-but-unreset entries than its size (a full ring stops the
 *    vCPU), so one lap is exact for honest VMMs and a hard bound otherwise;
 *  - it stops early on a fatal signal (the caller is dying; its return value
 *    is moot), and reschedules between coalesced groups;
 *  - it never moves reset_index past dirty_index: stock does when a VMM
 *    marks entries KVM never pushed, and the vCPU's next push then WARNs
 *    (a userspace-triggered WARN; a panic with panic_on_warn). A push in
 *    flight is waited for briefly (see ring.c);
 *  - it never re-protects an empty mask (6.1 passes one to __fls()).
 * Other signals do not cut it short: QEMU asserts the count it gets back
 * equals what it harvested. It also takes the ring's lock from ring.c, which
 * is what lets KVMAS_RESET_RING run per vCPU without slots_lock. The
 * tracepoint kvm_dirty_ring_reset is not emitted (internal to kvm.ko).
 */
static int kvmas_dirty_ring_reset(struct kvm *kvm, struct kvm_dirty_ring *ring)
{
	return kvmas_ring_reset_stock(kvm, ring);
}

static void kvmas_post_patch(struct klp_object *obj)
{
#ifdef KVMAS_TEST_MISSING_SYMBOL
	/* Never true; READ_ONCE keeps the call (and its relocation) emitted. */
	if (READ_ONCE(kvmas_test_call_missing))
		kvmas_test_no_such_kvm_function();
#endif
	/* Pairs with READ_ONCE() in kvmas_hardened_reset_active(). */
	WRITE_ONCE(kvmas_hardened_active, true);
	pr_info("hardened KVM_RESET_DIRTY_RINGS active (bounded, killable)\n");
}

static void kvmas_pre_unpatch(struct klp_object *obj)
{
	/* Waits for every in-flight user of an internal to finish. */
	kvmas_set_features(0);
	/* Pairs with READ_ONCE() in kvmas_hardened_reset_active(). */
	WRITE_ONCE(kvmas_hardened_active, false);
	pr_info("livepatch disabling: KVM internals withdrawn, rmmod possible once done\n");
}

/*
 * Also run at the end of a *reversed* patching transition: an operator who
 * disables the patch before its first transition finished (within about a
 * second of modprobe) gets the transition reversed, and the livepatch core
 * then skips pre_unpatch but runs post_unpatch. The features go either way;
 * here nothing can be in flight any more that pre_unpatch would not have
 * waited for (set_features takes the rwsem for write all the same).
 */
static void kvmas_post_unpatch(struct klp_object *obj)
{
	kvmas_set_features(0);
	/* Pairs with READ_ONCE() in kvmas_hardened_reset_active(). */
	WRITE_ONCE(kvmas_hardened_active, false);
}

static struct klp_func kvmas_klp_funcs[] = {
	{
		.old_name = "kvm_dirty_ring_reset",
		.new_func = kvmas_dirty_ring_reset,
	},
	{}
};

static struct klp_object kvmas_klp_objs[] = {
	{
		.name = "kvm",
		.funcs = kvmas_klp_funcs,
		.callbacks = {
			.post_patch = kvmas_post_patch,
			.pre_unpatch = kvmas_pre_unpatch,
			.post_unpatch = kvmas_post_unpatch,
		},
	},
	{ }
};

static struct klp_patch kvmas_klp = {
	.mod = THIS_MODULE,
	.objs = kvmas_klp_objs,
	.replace = false,
};

int kvmas_internals_init(void)
{
	int ret = klp_enable_patch(&kvmas_klp);

	if (ret) {
		pr_err("cannot enable the livepatch (%d)%s; refusing to load\n",
		       ret,
		       ret == -ENOENT || ret == -EINVAL ?
			       ": this kvm lacks a function the module needs" :
			       "");
		return ret;
	}
	/* The .klp.rela.kvm relocations are applied: internals are callable. */
	kvmas_set_features(KVMAS_FEAT_RING_RESET | KVMAS_FEAT_BATCH_COMMIT);
	pr_info("KVM internals via livepatch relocations (direct calls, IBT-safe)\n");
	return 0;
}

#else /* KVMAS_ROUTE_KALLSYMS */

int kvmas_internals_init(void)
{
	unsigned int features = kvmas_kallsyms_resolve();

	kvmas_set_features(features);
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
	kvmas_set_features(0);
}
