// SPDX-License-Identifier: GPL-2.0
/*
 * libkvmas-preload.so in a real guest kernel: the unmodified "VMM"
 * preload_vm (plain KVM ioctls, dynamically linked) runs with and without
 * LD_PRELOAD, and this suite compares what it saw: holes in DELETE+CREATE
 * resizes/splits/merges, return values and errnos of bad inputs, the timer
 * flush of a lone DELETE, QEMU 7.2's per-address-space PAM pattern, the
 * shim's counters, pass-through when the module is absent, and the cost of a
 * vCPU ioctl.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kselftest_harness.h"

#define SHIM "/payload/libkvmas-preload.so"
#define CNT "/tmp/kvmas-preload.counters"

static char out[65536];

/* Runs preload_vm MODE ARG; @preload: with the shim. Returns its status. */
static int run_vm(int preload, const char *extra_env, const char *mode,
		  const char *arg)
{
	char *argv[] = { "./preload_vm", (char *)mode, (char *)arg, NULL };
	char *envp[8];
	int p[2], n = 0, st;
	size_t len = 0;
	ssize_t k;
	pid_t pid;

	envp[n++] = "PATH=/payload:/bin:/sbin";
	envp[n++] = "KVMAS_PRELOAD_LOG=" CNT;
	if (preload)
		envp[n++] = "LD_PRELOAD=" SHIM;
	if (extra_env)
		envp[n++] = (char *)extra_env;
	envp[n] = NULL;
	unlink(CNT);
	if (pipe(p))
		return -1;
	pid = fork();
	if (!pid) {
		dup2(p[1], 1);
		close(p[0]);
		execve(argv[0], argv, envp);
		_exit(127);
	}
	close(p[1]);
	while ((k = read(p[0], out + len, sizeof(out) - 1 - len)) > 0)
		len += k;
	out[len] = 0;
	close(p[0]);
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* "key=N" in @s, or -1. */
static long long field(const char *s, const char *key)
{
	char k[64];
	const char *p;

	snprintf(k, sizeof(k), "%s=", key);
	for (p = s; (p = strstr(p, k)); p++)
		if (p == s || p[-1] == ' ' || p[-1] == '\n')
			return atoll(p + strlen(k));
	return -1;
}

static long long counter(const char *key)
{
	static char buf[4096];
	int fd = open(CNT, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = 0;
	return field(buf, key);
}

static void dump_counters(void)
{
	char buf[4096];
	int fd = open(CNT, O_RDONLY);
	ssize_t n;
	char *l;

	if (fd < 0)
		return;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = 0;
	for (l = strtok(buf, "\n"); l; l = strtok(NULL, "\n"))
		printf("#   %s\n", l);
}

/*
 * Stock DELETE+CREATE leaves a window with no slot: vCPU0 (executing in the
 * slot) takes MMIO exits or emulation failures there. Proves the workload
 * can see holes, so the shim's 0 below means something.
 */
TEST(resize_stock_has_holes)
{
	ASSERT_EQ(0, run_vm(0, NULL, "resize", "400"));
	printf("# stock: %s", out);
	ASSERT_EQ(400, field(out, "iters"));
	ASSERT_EQ(0, field(out, "fatal"));
	EXPECT_GT(field(out, "holes"), 0);
	EXPECT_GT(field(out, "mmio_stat"), 0);
}

/* The same with the shim: every change is one atomic batch, 0 holes. */
TEST(resize_shim_no_holes)
{
	ASSERT_EQ(0, run_vm(1, NULL, "resize", "400"));
	printf("# shim: %s", out);
	dump_counters();
	ASSERT_EQ(400, field(out, "iters"));
	ASSERT_EQ(0, field(out, "rc"));
	EXPECT_EQ(0, field(out, "fatal"));
	EXPECT_EQ(0, field(out, "holes"));
	EXPECT_EQ(0, field(out, "mmio_stat"));
	EXPECT_GT(field(out, "calls"), 0);
	/* 400 changes: 500 DELETEs held (merges delete two). */
	EXPECT_EQ(500, counter("held"));
	EXPECT_EQ(400, counter("batched"));
	EXPECT_EQ(0, counter("batch_failed"));
	EXPECT_EQ(0, counter("fallbacks"));
	/* Grow, split, merge complete; a shrink is flushed by what follows. */
	EXPECT_EQ(300, counter("flush_complete"));
	EXPECT_EQ(100, counter("flush_conflict") + counter("flush_timer") +
			       counter("flush_exit") +
			       counter("flush_vcpu_ioctl"));
	/* Only the setup's CREATEs of slot 0 and 1 went to KVM directly. */
	EXPECT_EQ(2, counter("passed_through"));
}

/*
 * KVMAS_PRELOAD_ZAP_RANGE=1: the same, every batch committed with
 * KVMAS_BATCH_ZAP_RANGE (the module accepted the flag each time).
 */
TEST(resize_shim_zap_range)
{
	ASSERT_EQ(0, run_vm(1, "KVMAS_PRELOAD_ZAP_RANGE=1", "resize", "200"));
	printf("# shim, zap range: %s", out);
	dump_counters();
	ASSERT_EQ(200, field(out, "iters"));
	EXPECT_EQ(0, field(out, "fatal"));
	EXPECT_EQ(0, field(out, "holes"));
	EXPECT_EQ(200, counter("batched"));
	EXPECT_EQ(counter("batched"), counter("zap_range_batches"));
	EXPECT_EQ(0, counter("batch_failed"));
}

/* Every call returns what stock KVM returns, errno included. */
TEST(errno_equal)
{
	static char stock[65536];

	ASSERT_EQ(0, run_vm(0, NULL, "errno", NULL));
	strcpy(stock, out);
	ASSERT_EQ(0, run_vm(1, NULL, "errno", NULL));
	dump_counters();
	if (strcmp(stock, out)) {
		printf("# stock:\n%s# shim:\n%s", stock, out);
		ASSERT_TRUE(0);
	}
	/* The shim did hold and batch here, not just pass everything on. */
	EXPECT_GT(counter("held"), 3);
	EXPECT_GT(counter("batched"), 3);
	EXPECT_GT(counter("validate_refused"), 0);
	EXPECT_EQ(0, counter("batch_failed"));
}

/*
 * A DELETE with no ioctl after it (set_memory_region_test's delete test):
 * the helper thread commits it within the hold time; the vCPU sees the slot
 * gone well inside the 2 s that test allows.
 */
TEST(timer_flush)
{
	ASSERT_EQ(0, run_vm(1, "KVMAS_PRELOAD_HOLD_MS=20", "timer", NULL));
	printf("# shim: %s", out);
	dump_counters();
	ASSERT_EQ(1, field(out, "seen"));
	EXPECT_EQ(1, counter("held"));
	EXPECT_EQ(1, counter("flush_timer"));
	/* 20 ms hold + the commit + the vCPU's next fault, under TCG. */
	EXPECT_LT(field(out, "latency_ms"), 1000);
	ASSERT_EQ(0, run_vm(0, NULL, "timer", NULL));
	printf("# stock: %s", out);
	ASSERT_EQ(1, field(out, "seen"));
}

/*
 * QEMU 7.2's PAM change, per address space (0, then SMM's 1): DELETE, then
 * RAM + read-only ROM with another HVA + RAM. One batch per address space,
 * each complete when its CREATEs re-cover the deleted range; the layout
 * then reads the same as stock's.
 */
TEST(pam_pattern_per_address_space)
{
	static char stock[8192];

	ASSERT_EQ(0, run_vm(0, NULL, "smm", NULL));
	strcpy(stock, out);
	ASSERT_EQ(0, run_vm(1, NULL, "smm", NULL));
	dump_counters();
	EXPECT_STREQ(stock, out);
	EXPECT_EQ(0, field(out, "rc"));
	EXPECT_EQ(2, counter("held"));
	EXPECT_EQ(2, counter("batched"));
	EXPECT_EQ(6, counter("ops_batched")); /* 2 x (REPLACE + 2 CREATE) */
	EXPECT_EQ(2, counter("flush_complete"));
}

/*
 * KVM_SET_USER_MEMORY_REGION2 (6.12; 6.1 answers ENOTTY, and so must the
 * shim): held and batched like the first version where KVM has it.
 */
TEST(region2)
{
	static char stock[4096];

	ASSERT_EQ(0, run_vm(0, NULL, "v2", NULL));
	strcpy(stock, out);
	ASSERT_EQ(0, run_vm(1, NULL, "v2", NULL));
	printf("# %s", out);
	dump_counters();
	EXPECT_STREQ(stock, out);
	if (strstr(out, "v2-create rc=0")) {
		EXPECT_EQ(1, counter("held"));
		EXPECT_EQ(1, counter("batched"));
		EXPECT_EQ(1, counter("flush_complete"));
	} else {
		EXPECT_EQ(0, counter("held"));
	}
}

/* No module device: one fallback, everything passes through, same errnos. */
TEST(fallback_without_device)
{
	static char stock[65536];

	ASSERT_EQ(0, run_vm(0, NULL, "errno", NULL));
	strcpy(stock, out);
	ASSERT_EQ(0, run_vm(1, "KVMAS_DEVICE=/nonexistent", "errno", NULL));
	dump_counters();
	EXPECT_STREQ(stock, out);
	EXPECT_EQ(1, counter("fallbacks"));
	EXPECT_EQ(0, counter("held"));
	EXPECT_EQ(0, counter("batched"));
}

/*
 * What flushes a held DELETE: munmap of its memory, fork, a vCPU ioctl
 * (from another thread it first waits for the group until the deadline;
 * from the holding thread it flushes at once), close of the VM.
 * Each returns what stock returns.
 */
TEST(flush_triggers)
{
	static char stock[4096];

	ASSERT_EQ(0, run_vm(0, NULL, "hooks", NULL));
	strcpy(stock, out);
	ASSERT_EQ(0, run_vm(1, "KVMAS_PRELOAD_HOLD_MS=200", "hooks", NULL));
	printf("# stock:\n%s# shim:\n%s", stock, out);
	dump_counters();
	EXPECT_EQ(0, field(out, "rc"));
	EXPECT_EQ(0, field(out, "munmap"));
	EXPECT_EQ(0, field(out, "get_regs"));
	EXPECT_EQ(0, field(out, "close"));
	EXPECT_EQ(5, counter("held"));
	EXPECT_EQ(1, counter("flush_mm"));
	EXPECT_EQ(1, counter("flush_fork"));
	/*
	 * The other thread's ioctl waits until the deadline; then it or the
	 * helper thread commits, whichever runs first. The holding thread's
	 * own ioctl commits itself.
	 */
	EXPECT_GE(counter("flush_vcpu_ioctl"), 1);
	EXPECT_EQ(2, counter("flush_vcpu_ioctl") + counter("flush_timer"));
	EXPECT_GT(counter("vcpu_waits"), 0);
	EXPECT_EQ(1, counter("flush_close"));
	/* The vCPU ioctl waited for the group, at most one 200 ms hold. */
	EXPECT_GE(field(out, "waited_ms"), 150);
	EXPECT_LT(field(out, "waited_ms"), 1000);
	/* The holding thread's own vCPU ioctl does not wait. */
	EXPECT_LT(field(out, "self_waited_ms"), 100);
}

/*
 * Dirty bits: stock drops the deleted slot's bitmap and the new slot's
 * starts empty; with the shim the module carries the bits into the new
 * slot, so the VMM sees a superset (the pages the guest wrote before).
 */
TEST(dirty_bits_carried)
{
	ASSERT_EQ(0, run_vm(0, NULL, "dirty", NULL));
	printf("# stock: %s", out);
	ASSERT_EQ(0, field(out, "rc"));
	ASSERT_GT(field(out, "calls"), 0);
	EXPECT_EQ(0, field(out, "dirty_pages"));
	ASSERT_EQ(0, run_vm(1, NULL, "dirty", NULL));
	printf("# shim: %s", out);
	ASSERT_EQ(0, field(out, "rc"));
	ASSERT_GT(field(out, "calls"), 0);
	/* vCPU0's function page and data page. */
	EXPECT_GE(field(out, "dirty_pages"), 1);
	EXPECT_EQ(1, counter("batched"));
}

/* The hot path: a vCPU ioctl costs the same with the shim (no lock). */
TEST(vcpu_ioctl_cost)
{
	double stock = 0, shim = 0, v;
	int i;

	/* Best of 3 each, interleaved: TCG timing is noisy. */
	for (i = 0; i < 3; i++) {
		ASSERT_EQ(0, run_vm(0, NULL, "bench", "20000"));
		v = field(out, "ns_per_call");
		if (!stock || v < stock)
			stock = v;
		ASSERT_EQ(0, run_vm(1, NULL, "bench", "20000"));
		v = field(out, "ns_per_call");
		if (!shim || v < shim)
			shim = v;
	}
	printf("# KVM_GET_REGS: stock %.0f ns, shim %.0f ns (%.2fx)\n", stock,
	       shim, shim / stock);
	ASSERT_GT(stock, 0);
	EXPECT_LT(shim / stock, 1.25);
}

TEST_HARNESS_MAIN
