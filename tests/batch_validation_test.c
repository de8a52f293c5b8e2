// SPDX-License-Identifier: GPL-2.0
/*
 * KVMAS_COMMIT_BATCH semantics and validation: capabilities proved against
 * what the module accepts; layouts after splits, merges, resizes, moves
 * and RO toggles; the grace periods a batch takes; the validation table
 * (errno and op index, layout untouched); the library's batch builder; the
 * SMM address space.
 */
#include "batch_fixture.h"

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
 * Large batches (more than 16 ops) find overlaps by sorting the inserted
 * ranges and search pairwise only when one exists: the op named must still
 * be the one a one-at-a-time application would fail on, and nothing may
 * change. Also a range inserted over a slot whose flags another op of the
 * same batch changes (that slot stays, so it overlaps).
 */
TEST_F(b, large_batch_overlaps)
{
	static struct kvmas_batch_op ops[40];
	char before[4096], after[4096];
	struct batch_res r;
	unsigned int i;

	for (i = 0; i < 40; i++)
		ops[i] = op(KVMAS_OP_CREATE, 200 + i,
			    0x20000000ULL + i * 64 * KiB, 64 * KiB,
			    self->m + i * 64 * KiB, 0);
	r = commit(self->dev, ops, 40, 0);
	ASSERT_EQ(0, r.err);
	layout_str(self->dev, 0, before, sizeof(before));

	/* Resizes in place, but op 33 grows into op 25's new range... */
	for (i = 0; i < 40; i++)
		ops[i] = op(KVMAS_OP_REPLACE, 200 + i,
			    0x20000000ULL + i * 64 * KiB, 32 * KiB,
			    self->m + i * 64 * KiB, 0);
	ops[33].guest_phys_addr = 0x20000000ULL + 25 * 64 * KiB + 16 * KiB;
	/* ...and op 36 into op 30's: the first failing op is 33. */
	ops[36].guest_phys_addr = 0x20000000ULL + 30 * 64 * KiB;
	r = commit(self->dev, ops, 40, 0);
	EXPECT_EQ(-EEXIST, r.err);
	EXPECT_EQ(33, r.index);
	layout_str(self->dev, 0, after, sizeof(after));
	EXPECT_STREQ(before, after);

	/* Only the later one left: it is named. */
	ops[33].guest_phys_addr = 0x20000000ULL + 33 * 64 * KiB;
	r = commit(self->dev, ops, 40, KVMAS_BATCH_VALIDATE_ONLY);
	EXPECT_EQ(-EEXIST, r.err);
	EXPECT_EQ(36, r.index);

	/* Op 10 moves onto slot 239, whose flags op 39 changes: it stays. */
	ops[36].guest_phys_addr = 0x20000000ULL + 36 * 64 * KiB;
	ops[10] = op(KVMAS_OP_MOVE, 210, 0x20000000ULL + 39 * 64 * KiB,
		     64 * KiB, self->m + 10 * 64 * KiB, 0);
	ops[39] = (struct kvmas_batch_op){ .op = KVMAS_OP_SET_FLAGS,
					   .slot = 239,
					   .flags = KVM_MEM_LOG_DIRTY_PAGES };
	r = commit(self->dev, ops, 40, 0);
	EXPECT_EQ(-EEXIST, r.err);
	EXPECT_EQ(10, r.index);
	layout_str(self->dev, 0, after, sizeof(after));
	EXPECT_STREQ(before, after);

	/* Without the overlaps the same batch commits. */
	ops[10] = op(KVMAS_OP_REPLACE, 210, 0x20000000ULL + 10 * 64 * KiB,
		     32 * KiB, self->m + 10 * 64 * KiB, 0);
	r = commit(self->dev, ops, 40, 0);
	EXPECT_EQ(0, r.err);
}

TEST_HARNESS_MAIN
