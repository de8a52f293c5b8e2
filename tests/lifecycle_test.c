// SPDX-License-Identifier: GPL-2.0
/*
 * Module life cycle: rmmod is refused while a session exists (every open
 * file pins the module), and unload + reload cycles leave no trace. Runs
 * last in a boot because it unloads the module under test; the module file
 * path comes from $KVMAS_KO.
 */
#include <sys/syscall.h>
#include <sys/wait.h>

#include "kvm_helpers.h"
#include "kselftest_harness.h"

#define MODNAME "kvm_atomic_slots"

static int mod_unload(void)
{
	return sys_ret(syscall(SYS_delete_module, MODNAME, O_NONBLOCK));
}

static int mod_load(void)
{
	const char *path = getenv("KVMAS_KO");
	int fd, r;

	if (!path)
		return -ENOENT;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = sys_ret(syscall(SYS_finit_module, fd, "", 0));
	close(fd);
	return r;
}

static int dev_exists(void)
{
	return access(KVMAS_DEVICE_PATH, F_OK) == 0;
}

TEST(rmmod_refused_while_session_open)
{
	int dev = kvmas_dev_open(), vm = kvm_vm_create();
	struct kvmas_vm_info info;

	ASSERT_GE(dev, 0);
	ASSERT_GE(vm, 0);
	ASSERT_EQ(0, kvmas_attach(dev, vm));
	/* An attached session whose VM fd is gone still pins the module. */
	close(vm);
	EXPECT_EQ(-EWOULDBLOCK, mod_unload());
	EXPECT_TRUE(dev_exists());
	EXPECT_EQ(0, kvmas_vm_info(dev, &info));
	close(dev);
}

TEST(unload_reload_cycles)
{
	int i;

	for (i = 0; i < 20; i++) {
		int dev, vm;

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
}

TEST_HARNESS_MAIN
