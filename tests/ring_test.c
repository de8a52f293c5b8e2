// SPDX-License-Identifier: GPL-2.0
/*
 * The hardened stock KVM_RESET_DIRTY_RINGS (our livepatch replaces
 * kvm_dirty_ring_reset): identical counts for a VMM that follows the
 * protocol. The hostile cases need truly parallel vCPUs and live in
 * race_test (run in a multi-threaded TCG boot).
 */
#include "kvm_helpers.h"
#include "ringvm.h"
#include "kselftest_harness.h"

static int hardened(void)
{
	int dev = kvmas_dev_open(), v;

	if (dev < 0)
		return 0;
	v = ioctl(dev, KVMAS_CHECK_EXTENSION, KVMAS_CAP_HARDENED_RING_RESET);
	close(dev);
	return v > 0;
}

TEST(capability_matches_route)
{
	int dev = kvmas_dev_open();

	patch_wait_settled();
	ASSERT_GE(dev, 0);
	/*
	 * The hardened reset is advertised exactly when the kernel says our
	 * replacement of kvm_dirty_ring_reset() is live: the patch enabled,
	 * no transition pending, its kvm object patched (livepatch sysfs).
	 */
	long live = read_long_file(KLP_DIR "/enabled") == 1 &&
		    read_long_file(KLP_DIR "/transition") == 0 &&
		    read_long_file(KLP_DIR "/kvm/patched") == 1;

	EXPECT_EQ(live, ioctl(dev, KVMAS_CHECK_EXTENSION,
			      KVMAS_CAP_HARDENED_RING_RESET) > 0);
	/* ... and comes with the livepatch route, only with it. */
	EXPECT_EQ(ioctl(dev, KVMAS_CHECK_EXTENSION, KVMAS_CAP_ROUTE_LIVEPATCH),
		  ioctl(dev, KVMAS_CHECK_EXTENSION,
			KVMAS_CAP_HARDENED_RING_RESET));
	close(dev);
}

/* A protocol-following VMM gets exactly the count it harvested, every round. */
TEST(honest_counts_match_harvest)
{
	RV_NEED_RING();
	struct ringvm r;
	int i, round, ret;

	ASSERT_EQ(0, rv_create(&r, 2, RV_RING_ENTRIES, 256));
	for (round = 0; round < 4; round++) {
		uint32_t harvested = 0;

		for (i = 0; i < 2; i++) {
			ASSERT_EQ(0, rv_run_pass(&r, i));
			/* One entry per page: every page was write-protected. */
			EXPECT_EQ(256, rv_harvest(&r, i))
			TH_LOG("round %d vcpu %d", round, i);
			harvested += 256;
		}
		ret = rv_reset_all(&r);
		EXPECT_EQ((int)harvested, ret) TH_LOG("round %d", round);
		/* Nothing left to reset. */
		EXPECT_EQ(0, rv_reset_all(&r));
	}
	TH_LOG("acq_rel %d, hardened %d", r.acq_rel, hardened());
	rv_destroy(&r);
}

/* Partial harvests are reset exactly as far as they go. */
TEST(partial_harvest_counts)
{
	RV_NEED_RING();
	struct ringvm r;
	uint32_t k;

	ASSERT_EQ(0, rv_create(&r, 1, RV_RING_ENTRIES, 100));
	ASSERT_EQ(0, rv_run_pass(&r, 0));
	/* Collect only the first 40 entries. */
	for (k = 0; k < 40; k++) {
		struct kvm_dirty_gfn *e = &r.ring[0][r.fetch[0]];

		ASSERT_TRUE(__atomic_load_n(&e->flags, __ATOMIC_ACQUIRE) &
			    KVM_DIRTY_GFN_F_DIRTY);
		__atomic_store_n(&e->flags, KVM_DIRTY_GFN_F_RESET,
				 __ATOMIC_RELEASE);
		r.fetch[0]++;
	}
	EXPECT_EQ(40, rv_reset_all(&r));
	EXPECT_EQ(60, rv_harvest(&r, 0));
	EXPECT_EQ(60, rv_reset_all(&r));
	rv_destroy(&r);
}

TEST_HARNESS_MAIN
