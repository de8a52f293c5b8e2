// SPDX-License-Identifier: GPL-2.0
/*
 * KVMAS_RESET_RING, the per-vCPU ordered dirty-ring reset, and libkvmas's
 * harvest helpers, against real dirty rings of real KVM guests.
 *
 * The guest (tests/ringvm.c) is one flat 32-bit loop per vCPU writing one
 * dword into every page of its own stripe of a dirty-logged slot, then HLT:
 * a pass dirties exactly the stripe, so what a ring must report is known.
 */
#include <pthread.h>
#include <signal.h>
#include <sys/time.h>
#include <sched.h>
#include <time.h>

#include "kvm_helpers.h"
#include "kvmas.h"
#include "ring_epochs.h"
#include "ringvm.h"
#include "kselftest_harness.h"

/* A session attached to @vm, as a libkvmas handle. */
static struct kvmas *attach(int vm)
{
	struct kvmas *kv;

	if (kvmas_open(&kv))
		return NULL;
	if (kvmas_attach_vm(kv, vm)) {
		kvmas_close(kv);
		return NULL;
	}
	return kv;
}

/* A one-vCPU ring VM with @pages per pass, attached, seen by libkvmas. */
static struct kvmas *one_vcpu(struct ringvm *r, uint32_t ring, uint32_t pages,
			      struct kvmas_ring *kr)
{
	struct kvmas *kv;

	if (rv_create(r, 1, ring, pages))
		return NULL;
	kv = attach(r->vm);
	rv_ring(r, 0, kr);
	return kv;
}

/* One raw KVMAS_RESET_RING for one vCPU. */
static int reset_one(struct kvmas *kv, uint32_t vcpu, uint32_t boundary,
		     uint32_t flags, uint32_t max, struct kvmas_ring_vcpu *v,
		     struct kvmas_reset_ring *c)
{
	memset(v, 0, sizeof(*v));
	memset(c, 0, sizeof(*c));
	v->vcpu_id = vcpu;
	v->boundary = boundary;
	c->size = sizeof(*c);
	c->flags = flags;
	c->nr_vcpus = 1;
	c->vcpu_size = sizeof(*v);
	c->vcpus = (uintptr_t)v;
	c->max_entries = max;
	return sys_ret(ioctl(kvmas_fd(kv), KVMAS_RESET_RING, c));
}

/* Marks the next @n entries collected, as a VMM would (no callback). */
static uint32_t collect(struct kvmas_ring *kr, uint32_t n)
{
	return kvmas_ring_harvest(kr, NULL, NULL, n);
}

/*
 * The capability says what KVMAS_RESET_RING does: parallel exactly when the
 * stock reset is ours (it takes the ring locks), and a call on a real ring
 * succeeds when the capability is there, EOPNOTSUPP when it is not.
 */
TEST(capability)
{
	RV_NEED_RING();
	struct kvmas_reset_ring c;
	struct kvmas_ring_vcpu v;
	struct ringvm r;
	struct kvmas *kv;
	int cap, ret;

	patch_wait_settled();
	cap = kvmas_cap(KVMAS_CAP_RING_RESET);
	TH_LOG("KVMAS_CAP_RING_RESET = %d", cap);
	if (kvmas_cap(KVMAS_CAP_HARDENED_RING_RESET) > 0) {
		EXPECT_EQ(KVMAS_RING_RESET_PARALLEL, cap);
	} else {
		EXPECT_TRUE(cap == 0 || cap == KVMAS_RING_RESET_SERIAL);
	}

	ASSERT_EQ(0, rv_create(&r, 1, RV_RING_ENTRIES, 8));
	kv = attach(r.vm);
	ASSERT_NE(NULL, kv);
	ASSERT_EQ(0, rv_run_pass(&r, 0));
	ASSERT_EQ(8, rv_harvest(&r, 0));
	ret = reset_one(kv, 0, 0, KVMAS_RING_RESET_ALL_COLLECTED, 0, &v, &c);
	if (cap > 0) {
		EXPECT_EQ(0, ret);
		EXPECT_EQ(8, v.reset);
	} else {
		EXPECT_EQ(-EOPNOTSUPP, ret);
	}
	kvmas_close(kv);
	rv_destroy(&r);
}

TEST(bad_input)
{
	RV_NEED_RING();
	struct kvmas_ring_vcpu v[2];
	struct kvmas_reset_ring c;
	struct ringvm r, nr;
	struct kvmas *kv, *kv2;
	int dev;

	ASSERT_EQ(0, rv_create(&r, 1, RV_RING_ENTRIES, 8));
	kv = attach(r.vm);
	ASSERT_NE(NULL, kv);

	EXPECT_EQ(-EINVAL, reset_one(kv, 0, 0, 1U << 7, 0, v, &c));
	EXPECT_EQ(-ENOENT, reset_one(kv, 5, 0, 0, 0, v, &c));
	EXPECT_EQ(0, c.error_index);
	EXPECT_EQ(-ENOENT, reset_one(kv, 0x80000000u, 0, 0, 0, v, &c));

	reset_one(kv, 0, 0, 0, 0, v, &c);
	c.nr_vcpus = 0;
	EXPECT_EQ(-EINVAL, sys_ret(ioctl(kvmas_fd(kv), KVMAS_RESET_RING, &c)));
	c.nr_vcpus = KVMAS_MAX_RING_RESET_VCPUS + 1;
	EXPECT_EQ(-EMSGSIZE,
		  sys_ret(ioctl(kvmas_fd(kv), KVMAS_RESET_RING, &c)));
	c.nr_vcpus = 1;
	c.vcpu_size = 20;
	EXPECT_EQ(-EINVAL, sys_ret(ioctl(kvmas_fd(kv), KVMAS_RESET_RING, &c)));
	c.vcpu_size = sizeof(v[0]);
	c.__reserved = 1;
	EXPECT_EQ(-EINVAL, sys_ret(ioctl(kvmas_fd(kv), KVMAS_RESET_RING, &c)));
	c.__reserved = 0;
	c.vcpus = 8;
	EXPECT_EQ(-EFAULT, sys_ret(ioctl(kvmas_fd(kv), KVMAS_RESET_RING, &c)));

	/* A newer caller's larger entry: fine if its tail is zero. */
	memset(v, 0, sizeof(v));
	c.vcpus = (uintptr_t)v;
	c.vcpu_size = sizeof(v[0]) + 8;
	EXPECT_EQ(0, sys_ret(ioctl(kvmas_fd(kv), KVMAS_RESET_RING, &c)));
	v[1].vcpu_id = 1; /* the tail now is not */
	EXPECT_EQ(-E2BIG, sys_ret(ioctl(kvmas_fd(kv), KVMAS_RESET_RING, &c)));

	/* Second entry names a missing vCPU: nothing walked, index 1. */
	memset(v, 0, sizeof(v));
	v[1].vcpu_id = 3;
	c.vcpu_size = sizeof(v[0]);
	c.nr_vcpus = 2;
	EXPECT_EQ(-ENOENT, sys_ret(ioctl(kvmas_fd(kv), KVMAS_RESET_RING, &c)));
	EXPECT_EQ(1, c.error_index);

	/* Not attached. */
	dev = kvmas_dev_open();
	ASSERT_GE(dev, 0);
	EXPECT_EQ(-ENOTCONN, sys_ret(ioctl(dev, KVMAS_RESET_RING, &c)));
	close(dev);

	/* A VM without a ring: ENXIO, every entry says why. */
	ASSERT_EQ(0, rv_create(&nr, 1, 0, 8));
	kv2 = attach(nr.vm);
	ASSERT_NE(NULL, kv2);
	EXPECT_EQ(-ENXIO, reset_one(kv2, 0, 0, 0, 0, v, &c));
	EXPECT_EQ(KVMAS_RING_STOP_NO_RING, v[0].stop_reason);
	kvmas_close(kv2);
	rv_destroy(&nr);

	kvmas_close(kv);
	rv_destroy(&r);
}

/*
 * Reset goes exactly to the boundary, stops where documented, and
 * re-protects exactly the pages it reset: a second pass pushes again
 * those pages and only those.
 */
TEST(boundary_and_reprotect)
{
	RV_NEED_RING();
	struct kvmas_ring_vcpu v;
	struct kvmas_reset_ring c;
	struct kvmas_ring kr;
	struct ringvm r;
	struct kvmas *kv;

	kv = one_vcpu(&r, RV_RING_ENTRIES, 100, &kr);
	ASSERT_NE(NULL, kv);

	ASSERT_EQ(0, rv_run_pass(&r, 0));
	ASSERT_EQ(40, collect(&kr, 40));
	ASSERT_EQ(0, reset_one(kv, 0, kr.fetch, 0, 0, &v, &c));
	EXPECT_EQ(40, v.reset);
	EXPECT_EQ(40, v.reset_index);
	EXPECT_EQ(KVMAS_RING_STOP_BOUNDARY, v.stop_reason);
	EXPECT_EQ(1, c.tlb_flushes);
	EXPECT_EQ(40, c.total_reset);

	/* Everything collected, but the boundary says 50 more. */
	ASSERT_EQ(60, collect(&kr, 0));
	ASSERT_EQ(0, reset_one(kv, 0, 90, 0, 0, &v, &c));
	EXPECT_EQ(50, v.reset);
	EXPECT_EQ(KVMAS_RING_STOP_BOUNDARY, v.stop_reason);
	/* A boundary behind the reset index: nothing to do. */
	ASSERT_EQ(0, reset_one(kv, 0, 10, 0, 0, &v, &c));
	EXPECT_EQ(0, v.reset);
	EXPECT_EQ(90, v.reset_index);
	EXPECT_EQ(KVMAS_RING_STOP_BOUNDARY, v.stop_reason);
	EXPECT_EQ(0, c.tlb_flushes);
	/* The work bound. */
	ASSERT_EQ(0, reset_one(kv, 0, 100, 0, 4, &v, &c));
	EXPECT_EQ(4, v.reset);
	EXPECT_EQ(KVMAS_RING_STOP_BOUND, v.stop_reason);
	/* A boundary beyond what KVM pushed stops at the producer. */
	ASSERT_EQ(0, reset_one(kv, 0, 150, 0, 0, &v, &c));
	EXPECT_EQ(6, v.reset);
	EXPECT_EQ(100, v.reset_index);
	EXPECT_EQ(KVMAS_RING_STOP_PRODUCER, v.stop_reason);

	/* Pass 2: all 100 pages were re-protected, all 100 pushed again. */
	ASSERT_EQ(0, rv_run_pass(&r, 0));
	ASSERT_EQ(100, collect(&kr, 0));
	/* Reset only 30 of them; pass 3 pushes exactly those 30. */
	ASSERT_EQ(0, reset_one(kv, 0, 130, 0, 0, &v, &c));
	EXPECT_EQ(30, v.reset);
	ASSERT_EQ(0, rv_run_pass(&r, 0));
	/* Those 30 are dirty, not collected: the walk stops in front. */
	ASSERT_EQ(0, reset_one(kv, 0, 240, 0, 0, &v, &c));
	EXPECT_EQ(70, v.reset);
	EXPECT_EQ(200, v.reset_index);
	EXPECT_EQ(KVMAS_RING_STOP_NOT_COLLECTED, v.stop_reason);
	EXPECT_EQ(30, collect(&kr, 0));
	/* ALL_COLLECTED: stock's rule for this one ring, ends at the producer. */
	ASSERT_EQ(0, reset_one(kv, 0, 0, KVMAS_RING_RESET_ALL_COLLECTED, 0, &v,
			       &c));
	EXPECT_EQ(30, v.reset);
	EXPECT_EQ(230, v.reset_index);
	EXPECT_EQ(KVMAS_RING_STOP_BOUNDARY, v.stop_reason);

	kvmas_close(kv);
	rv_destroy(&r);
}

/*
 * The uapi's order of stop reasons, one pair at a time: every pair that can
 * hold at the same index is set up so that both do, and the one the header
 * ranks first must be reported.
 */
TEST(stop_precedence)
{
	RV_NEED_RING();
	struct kvmas_ring_vcpu v;
	struct kvmas_reset_ring c;
	struct kvmas_ring kr;
	struct ringvm r;
	struct kvmas *kv;

	kv = one_vcpu(&r, RV_RING_ENTRIES, 32, &kr);
	ASSERT_NE(NULL, kv);
	ASSERT_EQ(0, rv_run_pass(&r, 0)); /* pushes 0..31 */
	ASSERT_EQ(32, collect(&kr, 0));

	/* BOUNDARY over BOUND: max_entries ends exactly at the boundary. */
	ASSERT_EQ(0, reset_one(kv, 0, 8, 0, 8, &v, &c));
	EXPECT_EQ(8, v.reset);
	EXPECT_EQ(KVMAS_RING_STOP_BOUNDARY, v.stop_reason);
	/* PRODUCER over BOUND: max_entries ends exactly at the producer. */
	ASSERT_EQ(0, reset_one(kv, 0, 100, 0, 24, &v, &c));
	EXPECT_EQ(24, v.reset);
	EXPECT_EQ(32, v.reset_index);
	EXPECT_EQ(KVMAS_RING_STOP_PRODUCER, v.stop_reason);

	ASSERT_EQ(0, rv_run_pass(&r, 0)); /* 32..63 */
	ASSERT_EQ(16, collect(&kr, 16)); /* 32..47 collected, 48.. dirty */
	/* BOUNDARY over NOT_COLLECTED: the entry at the boundary is dirty. */
	ASSERT_EQ(0, reset_one(kv, 0, 48, 0, 0, &v, &c));
	EXPECT_EQ(16, v.reset);
	EXPECT_EQ(KVMAS_RING_STOP_BOUNDARY, v.stop_reason);
	/* NOT_COLLECTED is found before a producer the boundary lies past. */
	ASSERT_EQ(0, reset_one(kv, 0, 100, 0, 0, &v, &c));
	EXPECT_EQ(0, v.reset);
	EXPECT_EQ(48, v.reset_index);
	EXPECT_EQ(KVMAS_RING_STOP_NOT_COLLECTED, v.stop_reason);
	/* BOUND over NOT_COLLECTED: the bound ends in front of a dirty entry. */
	ASSERT_EQ(8, collect(&kr, 8)); /* 48..55 */
	ASSERT_EQ(0, reset_one(kv, 0, 100, 0, 8, &v, &c));
	EXPECT_EQ(8, v.reset);
	EXPECT_EQ(56, v.reset_index);
	EXPECT_EQ(KVMAS_RING_STOP_BOUND, v.stop_reason);
	/* BOUNDARY over PRODUCER: the boundary is the producer. */
	ASSERT_EQ(8, collect(&kr, 0));
	ASSERT_EQ(0, reset_one(kv, 0, 64, 0, 0, &v, &c));
	EXPECT_EQ(8, v.reset);
	EXPECT_EQ(64, v.reset_index);
	EXPECT_EQ(KVMAS_RING_STOP_BOUNDARY, v.stop_reason);

	ASSERT_EQ(0, rv_run_pass(&r, 0)); /* 64..95 */
	ASSERT_EQ(32, collect(&kr, 0));
	r.ring[0][68].slot = 0x7fff; /* names no page */
	/* BOUND over INVALID: the bound ends in front of a garbage entry. */
	ASSERT_EQ(0, reset_one(kv, 0, 96, KVMAS_RING_RESET_STOP_INVALID, 4, &v,
			       &c));
	EXPECT_EQ(4, v.reset);
	EXPECT_EQ(KVMAS_RING_STOP_BOUND, v.stop_reason);
	ASSERT_EQ(0, reset_one(kv, 0, 96, KVMAS_RING_RESET_STOP_INVALID, 0, &v,
			       &c));
	EXPECT_EQ(0, v.reset);
	EXPECT_EQ(68, v.reset_index);
	EXPECT_EQ(KVMAS_RING_STOP_INVALID, v.stop_reason);
	/*
	 * ALL_COLLECTED: the producer is the boundary, and a bound ending
	 * there loses to it.
	 */
	ASSERT_EQ(0, reset_one(kv, 0, 0, KVMAS_RING_RESET_ALL_COLLECTED, 28, &v,
			       &c));
	EXPECT_EQ(28, v.reset);
	EXPECT_EQ(1, v.invalid);
	EXPECT_EQ(96, v.reset_index);
	EXPECT_EQ(KVMAS_RING_STOP_BOUNDARY, v.stop_reason);
	kvmas_close(kv);
	rv_destroy(&r);
}

/*
 * vCPUs after the one whose walk used up the call's max_entries are not
 * walked and report BOUND with nothing reset; the one that used it up
 * exactly at its boundary reports BOUNDARY.
 */
TEST(bound_ends_the_call)
{
	RV_NEED_RING();
	struct kvmas_ring_vcpu v[2];
	struct kvmas_reset_ring c = { .size = sizeof(c) };
	struct kvmas_ring kr[2];
	struct ringvm r;
	struct kvmas *kv;
	int i;

	ASSERT_EQ(0, rv_create(&r, 2, RV_RING_ENTRIES, 10));
	kv = attach(r.vm);
	ASSERT_NE(NULL, kv);
	for (i = 0; i < 2; i++) {
		ASSERT_EQ(0, rv_run_pass(&r, i));
		rv_ring(&r, i, &kr[i]);
		ASSERT_EQ(10, collect(&kr[i], 0));
	}
	memset(v, 0, sizeof(v));
	v[0].boundary = 10;
	v[1] = (struct kvmas_ring_vcpu){ .vcpu_id = 1, .boundary = 10 };
	c.nr_vcpus = 2;
	c.vcpu_size = sizeof(v[0]);
	c.vcpus = (uintptr_t)v;
	c.max_entries = 10;
	ASSERT_EQ(0, sys_ret(ioctl(kvmas_fd(kv), KVMAS_RESET_RING, &c)));
	EXPECT_EQ(10, v[0].reset);
	EXPECT_EQ(KVMAS_RING_STOP_BOUNDARY, v[0].stop_reason);
	EXPECT_EQ(0, v[1].reset);
	EXPECT_EQ(0, v[1].reset_index);
	EXPECT_EQ(KVMAS_RING_STOP_BOUND, v[1].stop_reason);
	EXPECT_EQ(10, c.total_reset);
	/* Now vCPU 1 alone, bounded in the middle. */
	v[0] = (struct kvmas_ring_vcpu){ .vcpu_id = 1, .boundary = 10 };
	c.nr_vcpus = 1;
	c.max_entries = 4;
	ASSERT_EQ(0, sys_ret(ioctl(kvmas_fd(kv), KVMAS_RESET_RING, &c)));
	EXPECT_EQ(4, v[0].reset);
	EXPECT_EQ(KVMAS_RING_STOP_BOUND, v[0].stop_reason);
	kvmas_close(kv);
	rv_destroy(&r);
}

static volatile sig_atomic_t sig_seen;
static void on_alarm(int sig)
{
	sig_seen++;
}

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000ULL + ts.tv_nsec / 1000;
}

FIXTURE(sig){};
FIXTURE_SETUP(sig)
{
}
FIXTURE_TEARDOWN(sig)
{
}

/*
 * SIGNAL: a one-shot timer fires at a point inside a walk over 8,192
 * collected entries (its delay drawn over the length of an undisturbed
 * walk, measured first). A signal stop is a partial result (return 0, the
 * entries before it reset, nothing after it touched), and the next call
 * goes on from there. The reasons that outrank SIGNAL win where they hold:
 * a boundary at the reset index (BOUNDARY) and a boundary past a ring with
 * nothing left (PRODUCER) are never reported as SIGNAL while signals fly.
 * Where no signal lands inside a walk, the test says SKIP.
 */
TEST_F_TIMEOUT(sig, stop_signal, 300)
{
	RV_NEED_RING();
	struct sigaction sa = { .sa_handler = on_alarm };
	unsigned int round, signal_stops = 0, bad = 0, calls = 0;
	struct itimerval it = {};
	struct kvmas_ring_vcpu v;
	struct kvmas_reset_ring c;
	struct kvmas_ring kr;
	uint64_t walk_us = 0, t0;
	unsigned int stops0;
	struct ringvm r;
	struct kvmas *kv;
	uint32_t done;

	ASSERT_EQ(0, sigaction(SIGALRM, &sa, NULL));
	kv = one_vcpu(&r, 16384, 8192, &kr);
	ASSERT_NE(NULL, kv);
	for (round = 0; round < 24 && signal_stops < 8; round++) {
		ASSERT_EQ(0, rv_run_pass(&r, 0));
		ASSERT_EQ(8192, collect(&kr, 0));
		done = kr.fetch - 8192;
		if (round) {
			/* Somewhere inside the walk (at least 20 us in). */
			it.it_value.tv_usec =
				20 + (rand() % (walk_us * 3 / 4 + 1));
			ASSERT_EQ(0, setitimer(ITIMER_REAL, &it, NULL));
		}
		t0 = now_us();
		stops0 = calls;
		while (done != kr.fetch && calls < 100000) {
			calls++;
			if (reset_one(kv, 0, kr.fetch, 0, 0, &v, &c)) {
				bad++;
				break;
			}
			if (v.reset_index != done + v.reset)
				bad++;
			done = v.reset_index;
			if (v.stop_reason == KVMAS_RING_STOP_SIGNAL)
				signal_stops++;
			else if (v.stop_reason != KVMAS_RING_STOP_BOUNDARY)
				bad++;
			/* Outranks SIGNAL: a boundary at the reset index. */
			if (reset_one(kv, 0, done, 0, 0, &v, &c) ||
			    v.stop_reason != KVMAS_RING_STOP_BOUNDARY ||
			    v.reset)
				bad++;
		}
		/* The shortest undisturbed walk bounds the next delays. */
		if (calls == stops0 + 1 &&
		    (!walk_us || now_us() - t0 < walk_us))
			walk_us = now_us() - t0;
		/* Outranks SIGNAL: a boundary past a ring with nothing left. */
		if (reset_one(kv, 0, kr.fetch + 5, 0, 0, &v, &c) ||
		    v.stop_reason != KVMAS_RING_STOP_PRODUCER)
			bad++;
		EXPECT_EQ(kr.fetch, done);
		/* A timer that has not fired yet must not hit the next pass. */
		memset(&it, 0, sizeof(it));
		setitimer(ITIMER_REAL, &it, NULL);
	}
	EXPECT_EQ(0, bad);
	TH_LOG("%u rounds, %u calls, %u signal stops, %d signals, walk %llu us",
	       round, calls, signal_stops, (int)sig_seen,
	       (unsigned long long)walk_us);
	kvmas_close(kv);
	rv_destroy(&r);
	if (!signal_stops)
		SKIP(return, "no signal landed inside a walk");
}

/*
 * Entries someone else reset (here stock KVM_RESET_DIRTY_RINGS, whose flush
 * comes after it drops its locks) are flushed again by the call that
 * claims them, even though it resets nothing itself; then no more.
 */
TEST(flush_after_foreign_reset)
{
	RV_NEED_RING();
	struct kvmas_ring_vcpu v;
	struct kvmas_reset_ring c;
	struct kvmas_ring kr;
	struct ringvm r;
	struct kvmas *kv;

	kv = one_vcpu(&r, RV_RING_ENTRIES, 10, &kr);
	ASSERT_NE(NULL, kv);
	ASSERT_EQ(0, rv_run_pass(&r, 0));
	ASSERT_EQ(10, collect(&kr, 0));
	ASSERT_EQ(0, reset_one(kv, 0, kr.fetch, 0, 0, &v, &c));
	EXPECT_EQ(10, v.reset);
	EXPECT_EQ(1, c.tlb_flushes);
	ASSERT_EQ(0, reset_one(kv, 0, kr.fetch, 0, 0, &v, &c));
	EXPECT_EQ(0, c.tlb_flushes);

	ASSERT_EQ(0, rv_run_pass(&r, 0));
	ASSERT_EQ(10, collect(&kr, 0));
	ASSERT_EQ(10, rv_reset_all(&r));
	ASSERT_EQ(0, reset_one(kv, 0, kr.fetch, 0, 0, &v, &c));
	EXPECT_EQ(0, v.reset);
	EXPECT_EQ(KVMAS_RING_STOP_BOUNDARY, v.stop_reason);
	EXPECT_EQ(1, c.tlb_flushes);
	ASSERT_EQ(0, reset_one(kv, 0, kr.fetch, 0, 0, &v, &c));
	EXPECT_EQ(0, c.tlb_flushes);
	kvmas_close(kv);
	rv_destroy(&r);
}

/* Entries naming no page: released as stock does, or stopped at on request. */
TEST(invalid_entries)
{
	RV_NEED_RING();
	struct kvmas_ring_vcpu v;
	struct kvmas_reset_ring c;
	struct kvmas_ring kr;
	struct ringvm r;
	struct kvmas *kv;

	kv = one_vcpu(&r, RV_RING_ENTRIES, 20, &kr);
	ASSERT_NE(NULL, kv);
	ASSERT_EQ(0, rv_run_pass(&r, 0));
	ASSERT_EQ(20, collect(&kr, 0));
	/* A hostile or confused VMM rewrites entries 5 and 6. */
	r.ring[0][5].slot = 0x7fff;
	r.ring[0][6].offset = 1ULL << 40;
	ASSERT_EQ(0, reset_one(kv, 0, 20, KVMAS_RING_RESET_STOP_INVALID, 0, &v,
			       &c));
	EXPECT_EQ(5, v.reset);
	EXPECT_EQ(5, v.reset_index);
	EXPECT_EQ(KVMAS_RING_STOP_INVALID, v.stop_reason);
	ASSERT_EQ(0, reset_one(kv, 0, 20, 0, 0, &v, &c));
	EXPECT_EQ(15, v.reset);
	EXPECT_EQ(2, v.invalid);
	EXPECT_EQ(KVMAS_RING_STOP_BOUNDARY, v.stop_reason);
	/* The 18 well-formed pages were re-protected. */
	ASSERT_EQ(0, rv_run_pass(&r, 0));
	EXPECT_EQ(18, collect(&kr, 0));
	kvmas_close(kv);
	rv_destroy(&r);
}

/*
 * RESET written on entries KVM never pushed: ours stops at the producer;
 * the hardened stock reset does too (stock would move reset_index past
 * dirty_index and the next push would WARN, i.e. panic this
 * panic_on_warn kernel). The guest then runs on and loses nothing.
 */
TEST(hostile_beyond_producer)
{
	RV_NEED_RING();
	struct kvmas_ring_vcpu v;
	struct kvmas_reset_ring c;
	struct kvmas_ring kr;
	struct ringvm r;
	struct kvmas *kv;
	uint32_t k;

	kv = one_vcpu(&r, RV_RING_ENTRIES, 50, &kr);
	ASSERT_NE(NULL, kv);
	ASSERT_EQ(0, rv_run_pass(&r, 0));
	ASSERT_EQ(50, collect(&kr, 0));
	for (k = 50; k < 1024; k++)
		__atomic_store_n(&r.ring[0][k].flags, KVM_DIRTY_GFN_F_RESET,
				 __ATOMIC_RELEASE);
	ASSERT_EQ(0, reset_one(kv, 0, 1000, 0, 0, &v, &c));
	EXPECT_EQ(50, v.reset);
	EXPECT_EQ(50, v.reset_index);
	EXPECT_EQ(KVMAS_RING_STOP_PRODUCER, v.stop_reason);
	ASSERT_EQ(0, reset_one(kv, 0, 0, KVMAS_RING_RESET_ALL_COLLECTED, 0, &v,
			       &c));
	EXPECT_EQ(0, v.reset);
	if (kvmas_cap(KVMAS_CAP_HARDENED_RING_RESET) > 0) {
		EXPECT_EQ(0, rv_reset_all(&r));
	}
	/* KVM overwrites the marked entries as it pushes: nothing is lost. */
	ASSERT_EQ(0, rv_run_pass(&r, 0));
	EXPECT_EQ(50, collect(&kr, 0));
	EXPECT_EQ(0, reset_one(kv, 0, kr.fetch, 0, 0, &v, &c));
	EXPECT_EQ(50, v.reset);
	kvmas_close(kv);
	rv_destroy(&r);
}

static void mark_seen(void *opaque, __u32 slot, __u64 offset)
{
	uint8_t *seen = opaque;

	if (slot == RV_DATA_SLOT && offset < 600)
		seen[offset] = 1;
}

/* The ring-full exit: the vCPU stops, the library drains, the guest goes on. */
TEST(ring_full_exit)
{
	RV_NEED_RING();
	uint8_t seen[600] = { 0 };
	struct kvmas_ring kr;
	struct ringvm r;
	struct kvmas *kv;
	uint32_t total = 0, k, covered = 0;
	int exits = 0, ret;
	long got;

	/* 256 entries (soft limit 192) and 600 pages per pass. */
	kv = one_vcpu(&r, 256, 600, &kr);
	ASSERT_NE(NULL, kv);
	for (;;) {
		ret = rv_run_pass(&r, 0);
		if (ret == 0)
			break;
		ASSERT_EQ(KVM_EXIT_DIRTY_RING_FULL, ret);
		exits++;
		ASSERT_LT(exits, 100);
		got = kvmas_ring_drain(kv, &kr, mark_seen, seen, 0);
		ASSERT_GT(got, 0);
		total += got;
	}
	got = kvmas_ring_drain(kv, &kr, mark_seen, seen, 0);
	ASSERT_GE(got, 0);
	total += got;
	for (k = 0; k < 600; k++)
		covered += seen[k];
	EXPECT_GE(exits, 2);
	EXPECT_EQ(600, covered);
	/*
	 * The write in flight at each exit is pushed again after the reset
	 * re-protected its page: at most one extra entry per exit.
	 */
	EXPECT_LE(total, 600 + exits);
	EXPECT_EQ(kr.fetch, kr.reset_index);
	TH_LOG("600 pages through a 256-entry ring: %d ring-full exits, %u entries",
	       exits, total);
	kvmas_close(kv);
	rv_destroy(&r);
}

/* ---- epochs: vCPUs, per-vCPU harvesters, stock resets, batch commits ---- */

static int env_int(const char *name, int def)
{
	const char *s = getenv(name);

	return s && *s ? atoi(s) : def;
}

static void run_epochs(struct __test_metadata *_metadata, int with_others)
{
	struct epochs *x;
	int i;

	x = calloc(1, sizeof(*x));
	ASSERT_NE(NULL, x);
	ASSERT_EQ(0, ep_start(x, 2, env_int("KVMAS_RING_EPOCHS", 1000), 0,
			      with_others ? EP_OTHERS : 0));
	ep_join(x);
	if (with_others) {
		EXPECT_EQ(0, x->batch_err);
		EXPECT_EQ(0, x->stock_err);
		EXPECT_GT(x->stock_calls, 0);
		EXPECT_GT(x->batches, 0);
	}
	for (i = 0; i < 2; i++) {
		struct ep_lane *l = &x->lane[i];

		EXPECT_EQ(0, l->err) TH_LOG("vcpu %d: %d", i, l->err);
		EXPECT_EQ(x->nr_epochs, l->epochs);
		EXPECT_EQ(0, l->misses) TH_LOG("vcpu %d lost pages", i);
		EXPECT_EQ(0, l->foreign) TH_LOG("vcpu %d foreign entries", i);
		EXPECT_EQ(0, l->wrong) TH_LOG("vcpu %d wrong values", i);
		/* Each epoch writes every page at least once. */
		EXPECT_GE(l->entries, (uint64_t)x->nr_epochs * EP_PAGES);
		TH_LOG("vcpu %d: %d epochs, %llu entries harvested, %llu resets, "
		       "%llu pages missed",
		       i, l->epochs, (unsigned long long)l->entries,
		       (unsigned long long)l->resets,
		       (unsigned long long)l->misses);
	}
	if (with_others)
		TH_LOG("interleaved: %llu stock resets (%llu entries), %llu batch commits",
		       (unsigned long long)x->stock_calls,
		       (unsigned long long)x->stock_entries,
		       (unsigned long long)x->batches);
	ep_destroy(x);
	free(x);
}

FIXTURE(ep){};
FIXTURE_SETUP(ep)
{
}
FIXTURE_TEARDOWN(ep)
{
}

TEST_F_TIMEOUT(ep, per_vcpu_harvesters, 900)
{
	RV_NEED_RING();
	run_epochs(_metadata, 0);
}

TEST_F_TIMEOUT(ep, with_stock_resets_and_batches, 900)
{
	RV_NEED_RING();
	run_epochs(_metadata, 1);
}

/*
 * Flags rewritten by another thread while resets run: every call returns
 * within its bound, never past the producer, and once the vandal stops the
 * well-formed protocol works again.
 */
struct vandal {
	struct ringvm *r;
	volatile int stop;
};

static void *vandal_main(void *arg)
{
	static const uint32_t vals[] = { 0, KVM_DIRTY_GFN_F_RESET,
					 KVM_DIRTY_GFN_F_DIRTY, 3 };
	struct vandal *v = arg;
	uint32_t x = 12345;

	/* Only the 200 entries KVM pushed, where the walk is; any value. */
	while (!v->stop) {
		x = x * 1103515245 + 12345;
		__atomic_store_n(&v->r->ring[0][(x >> 8) % 200].flags,
				 vals[(x >> 28) & 3], __ATOMIC_RELEASE);
	}
	return NULL;
}

TEST(flags_flipped_during_reset)
{
	RV_NEED_RING();
	struct kvmas_ring_vcpu v;
	struct kvmas_reset_ring c;
	struct vandal vd = {};
	struct kvmas_ring kr;
	struct ringvm r;
	struct kvmas *kv;
	pthread_t t;
	uint32_t max = 0;
	int k;

	kv = one_vcpu(&r, RV_RING_ENTRIES, 200, &kr);
	ASSERT_NE(NULL, kv);
	ASSERT_EQ(0, rv_run_pass(&r, 0));
	ASSERT_EQ(200, collect(&kr, 0));
	vd.r = &r;
	ASSERT_EQ(0, pthread_create(&t, NULL, vandal_main, &vd));
	for (k = 0; k < 2000; k++) {
		ASSERT_EQ(0, reset_one(kv, 0, 0, KVMAS_RING_RESET_ALL_COLLECTED,
				       0, &v, &c));
		if (v.reset > max)
			max = v.reset;
		/* KVM pushed 200 entries; never reset past them. */
		ASSERT_LE(v.reset_index, 200);
		if (!(k & 63))
			sched_yield();
	}
	vd.stop = 1;
	pthread_join(t, NULL);
	EXPECT_LE(max, 200);
	TH_LOG("2000 resets under a flag vandal: max %u entries, reset index %u",
	       max, v.reset_index);

	/* Repair as a VMM restarting its harvest would: all reset, all pushed again. */
	for (k = v.reset_index; k < 200; k++)
		__atomic_store_n(&r.ring[0][k].flags, KVM_DIRTY_GFN_F_RESET,
				 __ATOMIC_RELEASE);
	kr.fetch = 200;
	ASSERT_EQ(0, reset_one(kv, 0, 200, 0, 0, &v, &c));
	EXPECT_EQ(200, v.reset_index);
	ASSERT_EQ(0, rv_run_pass(&r, 0));
	EXPECT_EQ(200, collect(&kr, 0));
	kvmas_close(kv);
	rv_destroy(&r);
}

TEST_HARNESS_MAIN
