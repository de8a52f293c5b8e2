// SPDX-License-Identifier: GPL-2.0
/*
 * arm64: pages dirtied outside vCPU context reach the VMM through the
 * dirty ring's bitmap (KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP), also across
 * batch commits. The writer is the vGIC ITS: KVM_DEV_ARM_ITS_SAVE_TABLES
 * stores the ITS tables into guest memory from the VMM's ioctl, with no
 * vCPU running, so KVM cannot push those pages to any ring (seed 002).
 * Saving an empty collection table still writes its terminating entry at
 * the table's base: that page must become dirty.
 *
 *  - every order of enabling the ring, the bitmap and a dirty-logged slot
 *    ends in a clean errno or a working setup (a WARN would end the boot:
 *    panic_on_warn), with the module attached and committing;
 *  - with ring + bitmap, the saved page is in KVM_GET_DIRTY_LOG; after a
 *    batch splits the slot, in the hand-off buffer and in the new slot's
 *    log; after a batch deletes it, in the hand-off buffer.
 * Skipped where there is no ITS or no ring (x86; arm64 before 6.2).
 */
#include "batch_helpers.h"
#include "kvm_helpers.h"
#include "kselftest_harness.h"

#if defined(__aarch64__)
#include "guest_a64.h"

#ifndef KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP
#define KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP \
	225 /* 6.3+; bookworm's headers are 6.1 */
#endif

#define IT_GICD 0x08000000ULL
#define IT_ITS 0x08080000ULL
#define IT_GICR 0x080a0000ULL
#define IT_SLOT 1
#define IT_SLOT2 2
#define IT_GPA 0x01000000ULL
#define IT_SIZE (1 * MiB)
#define IT_HALF (IT_SIZE / 2)
/* The collection table: 64 KiB aligned (ITS tables use 64 KiB pages). */
#define IT_COLL_GPA (IT_GPA + 0x40000)
#define IT_COLL_PAGE ((IT_COLL_GPA - IT_GPA) / 4096)
#define IT_RING_BYTES (64 * 1024)
/* GITS_BASER<n> in the ITS register frame; n = 1 is the collection table. */
#define IT_GITS_BASER1 0x108
#define IT_BASER_VALID (1ULL << 63)

static int dev_attr(int fd, unsigned int group, uint64_t attr, void *val)
{
	struct kvm_device_attr a = {
		.group = group,
		.attr = attr,
		.addr = (uintptr_t)val,
	};

	return sys_ret(ioctl(fd, KVM_SET_DEVICE_ATTR, &a));
}

static int create_device(int vm, uint32_t type)
{
	struct kvm_create_device d = { .type = type };
	int r = sys_ret(ioctl(vm, KVM_CREATE_DEVICE, &d));

	return r ? r : (int)d.fd;
}

struct its_vm {
	int vm, vcpu, gic, its;
	uint8_t *mem;
};

static int enable_cap(int vm, uint32_t cap, uint64_t arg)
{
	struct kvm_enable_cap c = { .cap = cap, .args = { arg } };

	return sys_ret(ioctl(vm, KVM_ENABLE_CAP, &c));
}

static int its_have(void)
{
	int kvm = kvm_dev_open(), ok;

	if (kvm < 0)
		return 0;
	ok = ioctl(kvm, KVM_CHECK_EXTENSION,
		   KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP) > 0 &&
	     ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_DIRTY_LOG_RING_ACQ_REL) >
		     0;
	close(kvm);
	return ok;
}

/*
 * One vCPU (initialised, never run), a vGICv3 and its ITS, the ITS's
 * collection table at IT_COLL_GPA. The slot must exist by then (KVM checks
 * nothing at BASER time, but the save writes there).
 */
static int its_setup(struct its_vm *v)
{
	uint64_t a;
	int r;

	v->vcpu = kvm_vcpu_create(v->vm, 0);
	if (v->vcpu < 0)
		return v->vcpu;
	r = a64_vcpu_init(v->vm, v->vcpu);
	if (r)
		return r;
	v->gic = create_device(v->vm, KVM_DEV_TYPE_ARM_VGIC_V3);
	if (v->gic < 0)
		return v->gic;
	a = IT_GICD;
	r = dev_attr(v->gic, KVM_DEV_ARM_VGIC_GRP_ADDR,
		     KVM_VGIC_V3_ADDR_TYPE_DIST, &a);
	a = IT_GICR;
	if (!r)
		r = dev_attr(v->gic, KVM_DEV_ARM_VGIC_GRP_ADDR,
			     KVM_VGIC_V3_ADDR_TYPE_REDIST, &a);
	if (r)
		return r;
	v->its = create_device(v->vm, KVM_DEV_TYPE_ARM_VGIC_ITS);
	if (v->its < 0)
		return v->its;
	a = IT_ITS;
	r = dev_attr(v->its, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_ITS_ADDR_TYPE,
		     &a);
	if (!r)
		r = dev_attr(v->gic, KVM_DEV_ARM_VGIC_GRP_CTRL,
			     KVM_DEV_ARM_VGIC_CTRL_INIT, NULL);
	if (!r)
		r = dev_attr(v->its, KVM_DEV_ARM_VGIC_GRP_CTRL,
			     KVM_DEV_ARM_VGIC_CTRL_INIT, NULL);
	/* Valid, one 64 KiB page; KVM fixes the type and entry size fields. */
	a = IT_BASER_VALID | IT_COLL_GPA;
	if (!r)
		r = dev_attr(v->its, KVM_DEV_ARM_VGIC_GRP_ITS_REGS,
			     IT_GITS_BASER1, &a);
	return r;
}

static int its_save(struct its_vm *v)
{
	return dev_attr(v->its, KVM_DEV_ARM_VGIC_GRP_CTRL,
			KVM_DEV_ARM_ITS_SAVE_TABLES, NULL);
}

static void its_close(struct its_vm *v)
{
	if (v->its > 0)
		close(v->its);
	if (v->gic > 0)
		close(v->gic);
	if (v->vcpu > 0)
		close(v->vcpu);
	if (v->vm >= 0)
		close(v->vm);
	if (v->mem)
		munmap(v->mem, IT_SIZE);
	memset(v, 0, sizeof(*v));
	v->vm = -1;
}

static int its_open(struct its_vm *v)
{
	memset(v, 0, sizeof(*v));
	v->vm = kvm_vm_create();
	v->mem = guest_mem(IT_SIZE);
	return v->vm < 0 ? v->vm : v->mem ? 0 : -ENOMEM;
}

static int dirty_log(int vm, unsigned int slot, uint64_t *bits)
{
	struct kvm_dirty_log l = { .slot = slot, .dirty_bitmap = bits };

	return sys_ret(ioctl(vm, KVM_GET_DIRTY_LOG, &l));
}

static int bit(const uint64_t *b, unsigned int i)
{
	return (b[i / 64] >> (i % 64)) & 1;
}

#define IT_WORDS (IT_SIZE / 4096 / 64)

/*
 * Every enable order: bitmap before the ring (and classic dirty logging),
 * then (ring_enable_orders) the bitmap after a slot, the ring alone, and
 * the ring after a logged slot; the working order is the fixture of the
 * tests below. The module is attached throughout and commits on the slot
 * in each state KVM allows.
 */
TEST(classic_log_and_orders)
{
	uint64_t bits[IT_WORDS];
	struct kvmas_batch_op o;
	struct its_vm v;
	int dev;

	dev = kvmas_dev_open();
	ASSERT_GE(dev, 0);

	/*
	 * 1. No ring (every arm64 kernel): classic dirty logging. The bitmap
	 * needs a ring first: EINVAL, nothing else changes.
	 */
	ASSERT_EQ(0, its_open(&v));
	ASSERT_EQ(0, kvmas_attach(dev, v.vm));
	EXPECT_EQ(-EINVAL,
		  enable_cap(v.vm, KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP, 0));
	o = op(KVMAS_OP_CREATE, IT_SLOT, IT_GPA, IT_SIZE, v.mem,
	       KVM_MEM_LOG_DIRTY_PAGES);
	EXPECT_EQ(0, commit(dev, &o, 1, 0).err);
	EXPECT_EQ(0, its_setup(&v));
	EXPECT_EQ(0, its_save(&v));
	/* Classic dirty logging: the ITS page is in the slot's bitmap. */
	memset(bits, 0, sizeof(bits));
	EXPECT_EQ(0, dirty_log(v.vm, IT_SLOT, bits));
	EXPECT_TRUE(bit(bits, IT_COLL_PAGE));
	close(dev);
	its_close(&v);
}

/*
 * A VM with a ring (and the bitmap if @bitmap), attached to @dev, then a
 * dirty-logged slot created by a batch: KVM's order for the capabilities.
 */
static void ring_vm(struct __test_metadata *_metadata, struct its_vm *v,
		    int dev, int bitmap)
{
	struct kvmas_batch_op o;

	ASSERT_EQ(0, its_open(v));
	ASSERT_EQ(0, enable_cap(v->vm, KVM_CAP_DIRTY_LOG_RING_ACQ_REL,
				IT_RING_BYTES));
	if (bitmap)
		ASSERT_EQ(0, enable_cap(v->vm,
					KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP, 0));
	ASSERT_EQ(0, kvmas_attach(dev, v->vm));
	o = op(KVMAS_OP_CREATE, IT_SLOT, IT_GPA, IT_SIZE, v->mem,
	       KVM_MEM_LOG_DIRTY_PAGES);
	ASSERT_EQ(0, commit(dev, &o, 1, 0).err);
}

TEST(ring_enable_orders)
{
	uint64_t bits[IT_WORDS] = { 0 };
	struct kvmas_batch_op o;
	struct batch_res r;
	struct its_vm v;
	int dev;

	if (!its_have())
		SKIP(return, "no dirty ring with bitmap here (arm64 6.12+)");
	dev = kvmas_dev_open();
	ASSERT_GE(dev, 0);
	/*
	 * 2. Ring, then a slot, then the bitmap: EINVAL (slots exist). The
	 * save works, but with no running vCPU and no bitmap KVM has nowhere
	 * to put the page (stock behaviour, the reason the capability
	 * exists): there is no bitmap to read (ENXIO), and a batch deleting
	 * the slot has no bits to hand back.
	 */
	ring_vm(_metadata, &v, dev, 0);
	EXPECT_EQ(-EINVAL,
		  enable_cap(v.vm, KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP, 0));
	EXPECT_EQ(0, its_setup(&v));
	EXPECT_EQ(0, its_save(&v));
	EXPECT_EQ(-ENXIO, dirty_log(v.vm, IT_SLOT, bits));
	o = del(IT_SLOT);
	o.dirty_bitmap = (uintptr_t)bits;
	r = commit(dev, &o, 1, 0);
	EXPECT_EQ(0, r.err);
	EXPECT_EQ(0, r.dirty);
	close(dev);
	its_close(&v);

	/*
	 * 3. A logged slot first (KVM gives it a bitmap), then the ring
	 * (allowed: no vCPU yet). KVM records the ITS's page in that bitmap
	 * but will not show it (KVM_GET_DIRTY_LOG: ENXIO with a ring); a
	 * batch deleting the slot hands back what KVM recorded: that page.
	 */
	dev = kvmas_dev_open();
	ASSERT_GE(dev, 0);
	ASSERT_EQ(0, its_open(&v));
	ASSERT_EQ(0, kvmas_attach(dev, v.vm));
	o = op(KVMAS_OP_CREATE, IT_SLOT, IT_GPA, IT_SIZE, v.mem,
	       KVM_MEM_LOG_DIRTY_PAGES);
	ASSERT_EQ(0, commit(dev, &o, 1, 0).err);
	ASSERT_EQ(0, enable_cap(v.vm, KVM_CAP_DIRTY_LOG_RING_ACQ_REL,
				IT_RING_BYTES));
	EXPECT_EQ(0, its_setup(&v));
	EXPECT_EQ(0, its_save(&v));
	EXPECT_EQ(-ENXIO, dirty_log(v.vm, IT_SLOT, bits));
	memset(bits, 0, sizeof(bits));
	o = del(IT_SLOT);
	o.dirty_bitmap = (uintptr_t)bits;
	r = commit(dev, &o, 1, 0);
	EXPECT_EQ(0, r.err);
	EXPECT_EQ(1, r.dirty);
	EXPECT_TRUE(bit(bits, IT_COLL_PAGE));
	close(dev);
	its_close(&v);
}

/* Ring + bitmap + slot, in KVM's order; the ITS's page saved once. */
FIXTURE(rb)
{
	struct its_vm v;
	int dev;
};

FIXTURE_SETUP(rb)
{
	self->dev = -1;
	self->v.vm = -1;
	if (!its_have())
		SKIP(return, "no dirty ring with bitmap here (arm64 6.12+)");
	self->dev = kvmas_dev_open();
	ASSERT_GE(self->dev, 0);
	ring_vm(_metadata, &self->v, self->dev, 1);
	ASSERT_EQ(0, its_setup(&self->v));
	ASSERT_EQ(0, its_save(&self->v));
}

FIXTURE_TEARDOWN(rb)
{
	if (self->dev >= 0)
		close(self->dev);
	its_close(&self->v);
}

TEST_F(rb, saved_page_in_bitmap)
{
	uint64_t bits[IT_WORDS] = { 0 };
	unsigned int i, n = 0;

	ASSERT_EQ(0, dirty_log(self->v.vm, IT_SLOT, bits));
	EXPECT_TRUE(bit(bits, IT_COLL_PAGE));
	for (i = 0; i < IT_SIZE / 4096; i++)
		n += bit(bits, i);
	/* Only what the ITS wrote: nothing ran in this VM. */
	EXPECT_EQ(1, n);
}

/* A batch splits the slot after the save: the bit is handed back and kept. */
TEST_F(rb, split_hands_off_the_bit)
{
	uint64_t handed[IT_WORDS] = { 0 }, bits[IT_WORDS] = { 0 };
	struct kvmas_batch_op o[2];
	struct batch_res r;

	o[0] = op(KVMAS_OP_REPLACE, IT_SLOT, IT_GPA, IT_HALF, self->v.mem,
		  KVM_MEM_LOG_DIRTY_PAGES);
	o[0].dirty_bitmap = (uintptr_t)handed;
	o[1] = op(KVMAS_OP_CREATE, IT_SLOT2, IT_GPA + IT_HALF, IT_HALF,
		  self->v.mem + IT_HALF, KVM_MEM_LOG_DIRTY_PAGES);
	r = commit(self->dev, o, 2, 0);
	ASSERT_EQ(0, r.err);
	EXPECT_EQ(1, r.dirty);
	EXPECT_TRUE(bit(handed, IT_COLL_PAGE));
	/* Carried into the new slot 1, which covers that page. */
	ASSERT_EQ(0, dirty_log(self->v.vm, IT_SLOT, bits));
	EXPECT_TRUE(bit(bits, IT_COLL_PAGE));
	/* A second save after the split dirties it again, in the new slot. */
	memset(bits, 0, sizeof(bits));
	ASSERT_EQ(0, its_save(&self->v));
	ASSERT_EQ(0, dirty_log(self->v.vm, IT_SLOT, bits));
	EXPECT_TRUE(bit(bits, IT_COLL_PAGE));
}

/* A batch deletes the slot after the save: the bit is handed back. */
TEST_F(rb, delete_hands_off_the_bit)
{
	uint64_t handed[IT_WORDS] = { 0 };
	struct kvmas_batch_op o = del(IT_SLOT);
	struct batch_res r;

	o.dirty_bitmap = (uintptr_t)handed;
	r = commit(self->dev, &o, 1, 0);
	ASSERT_EQ(0, r.err);
	EXPECT_EQ(1, r.dirty);
	EXPECT_TRUE(bit(handed, IT_COLL_PAGE));
}

#else /* !__aarch64__ */

TEST(classic_log_and_orders)
{
	SKIP(return, "the vGIC ITS is arm64's");
}

#endif

TEST_HARNESS_MAIN
