// SPDX-License-Identifier: GPL-2.0
/*
 * Races that need truly parallel vCPUs: run by tests/guest/race-all.sh in a
 * boot with multi-threaded TCG (single-threaded TCG runs one vCPU at a time
 * for whole time slices, so a racing writer never gets to race).
 *
 * A writer thread keeps re-arming RESET flags in a dirty ring while stock
 * KVM_RESET_DIRTY_RINGS walks it. Patched (our bounded kvm_dirty_ring_reset)
 * every call stops at what KVM pushed (16 entries), and SIGKILL stops a
 * resetter racing a writer that outlives it. Unpatched, one call chases the
 * writer for as long as it stays ahead, lap after lap, with no signal check:
 * the negative control that proves the first tests can fail.
 *
 * The killable cases need a resetter that is a separate process (so SIGKILL
 * spares the writer) yet shares the VM's mm (KVM refuses VM ioctls from
 * another mm): a clone(CLONE_VM) child.
 */
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#include "kvm_helpers.h"
#include "ringvm.h"
#include "kselftest_harness.h"

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int hardened(void)
{
	/* The patch is active once its transition has completed. */
	patch_wait_settled();
	return kvmas_cap(KVMAS_CAP_HARDENED_RING_RESET) > 0;
}

/*
 * Another process keeps setting RESET (with a slot/offset KVM must ignore)
 * on every entry of a ring that was never dirtied, for at most @secs.
 */
/* The walker and the writer must really run in parallel: separate CPUs. */
static void pin_to_cpu(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	sched_setaffinity(0, sizeof(set), &set);
}

struct race {
	struct ringvm r;
	volatile int stop; /* tells the writer to stop */
	uint64_t deadline_ms; /* the writer stops by itself then */
	volatile uint64_t calls; /* resets completed by the resetter */
	pthread_t writer;
};

/*
 * Re-arms every entry of vCPU 0's ring with an entry KVM must ignore (no
 * such slot, absurd offset). After setting those once it does nothing but
 * flag stores, faster than the kernel's walk, so the walker never finds an
 * entry that is not re-armed.
 */
static void *writer(void *arg)
{
	struct race *x = arg;
	uint32_t k, mask = x->r.ring_entries - 1;

	pin_to_cpu(1);
	for (k = 0; k <= mask; k++) {
		x->r.ring[0][k].slot = 0x7fff;
		x->r.ring[0][k].offset = 0xdeadbeef;
	}
	for (k = 0;; k++) {
		/* A VMM's release store, as the protocol wants. */
		__atomic_store_n(&x->r.ring[0][k & mask].flags,
				 KVM_DIRTY_GFN_F_RESET, __ATOMIC_RELEASE);
		if (!(k & 0xffff) && (x->stop || now_ms() > x->deadline_ms))
			break;
	}
	return NULL;
}

static int race_start(struct race *x, int secs)
{
	int r;

	memset(x, 0, sizeof(*x));
	pin_to_cpu(0);
	r = rv_create(&x->r, 1, RV_RING_ENTRIES, 16);
	if (r)
		return r;
	/* 16 entries KVM really pushed; the rest of the ring it never did. */
	r = rv_run_pass(&x->r, 0);
	if (r)
		return r < 0 ? r : -EIO;
	x->deadline_ms = now_ms() + secs * 1000ULL;
	if (pthread_create(&x->writer, NULL, writer, x))
		return -EAGAIN;
	usleep(50 * 1000);
	return 0;
}

static void race_stop(struct race *x)
{
	x->stop = 1;
	pthread_join(x->writer, NULL);
	rv_destroy(&x->r);
}

/* The resetter: a clone(CLONE_VM) child, raw syscalls only (no TLS errno). */
static int resetter(void *arg)
{
	struct race *x = arg;

	for (;;) {
		syscall(SYS_ioctl, x->r.vm, KVM_RESET_DIRTY_RINGS, 0);
		__atomic_add_fetch(&x->calls, 1, __ATOMIC_RELAXED);
	}
	return 0;
}

static pid_t start_resetter(struct race *x, void *stack, size_t size)
{
	return clone(resetter, (char *)stack + size, CLONE_VM | SIGCHLD, x);
}

/* Waits up to @ms for @pid to be reaped; returns the ms it took or -1. */
static long reap_within(pid_t pid, int ms)
{
	uint64_t t0 = now_ms();
	int status;

	while (now_ms() - t0 < (uint64_t)ms) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			return now_ms() - t0;
		usleep(5 * 1000);
	}
	return -1;
}

/*
 * Stock resets until @deadline_ms or a call returns more than @stop_above
 * entries; reports the largest count and the slowest call. Returns the number
 * of calls, or -errno.
 */
static int timed_resets(struct race *x, uint64_t deadline_ms, int max_calls,
			int stop_above, int *max, uint64_t *worst)
{
	int calls = 0, ret;
	uint64_t t0;

	*max = 0;
	*worst = 0;
	while (calls < max_calls && now_ms() < deadline_ms &&
	       *max <= stop_above) {
		t0 = now_ms();
		ret = rv_reset_all(&x->r);
		if (ret < 0)
			return ret;
		if (now_ms() - t0 > *worst)
			*worst = now_ms() - t0;
		if (ret > *max)
			*max = ret;
		calls++;
	}
	return calls;
}

TEST(hostile_reset_is_bounded)
{
	uint64_t worst;
	int max, calls;
	struct race x;

	if (!hardened())
		SKIP(return,
			   "stock reset would spin for as long as the writer writes");
	ASSERT_EQ(0, race_start(&x, 30));
	/* 200 calls, no time limit, never stop early on a large count. */
	calls = timed_resets(&x, UINT64_MAX, 200, INT_MAX, &max, &worst);
	race_stop(&x);
	ASSERT_EQ(200, calls);
	/*
	 * Never past what KVM pushed (stock would walk the writer's marks
	 * around the ring, lap after lap, and leave reset_index ahead of
	 * dirty_index, which makes the next push WARN).
	 */
	EXPECT_EQ(16, max);
	TH_LOG("%d calls under a hostile writer: max %d entries, slowest %llu ms",
	       calls, max, (unsigned long long)worst);
}

TEST(hostile_resetter_is_killable)
{
	static char stack[64 * 1024] __attribute__((aligned(16)));
	struct race x;
	pid_t child;
	long ms;

	if (!hardened())
		SKIP(return, "stock reset is unkillable here");
	ASSERT_EQ(0, race_start(&x, 30));
	child = start_resetter(&x, stack, sizeof(stack));
	ASSERT_GT(child, 0);
	usleep(300 * 1000);
	EXPECT_GT(x.calls, 10);
	kill(child, SIGKILL);
	ms = reap_within(child, 3000);
	EXPECT_GE(ms, 0) TH_LOG("resetter still stuck 3 s after SIGKILL");
	TH_LOG("%llu bounded resets in 300 ms; resetter gone %ld ms after SIGKILL",
	       (unsigned long long)x.calls, ms);
	race_stop(&x);
	if (ms < 0)
		waitpid(child, NULL, 0);
}

/*
 * The negative control: with our patch disabled, a single stock call keeps
 * chasing the writer past one lap of the ring, as far as the writer stays
 * ahead (in a VM any hiccup of the writer thread lets the walk catch up, so
 * the chase ends sooner or later here; on a host it need not). The patched
 * tests above can therefore fail. Afterwards the module is reloaded
 * (patched again) for the tests that follow.
 */
TEST(stock_reset_exceeds_bound_unpatched)
{
	uint64_t worst;
	int max, calls;
	struct race x;
	long ms;

	if (!patch_present())
		SKIP(return, "no livepatch route on this kernel");
	/* Text patching with one CPU up (see cpu_set_online()). */
	cpu_set_online(1, 0);
	ms = patch_disable();
	cpu_set_online(1, 1);
	ASSERT_GE(ms, 0) TH_LOG("disabling the livepatch: %s", strerror(-ms));
	ASSERT_EQ(0, kvmas_cap(KVMAS_CAP_HARDENED_RING_RESET));

	ASSERT_EQ(0, race_start(&x, 20));
	/* Up to 5 s, until one call goes past two laps. */
	calls = timed_resets(&x, now_ms() + 5000, INT_MAX, 2 * 1024, &max,
			     &worst);
	race_stop(&x);
	ASSERT_GE(calls, 1);
	/* More than two laps of a 1024-entry ring in one call. */
	EXPECT_GT(max, 2 * 1024);
	TH_LOG("unpatched: one call reset %d entries of a 1024-entry ring "
	       "(%d calls, longest %llu ms)",
	       max, calls, (unsigned long long)worst);
	cpu_set_online(1, 0);
	ASSERT_EQ(0, mod_unload());
	ASSERT_EQ(0, mod_load());
	patch_wait_settled();
	cpu_set_online(1, 1);
	EXPECT_TRUE(patch_present());
}

TEST_HARNESS_MAIN
