// SPDX-License-Identifier: GPL-2.0
/*
 * Test builds of the module, loaded in place of the real one (runs last):
 *  - kvm_atomic_slots-missing.ko references a KVM function that kvm.ko does
 *    not have (KVMAS_TEST_MISSING_SYMBOL): it must refuse to load cleanly;
 *  - kvm_atomic_slots-kallsyms.ko uses the kallsyms route
 *    (KVMAS_FORCE_KALLSYMS): it must load, and on an IBT kernel (Debian 6.12,
 *    $KVMAS_KERNEL_IBT=1) find the internals' ENDBRs sealed and report the
 *    route unusable rather than call them; on 6.1 (no IBT) the route works.
 * The real module is loaded again at the end.
 */
#include "kvm_helpers.h"
#include "kselftest_harness.h"

static int load_file(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), r;

	if (fd < 0)
		return -errno;
	r = sys_ret(syscall(SYS_finit_module, fd, "", 0));
	close(fd);
	return r;
}

/* Unloads whatever kvm_atomic_slots is loaded, livepatch or not. */
static int unload_any(void)
{
	long ms = patch_disable();

	if (ms < 0)
		return ms;
	return access("/sys/module/" MODNAME, F_OK) ? 0 : mod_unload();
}

static int attach_once(void)
{
	int dev = kvmas_dev_open(), vm = kvm_vm_create(), r;

	r = dev < 0 ? dev : vm < 0 ? vm : kvmas_attach(dev, vm);
	if (dev >= 0)
		close(dev);
	if (vm >= 0)
		close(vm);
	return r;
}

TEST(missing_symbol_refused_cleanly)
{
	int r;

	ASSERT_EQ(0, unload_any());
	r = load_file("./kvm_atomic_slots-missing.ko");
	/* The livepatch core cannot resolve the relocation: init fails. */
	EXPECT_TRUE(r == -EINVAL || r == -ENOENT) TH_LOG("load returned %d", r);
	EXPECT_FALSE(dev_exists());
	EXPECT_FALSE(patch_present());
	EXPECT_NE(0, access("/sys/module/" MODNAME, F_OK));
	/* And the real module still loads afterwards. */
	ASSERT_EQ(0, mod_load());
	EXPECT_TRUE(dev_exists());
}

/* Collects the module's "kallsyms route:" lines from the kernel log. */
static void kmsg_grep(const char *needle, char *out, size_t len)
{
	int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK);
	char rec[1024];
	ssize_t n;
	size_t used = 0;

	out[0] = 0;
	if (fd < 0)
		return;
	while ((n = read(fd, rec, sizeof(rec) - 1)) > 0 ||
	       (n < 0 && errno == EPIPE)) {
		if (n <= 0)
			continue;
		rec[n] = 0;
		if (strstr(rec, needle) && used + n < len) {
			memcpy(out + used, rec, n + 1);
			used += n;
		}
	}
	close(fd);
}

TEST(kallsyms_route_checks_landing_pads)
{
	const char *ibt = getenv("KVMAS_KERNEL_IBT");
	int ibt_kernel = ibt && atoi(ibt);
	static char log[16384];

	ASSERT_EQ(0, unload_any());
	ASSERT_EQ(0, load_file("./kvm_atomic_slots-kallsyms.ko"));
	EXPECT_TRUE(dev_exists());
	EXPECT_FALSE(patch_present());
	EXPECT_EQ(0, kvmas_cap(KVMAS_CAP_ROUTE_LIVEPATCH));
	EXPECT_EQ(0, kvmas_cap(KVMAS_CAP_HARDENED_RING_RESET));
	/*
	 * Static KVM functions never get an ENDBR64: an IBT kernel must refuse
	 * to call them through a pointer (a real IBT CPU would raise #CP);
	 * without IBT they are callable. Global ones keep a live ENDBR unless
	 * the boot sealed it, which only happens on CPUs with IBT (not TCG).
	 */
	kmsg_grep("kallsyms route: kvm_swap_active_memslots", log, sizeof(log));
	if (ibt_kernel) {
		EXPECT_NE(
			NULL,
			strstr(log,
			       "kvm_swap_active_memslots unusable: no live ENDBR64"))
		TH_LOG("%s", log);
	} else {
		EXPECT_NE(NULL,
			  strstr(log, "kvm_swap_active_memslots callable"))
		TH_LOG("%s", log);
	}
	kmsg_grep("kallsyms route:", log, sizeof(log));
	TH_LOG("%s", log);
	/* At least one internal resolved and passed its check: the route counts. */
	EXPECT_EQ(1, kvmas_cap(KVMAS_CAP_ROUTE_KALLSYMS));
	/* Sessions work whatever the route. */
	EXPECT_EQ(0, attach_once());
	/* No livepatch: it unloads directly. */
	ASSERT_EQ(0, mod_unload());
	ASSERT_EQ(0, mod_load());
	EXPECT_TRUE(patch_present());
}

/* The operator's unload command does the whole livepatch sequence. */
TEST(cli_unload)
{
	int st;

	ASSERT_TRUE(patch_present());
	st = system("./kvmas unload");
	EXPECT_EQ(0, st);
	EXPECT_FALSE(patch_present());
	EXPECT_NE(0, access("/sys/module/" MODNAME, F_OK));
	ASSERT_EQ(0, mod_load());
	EXPECT_TRUE(dev_exists());
}

TEST_HARNESS_MAIN
