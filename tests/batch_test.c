// SPDX-License-Identifier: GPL-2.0
/*
 * KVMAS_COMMIT_BATCH: layouts after splits, merges, resizes, moves and RO
 * toggles; the validation table (errno and op index, layout untouched);
 * rollback of a batch whose last op fails in KVM's prepare step; dirty-bit
 * hand-off; address spaces; concurrent batches and stock ioctls with a
 * reader that must never see a half-applied batch; and the hammer: a guest
 * executing, reading and writing in slots that batches resize, split and
 * merge, with zero holes, against stock DELETE+CREATE that shows holes.
 */
#include <pthread.h>

#include "kvm_helpers.h"
#include "kvmas.h"
#include "ringvm.h"
#include "workload.h"
#include "kselftest_harness.h"

#define MiB (1ULL << 20)
#define KiB (1ULL << 10)

struct batch_res {
	int err;
	int index;
	unsigned int gps;
	unsigned int route;
	unsigned long long dirty;
};

/* Grace periods a batch with removals takes on the route it reports. */
#define GPS_REMOVING(r) ((r).route == KVMAS_ROUTE_FENCE ? 1U : 2U)

static struct batch_res commit(int dev, struct kvmas_batch_op *ops,
			       unsigned int n, unsigned int flags)
{
	struct kvmas_commit_batch c = {
		.size = sizeof(c),
		.flags = flags,
		.nr_ops = n,
		.op_size = sizeof(*ops),
		.ops = (uintptr_t)ops,
	};
	struct batch_res r;

	r.err = sys_ret(ioctl(dev, KVMAS_COMMIT_BATCH, &c));
	r.index = c.error_index;
	r.gps = c.grace_periods;
	r.route = c.route;
	r.dirty = c.dirty_pages;
	return r;
}

static struct kvmas_batch_op op(unsigned int kind, unsigned int slot,
				uint64_t gpa, uint64_t size, void *hva,
				unsigned int flags)
{
	return (struct kvmas_batch_op){
		.op = kind,
		.slot = slot,
		.flags = flags,
		.guest_phys_addr = gpa,
		.memory_size = size,
		.userspace_addr = (uintptr_t)hva,
	};
}

static struct kvmas_batch_op del(unsigned int slot)
{
	return (struct kvmas_batch_op){ .op = KVMAS_OP_DELETE, .slot = slot };
}

/* The layout of address space @as as "slot:gpa+size[flags] ..." text. */
static void layout_str(int dev, unsigned int as, char *buf, size_t len)
{
	struct kvmas_slot s[64];
	unsigned int nr = 0, i;
	size_t used = 0;

	buf[0] = 0;
	if (kvmas_layout(dev, 0, as, s, 64, &nr, NULL))
		snprintf(buf, len, "(error)");
	for (i = 0; i < nr && used < len; i++)
		used += snprintf(buf + used, len - used,
				 "%u:%llx+%llx[%x]@%llx ", s[i].slot,
				 (unsigned long long)s[i].guest_phys_addr,
				 (unsigned long long)s[i].memory_size,
				 s[i].flags,
				 (unsigned long long)s[i].userspace_addr);
}

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

TEST_F(b, capabilities)
{
	EXPECT_EQ(1, kvmas_cap(KVMAS_CAP_BATCH_COMMIT));
	EXPECT_EQ(KVMAS_MAX_BATCH_OPS, kvmas_cap(KVMAS_CAP_MAX_BATCH_OPS));
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
	/* No vCPU has run: no shadow root, the single-swap route. */
	EXPECT_EQ(KVMAS_ROUTE_FENCE, r.route);
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
		{ "delete a missing id", 2, { del(2), del(33) }, -ENOENT, 1 },
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
		{ "move to the same gpa",
		  1,
		  { op(KVMAS_OP_MOVE, 1, 0x100000, 2 * MiB, m, 0) },
		  -EINVAL,
		  0 },
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
 * beyond the MMU's maximum gfn): the removal already published as INVALID
 * is rolled back and the layout is exactly as before.
 */
TEST_F(b, rollback_after_prepare_failure)
{
	uint8_t *m = self->m;
	struct kvmas_batch_op ops[3] = {
		op(KVMAS_OP_CREATE, 1, 0x100000, 2 * MiB, m, 0),
		op(KVMAS_OP_CREATE, 2, 0x400000, 2 * MiB, m + 4 * MiB,
		   KVM_MEM_LOG_DIRTY_PAGES),
	};
	char before[1024], after[1024];
	struct batch_res r;

	ASSERT_EQ(0, commit(self->dev, ops, 2, 0).err);
	layout_str(self->dev, 0, before, sizeof(before));
	ops[0] =
		op(KVMAS_OP_REPLACE, 1, 0x100000, 1 * MiB, m, KVM_MEM_READONLY);
	ops[1] = del(2);
	ops[2] = op(KVMAS_OP_CREATE, 3, 1ULL << 60, 2 * MiB, m + 8 * MiB, 0);
	r = commit(self->dev, ops, 3, 0);
	EXPECT_EQ(-EINVAL, r.err);
	EXPECT_EQ(2, r.index);
	/*
	 * Fence route: prepare fails before anything is published (0 grace
	 * periods). Invalidate route: invalidation + rollback, both waited for.
	 */
	EXPECT_EQ(r.route == KVMAS_ROUTE_FENCE ? 0 : 2, r.gps);
	layout_str(self->dev, 0, after, sizeof(after));
	EXPECT_STREQ(before, after);
	/* And the VM still takes changes. */
	ops[2] = op(KVMAS_OP_CREATE, 3, 0x1000000, 2 * MiB, m + 8 * MiB, 0);
	r = commit(self->dev, ops, 3, 0);
	EXPECT_EQ(0, r.err);
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
 * Dirty hand-off: the guest dirties all 64 pages of a logged slot; one batch
 * splits it in two. Every dirty bit comes back in the caller's buffer AND is
 * carried into the two new slots, where KVM_GET_DIRTY_LOG finds it. Stock
 * DELETE + CREATE loses them all (the negative control).
 */
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

TEST(dirty_bits_handed_off)
{
	struct kvmas_batch_op ops[2];
	uint64_t back[1] = { 0 }, a[1] = { 0 }, c[1] = { 0 };
	struct ringvm r;
	struct batch_res res;
	int dev;

	if (kvmas_cap(KVMAS_CAP_BATCH_COMMIT) <= 0)
		SKIP(return, "no batch commits on this kernel");
	ASSERT_EQ(0, rv_create(&r, 1, 0, 64));
	dev = kvmas_dev_open();
	ASSERT_GE(dev, 0);
	ASSERT_EQ(0, kvmas_attach(dev, r.vm));
	ASSERT_EQ(0, rv_run_pass(&r, 0));

	ops[0] = op(KVMAS_OP_REPLACE, RV_DATA_SLOT, RV_DATA_GPA, 32 * 4096,
		    r.data, KVM_MEM_LOG_DIRTY_PAGES);
	ops[0].dirty_bitmap = (uintptr_t)back;
	ops[1] = op(KVMAS_OP_CREATE, 7, RV_DATA_GPA + 32 * 4096, 32 * 4096,
		    r.data + 32 * 4096, KVM_MEM_LOG_DIRTY_PAGES);
	res = commit(dev, ops, 2, 0);
	ASSERT_EQ(0, res.err);
	EXPECT_EQ(64, res.dirty);
	EXPECT_EQ(64, popcount_buf(back, 1));
	ASSERT_EQ(0, dirty_log(r.vm, RV_DATA_SLOT, a));
	ASSERT_EQ(0, dirty_log(r.vm, 7, c));
	EXPECT_EQ(0xffffffffULL, a[0]);
	EXPECT_EQ(0xffffffffULL, c[0]);

	/* Negative control: the same split with stock ioctls loses the bits. */
	ASSERT_EQ(0, rv_run_pass(&r, 0));
	ASSERT_EQ(0, kvm_set_slot(r.vm, 0, 7, 0, 0, 0, NULL));
	ASSERT_EQ(0, kvm_set_slot(r.vm, 0, RV_DATA_SLOT, 0, 0, 0, NULL));
	ASSERT_EQ(0,
		  kvm_set_slot(r.vm, 0, RV_DATA_SLOT, KVM_MEM_LOG_DIRTY_PAGES,
			       RV_DATA_GPA, 64 * 4096, r.data));
	a[0] = 0;
	ASSERT_EQ(0, dirty_log(r.vm, RV_DATA_SLOT, a));
	EXPECT_EQ(0, a[0]);
	close(dev);
	rv_destroy(&r);
}

/*
 * Concurrency: 4 threads commit batches on their own slots while a thread
 * uses stock ioctls on another slot and a reader checks every snapshot:
 * each thread's two slots always tile its 2 MiB window exactly.
 */
struct conc {
	int dev;
	int vm;
	uint8_t *m;
	volatile int stop;
	int errors;
	unsigned long snapshots;
};

struct worker {
	struct conc *c;
	int t;
	int err;
};

#define WIN(t) (0x10000000ULL + (uint64_t)(t)*4 * MiB)

static void *batcher(void *arg)
{
	struct worker *w = arg;
	struct conc *c = w->c;
	int i;

	for (i = 0; i < 150 && !w->err; i++) {
		/* Move the split point: slot 2t covers k pages, 2t+1 the rest. */
		uint64_t k = (1 + (i * 7 + w->t) % 511) * 4096;
		struct kvmas_batch_op ops[2] = {
			op(KVMAS_OP_REPLACE, 10 + 2 * w->t, WIN(w->t), k,
			   c->m + w->t * 4 * MiB, 0),
			op(KVMAS_OP_REPLACE, 11 + 2 * w->t, WIN(w->t) + k,
			   2 * MiB - k, c->m + w->t * 4 * MiB + k, 0),
		};
		w->err = commit(c->dev, ops, 2, 0).err;
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

static void *reader(void *arg)
{
	struct conc *c = arg;
	struct kvmas_slot s[32];
	unsigned int nr, i, t;

	while (!c->stop) {
		uint64_t sum[4] = { 0 };

		if (kvmas_layout(c->dev, 0, 0, s, 32, &nr, NULL)) {
			__atomic_add_fetch(&c->errors, 1, __ATOMIC_RELAXED);
			continue;
		}
		for (i = 0; i < nr; i++) {
			if (s[i].slot < 10 || s[i].slot > 17)
				continue;
			t = (s[i].slot - 10) / 2;
			sum[t] += s[i].memory_size;
			if (s[i].guest_phys_addr < WIN(t) ||
			    s[i].guest_phys_addr + s[i].memory_size >
				    WIN(t) + 2 * MiB)
				__atomic_add_fetch(&c->errors, 1,
						   __ATOMIC_RELAXED);
		}
		for (t = 0; t < 4; t++)
			if (sum[t] != 2 * MiB)
				__atomic_add_fetch(&c->errors, 1,
						   __ATOMIC_RELAXED);
		c->snapshots++;
	}
	return NULL;
}

TEST_F(b, concurrent_batches_and_stock)
{
	struct conc c = { .dev = self->dev, .vm = self->vm, .m = self->m };
	struct worker w[4];
	pthread_t tb[4], ts, tr;
	struct kvmas_batch_op init[8];
	int t;

	for (t = 0; t < 4; t++) {
		init[2 * t] = op(KVMAS_OP_CREATE, 10 + 2 * t, WIN(t), 1 * MiB,
				 self->m + t * 4 * MiB, 0);
		init[2 * t + 1] = op(KVMAS_OP_CREATE, 11 + 2 * t,
				     WIN(t) + 1 * MiB, 1 * MiB,
				     self->m + t * 4 * MiB + 1 * MiB, 0);
	}
	ASSERT_EQ(0, commit(self->dev, init, 8, 0).err);
	ASSERT_EQ(0, pthread_create(&tr, NULL, reader, &c));
	ASSERT_EQ(0, pthread_create(&ts, NULL, stocker, &c));
	for (t = 0; t < 4; t++) {
		w[t] = (struct worker){ .c = &c, .t = t };
		ASSERT_EQ(0, pthread_create(&tb[t], NULL, batcher, &w[t]));
	}
	for (t = 0; t < 4; t++) {
		pthread_join(tb[t], NULL);
		EXPECT_EQ(0, w[t].err) TH_LOG("batcher %d", t);
	}
	pthread_join(ts, NULL);
	c.stop = 1;
	pthread_join(tr, NULL);
	EXPECT_EQ(0, c.errors);
	EXPECT_GT(c.snapshots, 10);
	TH_LOG("600 batches + 200 stock ioctls, %lu consistent snapshots",
	       c.snapshots);
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
