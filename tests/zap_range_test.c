// SPDX-License-Identifier: GPL-2.0
/*
 * KVMAS_BATCH_ZAP_RANGE and the batch's own zapping (uapi): with the flag
 * a removal unmaps only its own range, so a vCPU's mappings elsewhere
 * survive; the removed range itself is always unmapped (the guest sees the
 * new memory behind it, never the old page through a stale mapping); the
 * flag's rules (capability, EINVAL with the invalidate route, dry runs).
 *
 * Mappings are counted with KVM's own VM statistic pages_4k (x86 debugfs),
 * read while every vCPU is parked outside KVM_RUN, so nothing refaults
 * between the commit and the reading.
 */
#include "batch_helpers.h"
#include "workload.h"
#include "kselftest_harness.h"

/* KVM's x86 VM statistic @name from debugfs, or -1 without it. */
static long vm_stat(int vm, const char *name)
{
	char path[96];
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/sys/kernel/debug/kvm/%d-%d/%s", getpid(),
		 vm, name);
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (fscanf(f, "%ld", &v) != 1)
		v = -1;
	fclose(f);
	return v;
}

static int commit1(int dev, struct kvmas_batch_op *op, unsigned int flags,
		   struct kvmas_commit_batch *out)
{
	struct kvmas_commit_batch c = {
		.size = sizeof(c),
		.flags = flags,
		.nr_ops = 1,
		.op_size = sizeof(*op),
		.ops = (uintptr_t)op,
	};
	int r = ioctl(dev, KVMAS_COMMIT_BATCH, &c) ? -errno : 0;

	if (out)
		*out = c;
	return r;
}

/* An unused 64 KiB slot far from the workload, to be deleted. */
#define FAR_ID 9
#define FAR_GPA 0x40000000ULL

FIXTURE(zr)
{
	struct wl_vm w;
	int dev;
	uint8_t *far;
};

FIXTURE_SETUP(zr)
{
	self->dev = kvmas_dev_open();
	ASSERT_LE(0, self->dev);
	if (ioctl(self->dev, KVMAS_CHECK_EXTENSION, KVMAS_CAP_ZAP_RANGE) <= 0)
		SKIP(return, "KVMAS_CAP_ZAP_RANGE is 0 on this kernel");
	ASSERT_EQ(0, wl_create(&self->w, 1, 128 * KiB, 0x1 | WL_PROBE));
	self->far = guest_mem(64 * KiB);
	ASSERT_NE(NULL, self->far);
	ASSERT_EQ(0, kvm_set_slot(self->w.vm, 0, 1, 0, WL_TARGET_GPA, 128 * KiB,
				  self->w.target));
	ASSERT_EQ(0, kvm_set_slot(self->w.vm, 0, 2, 0, WL_PROBE_GPA_BASE,
				  WL_PROBE_SIZE, self->w.probe));
	ASSERT_EQ(0, kvm_set_slot(self->w.vm, 0, FAR_ID, 0, FAR_GPA, 64 * KiB,
				  self->far));
	ASSERT_EQ(0, kvmas_attach(self->dev, self->w.vm));
	ASSERT_EQ(0, wl_start(&self->w));
	/* Let the guest map its loop, stack, target and probe pages. */
	usleep(200 * 1000);
}

FIXTURE_TEARDOWN(zr)
{
	wl_stop(&self->w);
	EXPECT_EQ(0, wl_holes(&self->w));
	wl_destroy(&self->w);
	close(self->dev);
}

TEST_F(zr, flag_rules)
{
	struct kvmas_batch_op op = { .op = KVMAS_OP_DELETE, .slot = FAR_ID };
	struct kvmas_commit_batch c;
	uint64_t g0[KVMAS_MAX_AS], g1[KVMAS_MAX_AS];

	/* No room for entries: E2BIG, with the generations filled in. */
	ASSERT_EQ(-E2BIG, kvmas_layout(self->dev, KVMAS_LAYOUT_ALL_AS, 0, NULL,
				       0, NULL, g0));
	/* Contradictory with the invalidate route: refused, nothing changed. */
	EXPECT_EQ(-EINVAL,
		  commit1(self->dev, &op,
			  KVMAS_BATCH_ZAP_RANGE | KVMAS_BATCH_ROUTE_INVALIDATE,
			  &c));
	EXPECT_EQ(KVMAS_ROUTE_NONE, c.route);
	/* A dry run takes the flag and changes nothing. */
	EXPECT_EQ(0, commit1(self->dev, &op,
			     KVMAS_BATCH_ZAP_RANGE | KVMAS_BATCH_VALIDATE_ONLY,
			     &c));
	EXPECT_EQ(0, c.grace_periods);
	ASSERT_EQ(-E2BIG, kvmas_layout(self->dev, KVMAS_LAYOUT_ALL_AS, 0, NULL,
				       0, NULL, g1));
	EXPECT_EQ(0, memcmp(g0, g1, sizeof(g0)));
	/* The commit itself: the fence route, one grace period. */
	EXPECT_EQ(0, commit1(self->dev, &op, KVMAS_BATCH_ZAP_RANGE, &c));
	EXPECT_EQ(KVMAS_ROUTE_FENCE, c.route);
	EXPECT_EQ(1, c.grace_periods);
}

/*
 * Deleting a slot no vCPU uses: with the flag, the vCPU's mappings stay;
 * without it, a kernel whose flush zaps the whole VM drops them all.
 */
static void far_delete(struct __test_metadata *_metadata,
		       FIXTURE_DATA(zr) * self, unsigned int flags,
		       long *before, long *after)
{
	struct kvmas_batch_op op = { .op = KVMAS_OP_DELETE, .slot = FAR_ID };

	wl_pause_all(&self->w);
	*before = vm_stat(self->w.vm, "pages_4k");
	ASSERT_EQ(0, commit1(self->dev, &op, flags, NULL));
	*after = vm_stat(self->w.vm, "pages_4k");
	wl_resume_all(&self->w);
}

TEST_F(zr, outside_mappings_survive)
{
	long before, after;
	uint32_t p;

	if (vm_stat(self->w.vm, "pages_4k") < 0)
		SKIP(return, "no pages_4k VM statistic (not x86)");
	far_delete(_metadata, self, KVMAS_BATCH_ZAP_RANGE, &before, &after);
	TH_LOG("with the flag: pages_4k %ld -> %ld", before, after);
	ASSERT_LT(0, before);
	EXPECT_EQ(before, after);

	/* And the guest still runs on them. */
	p = wl_progress(&self->w, 0);
	usleep(100 * 1000);
	EXPECT_NE(p, wl_progress(&self->w, 0));
}

TEST_F(zr, default_is_kvms_flush)
{
	long before, after;

	if (vm_stat(self->w.vm, "pages_4k") < 0)
		SKIP(return, "no pages_4k VM statistic (not x86)");
	far_delete(_metadata, self, 0, &before, &after);
	TH_LOG("without the flag: pages_4k %ld -> %ld", before, after);
	ASSERT_LT(0, before);
	/*
	 * 6.1 and 6.12 default VMs (quirk on) zap everything; the flag is the
	 * only difference between this test and the one above.
	 */
	EXPECT_EQ(0, after);
}

/*
 * The removed range itself is unmapped: the probe slot is replaced by
 * memory holding another value, and the guest must read that value (a
 * stale mapping would keep showing it the old page, which still exists);
 * then it is replaced back and the guest reads the right value again.
 * The probe slot is the second removal of a two-op batch: where KVM's
 * flush zaps the whole VM, the batch calls it for the first removal only,
 * which must cover the second; with the flag each range goes alone.
 */
TEST_F(zr, removed_range_remapped)
{
	struct kvmas_batch_op ops[2] = {
		{
			.op = KVMAS_OP_REPLACE,
			.slot = FAR_ID,
			.guest_phys_addr = FAR_GPA,
			.memory_size = 64 * KiB,
			.userspace_addr = (uintptr_t)self->far,
		},
		{
			.op = KVMAS_OP_REPLACE,
			.slot = 2,
			.guest_phys_addr = WL_PROBE_GPA_BASE,
			.memory_size = WL_PROBE_SIZE,
		},
	};
	struct kvmas_commit_batch c = {
		.size = sizeof(c),
		.nr_ops = 2,
		.op_size = sizeof(ops[0]),
		.ops = (uintptr_t)ops,
	};
	unsigned int flags[] = { 0, KVMAS_BATCH_ZAP_RANGE }, f;
	uint8_t *other = guest_mem(WL_PROBE_SIZE);
	uint32_t bad, v = 0x11111111;
	uint64_t k;
	int i;

	ASSERT_NE(NULL, other);
	for (k = 0; k < WL_PROBE_SIZE; k += 4)
		memcpy(other + k, &v, 4);
	EXPECT_EQ(0, wl_probe_bad(&self->w, 0));

	for (f = 0; f < 2; f++) {
		c.flags = flags[f];
		bad = wl_probe_bad(&self->w, 0);
		ops[1].userspace_addr = (uintptr_t)other;
		ASSERT_EQ(0, ioctl(self->dev, KVMAS_COMMIT_BATCH, &c));
		for (i = 0; i < 200 && wl_probe_bad(&self->w, 0) == bad; i++)
			usleep(10 * 1000);
		EXPECT_NE(bad, wl_probe_bad(&self->w, 0))
		TH_LOG("flags %#x: the guest still reads the old page through a stale mapping",
		       flags[f]);

		ops[1].userspace_addr = (uintptr_t)self->w.probe;
		ASSERT_EQ(0, ioctl(self->dev, KVMAS_COMMIT_BATCH, &c));
		/* Bad reads stop once the guest reads the probe page again. */
		usleep(50 * 1000);
		bad = wl_probe_bad(&self->w, 0);
		usleep(200 * 1000);
		EXPECT_EQ(bad, wl_probe_bad(&self->w, 0))
		TH_LOG("flags %#x: the guest still reads the replaced page",
		       flags[f]);
	}
	munmap(other, WL_PROBE_SIZE);
}

TEST_HARNESS_MAIN
