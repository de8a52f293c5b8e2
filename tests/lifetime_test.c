// SPDX-License-Identifier: GPL-2.0
/*
 * Lifetime faults: what keeps a VM alive while the module works on it, and
 * what lets it go. The VM fd closed while another thread is inside large
 * commits or ring resets (the session's reference keeps the VM; closing
 * the session then frees it); owners SIGKILLed at random points of commits
 * and resets, hundreds of times, next to the same kill loop with stock
 * ioctls only (multi-threaded TCG has crashes of its own when VM owners die
 * in numbers: the control tells them apart); a session fd passed to another
 * process. After each: every VM freed (KVM's debugfs), the module's
 * reference count back where it was, no session left.
 */
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "batch_helpers.h"
#include "ringvm.h"
#include "kselftest_harness.h"

#define BIG_BATCH 256 /* ops per batch: a commit long enough to land in */

static long module_refcnt(void)
{
	return read_long_file("/sys/module/kvm_atomic_slots/refcnt");
}

/* VMs alive and module references, as a baseline to come back to. */
struct census {
	int vms;
	long refs;
};

static void census(struct census *c)
{
	c->vms = kvm_debugfs_nr_vms();
	c->refs = module_refcnt();
}

/* Waits up to 5 s for VMs and references to come back to @c. */
static int back_to(const struct census *c)
{
	struct census now;
	int i;

	for (i = 0; i < 500; i++) {
		census(&now);
		if (now.vms == c->vms && now.refs == c->refs)
			return 1;
		usleep(10 * 1000);
	}
	return 0;
}

/* Creates or deletes slots 16..16+@n in one batch. */
static int big_batch(int dev, uint8_t *m, int create, unsigned int n)
{
	static struct kvmas_batch_op ops[BIG_BATCH];
	unsigned int i;

	for (i = 0; i < n; i++)
		ops[i] = create ? op(KVMAS_OP_CREATE, 16 + i,
				     0x10000000ULL + i * 0x10000ULL, 0x10000,
				     m + i * 0x10000ULL,
				     KVM_MEM_LOG_DIRTY_PAGES) :
				  del(16 + i);
	return commit(dev, ops, n, 0).err;
}

struct committer {
	int dev;
	uint8_t *m;
	volatile int stop;
	unsigned long ok, failed;
};

static void *commit_loop(void *arg)
{
	struct committer *c = arg;
	int create = 1;

	while (!c->stop) {
		if (big_batch(c->dev, c->m, create, BIG_BATCH))
			c->failed++;
		else
			c->ok++;
		create = !create;
	}
	return NULL;
}

/*
 * The VM fd goes while another thread commits 256-op batches: the session
 * holds the VM, the commits go on succeeding; closing the session frees it.
 */
TEST(vm_fd_closed_during_commits)
{
	struct committer c = {};
	struct census base;
	pthread_t t;
	int vm;

	if (kvmas_cap(KVMAS_CAP_BATCH_COMMIT) <= 0)
		SKIP(return, "no batch commits here");
	census(&base);
	c.m = guest_mem(BIG_BATCH * 0x10000ULL);
	ASSERT_NE(NULL, c.m);
	vm = kvm_vm_create();
	c.dev = kvmas_dev_open();
	ASSERT_GE(vm, 0);
	ASSERT_GE(c.dev, 0);
	ASSERT_EQ(0, kvmas_attach(c.dev, vm));
	ASSERT_EQ(0, pthread_create(&t, NULL, commit_loop, &c));
	while (c.ok < 3)
		usleep(1000);
	close(vm);
	while (c.ok < 10)
		usleep(1000);
	c.stop = 1;
	pthread_join(t, NULL);
	EXPECT_EQ(0, c.failed);
	EXPECT_EQ(base.vms + 1, kvm_debugfs_nr_vms());
	close(c.dev);
	EXPECT_TRUE(back_to(&base));
	TH_LOG("%lu batches of %d ops, the VM fd closed after 3", c.ok,
	       BIG_BATCH);
}

struct resetter {
	struct ringvm *r;
	int dev;
	volatile int stop;
	unsigned long calls, failed;
};

static void *reset_loop(void *arg)
{
	struct resetter *x = arg;
	struct kvmas_ring_vcpu v = { .vcpu_id = 0 };
	struct kvmas_reset_ring c = { .size = sizeof(c),
				      .flags = KVMAS_RING_RESET_ALL_COLLECTED,
				      .nr_vcpus = 1,
				      .vcpu_size = sizeof(v),
				      .vcpus = (uintptr_t)&v };

	while (!x->stop) {
		if (ioctl(x->dev, KVMAS_RESET_RING, &c))
			x->failed++;
		x->calls++;
	}
	return NULL;
}

/* The same with the per-vCPU ring reset: the vCPU's ring stays mapped. */
TEST(vm_fd_closed_during_ring_resets)
{
	struct resetter x = {};
	struct census base;
	struct ringvm r;
	pthread_t t;
	int i;

	if (kvmas_cap(KVMAS_CAP_RING_RESET) <= 0)
		SKIP(return, "no per-vCPU ring reset here");
	census(&base);
	ASSERT_EQ(0, rv_create(&r, 1, 4096, 512));
	x.r = &r;
	x.dev = kvmas_dev_open();
	ASSERT_GE(x.dev, 0);
	ASSERT_EQ(0, kvmas_attach(x.dev, r.vm));
	ASSERT_EQ(0, pthread_create(&t, NULL, reset_loop, &x));
	for (i = 0; i < 4; i++) {
		ASSERT_EQ(0, rv_run_pass(&r, 0));
		rv_harvest(&r, 0);
	}
	/* Only the VM fd: the vCPU fd and its ring mapping stay. */
	close(r.vm);
	r.vm = -1;
	for (i = 0; i < 4; i++) {
		ASSERT_EQ(0, rv_run_pass(&r, 0));
		rv_harvest(&r, 0);
	}
	x.stop = 1;
	pthread_join(t, NULL);
	EXPECT_EQ(0, x.failed);
	close(x.dev);
	rv_destroy(&r);
	EXPECT_TRUE(back_to(&base));
	TH_LOG("%lu resets around the VM fd's close", x.calls);
}

/*
 * A child owns a VM, a session on it and a ring; it commits big batches and
 * resets its ring in a loop (@stock: the same VM work with stock ioctls
 * only) until it is SIGKILLed at a random point.
 */
static void victim(int stock)
{
	struct kvmas_ring_vcpu v = { .vcpu_id = 0 };
	struct kvmas_reset_ring c = { .size = sizeof(c),
				      .flags = KVMAS_RING_RESET_ALL_COLLECTED,
				      .nr_vcpus = 1,
				      .vcpu_size = sizeof(v),
				      .vcpus = (uintptr_t)&v };
	uint8_t *m = guest_mem(BIG_BATCH * 0x10000ULL);
	unsigned int i, create = 1;
	struct ringvm r;
	int dev = -1;

	/* No ring where KVM has none (arm64 6.1): the resets then fail. */
	if (!m || rv_create(&r, 1, rv_have_ring() ? 1024 : 0, 64))
		_exit(1);
	if (!stock) {
		dev = kvmas_dev_open();
		if (dev < 0 || kvmas_attach(dev, r.vm))
			_exit(1);
	}
	for (;;) {
		if (stock) {
			for (i = 0; i < 32; i++)
				kvm_set_slot(r.vm, 0, 16 + i,
					     KVM_MEM_LOG_DIRTY_PAGES,
					     0x10000000ULL + i * 0x10000ULL,
					     create ? 0x10000 : 0,
					     m + i * 0x10000ULL);
			rv_reset_all(&r);
		} else {
			big_batch(dev, m, create, BIG_BATCH);
			ioctl(dev, KVMAS_RESET_RING, &c);
		}
		create = !create;
		rv_run_pass(&r, 0);
		if (r.ring_entries)
			rv_harvest(&r, 0);
	}
}

/* @n children killed at random points; returns how many left VMs behind. */
static int kill_loop(struct __test_metadata *_metadata, int stock, int n)
{
	struct census base;
	int i, leaks = 0, st;
	pid_t pid;

	census(&base);
	for (i = 0; i < n; i++) {
		pid = fork();
		ASSERT_GE(pid, 0);
		if (!pid)
			victim(stock);
		usleep(2000 + rand() % 30000);
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
		if (!back_to(&base))
			leaks++;
	}
	return leaks;
}

FIXTURE(kill){};
FIXTURE_SETUP(kill)
{
}
FIXTURE_TEARDOWN(kill)
{
}

/* 150 owners killed mid-work with the module, 150 with stock ioctls only. */
TEST_F_TIMEOUT(kill, owners_killed_mid_work, 600)
{
	int with, control;

	if (kvmas_cap(KVMAS_CAP_BATCH_COMMIT) <= 0)
		SKIP(return, "no batch commits here");
	srand(getpid());
	control = kill_loop(_metadata, 1, 150);
	with = kill_loop(_metadata, 0, 150);
	EXPECT_EQ(0, control);
	EXPECT_EQ(0, with);
	TH_LOG("150 owners SIGKILLed mid-commit/reset: %d left a VM or a "
	       "module reference behind; stock control (150): %d",
	       with, control);
}

/*
 * A session fd handed to another process over a unix socket: every VM
 * command there is EPERM (the VM's mm is not its own), its close drops
 * nothing the owner still uses, and the owner goes on.
 */
TEST(session_fd_passed_to_another_process)
{
	struct kvmas_batch_op o;
	struct kvmas_vm_info info;
	struct census base;
	int sv[2], dev, vm, st;
	uint8_t *m = guest_mem(1 << 20);
	pid_t pid;

	census(&base);
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	vm = kvm_vm_create();
	dev = kvmas_dev_open();
	ASSERT_GE(vm, 0);
	ASSERT_GE(dev, 0);
	ASSERT_EQ(0, kvmas_attach(dev, vm));
	pid = fork();
	ASSERT_GE(pid, 0);
	if (!pid) {
		int got, bad = 0;

		close(sv[0]);
		/* A forked child has an mm of its own: not the VM's. */
		got = recv_fd(sv[1]);
		if (got < 0)
			_exit(10);
		bad |= kvmas_vm_info(got, &info) != -EPERM;
		o = op(KVMAS_OP_CREATE, 3, 0x100000, 1 << 20, m, 0);
		bad |= commit(got, &o, 1, 0).err != -EPERM;
		close(got);
		_exit(bad);
	}
	close(sv[1]);
	ASSERT_EQ(1, send_fd(sv[0], dev)); /* one byte sent */
	ASSERT_EQ(pid, waitpid(pid, &st, 0));
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0)
	TH_LOG("child status %#x", st);
	o = op(KVMAS_OP_CREATE, 3, 0x100000, 1 << 20, m, 0);
	EXPECT_EQ(0, commit(dev, &o, 1, 0).err);
	EXPECT_EQ(0, kvmas_vm_info(dev, &info));
	close(sv[0]);
	close(dev);
	close(vm);
	EXPECT_TRUE(back_to(&base));
}

TEST_HARNESS_MAIN
