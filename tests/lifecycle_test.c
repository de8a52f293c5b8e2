// SPDX-License-Identifier: GPL-2.0
/*
 * Module life cycle. On the livepatch route the patch holds a reference on
 * the module: rmmod is refused until the patch is disabled through sysfs and
 * its transition has finished. An open session pins the module too. Unload
 * + reload cycles leave no trace. Runs last in a boot because it unloads the
 * module under test; the module file comes from $KVMAS_KO.
 */
#include "kvm_helpers.h"
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

TEST_HARNESS_MAIN
