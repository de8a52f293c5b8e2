// SPDX-License-Identifier: GPL-2.0
/*
 * The uapi's rule for every command: an error means nothing changed (the
 * layout, KVM's memslot generation, the rings, the caller's memory), a
 * success means everything did. Each state-changing command is run with
 * its own struct and each buffer it writes placed in read-only memory, in
 * memory with no access at all, and across a page boundary into read-only
 * memory; a dry run must not write the caller's buffers; a request stock
 * KVM treats as a no-op must be one here too (it used to reach KVM's commit
 * with nothing changed, which WARNs: a host panic under panic_on_warn).
 */
#include <pthread.h>

#include "batch_helpers.h"
#include "kvmas.h"
#include "ringvm.h"
#include "kselftest_harness.h"

/*
 * Three pages: writable, read-only, no access. A struct of @size placed by
 * at() at offset @off from the start of the read-only page (negative:
 * straddling the writable/read-only boundary).
 */
struct arena {
	uint8_t *p;
	long psz;
};

static int arena_init(struct arena *a)
{
	a->psz = sysconf(_SC_PAGESIZE);
	a->p = mmap(NULL, 3 * a->psz, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (a->p == MAP_FAILED)
		return -1;
	memset(a->p, 0, 3 * a->psz);
	return 0;
}

enum place { P_WRITABLE, P_READONLY, P_NOACCESS, P_STRADDLE, P_NR };
static const char *const place_name[P_NR] = { "writable", "read-only",
					      "no access",
					      "straddling into read-only" };

/* Copies @len bytes of @src to @where and seals the arena; returns the copy. */
static void *arena_put(struct arena *a, enum place where, const void *src,
		       size_t len)
{
	uint8_t *dst;

	mprotect(a->p, 3 * a->psz, PROT_READ | PROT_WRITE);
	switch (where) {
	case P_WRITABLE:
		dst = a->p;
		break;
	case P_STRADDLE:
		dst = a->p + a->psz - len / 2;
		break;
	case P_READONLY:
		dst = a->p + a->psz;
		break;
	default:
		dst = a->p + 2 * a->psz;
		break;
	}
	if (src)
		memcpy(dst, src, len);
	else
		memset(dst, 0xa5, len);
	mprotect(a->p + a->psz, a->psz, PROT_READ);
	mprotect(a->p + 2 * a->psz, a->psz, PROT_NONE);
	return dst;
}

FIXTURE(ct)
{
	int dev;
	int vm;
	uint8_t *m;
	struct arena a;
};

FIXTURE_VARIANT(ct)
{
	unsigned int flags; /* batch route */
};

FIXTURE_VARIANT_ADD(ct, fence){
	.flags = 0,
};

FIXTURE_VARIANT_ADD(ct, invalidate){
	.flags = KVMAS_BATCH_ROUTE_INVALIDATE,
};

FIXTURE_SETUP(ct)
{
	struct kvmas_batch_op ops[2];

	self->dev = kvmas_dev_open();
	self->vm = kvm_vm_create();
	self->m = guest_mem(16 * MiB);
	ASSERT_GE(self->dev, 0);
	ASSERT_GE(self->vm, 0);
	ASSERT_NE(NULL, self->m);
	ASSERT_EQ(0, arena_init(&self->a));
	ASSERT_EQ(0, kvmas_attach(self->dev, self->vm));
	if (kvmas_cap(KVMAS_CAP_BATCH_COMMIT) <= 0)
		SKIP(return, "no batch commits on this kernel");
	if (variant->flags & KVMAS_BATCH_ROUTE_INVALIDATE && !inval_route_ok())
		SKIP(return, "no invalidate route here (arm64: fence only)");
	/* Slot 1 logs dirty pages (it has a bitmap), slot 2 does not. */
	ops[0] = op(KVMAS_OP_CREATE, 1, 0x100000, 1 * MiB, self->m,
		    KVM_MEM_LOG_DIRTY_PAGES);
	ops[1] =
		op(KVMAS_OP_CREATE, 2, 0x400000, 1 * MiB, self->m + 4 * MiB, 0);
	ASSERT_EQ(0, commit(self->dev, ops, 2, 0).err);
}

FIXTURE_TEARDOWN(ct)
{
	close(self->dev);
	close(self->vm);
}

/* Layout text and generations, for "nothing changed" comparisons. */
struct snap {
	char layout[512];
	uint64_t gen[KVMAS_MAX_AS];
};

static void take(int dev, struct snap *s)
{
	layout_str(dev, 0, s->layout, sizeof(s->layout));
	vm_generation(dev, s->gen);
}

static int same(const struct snap *a, const struct snap *b)
{
	return !strcmp(a->layout, b->layout) &&
	       !memcmp(a->gen, b->gen, sizeof(a->gen));
}

/*
 * Requests stock KVM answers with "nothing to change" (0, generation
 * unchanged): dirty logging asked for where it is on, cleared where it is
 * clear, a move to where the slot is. Used to reach KVM's commit and WARN.
 */
TEST_F(ct, stock_noops_are_noops)
{
	struct kvmas_batch_op ops[2];
	struct snap s0, s1;
	struct batch_res r;
	char got[512];

	take(self->dev, &s0);
	ops[0] = op(KVMAS_OP_SET_FLAGS, 1, 0, 0, NULL, KVM_MEM_LOG_DIRTY_PAGES);
	r = commit(self->dev, ops, 1, variant->flags);
	EXPECT_EQ(0, r.err);
	EXPECT_EQ(0, r.gps);
	EXPECT_EQ(KVMAS_ROUTE_NONE, r.route);
	ops[0] = op(KVMAS_OP_SET_FLAGS, 2, 0, 0, NULL, 0);
	EXPECT_EQ(0, commit(self->dev, ops, 1, variant->flags).err);
	ops[0] = op(KVMAS_OP_MOVE, 1, 0x100000, 1 * MiB, self->m,
		    KVM_MEM_LOG_DIRTY_PAGES);
	ops[1] = op(KVMAS_OP_SET_FLAGS, 2, 0, 0, NULL, 0);
	r = commit(self->dev, ops, 2, variant->flags);
	EXPECT_EQ(0, r.err);
	EXPECT_EQ(0, r.gps);
	take(self->dev, &s1);
	EXPECT_TRUE(same(&s0, &s1)) TH_LOG("%s / %s", s0.layout, s1.layout);

	/* A no-op next to a real change: the change happens, alone. */
	ops[0] = op(KVMAS_OP_SET_FLAGS, 1, 0, 0, NULL, KVM_MEM_LOG_DIRTY_PAGES);
	ops[1] =
		op(KVMAS_OP_CREATE, 3, 0x800000, 1 * MiB, self->m + 8 * MiB, 0);
	r = commit(self->dev, ops, 2, variant->flags);
	EXPECT_EQ(0, r.err);
	EXPECT_EQ(1, r.gps);
	take(self->dev, &s1);
	EXPECT_NE(s0.gen[0], s1.gen[0]);
	EXPECT_NE(NULL, strstr(s1.layout, "3:800000+100000[0]"));
	EXPECT_NE(NULL, strstr(s1.layout, "1:100000+100000[1]"));

	/* A move to the same gpa that toggles logging: stock's flags change. */
	ops[0] = op(KVMAS_OP_MOVE, 2, 0x400000, 1 * MiB, self->m + 4 * MiB,
		    KVM_MEM_LOG_DIRTY_PAGES);
	r = commit(self->dev, ops, 1, variant->flags);
	EXPECT_EQ(0, r.err);
	EXPECT_EQ(1, r.gps);
	layout_str(self->dev, 0, got, sizeof(got));
	EXPECT_NE(NULL, strstr(got, "2:400000+100000[1]")) TH_LOG("%s", got);
	/* A move that also toggles logging, as stock allows. */
	ops[0] = op(KVMAS_OP_MOVE, 2, 0xc00000, 1 * MiB, self->m + 4 * MiB, 0);
	r = commit(self->dev, ops, 1, variant->flags);
	EXPECT_EQ(0, r.err);
	layout_str(self->dev, 0, got, sizeof(got));
	EXPECT_NE(NULL, strstr(got, "2:c00000+100000[0]")) TH_LOG("%s", got);
}

/*
 * The command struct itself where the call cannot write its results: the
 * call fails before it changes anything (it used to commit, then fail on
 * the copy back with EFAULT).
 */
TEST_F(ct, batch_struct_unwritable)
{
	struct kvmas_batch_op ops[2];
	struct kvmas_commit_batch c0, *c;
	struct snap s0, s1;
	enum place p;

	ops[0] = op(KVMAS_OP_REPLACE, 1, 0x100000, 2 * MiB, self->m,
		    KVM_MEM_LOG_DIRTY_PAGES);
	ops[1] =
		op(KVMAS_OP_CREATE, 4, 0x800000, 1 * MiB, self->m + 8 * MiB, 0);
	c0 = (struct kvmas_commit_batch){ .size = sizeof(c0),
					  .flags = variant->flags,
					  .nr_ops = 2,
					  .op_size = sizeof(ops[0]),
					  .ops = (uintptr_t)ops };
	for (p = P_READONLY; p < P_NR; p++) {
		take(self->dev, &s0);
		c = arena_put(&self->a, p, &c0, sizeof(c0));
		EXPECT_EQ(-EFAULT,
			  sys_ret(ioctl(self->dev, KVMAS_COMMIT_BATCH, c)))
		TH_LOG("struct %s", place_name[p]);
		take(self->dev, &s1);
		EXPECT_TRUE(same(&s0, &s1))
		TH_LOG("struct %s: %s / %s", place_name[p], s0.layout,
		       s1.layout);
	}
	/* The same call from writable memory goes through, results written. */
	c = arena_put(&self->a, P_WRITABLE, &c0, sizeof(c0));
	c->error_index = 77;
	ASSERT_EQ(0, sys_ret(ioctl(self->dev, KVMAS_COMMIT_BATCH, c)));
	EXPECT_EQ(-1, c->error_index);
	EXPECT_NE(0, c->grace_periods);
	take(self->dev, &s1);
	EXPECT_NE(NULL, strstr(s1.layout, "4:800000+100000[0]"));
}

/*
 * A hand-off buffer that cannot take the old slot's bits: refused before
 * the commit (it used to commit, then fail the copy with EFAULT), on a
 * slot with a bitmap and on one without (whose buffer gets zeros).
 */
TEST_F(ct, handoff_buffer_unwritable)
{
	size_t bytes = (1 * MiB / 4096) / 8; /* 256 pages */
	struct kvmas_batch_op ops[1];
	struct snap s0, s1;
	unsigned int slot;
	struct batch_res r;
	uint8_t *buf;
	enum place p;

	for (slot = 1; slot <= 2; slot++) {
		for (p = P_READONLY; p < P_NR; p++) {
			take(self->dev, &s0);
			buf = arena_put(&self->a, p, NULL, bytes);
			ops[0] = del(slot);
			ops[0].dirty_bitmap = (uintptr_t)buf;
			r = commit(self->dev, ops, 1, variant->flags);
			EXPECT_EQ(-EFAULT, r.err)
			TH_LOG("slot %u, buffer %s", slot, place_name[p]);
			EXPECT_EQ(0, r.index);
			EXPECT_EQ(0, r.gps);
			take(self->dev, &s1);
			EXPECT_TRUE(same(&s0, &s1))
			TH_LOG("slot %u, buffer %s", slot, place_name[p]);
		}
		/*
		 * Writable: the delete happens and the buffer gets the bits,
		 * exactly its size of them. Nothing ran in the guest: no
		 * page is dirty, all bits are zero.
		 */
		buf = arena_put(&self->a, P_WRITABLE, NULL, 2 * bytes);
		ops[0] = del(slot);
		ops[0].dirty_bitmap = (uintptr_t)buf;
		r = commit(self->dev, ops, 1, variant->flags);
		ASSERT_EQ(0, r.err);
		EXPECT_EQ(0, buf[0] | buf[bytes / 2] | buf[bytes - 1]);
		EXPECT_EQ(0xa5, buf[bytes]);
	}
}

/*
 * KVMAS_BATCH_VALIDATE_ONLY changes nothing, and writes nothing but its
 * struct's out fields: not the ops, not the hand-off buffers (it used to
 * zero them). An unwritable buffer still fails the dry run, as it would
 * fail the commit.
 */
TEST_F(ct, dry_run_writes_nothing)
{
	struct kvmas_batch_op ops[2], copy[2];
	uint8_t buf[64], *ro;
	struct snap s0, s1;
	struct batch_res r;
	unsigned int i;

	memset(buf, 0xa5, sizeof(buf));
	ops[0] = op(KVMAS_OP_REPLACE, 1, 0x100000, 512 * KiB, self->m,
		    KVM_MEM_LOG_DIRTY_PAGES);
	ops[0].dirty_bitmap = (uintptr_t)buf;
	ops[1] = del(2);
	ops[1].dirty_bitmap = (uintptr_t)(buf + 32);
	memcpy(copy, ops, sizeof(ops));
	take(self->dev, &s0);
	r = commit(self->dev, ops, 2,
		   variant->flags | KVMAS_BATCH_VALIDATE_ONLY);
	EXPECT_EQ(0, r.err);
	EXPECT_EQ(0, r.gps);
	EXPECT_NE(KVMAS_ROUTE_NONE, r.route);
	for (i = 0; i < sizeof(buf); i++)
		if (buf[i] != 0xa5)
			break;
	EXPECT_EQ(sizeof(buf), i) TH_LOG("byte %u of the buffers written", i);
	EXPECT_EQ(0, memcmp(copy, ops, sizeof(ops)));
	take(self->dev, &s1);
	EXPECT_TRUE(same(&s0, &s1));

	ro = arena_put(&self->a, P_READONLY, NULL, 32);
	ops[1].dirty_bitmap = (uintptr_t)ro;
	r = commit(self->dev, ops, 2,
		   variant->flags | KVMAS_BATCH_VALIDATE_ONLY);
	EXPECT_EQ(-EFAULT, r.err);
	EXPECT_EQ(1, r.index);
}

/*
 * A batch that fails in KVM's own prepare step (a gpa beyond what the MMU
 * maps) after a removal: both routes prepare every op before publishing
 * anything, so the generation does not move (the invalidate route used to
 * publish and withdraw INVALID stand-ins: +2 swaps).
 */
TEST_F(ct, failed_prepare_keeps_generation)
{
	struct kvmas_batch_op ops[2];
	struct snap s0, s1;
	struct batch_res r;
	int i;

	for (i = 0; i < 20; i++) {
		take(self->dev, &s0);
		ops[0] = op(KVMAS_OP_REPLACE, 1, 0x100000, 512 * KiB, self->m,
			    KVM_MEM_LOG_DIRTY_PAGES);
		ops[1] = op(KVMAS_OP_CREATE, 3, 1ULL << 60, 1 * MiB,
			    self->m + 8 * MiB, 0);
		r = commit(self->dev, ops, 2, variant->flags);
		EXPECT_EQ(-PREPARE_BEYOND_ERRNO, r.err);
		EXPECT_EQ(1, r.index);
		EXPECT_EQ(0, r.gps);
		/* Shadow paging (npt=0) keeps rmaps: the invalidate route. */
		EXPECT_EQ(variant->flags || legacy_mmu() ?
				  KVMAS_ROUTE_INVALIDATE :
				  KVMAS_ROUTE_FENCE,
			  r.route);
		take(self->dev, &s1);
		ASSERT_TRUE(same(&s0, &s1))
		TH_LOG("%s %llx / %s %llx", s0.layout,
		       (unsigned long long)s0.gen[0], s1.layout,
		       (unsigned long long)s1.gen[0]);
	}
}

/*
 * Read-only commands under the same faults: EFAULT, and no state to
 * change. ATTACH_VM reads its struct only: read-only memory is enough.
 */
TEST_F(ct, other_commands_under_faults)
{
	struct kvmas_vm_info info = { .size = sizeof(info) }, *pi;
	struct kvmas_attach_vm at = { .size = sizeof(at) }, *pa;
	struct kvmas_caps caps = { .size = sizeof(caps) }, *pc;
	struct kvmas_layout l = { .size = sizeof(l) }, *pl;
	struct kvmas_slot *ents, ents_ok[2];
	enum place p;
	int dev2;

	for (p = P_READONLY; p < P_NR; p++) {
		pc = arena_put(&self->a, p, &caps, sizeof(caps));
		EXPECT_EQ(-EFAULT,
			  sys_ret(ioctl(self->dev, KVMAS_GET_CAPS, pc)));
		pi = arena_put(&self->a, p, &info, sizeof(info));
		EXPECT_EQ(-EFAULT,
			  sys_ret(ioctl(self->dev, KVMAS_GET_VM_INFO, pi)));
		l.entry_size = sizeof(*ents);
		l.nr_entries = 2;
		/* Entries writable: refused before a byte of them is written. */
		memset(ents_ok, 0xa5, sizeof(ents_ok));
		l.entries = (uintptr_t)ents_ok;
		pl = arena_put(&self->a, p, &l, sizeof(l));
		EXPECT_EQ(-EFAULT,
			  sys_ret(ioctl(self->dev, KVMAS_GET_LAYOUT, pl)));
		EXPECT_EQ(0xa5a5a5a5, ents_ok[0].slot)
		TH_LOG("GET_LAYOUT wrote its entries, then failed on its struct (%s)",
		       place_name[p]);
		/* The entries buffer in the faulting place. */
		l.entries = (uintptr_t)arena_put(&self->a, p, NULL,
						 2 * sizeof(*ents));
		EXPECT_EQ(-EFAULT,
			  sys_ret(ioctl(self->dev, KVMAS_GET_LAYOUT, &l)));

		dev2 = kvmas_dev_open();
		ASSERT_GE(dev2, 0);
		at.vm_fd = self->vm;
		pa = arena_put(&self->a, p, &at, sizeof(at));
		if (p == P_READONLY) {
			EXPECT_EQ(0, sys_ret(ioctl(dev2, KVMAS_ATTACH_VM, pa)));
			EXPECT_EQ(0, kvmas_vm_info(dev2, &info));
		} else if (p == P_NOACCESS) {
			EXPECT_EQ(-EFAULT,
				  sys_ret(ioctl(dev2, KVMAS_ATTACH_VM, pa)));
			EXPECT_EQ(-ENOTCONN, kvmas_vm_info(dev2, &info));
		}
		close(dev2);
	}
}

/*
 * KVMAS_RESET_RING with its vCPU array, or its struct, where results cannot
 * be written: EFAULT before any ring changes. The entries are then all
 * still there for a call from writable memory to reset.
 */
TEST(ring_reset_outputs_unwritable)
{
	struct kvmas_ring_vcpu v0 = { .vcpu_id = 0 }, *pv;
	struct kvmas_reset_ring c0 = { .size = sizeof(c0) }, *pc;
	struct kvmas_ring kr;
	struct arena a;
	struct ringvm r;
	struct kvmas *kv;
	enum place p;

	if (kvmas_cap(KVMAS_CAP_RING_RESET) <= 0)
		SKIP(return, "no per-vCPU ring reset on this kernel");
	ASSERT_EQ(0, arena_init(&a));
	ASSERT_EQ(0, rv_create(&r, 1, RV_RING_ENTRIES, 16));
	ASSERT_EQ(0, kvmas_open(&kv));
	ASSERT_EQ(0, kvmas_attach_vm(kv, r.vm));
	rv_ring(&r, 0, &kr);
	ASSERT_EQ(0, rv_run_pass(&r, 0));
	ASSERT_EQ(16, kvmas_ring_harvest(&kr, NULL, NULL, 0));
	v0.boundary = kr.fetch;
	c0.nr_vcpus = 1;
	c0.vcpu_size = sizeof(v0);
	for (p = P_READONLY; p < P_NR; p++) {
		pv = arena_put(&a, p, &v0, sizeof(v0));
		c0.vcpus = (uintptr_t)pv;
		EXPECT_EQ(-EFAULT,
			  sys_ret(ioctl(kvmas_fd(kv), KVMAS_RESET_RING, &c0)))
		TH_LOG("array %s", place_name[p]);
		EXPECT_EQ(0, c0.total_reset);
		/* A writable array, the struct in the faulting place. */
		c0.vcpus = (uintptr_t)&v0;
		pc = arena_put(&a, p, &c0, sizeof(c0));
		EXPECT_EQ(-EFAULT,
			  sys_ret(ioctl(kvmas_fd(kv), KVMAS_RESET_RING, pc)))
		TH_LOG("struct %s", place_name[p]);
	}
	c0.vcpus = (uintptr_t)&v0;
	ASSERT_EQ(0, sys_ret(ioctl(kvmas_fd(kv), KVMAS_RESET_RING, &c0)));
	EXPECT_EQ(16, v0.reset);
	EXPECT_EQ(KVMAS_RING_STOP_BOUNDARY, v0.stop_reason);
	kvmas_close(kv);
	rv_destroy(&r);
}

TEST_HARNESS_MAIN
