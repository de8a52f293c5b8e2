// SPDX-License-Identifier: GPL-2.0
/*
 * Module life cycle. On the livepatch route the patch holds a reference on
 * the module: rmmod is refused until the patch is disabled through sysfs and
 * its transition has finished. An open session pins the module too. Unload
 * + reload cycles leave no trace. Runs last in a boot because it unloads the
 * module under test; the module file comes from $KVMAS_KO.
 */
#include <pthread.h>

#include "batch_helpers.h"
#include "kselftest_harness.h"

TEST(patch_pins_module)
{
	if (!patch_present())
		SKIP(return, "no livepatch route on this kernel");
	EXPECT_EQ(-EWOULDBLOCK, mod_unload());
	EXPECT_TRUE(dev_exists());
	EXPECT_EQ(1, kvmas_cap(KVMAS_CAP_ROUTE_LIVEPATCH));
}

TEST(rmmod_refused_while_session_open)
{
	int dev = kvmas_dev_open(), vm = kvm_vm_create();
	struct kvmas_vm_info info;
	long ms;

	ASSERT_GE(dev, 0);
	ASSERT_GE(vm, 0);
	ASSERT_EQ(0, kvmas_attach(dev, vm));
	/* An attached session whose VM fd is gone still pins the module. */
	close(vm);
	ms = patch_disable();
	ASSERT_GE(ms, 0) TH_LOG("disabling the livepatch: %s", strerror(-ms));
	/* With the patch gone the internals are withdrawn, the session lives. */
	EXPECT_EQ(0,
		  ioctl(dev, KVMAS_CHECK_EXTENSION, KVMAS_CAP_ROUTE_LIVEPATCH));
	EXPECT_EQ(0, ioctl(dev, KVMAS_CHECK_EXTENSION,
			   KVMAS_CAP_HARDENED_RING_RESET));
	EXPECT_EQ(-EWOULDBLOCK, mod_unload());
	EXPECT_TRUE(dev_exists());
	EXPECT_EQ(0, kvmas_vm_info(dev, &info));
	close(dev);
	ASSERT_EQ(0, mod_unload());
	ASSERT_FALSE(dev_exists());
	ASSERT_EQ(0, mod_load());
}

FIXTURE(cycles){};
FIXTURE_SETUP(cycles)
{
}
FIXTURE_TEARDOWN(cycles)
{
}

/* A livepatch transition takes up to ~2 s under TCG: 20 cycles need time. */
TEST_F_TIMEOUT(cycles, unload_reload, 240)
{
	long ms, worst = 0;
	int i;

	for (i = 0; i < 20; i++) {
		int dev, vm;

		ms = patch_disable();
		ASSERT_GE(ms, 0) TH_LOG("cycle %d: %s", i, strerror(-ms));
		if (ms > worst)
			worst = ms;
		ASSERT_EQ(0, mod_unload()) TH_LOG("cycle %d", i);
		ASSERT_FALSE(dev_exists());
		ASSERT_EQ(0, mod_load()) TH_LOG("cycle %d", i);
		/* devtmpfs creates the node synchronously in misc_register(). */
		ASSERT_TRUE(dev_exists());
		dev = kvmas_dev_open();
		vm = kvm_vm_create();
		ASSERT_GE(dev, 0);
		ASSERT_GE(vm, 0);
		ASSERT_EQ(0, kvmas_attach(dev, vm));
		close(vm);
		close(dev);
	}
	TH_LOG("20 disable/unload/reload cycles; slowest disable %ld ms",
	       worst);
}

struct busy {
	int dev;
	int stock_vm; /* >= 0: the control, stock ioctls on this VM */
	int id;
	uint8_t *m;
	volatile int stop;
	unsigned long ok, withdrawn, other;
	int last_err;
};

/*
 * Three slots of the session's own, resized together: a batch removing
 * more than two slots leaves their memory to the session's reaper, which
 * the livepatch disable must wait for like a call in flight.
 */
#define BUSY_TRIO 3

static int busy_trio(struct busy *b, unsigned long i, unsigned int kind)
{
	struct kvmas_batch_op o[BUSY_TRIO];
	int k;

	for (k = 0; k < BUSY_TRIO; k++)
		o[k] = op(kind, 10 + BUSY_TRIO * b->id + k,
			  0x4000000 + b->id * 0x100000 + k * 0x40000,
			  (i & 1) ? 0x20000 : 0x40000, b->m + k * 0x40000, 0);
	return commit(b->dev, o, BUSY_TRIO, 0).err;
}

/*
 * Resizes slot 1 back and forth with one-op batches, and every other call
 * the session's three slots, until told to stop.
 */
static void *busy_loop(void *arg)
{
	struct busy *b = arg;
	struct kvmas_batch_op o;
	unsigned long i;
	int r;

	if (b->stock_vm < 0 && busy_trio(b, 0, KVMAS_OP_CREATE))
		b->other++;
	for (i = 0; !b->stop; i++) {
		o = op(KVMAS_OP_REPLACE, 1, 0x100000, (1 + (i & 1)) << 20, b->m,
		       KVM_MEM_LOG_DIRTY_PAGES);
		if (b->stock_vm < 0 && (i & 1)) {
			r = busy_trio(b, i / 2, KVMAS_OP_REPLACE);
		} else if (b->stock_vm >= 0) {
			r = kvm_set_slot(b->stock_vm, 0, 2 + b->id, 0,
					 0x1000000 + b->id * 0x200000,
					 ((i + 1) & 1) << 20, b->m);
			if (r == -EOPNOTSUPP)
				r = -EIO; /* never expected from stock */
		} else {
			r = commit(b->dev, &o, 1, 0).err;
		}
		if (!r) {
			b->ok++;
		} else if (r == -EOPNOTSUPP) {
			b->withdrawn++;
		} else {
			b->other++;
			b->last_err = r;
		}
		/*
		 * Busy, not spinning: with two vCPUs executing these calls
		 * back to back (each passes the cond_resched() static call
		 * many times), the text patching that ends the livepatch
		 * transition (sched_dynamic_klp_disable()) was seen to never
		 * finish under TCG; the stock control took 11 s. Open.
		 */
		usleep(200);
	}
	return NULL;
}

/*
 * Disabled right after loading, while the patch's first transition still
 * runs: the livepatch core reverses that transition (skipping pre_unpatch).
 * The features that need KVM internals must be withdrawn all the same.
 */
TEST_F_TIMEOUT(cycles, disable_during_first_transition, 120)
{
	struct kvmas_batch_op o;
	uint8_t *m = guest_mem(1 << 20);
	int dev, vm, i;
	long ms;

	if (!patch_present())
		SKIP(return, "no livepatch route on this kernel");
	for (i = 0; i < 3; i++) {
		ms = patch_disable();
		ASSERT_GE(ms, 0) TH_LOG("round %d: %s", i, strerror(-ms));
		ASSERT_EQ(0, mod_unload());
		ASSERT_EQ(0, mod_load());
		dev = kvmas_dev_open();
		vm = kvm_vm_create();
		ASSERT_GE(dev, 0);
		ASSERT_GE(vm, 0);
		ASSERT_EQ(0, kvmas_attach(dev, vm));
		/* At once: the transition started by the load is running. */
		ms = patch_disable();
		ASSERT_GE(ms, 0) TH_LOG("round %d: %s", i, strerror(-ms));
		EXPECT_EQ(0, kvmas_cap(KVMAS_CAP_BATCH_COMMIT));
		EXPECT_EQ(0, kvmas_cap(KVMAS_CAP_RING_RESET));
		o = op(KVMAS_OP_CREATE, 1, 0x100000, 1 << 20, m, 0);
		EXPECT_EQ(-EOPNOTSUPP, commit(dev, &o, 1, 0).err);
		close(vm);
		close(dev);
		ASSERT_EQ(0, mod_unload());
		ASSERT_EQ(0, mod_load());
	}
}

FIXTURE(busy){};
FIXTURE_VARIANT(busy)
{
	int stock; /* the control: the same threads, stock ioctls only */
};
FIXTURE_VARIANT_ADD(busy, commits){
	.stock = 0,
};
FIXTURE_VARIANT_ADD(busy, stock_control){
	.stock = 1,
};
FIXTURE_SETUP(busy)
{
}
FIXTURE_TEARDOWN(busy)
{
}

/*
 * The documented unload while two sessions commit flat out: the patch's
 * transition waits for the commits in flight, later ones are refused with
 * EOPNOTSUPP (never another error, never a crash), rmmod is refused while
 * the sessions are open, and works once they are closed. The control runs
 * the same threads with stock memslot ioctls instead.
 */
TEST_F_TIMEOUT(busy, disable_while_busy, 120)
{
	struct busy b[2] = {};
	pthread_t t[2];
	int vm, i;
	long ms;

	if (!patch_present())
		SKIP(return, "no livepatch route on this kernel");
	/* A disable during the first transition reverses it: see below. */
	patch_wait_settled();
	vm = kvm_vm_create();
	ASSERT_GE(vm, 0);
	for (i = 0; i < 2; i++) {
		b[i].dev = kvmas_dev_open();
		b[i].m = guest_mem(2 << 20);
		b[i].stock_vm = variant->stock ? vm : -1;
		b[i].id = i;
		ASSERT_GE(b[i].dev, 0);
		ASSERT_NE(NULL, b[i].m);
		ASSERT_EQ(0, kvmas_attach(b[i].dev, vm));
	}
	{
		struct kvmas_batch_op o =
			op(KVMAS_OP_CREATE, 1, 0x100000, 1 << 20, b[0].m, 0);

		ASSERT_EQ(0, commit(b[0].dev, &o, 1, 0).err);
	}
	for (i = 0; i < 2; i++)
		ASSERT_EQ(0, pthread_create(&t[i], NULL, busy_loop, &b[i]));
	while (b[0].ok + b[1].ok < 50)
		usleep(1000);
	ms = patch_disable();
	ASSERT_GE(ms, 0) TH_LOG("disabling the livepatch: %s", strerror(-ms));
	while (!variant->stock && b[0].withdrawn + b[1].withdrawn < 10)
		usleep(1000);
	EXPECT_EQ(-EWOULDBLOCK, mod_unload());
	for (i = 0; i < 2; i++) {
		b[i].stop = 1;
		pthread_join(t[i], NULL);
		EXPECT_EQ(0, b[i].other)
		TH_LOG("session %d: error %d", i, b[i].last_err);
		close(b[i].dev);
	}
	close(vm);
	ASSERT_EQ(0, mod_unload());
	ASSERT_EQ(0, mod_load());
	TH_LOG("disable took %ld ms with %lu+%lu calls done, then %lu+%lu refused",
	       ms, b[0].ok, b[1].ok, b[0].withdrawn, b[1].withdrawn);
}

TEST_HARNESS_MAIN
