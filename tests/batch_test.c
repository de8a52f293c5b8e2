// SPDX-License-Identifier: GPL-2.0
/*
 * KVMAS_COMMIT_BATCH: layouts after splits, merges, resizes, moves and RO
 * toggles; the validation table (errno and op index, layout untouched);
 * rollback of a batch whose last op fails in KVM's prepare step, seen by
 * running vCPUs; dirty-bit hand-off while a vCPU writes the slots being
 * split, shrunk and merged; address spaces; concurrent batches and stock
 * ioctls with vCPUs running in the batched slots and a reader that must
 * never see a half-applied batch; and the hammer: a guest
 * executing, reading and writing in slots that batches resize, split and
 * merge, with zero holes, against stock DELETE+CREATE that shows holes.
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

FIXTURE(b)
{
	int dev;
	int vm;
	uint8_t *m;
};

FIXTURE_SETUP(b)
{
	self->dev = kvmas_dev_open();
	self->vm = kvm_vm_create();
	self->m = guest_mem(64 * MiB);
	ASSERT_GE(self->dev, 0);
	ASSERT_GE(self->vm, 0);
	ASSERT_NE(NULL, self->m);
	ASSERT_EQ(0, kvmas_attach(self->dev, self->vm));
	if (kvmas_cap(KVMAS_CAP_BATCH_COMMIT) <= 0)
		SKIP(return, "no batch commits on this kernel");
}

FIXTURE_TEARDOWN(b)
{
	close(self->dev);
	close(self->vm);
}

/*
 * The capabilities say what the module does: GET_CAPS and CHECK_EXTENSION
 * agree, and the advertised maximum is exactly the batch size the module
 * accepts (validated, dry run) while one op more is refused (EMSGSIZE).
 */
TEST_F(b, capabilities)
{
	struct kvmas_caps caps = { .size = sizeof(caps) };
	struct kvmas_batch_op *ops;
	struct batch_res r;
	int max, i;

	ASSERT_EQ(0, ioctl(self->dev, KVMAS_GET_CAPS, &caps));
	EXPECT_TRUE(caps.caps & (1ULL << KVMAS_CAP_BATCH_COMMIT));
	EXPECT_EQ(1, kvmas_cap(KVMAS_CAP_BATCH_COMMIT));
	max = kvmas_cap(KVMAS_CAP_MAX_BATCH_OPS);
	EXPECT_EQ(max, caps.max_batch_ops);
	/* The uapi's constant is what a VMM compiled against it may send. */
	EXPECT_EQ(KVMAS_MAX_BATCH_OPS, max);
	ASSERT_GT(max, 0);
	/* One 4 KiB page per op: @max creations need @max pages of memory. */
	ASSERT_LE((uint64_t)max + 1, 64 * MiB / (4 * KiB));
	ops = calloc(max + 1, sizeof(*ops));
	ASSERT_NE(NULL, ops);
	for (i = 0; i <= max; i++)
		ops[i] = op(KVMAS_OP_CREATE, i, (uint64_t)i * 4 * KiB, 4 * KiB,
			    self->m + (uint64_t)i * 4 * KiB, 0);
	r = commit(self->dev, ops, max, KVMAS_BATCH_VALIDATE_ONLY);
	EXPECT_EQ(0, r.err);
	EXPECT_EQ(-1, r.index);
	r = commit(self->dev, ops, max + 1, KVMAS_BATCH_VALIDATE_ONLY);
	EXPECT_EQ(-EMSGSIZE, r.err);
	free(ops);
}

TEST_F(b, split_merge_resize_move_ro)
{
	uint8_t *m = self->m;
	struct kvmas_batch_op ops[4];
	struct batch_res r;
	char got[1024];

	/* Three creates: one grace period. */
	ops[0] = op(KVMAS_OP_CREATE, 1, 0x100000, 2 * MiB, m, 0);
	ops[1] = op(KVMAS_OP_CREATE, 2, 0x400000, 1 * MiB, m + 4 * MiB,
		    KVM_MEM_LOG_DIRTY_PAGES);
	ops[2] = op(KVMAS_OP_CREATE, 3, 0x1000000, 1 * MiB, m + 8 * MiB,
		    KVM_MEM_READONLY);
	r = commit(self->dev, ops, 3, 0);
	ASSERT_EQ(0, r.err);
	EXPECT_EQ(1, r.gps);
	layout_str(self->dev, 0, got, sizeof(got));
	EXPECT_NE(NULL, strstr(got, "1:100000+200000[0]")) TH_LOG("%s", got);
	EXPECT_NE(NULL, strstr(got, "2:400000+100000[1]")) TH_LOG("%s", got);
	EXPECT_NE(NULL, strstr(got, "3:1000000+100000[2]")) TH_LOG("%s", got);

	/* Split slot 1 in two (REPLACE shrink + CREATE): two grace periods. */
	ops[0] = op(KVMAS_OP_REPLACE, 1, 0x100000, 1 * MiB, m, 0);
	ops[1] = op(KVMAS_OP_CREATE, 4, 0x200000, 1 * MiB, m + 1 * MiB, 0);
	r = commit(self->dev, ops, 2, 0);
	ASSERT_EQ(0, r.err);
	EXPECT_EQ(GPS_REMOVING(r), r.gps);
	/*
	 * No vCPU has run: no shadow root, the single-swap route, unless the
	 * legacy MMU keeps rmaps in every slot (kvm_amd npt=0).
	 */
	EXPECT_EQ(legacy_mmu() ? KVMAS_ROUTE_INVALIDATE : KVMAS_ROUTE_FENCE,
		  r.route);
	layout_str(self->dev, 0, got, sizeof(got));
	EXPECT_NE(NULL, strstr(got, "1:100000+100000[0]")) TH_LOG("%s", got);
	EXPECT_NE(NULL, strstr(got, "4:200000+100000[0]")) TH_LOG("%s", got);

	/* Merge them back, move slot 3, make slot 2 read-only, stop logging. */
	ops[0] = del(4);
	ops[1] = op(KVMAS_OP_REPLACE, 1, 0x100000, 2 * MiB, m, 0);
	ops[2] = op(KVMAS_OP_MOVE, 3, 0x2000000, 1 * MiB, m + 8 * MiB,
		    KVM_MEM_READONLY);
	ops[3] = op(KVMAS_OP_REPLACE, 2, 0x400000, 1 * MiB, m + 4 * MiB,
		    KVM_MEM_READONLY);
	r = commit(self->dev, ops, 4, 0);
	ASSERT_EQ(0, r.err);
	EXPECT_EQ(GPS_REMOVING(r), r.gps);
	layout_str(self->dev, 0, got, sizeof(got));
	EXPECT_EQ(NULL, strstr(got, "4:")) TH_LOG("%s", got);
	EXPECT_NE(NULL, strstr(got, "1:100000+200000[0]")) TH_LOG("%s", got);
	EXPECT_NE(NULL, strstr(got, "2:400000+100000[2]")) TH_LOG("%s", got);
	EXPECT_NE(NULL, strstr(got, "3:2000000+100000[2]")) TH_LOG("%s", got);

	/* Flags only: one grace period. */
	ops[0] = op(KVMAS_OP_SET_FLAGS, 1, 0, 0, NULL, KVM_MEM_LOG_DIRTY_PAGES);
	r = commit(self->dev, ops, 1, 0);
	ASSERT_EQ(0, r.err);
	EXPECT_EQ(1, r.gps);
	layout_str(self->dev, 0, got, sizeof(got));
	EXPECT_NE(NULL, strstr(got, "1:100000+200000[1]")) TH_LOG("%s", got);
}

/* Constant grace periods: 1 or 2 whatever the number of ops. */
TEST_F(b, grace_periods_constant)
{
	static struct kvmas_batch_op ops[256];
	struct batch_res r;
	unsigned int i;

	for (i = 0; i < 256; i++)
		ops[i] = op(KVMAS_OP_CREATE, 100 + i,
			    0x10000000ULL + i * 64 * KiB, 64 * KiB,
			    self->m + i * 64 * KiB, 0);
	r = commit(self->dev, ops, 256, 0);
	ASSERT_EQ(0, r.err);
	EXPECT_EQ(1, r.gps);
	for (i = 0; i < 256; i++)
		ops[i] = op(KVMAS_OP_REPLACE, 100 + i,
			    0x10000000ULL + i * 64 * KiB, 32 * KiB,
			    self->m + i * 64 * KiB, 0);
	r = commit(self->dev, ops, 256, 0);
	ASSERT_EQ(0, r.err);
	EXPECT_EQ(GPS_REMOVING(r), r.gps);
	for (i = 0; i < 256; i++)
		ops[i] = del(100 + i);
	r = commit(self->dev, ops, 256, 0);
	ASSERT_EQ(0, r.err);
	EXPECT_EQ(GPS_REMOVING(r), r.gps);
}

struct bad_case {
	const char *what;
	int nr;
	struct kvmas_batch_op ops[3];
	int err;
	int index;
};

TEST_F(b, validation_table)
{
	uint8_t *m = self->m;
	uint64_t gen0[KVMAS_MAX_AS], gen1[KVMAS_MAX_AS];
	char before[1024], after[1024];
	struct kvmas_commit_batch c;
	struct kvmas_batch_op ok[2];
	unsigned int nr, i;
	struct batch_res r;
	struct kvmas_batch_op base[2] = {
		op(KVMAS_OP_CREATE, 1, 0x100000, 2 * MiB, m, 0),
		op(KVMAS_OP_CREATE, 2, 0x400000, 2 * MiB, m + 4 * MiB, 0),
	};
	struct bad_case cases[] = {
		{ "unknown op", 1, { { .op = 99, .slot = 5 } }, -EINVAL, 0 },
		{ "reserved field",
		  1,
		  { { .op = KVMAS_OP_DELETE, .slot = 1, .__reserved = { 1 } } },
		  -EINVAL,
		  0 },
		{ "two address spaces",
		  2,
		  { del(1),
		    { .op = KVMAS_OP_CREATE,
		      .slot = 9,
		      .as_id = 1,
		      .guest_phys_addr = 0,
		      .memory_size = 4096,
		      .userspace_addr = (uintptr_t)m } },
		  -EINVAL,
		  1 },
		{ "address space out of range",
		  1,
		  { { .op = KVMAS_OP_DELETE, .slot = 1, .as_id = 7 } },
		  -EINVAL,
		  0 },
		{ "slot id out of range",
		  1,
		  { op(KVMAS_OP_CREATE, 40000, 0x10000000, 4096, m, 0) },
		  -EINVAL,
		  0 },
		{ "same slot twice",
		  2,
		  { op(KVMAS_OP_SET_FLAGS, 1, 0, 0, NULL, 0), del(1) },
		  -EINVAL,
		  1 },
		{ "create over an existing id",
		  1,
		  { op(KVMAS_OP_CREATE, 1, 0x10000000, 4096, m, 0) },
		  -EEXIST,
		  0 },
		{ "delete a missing id (EINVAL, as stock)",
		  2,
		  { del(2), del(33) },
		  -EINVAL,
		  1 },
		{ "unaligned gpa",
		  1,
		  { op(KVMAS_OP_CREATE, 5, 0x10000800, 4096, m, 0) },
		  -EINVAL,
		  0 },
		{ "unaligned size",
		  1,
		  { op(KVMAS_OP_CREATE, 5, 0x10000000, 100, m, 0) },
		  -EINVAL,
		  0 },
		{ "unaligned hva",
		  1,
		  { op(KVMAS_OP_CREATE, 5, 0x10000000, 4096, m + 1, 0) },
		  -EINVAL,
		  0 },
		{ "zero size",
		  1,
		  { op(KVMAS_OP_CREATE, 5, 0x10000000, 0, m, 0) },
		  -EINVAL,
		  0 },
		{ "unknown memslot flag",
		  1,
		  { op(KVMAS_OP_CREATE, 5, 0x10000000, 4096, m, 0x80) },
		  -EINVAL,
		  0 },
		{ "gpa + size overflows",
		  1,
		  { op(KVMAS_OP_CREATE, 5, 0xfffffffffffff000ULL, 8192, m, 0) },
		  -EINVAL,
		  0 },
		{ "kernel hva",
		  1,
		  { { .op = KVMAS_OP_CREATE,
		      .slot = 5,
		      .guest_phys_addr = 0x10000000,
		      .memory_size = 4096,
		      .userspace_addr = 0xffff888000000000ULL } },
		  -EINVAL,
		  0 },
		{ "overlaps a slot that stays",
		  1,
		  { op(KVMAS_OP_CREATE, 5, 0x300000, 2 * MiB, m, 0) },
		  -EEXIST,
		  0 },
		{ "two new slots overlap",
		  2,
		  { op(KVMAS_OP_CREATE, 5, 0x10000000, 2 * MiB, m, 0),
		    op(KVMAS_OP_CREATE, 6, 0x10100000, 2 * MiB, m, 0) },
		  -EEXIST,
		  1 },
		{ "overlaps a slot whose flags change",
		  2,
		  { op(KVMAS_OP_SET_FLAGS, 2, 0, 0, NULL,
		       KVM_MEM_LOG_DIRTY_PAGES),
		    op(KVMAS_OP_CREATE, 5, 0x400000, 4096, m, 0) },
		  -EEXIST,
		  1 },
		{ "move changes the size",
		  1,
		  { op(KVMAS_OP_MOVE, 1, 0x10000000, 1 * MiB, m, 0) },
		  -EINVAL,
		  0 },
		{ "move to the same gpa (stock: a no-op)",
		  1,
		  { op(KVMAS_OP_MOVE, 1, 0x100000, 2 * MiB, m, 0) },
		  0,
		  -1 },
		{ "set_flags changes READONLY",
		  1,
		  { op(KVMAS_OP_SET_FLAGS, 1, 0, 0, NULL, KVM_MEM_READONLY) },
		  -EINVAL,
		  0 },
		{ "delete with a range",
		  1,
		  { { .op = KVMAS_OP_DELETE, .slot = 1, .memory_size = 4096 } },
		  -EINVAL,
		  0 },
		{ "dirty buffer on a create",
		  1,
		  { { .op = KVMAS_OP_CREATE,
		      .slot = 5,
		      .guest_phys_addr = 0x10000000,
		      .memory_size = 4096,
		      .userspace_addr = (uintptr_t)m,
		      .dirty_bitmap = (uintptr_t)m } },
		  -EINVAL,
		  0 },
		{ "unwritable dirty buffer",
		  1,
		  { { .op = KVMAS_OP_DELETE, .slot = 1, .dirty_bitmap = 16 } },
		  -EFAULT,
		  0 },
	};

	ASSERT_EQ(0, commit(self->dev, base, 2, 0).err);
	layout_str(self->dev, 0, before, sizeof(before));
	ASSERT_EQ(0, kvmas_layout(self->dev, KVMAS_LAYOUT_ALL_AS, 0, NULL, 0,
				  &nr, gen0) == -E2BIG ?
			     0 :
			     -1);

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		r = commit(self->dev, cases[i].ops, cases[i].nr, 0);
		EXPECT_EQ(cases[i].err, r.err) TH_LOG("%s", cases[i].what);
		EXPECT_EQ(cases[i].index, r.index) TH_LOG("%s", cases[i].what);
		EXPECT_EQ(0, r.gps) TH_LOG("%s", cases[i].what);
	}

	/* A valid batch in validate-only mode changes nothing either. */
	ok[0] = del(1);
	r = commit(self->dev, ok, 1, KVMAS_BATCH_VALIDATE_ONLY);
	EXPECT_EQ(0, r.err);
	EXPECT_EQ(0, r.gps);
	/* Overlapping a slot deleted in the same batch is fine (final view). */
	ok[0] = del(2);
	ok[1] = op(KVMAS_OP_CREATE, 5, 0x400000, 4 * MiB, m, 0);
	r = commit(self->dev, ok, 2, KVMAS_BATCH_VALIDATE_ONLY);
	EXPECT_EQ(0, r.err);
	layout_str(self->dev, 0, after, sizeof(after));
	EXPECT_STREQ(before, after);
	ASSERT_EQ(0, kvmas_layout(self->dev, KVMAS_LAYOUT_ALL_AS, 0, NULL, 0,
				  &nr, gen1) == -E2BIG ?
			     0 :
			     -1);
	EXPECT_EQ(gen0[0], gen1[0]);

	/* Struct-level refusals. */
	c = (struct kvmas_commit_batch){ .size = sizeof(c),
					 .nr_ops = 0,
					 .op_size = sizeof(base[0]),
					 .ops = (uintptr_t)base };
	EXPECT_EQ(-EINVAL, sys_ret(ioctl(self->dev, KVMAS_COMMIT_BATCH, &c)));
	c.nr_ops = KVMAS_MAX_BATCH_OPS + 1;
	EXPECT_EQ(-EMSGSIZE, sys_ret(ioctl(self->dev, KVMAS_COMMIT_BATCH, &c)));
	c.nr_ops = 1;
	c.op_size = 32;
	EXPECT_EQ(-EINVAL, sys_ret(ioctl(self->dev, KVMAS_COMMIT_BATCH, &c)));
	c.op_size = sizeof(base[0]);
	c.flags = 1U << 9;
	EXPECT_EQ(-EINVAL, sys_ret(ioctl(self->dev, KVMAS_COMMIT_BATCH, &c)));
	c.flags = 0;
	c.ops = 8;
	EXPECT_EQ(-EFAULT, sys_ret(ioctl(self->dev, KVMAS_COMMIT_BATCH, &c)));
}

/*
 * The last op passes validation but fails in KVM's own prepare step (x86:
 * beyond the MMU's maximum gfn), with two vCPUs running in the slots the
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
		r = commit(dev, ops, 3,
			   (i & 1) ? KVMAS_BATCH_ROUTE_INVALIDATE : 0);
		routes |= 1U << r.route;
		layout_str(dev, 0, after, sizeof(after));
		vm_generation(dev, gen1);
		/*
		 * Both routes prepare every op before publishing anything: the
		 * failure costs no grace period, and KVM's generation stays.
		 */
		if (r.err != -EINVAL || r.index != 2 || r.gps != 0 ||
		    memcmp(gen0, gen1, sizeof(gen0)) || strcmp(before, after)) {
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
	EXPECT_TRUE(routes & (1U << KVMAS_ROUTE_INVALIDATE));
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

/* The library's batch builder and its readable errors, on the real module. */
TEST_F(b, library_batch)
{
	struct kvmas_batch *bt = kvmas_batch_new();
	struct kvmas_batch_result res;
	struct kvmas *kv;
	char msg[256];
	int r;

	ASSERT_NE(NULL, bt);
	ASSERT_EQ(0, kvmas_open(&kv));
	ASSERT_EQ(0, kvmas_attach_vm(kv, self->vm));
	ASSERT_EQ(0,
		  kvmas_batch_create(bt, 0, 1, 0, 0x100000, 2 * MiB, self->m));
	ASSERT_EQ(0,
		  kvmas_batch_create(bt, 0, 2, 0, 0x200000, 2 * MiB, self->m));
	r = kvmas_batch_commit(kv, bt, 0, &res);
	EXPECT_EQ(-EEXIST, r);
	EXPECT_EQ(1, res.error_index);
	kvmas_batch_describe_error(bt, r, &res, msg, sizeof(msg));
	EXPECT_EQ(0, strncmp(msg, "op 1 (create slot 2 as 0 gpa 0x200000", 37))
	TH_LOG("%s", msg);
	TH_LOG("%s", msg);
	kvmas_batch_reset(bt);
	ASSERT_EQ(0,
		  kvmas_batch_create(bt, 0, 1, 0, 0x100000, 2 * MiB, self->m));
	ASSERT_EQ(0,
		  kvmas_batch_create(bt, 0, 2, 0, 0x300000, 2 * MiB, self->m));
	EXPECT_EQ(0, kvmas_batch_commit(kv, bt, 0, &res));
	EXPECT_EQ(1, res.grace_periods);
	EXPECT_EQ(2, kvmas_batch_len(bt));
	kvmas_batch_free(bt);
	kvmas_close(kv);
}

/* Address space 1 (x86 SMM) on its own is fine; mixing is refused above. */
TEST_F(b, smm_address_space)
{
	struct kvmas_batch_op o =
		op(KVMAS_OP_CREATE, 1, 0xa0000, 128 * KiB, self->m, 0);
	struct kvmas_slot s[4];
	unsigned int nr;

	if (kvmas_cap(KVMAS_CAP_MAX_ADDRESS_SPACES) < 2)
		SKIP(return, "one address space");
	o.as_id = 1;
	ASSERT_EQ(0, commit(self->dev, &o, 1, 0).err);
	ASSERT_EQ(0, kvmas_layout(self->dev, 0, 1, s, 4, &nr, NULL));
	ASSERT_EQ(1, nr);
	EXPECT_EQ(1, s[0].as_id);
	EXPECT_EQ(0xa0000, s[0].guest_phys_addr);
	ASSERT_EQ(0, kvmas_layout(self->dev, 0, 0, s, 4, &nr, NULL));
	EXPECT_EQ(0, nr);
}

/*
 * Dirty hand-off under a running guest (bitmap mode, no ring). vCPU 0 sweeps
 * a logged data slot: it writes a value unique to the sweep into each page
 * of a range, in ascending order and each page once, then HLTs. While it
 * sweeps, batches split the slot in two, shrink the upper half (pages from
 * DH_KEEP on then belong to no slot) and merge it back, on both routes.
 * Each page is written once per round, so a bit a commit drops is not set
 * again by a later write, and the VMM knows from guest memory which pages
 * were written before the ioctl and which only after it returned. After
 * each round, against the KVM_GET_DIRTY_LOG clear at its start:
 *  - every page written is dirty in the log of the new slot covering it
 *    (the bits of removed slots are ORed into the new ones);
 *  - every page written that no slot covers any more is in the bits handed
 *    back (the ops' dirty_bitmap), and so is every page of a removed slot
 *    written before the ioctl was issued;
 *  - no bit names a page the guest did not write, and no handed-back bit a
 *    page it reached only after the commit returned;
 *  - the batch's dirty_pages count equals the bits handed back.
 * Stock DELETE + CREATE for the same split loses the bits (the negative
 * control).
 */
#define DH_PAGES 256
#define DH_MID 128 /* first page of slot DH_SLOT2 after the split */
#define DH_KEEP 192 /* the shrink keeps slot DH_SLOT2 below this page */
#define DH_WORDS (DH_PAGES / 64)
#define DH_SLOT2 7
#define DH_CODE_GPA 0x2000U /* in ringvm's base slot, clear of its code */
#define DH_PARAM_GPA 0x3000U /* value, first gpa, end gpa, spins per page */

enum { DH_SPLIT, DH_SHRINK, DH_MERGE, DH_KINDS };
static const char *const dh_kind[DH_KINDS] = { "split", "shrink", "merge" };

static unsigned int popcount_buf(const uint64_t *b, unsigned int words)
{
	unsigned int n = 0, i;

	for (i = 0; i < words; i++)
		n += __builtin_popcountll(b[i]);
	return n;
}

static int dirty_log(int vm, unsigned int slot, uint64_t *bits)
{
	struct kvm_dirty_log l = { .slot = slot, .dirty_bitmap = bits };

	return sys_ret(ioctl(vm, KVM_GET_DIRTY_LOG, &l));
}

static int bit_test(const uint64_t *b, unsigned int i)
{
	return (b[i / 64] >> (i % 64)) & 1;
}

static void bits_set_range(uint64_t *b, unsigned int lo, unsigned int hi)
{
	for (; lo < hi; lo++)
		b[lo / 64] |= 1ULL << (lo % 64);
}

/* ORs the bitmap of a slot of @n pages starting at page @first into @dst. */
static void bits_or_slot(uint64_t *dst, const uint64_t *src, unsigned int first,
			 unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n; i++)
		if (bit_test(src, i))
			bits_set_range(dst, first + i, first + i + 1);
}

static void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

/*
 * again: mov eax, [value]     a1 abs32
 *        mov ebx, [first]     8b 1d abs32
 * loop:  mov [ebx], eax       89 03
 *        mov ecx, [spins]     8b 0d abs32
 * spin:  dec ecx              49
 *        jnz spin             75 fd
 *        add ebx, 0x1000      81 c3 00 10 00 00
 *        cmp ebx, [end]       3b 1d abs32
 *        jb loop              72 rel8
 *        hlt                  f4
 *        jmp again            eb rel8
 */
static void dh_emit_sweeper(uint8_t *base)
{
	uint8_t *p = base + DH_CODE_GPA;

	p[0] = 0xa1;
	put32(p + 1, DH_PARAM_GPA);
	p[5] = 0x8b;
	p[6] = 0x1d;
	put32(p + 7, DH_PARAM_GPA + 4);
	p[11] = 0x89; /* loop at +11 */
	p[12] = 0x03;
	p[13] = 0x8b;
	p[14] = 0x0d;
	put32(p + 15, DH_PARAM_GPA + 12);
	p[19] = 0x49; /* spin at +19 */
	p[20] = 0x75;
	p[21] = (uint8_t)(19 - 22);
	p[22] = 0x81;
	p[23] = 0xc3;
	put32(p + 24, 0x1000);
	p[28] = 0x3b;
	p[29] = 0x1d;
	put32(p + 30, DH_PARAM_GPA + 8);
	p[34] = 0x72;
	p[35] = (uint8_t)(11 - 36);
	p[36] = 0xf4;
	p[37] = 0xeb;
	p[38] = (uint8_t)(0 - 39);
}

struct dh_slot {
	unsigned int slot, first, n; /* pages from RV_DATA_GPA */
};

struct dh {
	struct ringvm r;
	int dev;
	uint32_t value; /* what the current sweep writes */
	uint32_t spins; /* delay per page, doubled while sweeps end too soon */
	unsigned int first, end; /* the current sweep's pages */
	pthread_t th;
	volatile int done;
	int ret;
	/* Per kind of round. */
	unsigned int rounds[DH_KINDS], overlapped[DH_KINDS];
	unsigned int early[DH_KINDS], inflight[DH_KINDS], late[DH_KINDS];
	unsigned int handed[DH_KINDS], orphans[DH_KINDS], live[DH_KINDS];
	unsigned int routes;
};

static void *dh_vcpu(void *arg)
{
	struct dh *d = arg;

	d->ret = rv_run_pass(&d->r, 0);
	__atomic_store_n(&d->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* Starts one sweep over pages [first, end) on a vCPU thread. */
static int dh_sweep(struct dh *d, unsigned int first, unsigned int end)
{
	uint32_t prm[4] = { ++d->value, RV_DATA_GPA + first * 4096,
			    RV_DATA_GPA + end * 4096, d->spins };

	/* The vCPU is halted (outside KVM_RUN): it reloads these on resume. */
	memcpy(d->r.base + DH_PARAM_GPA, prm, sizeof(prm));
	d->first = first;
	d->end = end;
	d->done = 0;
	return pthread_create(&d->th, NULL, dh_vcpu, d) ? -EAGAIN : 0;
}

/* 0 once the sweep ended in its HLT; an exit reason or -errno otherwise. */
static int dh_wait(struct dh *d)
{
	pthread_join(d->th, NULL);
	return d->ret;
}

/* The first page the current sweep has not written yet (it goes in order). */
static unsigned int dh_pos(struct dh *d)
{
	unsigned int p = d->first;

	while (p < d->end &&
	       __atomic_load_n((uint32_t *)(d->r.data + (size_t)p * 4096),
			       __ATOMIC_ACQUIRE) == d->value)
		p++;
	return p;
}

/*
 * One round. With the guest halted, clear the logs of the @nold slots @old;
 * sweep pages [pre0, pre1) to completion (pages the batch will take away);
 * start a sweep over [s0, s1), commit @ops once it has reached page
 * @trigger, let it finish, read the logs of the @nnew slots @new and check
 * the hand-off. Every DELETE/REPLACE op gets a dirty_bitmap buffer.
 */
static void dh_round(struct __test_metadata *_metadata, struct dh *d, int kind,
		     const struct dh_slot *old, int nold,
		     const struct dh_slot *new, int nnew,
		     struct kvmas_batch_op *ops, int nops, unsigned int flags,
		     unsigned int pre0, unsigned int pre1, unsigned int s0,
		     unsigned int s1, unsigned int trigger)
{
	uint64_t back[2][DH_WORDS], bits[DH_WORDS];
	uint64_t written[DH_WORDS] = { 0 }, early[DH_WORDS] = { 0 };
	uint64_t late[DH_WORDS] = { 0 }, handed[DH_WORDS] = { 0 };
	uint64_t removed[DH_WORDS] = { 0 }, live[DH_WORDS] = { 0 };
	uint64_t covered[DH_WORDS] = { 0 };
	unsigned int pos0, pos1, p, miss_live = 0, miss_gone = 0;
	unsigned int miss_early = 0, stray_back = 0, stray_live = 0,
		     orphans = 0;
	struct batch_res res;
	int i, j;

	ASSERT_LE(nops, 2);
	for (i = 0; i < nold; i++)
		ASSERT_EQ(0, dirty_log(d->r.vm, old[i].slot, bits));
	if (pre1 > pre0) {
		ASSERT_EQ(0, dh_sweep(d, pre0, pre1));
		ASSERT_EQ(0, dh_wait(d));
		bits_set_range(written, pre0, pre1);
		bits_set_range(early, pre0, pre1);
	}
	for (j = 0; j < nops; j++) {
		if (ops[j].op != KVMAS_OP_DELETE &&
		    ops[j].op != KVMAS_OP_REPLACE)
			continue;
		/* All ones: bits the module did not write show up as stray. */
		memset(back[j], 0xff, sizeof(back[j]));
		ops[j].dirty_bitmap = (uintptr_t)back[j];
	}

	ASSERT_EQ(0, dh_sweep(d, s0, s1));
	while (dh_pos(d) < trigger &&
	       !__atomic_load_n(&d->done, __ATOMIC_ACQUIRE))
		sched_yield();
	pos0 = dh_pos(d); /* pages below: written before the ioctl */
	res = commit(d->dev, ops, nops, flags);
	/*
	 * Pages beyond this one were written after the ioctl returned. The
	 * page itself may have been faulted in before (KVM marks it dirty in
	 * the old slot when it makes the writable SPTE, and the fence then
	 * sends the vCPU back to fault again on the new slot) while the store
	 * lands only now: an over-report, which dirty logging allows.
	 */
	pos1 = dh_pos(d);
	/* The sweep never met a hole: it ended in its own HLT. */
	ASSERT_EQ(0, dh_wait(d));
	ASSERT_EQ(0, res.err);
	d->routes |= 1U << res.route;
	bits_set_range(written, s0, s1);
	bits_set_range(early, s0, pos0);
	bits_set_range(late, pos1 + 1, s1);

	for (j = 0; j < nops; j++) {
		if (!ops[j].dirty_bitmap)
			continue;
		for (i = 0; i < nold && old[i].slot != ops[j].slot; i++)
			;
		ASSERT_LT(i, nold);
		bits_set_range(removed, old[i].first, old[i].first + old[i].n);
		bits_or_slot(handed, back[j], old[i].first, old[i].n);
		ops[j].dirty_bitmap = 0;
	}
	for (i = 0; i < nnew; i++) {
		memset(bits, 0, sizeof(bits));
		ASSERT_EQ(0, dirty_log(d->r.vm, new[i].slot, bits));
		bits_or_slot(live, bits, new[i].first, new[i].n);
		bits_set_range(covered, new[i].first, new[i].first + new[i].n);
	}

	for (p = 0; p < DH_PAGES; p++) {
		int w = bit_test(written, p), h = bit_test(handed, p);

		if (w && bit_test(covered, p) && !bit_test(live, p))
			miss_live++;
		if (w && !bit_test(covered, p)) {
			orphans += h;
			miss_gone += !h;
		}
		if (bit_test(early, p) && bit_test(removed, p) && !h)
			miss_early++;
		if (h && (!w || bit_test(late, p)))
			stray_back++;
		if (bit_test(live, p) && !w)
			stray_live++;
	}
	EXPECT_EQ(0, miss_live)
	TH_LOG("%s: %u written pages not in the new slots' logs", dh_kind[kind],
	       miss_live);
	EXPECT_EQ(0, miss_gone)
	TH_LOG("%s: %u written pages outside every slot not handed back",
	       dh_kind[kind], miss_gone);
	EXPECT_EQ(0, miss_early)
	TH_LOG("%s: %u pages written before the ioctl not handed back",
	       dh_kind[kind], miss_early);
	EXPECT_EQ(0, stray_back)
	TH_LOG("%s: %u handed-back bits for pages not written by the return",
	       dh_kind[kind], stray_back);
	EXPECT_EQ(0, stray_live)
	TH_LOG("%s: %u logged pages the guest did not write", dh_kind[kind],
	       stray_live);
	EXPECT_EQ(popcount_buf(handed, DH_WORDS), res.dirty)
	TH_LOG("%s: dirty_pages", dh_kind[kind]);

	d->rounds[kind]++;
	/* The commit returned while the guest was still writing this sweep. */
	if (pos1 < s1)
		d->overlapped[kind]++;
	else if (d->spins < (1U << 17))
		d->spins *= 2;
	d->early[kind] += popcount_buf(early, DH_WORDS);
	d->inflight[kind] += pos1 - pos0;
	d->late[kind] += s1 - pos1; /* incl. the page in progress at return */
	d->handed[kind] += popcount_buf(handed, DH_WORDS);
	d->orphans[kind] += orphans;
	d->live[kind] += popcount_buf(live, DH_WORDS);
}

TEST_F_TIMEOUT(b, dirty_bits_handed_off, 180)
{
	const unsigned int lf = KVM_MEM_LOG_DIRTY_PAGES;
	const struct dh_slot whole[1] = { { RV_DATA_SLOT, 0, DH_PAGES } };
	const struct dh_slot halves[2] = {
		{ RV_DATA_SLOT, 0, DH_MID },
		{ DH_SLOT2, DH_MID, DH_PAGES - DH_MID },
	};
	const struct dh_slot shrunk[2] = {
		{ RV_DATA_SLOT, 0, DH_MID },
		{ DH_SLOT2, DH_MID, DH_KEEP - DH_MID },
	};
	uint64_t a[DH_WORDS] = { 0 }, c[DH_WORDS] = { 0 }, t0 = wl_now_us();
	struct kvmas_batch_op ops[2];
	unsigned int k, least = 0;
	struct dh d;
	uint8_t *data;
	int it;

	memset(&d, 0, sizeof(d));
	ASSERT_EQ(0, rv_create(&d.r, 1, 0, DH_PAGES));
	data = d.r.data;
	dh_emit_sweeper(d.r.base);
	ASSERT_EQ(0, guest_flat32(d.r.vcpu[0], DH_CODE_GPA, 0x8000));
	d.dev = kvmas_dev_open();
	ASSERT_GE(d.dev, 0);
	ASSERT_EQ(0, kvmas_attach(d.dev, d.r.vm));
	d.spins = 1;

	/* Until every kind of round has overlapped its commit a few times. */
	for (it = 0; it < 200 && least < 10 && wl_now_us() - t0 < 30000000;
	     it++) {
		unsigned int fl = (it & 1) ? KVMAS_BATCH_ROUTE_INVALIDATE : 0;

		/* Split: slot 1 keeps the low half, slot 7 takes the rest. */
		ops[0] = op(KVMAS_OP_REPLACE, RV_DATA_SLOT, RV_DATA_GPA,
			    DH_MID * 4096, data, lf);
		ops[1] = op(KVMAS_OP_CREATE, DH_SLOT2,
			    RV_DATA_GPA + DH_MID * 4096,
			    (DH_PAGES - DH_MID) * 4096, data + DH_MID * 4096,
			    lf);
		dh_round(_metadata, &d, DH_SPLIT, whole, 1, halves, 2, ops, 2,
			 fl, 0, 0, 0, DH_PAGES, 8 + (it * 29) % 112);
		/*
		 * Shrink slot 7 to [DH_MID, DH_KEEP): the guest wrote the part
		 * that goes away just before and now sweeps from slot 1 into
		 * what stays of slot 7.
		 */
		ops[0] = op(KVMAS_OP_REPLACE, DH_SLOT2,
			    RV_DATA_GPA + DH_MID * 4096,
			    (DH_KEEP - DH_MID) * 4096, data + DH_MID * 4096,
			    lf);
		dh_round(_metadata, &d, DH_SHRINK, halves, 2, shrunk, 2, ops, 1,
			 fl, DH_KEEP, DH_PAGES, 112, DH_KEEP,
			 132 + (it * 7) % 24);
		/* Merge back into one slot 1 over all pages. */
		ops[0] = del(DH_SLOT2);
		ops[1] = op(KVMAS_OP_REPLACE, RV_DATA_SLOT, RV_DATA_GPA,
			    DH_PAGES * 4096, data, lf);
		dh_round(_metadata, &d, DH_MERGE, shrunk, 2, whole, 1, ops, 2,
			 fl, 0, 0, 96, DH_KEEP, 132 + (it * 11) % 24);
		least = d.overlapped[0];
		for (k = 1; k < DH_KINDS; k++)
			if (d.overlapped[k] < least)
				least = d.overlapped[k];
	}
	for (k = 0; k < DH_KINDS; k++)
		TH_LOG("%s: %u rounds, %u ending mid-sweep; pages written "
		       "before the ioctl %u, in flight %u, after it %u; %u "
		       "bits handed back (%u for pages no slot covers), %u in "
		       "the new logs",
		       dh_kind[k], d.rounds[k], d.overlapped[k], d.early[k],
		       d.inflight[k], d.late[k], d.handed[k], d.orphans[k],
		       d.live[k]);
	TH_LOG("%d iterations in %llu ms, %u spins per page, routes %#x "
	       "(2=invalidate 4=fence)",
	       it, (unsigned long long)(wl_now_us() - t0) / 1000, d.spins,
	       d.routes);
	/* The guest really was writing while commits ran, on every kind. */
	for (k = 0; k < DH_KINDS; k++) {
		EXPECT_GE(d.overlapped[k], 2) TH_LOG("%s", dh_kind[k]);
		EXPECT_GT(d.inflight[k] + d.late[k], 0)
		TH_LOG("%s", dh_kind[k]);
	}
	EXPECT_GT(d.orphans[DH_SHRINK], 0);
	EXPECT_TRUE(d.routes & (1U << KVMAS_ROUTE_INVALIDATE));

	/* Negative control: the same split with stock ioctls loses the bits. */
	ASSERT_EQ(0, dirty_log(d.r.vm, RV_DATA_SLOT, a));
	ASSERT_EQ(0, dh_sweep(&d, 0, DH_PAGES));
	ASSERT_EQ(0, dh_wait(&d));
	ASSERT_EQ(0, kvm_set_slot(d.r.vm, 0, RV_DATA_SLOT, 0, 0, 0, NULL));
	ASSERT_EQ(0, kvm_set_slot(d.r.vm, 0, RV_DATA_SLOT, lf, RV_DATA_GPA,
				  DH_MID * 4096, data));
	ASSERT_EQ(0, kvm_set_slot(d.r.vm, 0, DH_SLOT2, lf,
				  RV_DATA_GPA + DH_MID * 4096,
				  (DH_PAGES - DH_MID) * 4096,
				  data + DH_MID * 4096));
	memset(a, 0, sizeof(a));
	ASSERT_EQ(0, dirty_log(d.r.vm, RV_DATA_SLOT, a));
	ASSERT_EQ(0, dirty_log(d.r.vm, DH_SLOT2, c));
	EXPECT_EQ(0, popcount_buf(a, DH_WORDS) + popcount_buf(c, DH_WORDS));
	TH_LOG("stock split: %u pages written, %u dirty bits left", DH_PAGES,
	       popcount_buf(a, DH_WORDS) + popcount_buf(c, DH_WORDS));
	close(d.dev);
	rv_destroy(&d.r);
}

/*
 * Concurrency: 4 threads commit batches, each on its own two slots, while 4
 * vCPUs run inside exactly those slots: vCPU t executes from, reads and
 * writes its window, which batcher t keeps re-splitting at another page (both
 * slots replaced by each batch, so the function and the counter change slots
 * all the time). Meanwhile a thread creates and deletes a slot with stock
 * ioctls and a reader checks every GET_LAYOUT snapshot: each window is
 * always tiled by its two slots exactly as ONE batch left it (contiguous,
 * sizes adding up, backing offsets matching), never half of two. No
 * deadlock (the harness timeout), no hole for any vCPU, every counter
 * update landed, and the final layout is the last batch of each thread.
 */
#define CONC_WIN(t) WL_FUNC_GPA(t)
#define CONC_WIN_SIZE (64 * KiB)
#define CONC_BATCHES 150
/* Batch @i of thread @t splits its window after this many bytes. */
#define CONC_SPLIT(i, t) ((1 + ((i)*7 + (t)) % 15) * 4096ULL)

struct conc {
	int dev;
	int vm;
	uint8_t *m;
	uint8_t *target; /* backing of the 4 windows */
	volatile int stop;
	int errors;
	unsigned long snapshots;
};

struct worker {
	struct conc *c;
	int t;
	int err;
	unsigned int routes;
};

static void *batcher(void *arg)
{
	struct worker *w = arg;
	struct conc *c = w->c;
	uint8_t *hva = c->target + w->t * CONC_WIN_SIZE;
	int i;

	for (i = 0; i < CONC_BATCHES && !w->err; i++) {
		/* Move the split: slot 10+2t covers k bytes, 11+2t the rest. */
		uint64_t k = CONC_SPLIT(i, w->t);
		struct kvmas_batch_op ops[2] = {
			op(KVMAS_OP_REPLACE, 10 + 2 * w->t, CONC_WIN(w->t), k,
			   hva, 0),
			op(KVMAS_OP_REPLACE, 11 + 2 * w->t, CONC_WIN(w->t) + k,
			   CONC_WIN_SIZE - k, hva + k, 0),
		};
		/* Every other batch on KVM's INVALID route: both interleave. */
		struct batch_res r =
			commit(c->dev, ops, 2,
			       (i & 1) ? KVMAS_BATCH_ROUTE_INVALIDATE : 0);

		w->err = r.err;
		w->routes |= 1U << r.route;
	}
	return NULL;
}

static void *stocker(void *arg)
{
	struct conc *c = arg;
	int i, err = 0;

	for (i = 0; i < 200 && !err; i++)
		err = kvm_set_slot(c->vm, 0, 99, 0, 0x20000000,
				   (i & 1) ? 0 : 1 * MiB,
				   (i & 1) ? NULL : c->m);
	if (err)
		__atomic_add_fetch(&c->errors, 1, __ATOMIC_RELAXED);
	return NULL;
}

/* Errors in one snapshot: windows not tiled as exactly one batch left them. */
static int conc_check(struct conc *c, const struct kvmas_slot *s,
		      unsigned int nr)
{
	const struct kvmas_slot *lo[4] = { 0 }, *hi[4] = { 0 };
	unsigned int i, t;
	int bad = 0;

	for (i = 0; i < nr; i++) {
		if (s[i].slot < 10 || s[i].slot > 17)
			continue;
		t = (s[i].slot - 10) / 2;
		if (s[i].slot & 1)
			hi[t] = &s[i];
		else
			lo[t] = &s[i];
	}
	for (t = 0; t < 4; t++) {
		uint8_t *hva = c->target + t * CONC_WIN_SIZE;

		if (!lo[t] || !hi[t]) {
			bad++;
			continue;
		}
		bad += lo[t]->guest_phys_addr != CONC_WIN(t) ||
		       lo[t]->userspace_addr != (uintptr_t)hva ||
		       hi[t]->guest_phys_addr !=
			       CONC_WIN(t) + lo[t]->memory_size ||
		       hi[t]->userspace_addr !=
			       (uintptr_t)hva + lo[t]->memory_size ||
		       lo[t]->memory_size + hi[t]->memory_size != CONC_WIN_SIZE;
	}
	return bad;
}

static void *reader(void *arg)
{
	struct conc *c = arg;
	struct kvmas_slot s[32];
	unsigned int nr;

	while (!c->stop) {
		if (kvmas_layout(c->dev, 0, 0, s, 32, &nr, NULL)) {
			__atomic_add_fetch(&c->errors, 1, __ATOMIC_RELAXED);
			continue;
		}
		if (conc_check(c, s, nr))
			__atomic_add_fetch(&c->errors, 1, __ATOMIC_RELAXED);
		c->snapshots++;
	}
	return NULL;
}

TEST_F_TIMEOUT(b, concurrent_batches_and_stock, 180)
{
	struct conc c = { .m = self->m };
	struct kvmas_batch_op init[8];
	struct kvmas_slot s[32];
	pthread_t tb[4], ts, tr;
	uint32_t p0[4], p1[4];
	int64_t mmio0, mmio1;
	struct worker w[4];
	uint64_t t0, us;
	struct wl_vm vm;
	unsigned int nr, i, routes = 0;
	int t, k;

	/* vCPU t's function and counter live in window t. */
	ASSERT_EQ(0, wl_create(&vm, 4, 4 * CONC_WIN_SIZE, 0xf));
	c.vm = vm.vm;
	c.target = vm.target;
	c.dev = kvmas_dev_open();
	ASSERT_GE(c.dev, 0);
	ASSERT_EQ(0, kvmas_attach(c.dev, vm.vm));
	for (t = 0; t < 4; t++) {
		init[2 * t] = op(KVMAS_OP_CREATE, 10 + 2 * t, CONC_WIN(t),
				 CONC_WIN_SIZE / 2,
				 vm.target + t * CONC_WIN_SIZE, 0);
		init[2 * t + 1] = op(
			KVMAS_OP_CREATE, 11 + 2 * t,
			CONC_WIN(t) + CONC_WIN_SIZE / 2, CONC_WIN_SIZE / 2,
			vm.target + t * CONC_WIN_SIZE + CONC_WIN_SIZE / 2, 0);
	}
	ASSERT_EQ(0, commit(c.dev, init, 8, 0).err);
	ASSERT_EQ(0, wl_start(&vm));
	for (k = 0; k < 5000; k++) {
		for (t = 0; t < 4 && wl_progress(&vm, t) >= 100; t++)
			;
		if (t == 4)
			break;
		usleep(1000);
	}
	mmio0 = wl_vcpu_stat(&vm, -1, "pf_mmio_spte_created");
	for (t = 0; t < 4; t++)
		p0[t] = wl_progress(&vm, t);

	t0 = wl_now_us();
	ASSERT_EQ(0, pthread_create(&tr, NULL, reader, &c));
	ASSERT_EQ(0, pthread_create(&ts, NULL, stocker, &c));
	for (t = 0; t < 4; t++) {
		w[t] = (struct worker){ .c = &c, .t = t };
		ASSERT_EQ(0, pthread_create(&tb[t], NULL, batcher, &w[t]));
	}
	for (t = 0; t < 4; t++) {
		pthread_join(tb[t], NULL);
		EXPECT_EQ(0, w[t].err) TH_LOG("batcher %d", t);
		routes |= w[t].routes;
	}
	us = wl_now_us() - t0;
	for (t = 0; t < 4; t++)
		p1[t] = wl_progress(&vm, t);
	pthread_join(ts, NULL);
	c.stop = 1;
	pthread_join(tr, NULL);
	usleep(20 * 1000);
	wl_pause_all(&vm);
	mmio1 = wl_vcpu_stat(&vm, -1, "pf_mmio_spte_created");

	EXPECT_EQ(0, c.errors);
	EXPECT_GT(c.snapshots, 10);
	EXPECT_EQ(0, wl_holes(&vm));
	EXPECT_EQ(0, wl_fatal(&vm));
	EXPECT_EQ(mmio0, mmio1);
	for (t = 0; t < 4; t++) {
		/* One ahead if paused between its function and loop count. */
		uint32_t d = wl_target_counter(&vm, t) - wl_progress(&vm, t);

		EXPECT_LE(d, 1)
		TH_LOG("vcpu %d: counter %u, calls %u", t,
		       wl_target_counter(&vm, t), wl_progress(&vm, t));
		/* It ran in its window while the batches were committed. */
		EXPECT_GT(p1[t] - p0[t], 0) TH_LOG("vcpu %d", t);
	}
	/* The final layout: each window as its thread's last batch left it. */
	ASSERT_EQ(0, kvmas_layout(c.dev, 0, 0, s, 32, &nr, NULL));
	EXPECT_EQ(0, conc_check(&c, s, nr));
	for (i = 0; i < nr; i++) {
		if (s[i].slot >= 10 && s[i].slot <= 17 && !(s[i].slot & 1)) {
			EXPECT_EQ(CONC_SPLIT(CONC_BATCHES - 1,
					     (s[i].slot - 10) / 2),
				  s[i].memory_size);
		}
		EXPECT_NE(99, s[i].slot); /* the stock thread deleted it last */
	}
	EXPECT_TRUE(routes & (1U << KVMAS_ROUTE_INVALIDATE));
	TH_LOG("%d batches in %llu ms (routes %#x) + 200 stock ioctls, %lu "
	       "consistent snapshots; guest calls into the windows meanwhile "
	       "%u %u %u %u, %llu holes",
	       4 * CONC_BATCHES, (unsigned long long)us / 1000, routes,
	       c.snapshots, p1[0] - p0[0], p1[1] - p0[1], p1[2] - p0[2],
	       p1[3] - p0[3], (unsigned long long)wl_holes(&vm));
	wl_stop(&vm);
	close(c.dev);
	wl_destroy(&vm);
}

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
	if (!r)
		r = hammer_batches(&w, dev, iters / 4 - iters / 4 % 5,
				   KVMAS_BATCH_ROUTE_INVALIDATE, &us_inval);
	usleep(50 * 1000);
	wl_pause_all(&w);
	mmio1 = wl_vcpu_stat(&w, -1, "pf_mmio_spte_created");
	ASSERT_EQ(0, r);
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
	       iters / 4 - iters / 4 % 5, (unsigned long long)us_inval / 1000,
	       p0[0], p0[1], hammer_route, hammer_gps_max);
	EXPECT_TRUE(hammer_route & (1U << KVMAS_ROUTE_INVALIDATE));
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
	EXPECT_GT(wl_holes(&w), 0);
	TH_LOG("stock: 200 DELETE+CREATE in %llu ms, %llu holes",
	       (unsigned long long)us_stock / 1000,
	       (unsigned long long)wl_holes(&w));
	(void)c0;
	close(dev);
	wl_destroy(&w);
}

TEST_HARNESS_MAIN
