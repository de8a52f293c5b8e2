// SPDX-License-Identifier: GPL-2.0
/*
 * The soak: everything the module does, at once, for KVMAS_SOAK_SECONDS
 * (default 60; `make soak` runs 300 and more), meant for the boot with
 * multi-threaded TCG (race-all.sh).
 *
 *  - A workload VM (workload.h): 2 vCPUs executing, reading and writing in
 *    the first two of SOAK_REGIONS 64 KiB regions of the target window.
 *    One committer thread per region, each with a session of its own,
 *    splits the region into two slots and merges it back, in batches:
 *    disjoint slots, one VM, commits racing for KVM's slots_lock.
 *  - A dirty-ring VM (ring_epochs.h): 2 vCPUs, 2 harvester threads that
 *    collect and reset their own vCPU's ring (KVMAS_RESET_RING) and check
 *    every epoch for lost and foreign pages, a batch thread on a scratch
 *    slot, and stock KVM_RESET_DIRTY_RINGS all along.
 *  - A stock-ioctl thread on the workload VM: KVM_SET_USER_MEMORY_REGION
 *    creating, moving and deleting a slot of its own.
 *
 * Holds: no hole (no MMIO exit or emulation failure in the target window,
 * no MMIO SPTE created, each vCPU's counter equals its calls), no lost
 * dirty page, no foreign ring entry, every commit and stock call succeeded,
 * and the layout GET_LAYOUT reports at the end is the one the threads'
 * successful calls built. A splat ends the boot (panic_on_warn=1).
 */
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>

#include "batch_helpers.h"
#include "kvm_helpers.h"
#include "kvmas.h"
#include "ring_epochs.h"
#include "workload.h"
#include "kselftest_harness.h"

#define SOAK_REGIONS 8
#define SOAK_REGION (64 * KiB)
#define SOAK_SLOT_A(t) (10 + 2 * (t))
#define SOAK_SLOT_B(t) (11 + 2 * (t))
#define SOAK_STOCK_SLOT 40
#define SOAK_STOCK_GPA(k) ((k) ? 0x50000000ULL : 0x40000000ULL)

/* KVMAS_SOAK_PARTS: which of the load's parts run (default all). */
#define SOAK_COMMITTERS (1U << 0)
#define SOAK_STOCK (1U << 1) /* the stock slot thread */
#define SOAK_RING (1U << 2) /* the dirty-ring VM and its threads */
/* A scratch slot of the ring VM changed all along (batches, or stock). */
#define SOAK_RING_SLOTS (1U << 5)
#define SOAK_ALL (SOAK_COMMITTERS | SOAK_STOCK | SOAK_RING | SOAK_RING_SLOTS)
/* The control: committers use stock DELETE + CREATE (holes reported). */
#define SOAK_STOCK_COMMITS (1U << 3)
/*
 * The pure control, for a boot without the module: no session anywhere,
 * stock commits, the ring harvesters reset with KVM_RESET_DIRTY_RINGS.
 */
#define SOAK_NO_MODULE (1U << 4)

struct soak;

struct committer {
	struct soak *s;
	int t;
	int dev;
	int split; /* the model: slot B exists, A is the region's first half */
	uint64_t commits;
	int err;
	pthread_t thread;
};

struct soak {
	struct wl_vm w;
	uint64_t deadline_us;
	unsigned int parts; /* SOAK_* */
	struct committer c[SOAK_REGIONS];
	/* The stock thread's model: slot 40 absent (-1) or at SOAK_STOCK_GPA(k). */
	int stock_at;
	uint64_t stock_calls;
	int stock_err;
	void *stock_mem;
	volatile int stop;
	pthread_t stock_thread;
};

static uint64_t region_gpa(int t)
{
	return WL_TARGET_GPA + (uint64_t)t * SOAK_REGION;
}

/*
 * The control: the same change with stock ioctls, DELETE before CREATE
 * (holes expected). REPLACE is DELETE + CREATE of the same slot.
 */
static int stock_pair(int vm, const struct kvmas_batch_op *ops)
{
	int i, r = 0;

	for (i = 0; i < 2 && !r; i++)
		if (ops[i].op != KVMAS_OP_CREATE)
			r = kvm_set_slot(vm, 0, ops[i].slot, 0, 0, 0, NULL);
	for (i = 0; i < 2 && !r; i++)
		if (ops[i].op != KVMAS_OP_DELETE)
			r = kvm_set_slot(
				vm, 0, ops[i].slot, ops[i].flags,
				ops[i].guest_phys_addr, ops[i].memory_size,
				(void *)(uintptr_t)ops[i].userspace_addr);
	return r;
}

static void *committer_main(void *arg)
{
	struct committer *c = arg;
	uint8_t *hva = c->s->w.target + (size_t)c->t * SOAK_REGION;
	uint64_t gpa = region_gpa(c->t);

	while (!c->err && wl_now_us() < c->s->deadline_us) {
		struct kvmas_batch_op ops[2];
		struct batch_res r;

		if (!c->split) {
			/* [64K] -> [32K][32K]: the second half changes slot. */
			ops[0] = op(KVMAS_OP_REPLACE, SOAK_SLOT_A(c->t), gpa,
				    SOAK_REGION / 2, hva, 0);
			ops[1] = op(KVMAS_OP_CREATE, SOAK_SLOT_B(c->t),
				    gpa + SOAK_REGION / 2, SOAK_REGION / 2,
				    hva + SOAK_REGION / 2, 0);
		} else {
			ops[0] = del(SOAK_SLOT_B(c->t));
			ops[1] = op(KVMAS_OP_REPLACE, SOAK_SLOT_A(c->t), gpa,
				    SOAK_REGION, hva, 0);
		}
		if (c->s->parts & SOAK_STOCK_COMMITS)
			r.err = stock_pair(c->s->w.vm, ops);
		else
			r = commit(c->dev, ops, 2, 0);
		if (r.err) {
			c->err = r.err;
			break;
		}
		c->split = !c->split;
		c->commits++;
	}
	return NULL;
}

static void *stock_main(void *arg)
{
	struct soak *s = arg;
	int k, ret;

	for (k = 0; !s->stop; k++) {
		switch (k % 3) {
		case 0:
			ret = kvm_set_slot(s->w.vm, 0, SOAK_STOCK_SLOT, 0,
					   SOAK_STOCK_GPA(0), SOAK_REGION,
					   s->stock_mem);
			break;
		case 1: /* a stock MOVE: same slot, new gpa */
			ret = kvm_set_slot(s->w.vm, 0, SOAK_STOCK_SLOT, 0,
					   SOAK_STOCK_GPA(1), SOAK_REGION,
					   s->stock_mem);
			break;
		default:
			ret = kvm_set_slot(s->w.vm, 0, SOAK_STOCK_SLOT, 0, 0, 0,
					   NULL);
			break;
		}
		if (ret) {
			s->stock_err = ret;
			break;
		}
		s->stock_at = k % 3 == 2 ? -1 : k % 3;
		s->stock_calls++;
		usleep(2000);
	}
	return NULL;
}

/* GET_LAYOUT of address space 0 against the model; returns mismatches. */
static int layout_matches_model(struct __test_metadata *_metadata,
				struct soak *s, int dev)
{
	struct kvmas_slot sl[64];
	unsigned int nr = 0, want = 1, i;
	int bad = 0, t;

	EXPECT_EQ(0, kvmas_layout(dev, 0, 0, sl, 64, &nr, NULL));
	for (t = 0; t < SOAK_REGIONS; t++)
		want += 1 + s->c[t].split;
	want += s->stock_at >= 0;
	EXPECT_EQ(want, nr);
	for (i = 0; i < nr; i++) {
		uint32_t id = sl[i].slot;
		uint64_t gpa = 0, size = 0;

		t = (id - 10) / 2;
		if (id == 0) {
			gpa = WL_BASE_GPA;
			size = WL_BASE_SIZE;
		} else if (id == SOAK_STOCK_SLOT && s->stock_at >= 0) {
			gpa = SOAK_STOCK_GPA(s->stock_at);
			size = SOAK_REGION;
		} else if (id >= 10 && t < SOAK_REGIONS &&
			   id == SOAK_SLOT_A(t)) {
			gpa = region_gpa(t);
			size = s->c[t].split ? SOAK_REGION / 2 : SOAK_REGION;
		} else if (id >= 10 && t < SOAK_REGIONS && s->c[t].split) {
			gpa = region_gpa(t) + SOAK_REGION / 2;
			size = SOAK_REGION / 2;
		}
		if (sl[i].guest_phys_addr != gpa || sl[i].memory_size != size ||
		    sl[i].flags) {
			bad++;
			TH_LOG("slot %u: %#llx+%#llx flags %#x, the model says %#llx+%#llx",
			       id, (unsigned long long)sl[i].guest_phys_addr,
			       (unsigned long long)sl[i].memory_size,
			       sl[i].flags, (unsigned long long)gpa,
			       (unsigned long long)size);
		}
	}
	return bad;
}

FIXTURE(soak){};
FIXTURE_SETUP(soak)
{
}
FIXTURE_TEARDOWN(soak)
{
}

/* The harness' bound is for a hung run; the soak's length is the env's. */
TEST_F_TIMEOUT(soak, everything_at_once, 7200)
{
	const char *env = getenv("KVMAS_SOAK_SECONDS");
	int secs = env && *env ? atoi(env) : 60;
	const char *penv = getenv("KVMAS_SOAK_PARTS");
	unsigned int parts = penv && *penv ? strtoul(penv, NULL, 0) : SOAK_ALL;
	int nr_c = (parts & SOAK_COMMITTERS) ? SOAK_REGIONS : 0;
	unsigned int ep_flags =
		EP_STOCK_THREAD |
		((parts & SOAK_RING_SLOTS) ? EP_SLOT_THREAD : 0) |
		((parts & SOAK_NO_MODULE) ? EP_STOCK_RESETS | EP_STOCK_SLOTS :
					    0);
	uint64_t commits = 0, t0;
	struct epochs *x;
	struct soak *s;
	int64_t mmio0, mmio1;
	int t, i;

	if ((parts & SOAK_NO_MODULE) && !(parts & SOAK_STOCK_COMMITS))
		SKIP(return, "SOAK_NO_MODULE needs SOAK_STOCK_COMMITS");
	if (!(parts & SOAK_NO_MODULE) && kvmas_cap(KVMAS_CAP_BATCH_COMMIT) <= 0)
		SKIP(return, "no batch commits on this kernel");
	/* arm64 before 6.2 has no dirty ring: the rest of the load runs. */
	if (!rv_have_ring() && (parts & (SOAK_RING | SOAK_RING_SLOTS))) {
		TH_LOG("no dirty ring on this kernel: parts %#x without the ring VM",
		       parts & ~(SOAK_RING | SOAK_RING_SLOTS));
		parts &= ~(SOAK_RING | SOAK_RING_SLOTS);
	}
	ASSERT_GT(secs, 0);
	s = calloc(1, sizeof(*s));
	x = calloc(1, sizeof(*x));
	ASSERT_NE(NULL, s);
	ASSERT_NE(NULL, x);
	s->stock_at = -1;
	s->parts = parts;
	s->stock_mem = guest_mem(SOAK_REGION);
	ASSERT_NE(NULL, s->stock_mem);
	/* vCPU i calls into region i; the other regions are only committed. */
	ASSERT_EQ(0, wl_create(&s->w, 2, SOAK_REGIONS * SOAK_REGION, 0x3));
	for (t = 0; t < SOAK_REGIONS; t++) {
		struct committer *c = &s->c[t];

		ASSERT_EQ(0,
			  kvm_set_slot(s->w.vm, 0, SOAK_SLOT_A(t), 0,
				       region_gpa(t), SOAK_REGION,
				       s->w.target + (size_t)t * SOAK_REGION));
		c->s = s;
		c->t = t;
		c->dev = -1;
		if (parts & SOAK_NO_MODULE)
			continue;
		c->dev = kvmas_dev_open();
		ASSERT_GE(c->dev, 0);
		ASSERT_EQ(0, kvmas_attach(c->dev, s->w.vm));
	}
	ASSERT_EQ(0, wl_start(&s->w));
	usleep(100 * 1000);
	mmio0 = wl_vcpu_stat(&s->w, -1, "pf_mmio_spte_created");

	t0 = wl_now_us();
	s->deadline_us = t0 + (uint64_t)secs * 1000000;
	if (parts & SOAK_RING)
		ASSERT_EQ(0,
			  ep_start(x, 2, INT32_MAX, s->deadline_us, ep_flags));
	for (t = 0; t < nr_c; t++)
		ASSERT_EQ(0, pthread_create(&s->c[t].thread, NULL,
					    committer_main, &s->c[t]));
	if (parts & SOAK_STOCK)
		ASSERT_EQ(0, pthread_create(&s->stock_thread, NULL, stock_main,
					    s));
	while (wl_now_us() < s->deadline_us)
		usleep(100 * 1000);
	for (t = 0; t < nr_c; t++) {
		pthread_join(s->c[t].thread, NULL);
		EXPECT_EQ(0, s->c[t].err) TH_LOG("committer %d", t);
		commits += s->c[t].commits;
	}
	s->stop = 1;
	if (parts & SOAK_STOCK)
		pthread_join(s->stock_thread, NULL);
	if (parts & SOAK_RING)
		ep_join(x);
	usleep(50 * 1000);
	wl_pause_all(&s->w);
	mmio1 = wl_vcpu_stat(&s->w, -1, "pf_mmio_spte_created");

	/* Workload VM: no hole, every call's write landed (not the control). */
	if (!(parts & SOAK_STOCK_COMMITS)) {
		EXPECT_EQ(0, wl_holes(&s->w));
		EXPECT_EQ(0, wl_fatal(&s->w));
		EXPECT_EQ(mmio0, mmio1);
	}
	for (i = 0; i < 2 && !(parts & SOAK_STOCK_COMMITS); i++) {
		uint32_t d =
			wl_target_counter(&s->w, i) - wl_progress(&s->w, i);

		/* One ahead if paused between its function and its progress. */
		EXPECT_LE(d, 1)
		TH_LOG("vcpu %d: counter %u, calls %u", i,
		       wl_target_counter(&s->w, i), wl_progress(&s->w, i));
		EXPECT_GT(wl_progress(&s->w, i), 1000) TH_LOG("vcpu %d ran", i);
	}
	EXPECT_EQ(0, s->stock_err);
	EXPECT_EQ(!!(parts & SOAK_STOCK), s->stock_calls > 0);
	EXPECT_EQ(!!nr_c, commits > 0);
	if (!(parts & SOAK_NO_MODULE))
		EXPECT_EQ(0, layout_matches_model(_metadata, s, s->c[0].dev));

	/* Ring VM: every epoch's pages harvested, nothing foreign. */
	EXPECT_EQ(0, x->batch_err);
	EXPECT_EQ(0, x->stock_err);
	EXPECT_EQ((parts & SOAK_RING) && (parts & SOAK_RING_SLOTS),
		  x->batches > 0);
	EXPECT_EQ(!!(parts & SOAK_RING), x->stock_calls > 0);
	for (i = 0; i < 2 && (parts & SOAK_RING); i++) {
		struct ep_lane *l = &x->lane[i];

		EXPECT_EQ(0, l->err) TH_LOG("ring vcpu %d: %d", i, l->err);
		EXPECT_GT(l->epochs, 0);
		EXPECT_EQ(0, l->misses) TH_LOG("ring vcpu %d lost pages", i);
		EXPECT_EQ(0, l->foreign) TH_LOG("ring vcpu %d foreign", i);
		EXPECT_EQ(0, l->wrong) TH_LOG("ring vcpu %d wrong values", i);
	}

	TH_LOG("%d s, parts %#x: %llu batch commits by %d committers (%llu/s), %u+%u guest calls, "
	       "%llu holes (guest exceptions included), %lld MMIO SPTEs created (-1: no such stat, arm64); "
	       "%llu stock slot calls; ring: %d+%d epochs, %llu+%llu entries, "
	       "%llu+%llu pages lost, %llu KVMAS resets, %llu stock resets, %llu scratch batches",
	       secs, parts, (unsigned long long)commits, nr_c,
	       (unsigned long long)(commits * 1000000 / (wl_now_us() - t0)),
	       wl_progress(&s->w, 0), wl_progress(&s->w, 1),
	       (unsigned long long)wl_holes(&s->w),
	       mmio0 < 0 ? -1LL : (long long)(mmio1 - mmio0),
	       (unsigned long long)s->stock_calls, x->lane[0].epochs,
	       x->lane[1].epochs, (unsigned long long)x->lane[0].entries,
	       (unsigned long long)x->lane[1].entries,
	       (unsigned long long)x->lane[0].misses,
	       (unsigned long long)x->lane[1].misses,
	       (unsigned long long)(x->lane[0].resets + x->lane[1].resets),
	       (unsigned long long)x->stock_calls,
	       (unsigned long long)x->batches);

	wl_stop(&s->w);
	for (t = 0; t < SOAK_REGIONS; t++)
		if (s->c[t].dev >= 0)
			close(s->c[t].dev);
	wl_destroy(&s->w);
	if (parts & SOAK_RING)
		ep_destroy(x);
	free(x);
	free(s);
}

TEST_HARNESS_MAIN
