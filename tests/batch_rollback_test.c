// SPDX-License-Identifier: GPL-2.0
/*
 * KVMAS_COMMIT_BATCH rollback: a batch whose last op fails in KVM's prepare
 * step leaves the layout and generation untouched, as running vCPUs see it.
 */
#include "batch_fixture.h"

/*
 * The last op passes validation but fails in KVM's own prepare step (beyond
 * the guest's physical address space: PREPARE_BEYOND_ERRNO), with two vCPUs running in the slots the
 * earlier, valid ops change. vCPU 0 executes from slot 1 and read-modify-
 * writes its counter there; the batch would re-back slot 1 with a decoy copy
 * whose counters hold a marker. vCPU 1 does the same in slot 2, which the
 * batch would delete. Failed many times on both routes (each prepares every
 * op before it publishes anything): the layout and KVM's generation are
 * exactly as before after every one, and the guest never hit a hole, never saw the
 * decoy, and its counters still count every call. Then the same batch with
 * a valid last op is applied: the guest does see that one (holes, the decoy
 * counter moves), so the checks above can fail.
 */
TEST_F_TIMEOUT(b, rollback_after_prepare_failure, 120)
{
	const uint32_t marker = 0x40000000;
	uint8_t *m = self->m, *decoy;
	struct kvmas_batch_op ops[3];
	char before[1024], after[1024];
	uint32_t p0[2], p1[2], v;
	uint64_t gen0[KVMAS_MAX_AS], gen1[KVMAS_MAX_AS];
	unsigned int routes = 0, bad = 0, i;
	int64_t mmio0, mmio1;
	struct batch_res r;
	struct wl_vm w;
	uint64_t t0;
	int dev, k;

	ASSERT_EQ(0, wl_create(&w, 2, 128 * KiB, 0x3));
	decoy = guest_mem(128 * KiB);
	ASSERT_NE(NULL, decoy);
	memcpy(decoy, w.target, 128 * KiB);
	for (i = 0; i < 2; i++)
		memcpy(decoy + (WL_DATA_GPA(i) - WL_TARGET_GPA), &marker, 4);
	dev = kvmas_dev_open();
	ASSERT_GE(dev, 0);
	ASSERT_EQ(0, kvmas_attach(dev, w.vm));
	ops[0] = op(KVMAS_OP_CREATE, 1, WL_FUNC_GPA(0), 64 * KiB, w.target, 0);
	ops[1] = op(KVMAS_OP_CREATE, 2, WL_FUNC_GPA(1), 64 * KiB,
		    w.target + 64 * KiB, KVM_MEM_LOG_DIRTY_PAGES);
	ASSERT_EQ(0, commit(dev, ops, 2, 0).err);
	layout_str(dev, 0, before, sizeof(before));
	vm_generation(dev, gen0);
	ASSERT_EQ(0, wl_start(&w));
	for (k = 0; k < 5000 &&
		    (wl_progress(&w, 0) < 1000 || wl_progress(&w, 1) < 1000);
	     k++)
		usleep(1000);
	mmio0 = wl_vcpu_stat(&w, -1, "pf_mmio_spte_created");
	p0[0] = wl_progress(&w, 0);
	p0[1] = wl_progress(&w, 1);

	t0 = wl_now_us();
	for (i = 0; i < 400; i++) {
		ops[0] = op(KVMAS_OP_REPLACE, 1, WL_FUNC_GPA(0), 64 * KiB,
			    decoy, 0);
		ops[1] = del(2);
		ops[2] = op(KVMAS_OP_CREATE, 3, 1ULL << 60, 2 * MiB,
			    m + 8 * MiB, 0);
		r = commit(dev, ops, 3, (i & 1) ? inval_flag() : 0);
		routes |= 1U << r.route;
		layout_str(dev, 0, after, sizeof(after));
		vm_generation(dev, gen1);
		/*
		 * Both routes prepare every op before publishing anything: the
		 * failure costs no grace period, and KVM's generation stays.
		 */
		if (r.err != -PREPARE_BEYOND_ERRNO || r.index != 2 ||
		    r.gps != 0 || memcmp(gen0, gen1, sizeof(gen0)) ||
		    strcmp(before, after)) {
			if (!bad++)
				TH_LOG("batch %u: err %d index %d route %u "
				       "gps %u, layout %s",
				       i, r.err, r.index, r.route, r.gps,
				       after);
		}
	}
	p1[0] = wl_progress(&w, 0);
	p1[1] = wl_progress(&w, 1);
	t0 = wl_now_us() - t0;
	usleep(20 * 1000);
	wl_pause_all(&w);
	mmio1 = wl_vcpu_stat(&w, -1, "pf_mmio_spte_created");
	EXPECT_EQ(0, bad);
	EXPECT_EQ(inval_route_ok(),
		  !!(routes & (1U << KVMAS_ROUTE_INVALIDATE)));
	EXPECT_EQ(0, wl_holes(&w));
	EXPECT_EQ(0, wl_fatal(&w));
	EXPECT_EQ(mmio0, mmio1);
	for (i = 0; i < 2; i++) {
		/* As in the hammer: one ahead if paused inside the function. */
		uint32_t d = wl_target_counter(&w, i) - wl_progress(&w, i);

		memcpy(&v, decoy + (WL_DATA_GPA(i) - WL_TARGET_GPA), 4);
		EXPECT_LE(d, 1)
		TH_LOG("vcpu %d: counter %u, calls %u", i,
		       wl_target_counter(&w, i), wl_progress(&w, i));
		EXPECT_EQ(marker, v) TH_LOG("vcpu %d wrote the decoy", i);
		/* It ran while the failed batches were being committed. */
		EXPECT_GT(p1[i] - p0[i], 0) TH_LOG("vcpu %d", i);
	}
	TH_LOG("400 failed batches in %llu ms (routes %#x, 2=invalidate "
	       "4=fence) while the guest made %u+%u calls into slots 1 and 2: "
	       "%llu holes, layout unchanged: %s",
	       (unsigned long long)t0 / 1000, routes, p1[0] - p0[0],
	       p1[1] - p0[1], (unsigned long long)wl_holes(&w),
	       bad ? "no" : "yes");

	/* The same batch with a valid last op: the guest sees this one. */
	ops[2] = op(KVMAS_OP_CREATE, 3, 0x1000000, 2 * MiB, m + 8 * MiB, 0);
	r = commit(dev, ops, 3, 0);
	EXPECT_EQ(0, r.err);
	wl_resume_all(&w);
	for (k = 0; k < 5000 && !wl_holes(&w); k++)
		usleep(1000);
	usleep(20 * 1000);
	wl_stop(&w);
	memcpy(&v, decoy + (WL_DATA_GPA(0) - WL_TARGET_GPA), 4);
	EXPECT_GT(wl_holes(&w), 0);
	EXPECT_NE(marker, v);
	TH_LOG("applied: %llu holes (slot 2 gone), decoy counter +%u",
	       (unsigned long long)wl_holes(&w), v - marker);
	close(dev);
	wl_destroy(&w);
	munmap(decoy, 128 * KiB);
}

TEST_HARNESS_MAIN
