// SPDX-License-Identifier: GPL-2.0
/*
 * The module's livepatch (x86_64 with CONFIG_LIVEPATCH): the klp object
 * whose .klp.rela.kvm relocations make the internals callable (internals.c
 * explains the route), and what the patch replaces: kvm_dirty_ring_reset(),
 * with the bounded walk of ring.c, hardening stock KVM_RESET_DIRTY_RINGS
 * for every VMM while the module is loaded.
 *
 * Life cycle: enabled from module init as its last step that can fail;
 * disabled only through /sys/kernel/livepatch/kvm_atomic_slots/enabled.
 * Until then the patch holds a reference on this module (rmmod: EAGAIN).
 * pre_unpatch withdraws every feature that needs an internal, waiting for
 * in-flight users (kvmas_internals_set_features() takes the internals lock
 * for write), before the transition removes the replacement function.
 * replace = false: a distribution's own livepatches are never disabled.
 *
 * Layering: this file uses internals and ring; nothing below it calls in.
 */
#include <linux/kvm_dirty_ring.h>
#include <linux/kvm_host.h>
#include <linux/livepatch.h>
#include <linux/module.h>

#include "internals.h"
#include "livepatch.h"
#include "ring.h"

#ifdef KVMAS_ROUTE_LIVEPATCH

MODULE_INFO(livepatch, "Y");

#ifdef KVMAS_TEST_MISSING_SYMBOL
/* Test build: a symbol kvm.ko does not have; klp_enable_patch must fail. */
extern void kvmas_test_no_such_kvm_function(void) __weak;
static bool kvmas_test_call_missing;
#endif

/*
 * Replacement for kvm_dirty_ring_reset(), called by KVM_RESET_DIRTY_RINGS
 * with slots_lock held, once per vCPU.
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
	kvmas_internals_set_hardened(true);
	pr_info("hardened KVM_RESET_DIRTY_RINGS active (bounded, killable)\n");
}

static void kvmas_pre_unpatch(struct klp_object *obj)
{
	/* Waits for every in-flight user of an internal to finish. */
	kvmas_internals_set_features(0);
	kvmas_internals_set_hardened(false);
	pr_info("livepatch disabling: KVM internals withdrawn, rmmod possible once done\n");
}

/*
 * Also run at the end of a *reversed* patching transition: an operator who
 * disables the patch before its first transition finished (within about a
 * second of modprobe) gets the transition reversed, and the livepatch core
 * then skips pre_unpatch but runs post_unpatch. The features go either way
 * (set_features takes the internals lock for write, as in pre_unpatch).
 */
static void kvmas_post_unpatch(struct klp_object *obj)
{
	kvmas_internals_set_features(0);
	kvmas_internals_set_hardened(false);
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
	{}
};

static struct klp_patch kvmas_klp = {
	.mod = THIS_MODULE,
	.objs = kvmas_klp_objs,
	.replace = false,
};

int kvmas_livepatch_enable(void)
{
	int ret;

	might_sleep();
	ret = klp_enable_patch(&kvmas_klp);
	if (ret) {
		pr_err("cannot enable the livepatch (%d)%s; refusing to load\n",
		       ret,
		       ret == -ENOENT || ret == -EINVAL ?
			       ": this kvm lacks a function the module needs" :
			       "");
		return ret;
	}
	/* The .klp.rela.kvm relocations are applied: internals are callable. */
	kvmas_internals_set_features(KVMAS_FEAT_ALL);
	pr_info("KVM internals via livepatch relocations (direct calls, IBT-safe)\n");
	return 0;
}

#endif /* KVMAS_ROUTE_LIVEPATCH */
