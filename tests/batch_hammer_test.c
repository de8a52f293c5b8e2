// SPDX-License-Identifier: GPL-2.0
/*
 * KVMAS_COMMIT_BATCH atomicity, the hammer: a guest executing, reading and
 * writing in slots that batches resize, split and merge, with zero holes,
 * against stock DELETE+CREATE that shows holes. KVMAS_HAMMER_ITERS sets the
 * number of commits (default 10,000); KVMAS_HAMMER_SLOT_LOCAL=1 disables
 * KVM_X86_QUIRK_SLOT_ZAP_ALL (slot-local zaps).
 */
#include <pthread.h>
#include <sched.h>

#include "batch_helpers.h"
#include "guest_flat32.h"
#include "kvm_helpers.h"
#include "kvmas.h"
#include "ringvm.h"
#include "workload.h"
#include "kselftest_harness.h"

/*
 * The hammer. vCPU0 executes its function in the target window, reads and
 * writes its counter there and loads a probe value from a second region;
 * vCPU1 does the same in its own part. Batches split, merge and resize the
 * target slots, make the two probe slots swap places (each moves away and
 * back) and toggle them read-only, continuously. Zero holes: no MMIO exit
 * or emulation failure at any of those GPAs, no pf_mmio_spte_created
 * growth, every probe load saw its value, each counter equals its call
 * count. Then the same resizes with stock ioctls, which must show holes
 * (the test can fail).
 */
static unsigned int hammer_route, hammer_gps_max;

/* What each vCPU's holes were: exits, and on arm64 the aborts it took. */
static void hammer_log_holes(struct __test_metadata *_metadata, struct wl_vm *w,
			     const char *what)
{
	int i;

	for (i = 0; i < w->nr_vcpus; i++) {
		uint64_t esr, far;
		uint64_t exc = wl_guest_exceptions(w, i, &esr, &far);

		TH_LOG("%s: vcpu %d: %llu MMIO exits in the window, %llu "
		       "emulation failures, %llu guest exceptions "
		       "(last ESR_EL1 %#llx FAR_EL1 %#llx)",
		       what, i, (unsigned long long)w->count[i].hole_mmio,
		       (unsigned long long)w->count[i].hole_emul,
		       (unsigned long long)exc, (unsigned long long)esr,
		       (unsigned long long)far);
	}
}

static int hammer_batches(struct wl_vm *w, int dev, int iters,
			  unsigned int flags, uint64_t *us)
{
	uint64_t t0 = wl_now_us();
	uint8_t *pa = w->probe, *pb = w->probe + WL_PROBE_SIZE;
	unsigned int ro = 0;
	int swapped = 0, i;

	for (i = 0; i < iters; i++) {
		struct kvmas_batch_op ops[2];
		struct batch_res r;
		unsigned int n;

		switch (i % 5) {
		case 0: /* split: [128K] -> [64K][192K] */
			ops[0] = op(KVMAS_OP_REPLACE, 1, WL_TARGET_GPA,
				    64 * KiB, w->target, 0);
			ops[1] = op(KVMAS_OP_CREATE, 2,
				    WL_TARGET_GPA + 64 * KiB, 192 * KiB,
				    w->target + 64 * KiB, 0);
			n = 2;
			break;
		case 1: /* merge into one 256K slot */
			ops[0] = del(2);
			ops[1] = op(KVMAS_OP_REPLACE, 1, WL_TARGET_GPA,
				    256 * KiB, w->target, 0);
			n = 2;
			break;
		case 2: /* shrink back to 128K */
			ops[0] = op(KVMAS_OP_REPLACE, 1, WL_TARGET_GPA,
				    128 * KiB, w->target, 0);
			n = 1;
			break;
		case 3: /* probe slots 3 and 4 move away and back: they swap places */
			swapped = !swapped;
			ops[0] = op(KVMAS_OP_MOVE, 3,
				    WL_PROBE_GPA_BASE +
					    (swapped ? WL_PROBE_SIZE : 0),
				    WL_PROBE_SIZE, pa, ro);
			ops[1] = op(KVMAS_OP_MOVE, 4,
				    WL_PROBE_GPA_BASE +
					    (swapped ? 0 : WL_PROBE_SIZE),
				    WL_PROBE_SIZE, pb, ro);
			n = 2;
			break;
		default: /* read-only on/off for both probe slots (vCPUs only read them) */
			ro ^= KVM_MEM_READONLY;
			ops[0] = op(KVMAS_OP_REPLACE, 3,
				    WL_PROBE_GPA_BASE +
					    (swapped ? WL_PROBE_SIZE : 0),
				    WL_PROBE_SIZE, pa, ro);
			ops[1] = op(KVMAS_OP_REPLACE, 4,
				    WL_PROBE_GPA_BASE +
					    (swapped ? 0 : WL_PROBE_SIZE),
				    WL_PROBE_SIZE, pb, ro);
			n = 2;
			break;
		}
		r = commit(dev, ops, n, flags);
		if (r.err)
			return r.err;
		hammer_route |= 1U << r.route;
		if (r.gps > hammer_gps_max)
			hammer_gps_max = r.gps;
	}
	*us = wl_now_us() - t0;
	return 0;
}

FIXTURE(hammer){};
FIXTURE_SETUP(hammer)
{
}
FIXTURE_TEARDOWN(hammer)
{
}

/* 10,000 commits take 1-2 minutes under TCG. */
TEST_F_TIMEOUT(hammer, no_holes, 900)
{
	int iters = getenv("KVMAS_HAMMER_ITERS") ?
			    atoi(getenv("KVMAS_HAMMER_ITERS")) :
			    10000;
	uint32_t c0[2], p0[2];
	int64_t mmio0, mmio1;
	uint64_t us_batch = 0, us_inval = 0, us_stock, t0;
	struct wl_vm w;
	int dev, i, r;
	/*
	 * KVM's INVALID protocol is hole-free on x86 only (faults on an
	 * INVALID slot retry there); on arm64 the module refuses it and the
	 * fence route is the only one (session_test checks the cap per arch).
	 */
	int inval = inval_route_ok();

	if (kvmas_cap(KVMAS_CAP_BATCH_COMMIT) <= 0)
		SKIP(return, "no batch commits on this kernel");
	/* Both vCPUs call into the target window (functions at +0 and +64K). */
	ASSERT_EQ(0, wl_create(&w, 2, 256 * KiB, 0x3 | WL_PROBE));
	/* Removals zap only their own range (6.12's quirk off), if asked. */
	if (getenv("KVMAS_HAMMER_SLOT_LOCAL") &&
	    !kvm_disable_slot_zap_all(w.vm)) {
		wl_destroy(&w);
		SKIP(return, "no KVM_X86_QUIRK_SLOT_ZAP_ALL on this kernel");
	}
	ASSERT_EQ(0, kvm_set_slot(w.vm, 0, 1, 0, WL_TARGET_GPA, 128 * KiB,
				  w.target));
	ASSERT_EQ(0, kvm_set_slot(w.vm, 0, 3, 0, WL_PROBE_GPA_BASE,
				  WL_PROBE_SIZE, w.probe));
	ASSERT_EQ(0,
		  kvm_set_slot(w.vm, 0, 4, 0, WL_PROBE_GPA_BASE + WL_PROBE_SIZE,
			       WL_PROBE_SIZE, w.probe + WL_PROBE_SIZE));
	dev = kvmas_dev_open();
	ASSERT_GE(dev, 0);
	ASSERT_EQ(0, kvmas_attach(dev, w.vm));
	ASSERT_EQ(0, wl_start(&w));
	usleep(100 * 1000);

	mmio0 = wl_vcpu_stat(&w, -1, "pf_mmio_spte_created");
	/* The VM's own route (fence, unless shadow roots exist), then KVM's. */
	r = hammer_batches(&w, dev, iters, 0, &us_batch);
	if (!r && inval)
		r = hammer_batches(&w, dev, iters / 4 - iters / 4 % 5,
				   KVMAS_BATCH_ROUTE_INVALIDATE, &us_inval);
	usleep(50 * 1000);
	wl_pause_all(&w);
	mmio1 = wl_vcpu_stat(&w, -1, "pf_mmio_spte_created");
	ASSERT_EQ(0, r);
	if (wl_holes(&w))
		hammer_log_holes(_metadata, &w, "batches");
	EXPECT_EQ(0, wl_holes(&w));
	EXPECT_EQ(0, wl_fatal(&w));
	EXPECT_EQ(mmio0, mmio1);
	for (i = 0; i < 2; i++) {
		/*
		 * Every call's read-modify-write reached guest memory: the
		 * counter equals the calls, or is one ahead if the vCPU was
		 * paused between its function and its progress increment.
		 */
		uint32_t d = wl_target_counter(&w, i) - wl_progress(&w, i);

		EXPECT_LE(d, 1)
		TH_LOG("vcpu %d: counter %u, calls %u", i,
		       wl_target_counter(&w, i), wl_progress(&w, i));
		EXPECT_GT(wl_progress(&w, i), 1000) TH_LOG("vcpu %d ran", i);
		EXPECT_EQ(0, wl_probe_bad(&w, i)) TH_LOG("vcpu %d probe", i);
		c0[i] = wl_target_counter(&w, i);
		p0[i] = wl_progress(&w, i);
	}
	TH_LOG("batches: %d commits in %llu ms + %d forced-invalidate in %llu ms, "
	       "%u+%u guest calls, 0 holes, routes %#x (2=invalidate 4=fence), "
	       "max %u grace periods",
	       iters, (unsigned long long)us_batch / 1000,
	       inval ? iters / 4 - iters / 4 % 5 : 0,
	       (unsigned long long)us_inval / 1000, p0[0], p0[1], hammer_route,
	       hammer_gps_max);
	if (inval) {
		EXPECT_TRUE(hammer_route & (1U << KVMAS_ROUTE_INVALIDATE));
	} else {
		struct batch_res inv;
		struct kvmas_batch_op o = op(KVMAS_OP_REPLACE, 1, WL_TARGET_GPA,
					     128 * KiB, w.target, 0);

		/* Only the fence: a forced INVALID protocol is refused. */
		EXPECT_EQ(0, hammer_route & (1U << KVMAS_ROUTE_INVALIDATE));
		inv = commit(dev, &o, 1, KVMAS_BATCH_ROUTE_INVALIDATE);
		EXPECT_EQ(-EOPNOTSUPP, inv.err);
	}
	EXPECT_LE(hammer_gps_max, 2);

	/* The same kind of change with stock ioctls: holes appear. */
	kvm_set_slot(w.vm, 0, 2, 0, 0, 0, NULL);
	wl_resume_all(&w);
	t0 = wl_now_us();
	for (i = 0; i < 200; i++) {
		ASSERT_EQ(0, kvm_set_slot(w.vm, 0, 1, 0, 0, 0, NULL));
		ASSERT_EQ(0, kvm_set_slot(w.vm, 0, 1, 0, WL_TARGET_GPA,
					  (i & 1) ? 128 * KiB : 256 * KiB,
					  w.target));
	}
	us_stock = wl_now_us() - t0;
	usleep(50 * 1000);
	wl_stop(&w);
	hammer_log_holes(_metadata, &w, "stock");
	EXPECT_GT(wl_holes(&w), 0);
	TH_LOG("stock: 200 DELETE+CREATE in %llu ms, %llu holes",
	       (unsigned long long)us_stock / 1000,
	       (unsigned long long)wl_holes(&w));
	(void)c0;
	close(dev);
	wl_destroy(&w);
}

TEST_HARNESS_MAIN
