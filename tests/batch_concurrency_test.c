// SPDX-License-Identifier: GPL-2.0
/*
 * KVMAS_COMMIT_BATCH concurrency: batches and stock ioctls at once, with
 * vCPUs running in the batched slots and a reader that must never see a
 * half-applied batch.
 */
#include "batch_fixture.h"

/*
 * Concurrency: 4 threads commit batches, each on its own two slots, while 4
 * vCPUs run inside exactly those slots: vCPU t executes from, reads and
 * writes its window, which batcher t keeps re-splitting at another page (both
 * slots replaced by each batch, so the function and the counter change slots
 * all the time). Meanwhile a thread creates and deletes a slot with stock
 * ioctls and a reader checks every GET_LAYOUT snapshot: each window is
 * always tiled by its two slots exactly as ONE batch left it (contiguous,
 * sizes adding up, backing offsets matching), never half of two. No
 * deadlock (the harness timeout), no hole for any vCPU, every counter
 * update landed, and the final layout is the last batch of each thread.
 */
#define CONC_WIN(t) WL_FUNC_GPA(t)
#define CONC_WIN_SIZE (64 * KiB)
#define CONC_BATCHES 150
/* Batch @i of thread @t splits its window after this many bytes. */
#define CONC_SPLIT(i, t) ((1 + ((i)*7 + (t)) % 15) * 4096ULL)

struct conc {
	int dev;
	int vm;
	uint8_t *m;
	uint8_t *target; /* backing of the 4 windows */
	volatile int stop;
	int errors;
	unsigned long snapshots;
};

struct worker {
	struct conc *c;
	int t;
	int err;
	unsigned int routes;
};

static void *batcher(void *arg)
{
	struct worker *w = arg;
	struct conc *c = w->c;
	uint8_t *hva = c->target + w->t * CONC_WIN_SIZE;
	int i;

	for (i = 0; i < CONC_BATCHES && !w->err; i++) {
		/* Move the split: slot 10+2t covers k bytes, 11+2t the rest. */
		uint64_t k = CONC_SPLIT(i, w->t);
		struct kvmas_batch_op ops[2] = {
			op(KVMAS_OP_REPLACE, 10 + 2 * w->t, CONC_WIN(w->t), k,
			   hva, 0),
			op(KVMAS_OP_REPLACE, 11 + 2 * w->t, CONC_WIN(w->t) + k,
			   CONC_WIN_SIZE - k, hva + k, 0),
		};
		/* Every other batch on KVM's INVALID route: both interleave. */
		struct batch_res r =
			commit(c->dev, ops, 2, (i & 1) ? inval_flag() : 0);

		w->err = r.err;
		w->routes |= 1U << r.route;
	}
	return NULL;
}

static void *stocker(void *arg)
{
	struct conc *c = arg;
	int i, err = 0;

	for (i = 0; i < 200 && !err; i++)
		err = kvm_set_slot(c->vm, 0, 99, 0, 0x20000000,
				   (i & 1) ? 0 : 1 * MiB,
				   (i & 1) ? NULL : c->m);
	if (err)
		__atomic_add_fetch(&c->errors, 1, __ATOMIC_RELAXED);
	return NULL;
}

/* Errors in one snapshot: windows not tiled as exactly one batch left them. */
static int conc_check(struct conc *c, const struct kvmas_slot *s,
		      unsigned int nr)
{
	const struct kvmas_slot *lo[4] = { 0 }, *hi[4] = { 0 };
	unsigned int i, t;
	int bad = 0;

	for (i = 0; i < nr; i++) {
		if (s[i].slot < 10 || s[i].slot > 17)
			continue;
		t = (s[i].slot - 10) / 2;
		if (s[i].slot & 1)
			hi[t] = &s[i];
		else
			lo[t] = &s[i];
	}
	for (t = 0; t < 4; t++) {
		uint8_t *hva = c->target + t * CONC_WIN_SIZE;

		if (!lo[t] || !hi[t]) {
			bad++;
			continue;
		}
		bad += lo[t]->guest_phys_addr != CONC_WIN(t) ||
		       lo[t]->userspace_addr != (uintptr_t)hva ||
		       hi[t]->guest_phys_addr !=
			       CONC_WIN(t) + lo[t]->memory_size ||
		       hi[t]->userspace_addr !=
			       (uintptr_t)hva + lo[t]->memory_size ||
		       lo[t]->memory_size + hi[t]->memory_size != CONC_WIN_SIZE;
	}
	return bad;
}

static void *reader(void *arg)
{
	struct conc *c = arg;
	struct kvmas_slot s[32];
	unsigned int nr;

	while (!c->stop) {
		if (kvmas_layout(c->dev, 0, 0, s, 32, &nr, NULL)) {
			__atomic_add_fetch(&c->errors, 1, __ATOMIC_RELAXED);
			continue;
		}
		if (conc_check(c, s, nr))
			__atomic_add_fetch(&c->errors, 1, __ATOMIC_RELAXED);
		c->snapshots++;
	}
	return NULL;
}

TEST_F_TIMEOUT(b, concurrent_batches_and_stock, 180)
{
	struct conc c = { .m = self->m };
	struct kvmas_batch_op init[8];
	struct kvmas_slot s[32];
	pthread_t tb[4], ts, tr;
	uint32_t p0[4], p1[4];
	int64_t mmio0, mmio1;
	struct worker w[4];
	uint64_t t0, us;
	struct wl_vm vm;
	unsigned int nr, i, routes = 0;
	int t, k;

	/* vCPU t's function and counter live in window t. */
	ASSERT_EQ(0, wl_create(&vm, 4, 4 * CONC_WIN_SIZE, 0xf));
	c.vm = vm.vm;
	c.target = vm.target;
	c.dev = kvmas_dev_open();
	ASSERT_GE(c.dev, 0);
	ASSERT_EQ(0, kvmas_attach(c.dev, vm.vm));
	for (t = 0; t < 4; t++) {
		init[2 * t] = op(KVMAS_OP_CREATE, 10 + 2 * t, CONC_WIN(t),
				 CONC_WIN_SIZE / 2,
				 vm.target + t * CONC_WIN_SIZE, 0);
		init[2 * t + 1] = op(
			KVMAS_OP_CREATE, 11 + 2 * t,
			CONC_WIN(t) + CONC_WIN_SIZE / 2, CONC_WIN_SIZE / 2,
			vm.target + t * CONC_WIN_SIZE + CONC_WIN_SIZE / 2, 0);
	}
	ASSERT_EQ(0, commit(c.dev, init, 8, 0).err);
	ASSERT_EQ(0, wl_start(&vm));
	for (k = 0; k < 5000; k++) {
		for (t = 0; t < 4 && wl_progress(&vm, t) >= 100; t++)
			;
		if (t == 4)
			break;
		usleep(1000);
	}
	mmio0 = wl_vcpu_stat(&vm, -1, "pf_mmio_spte_created");
	for (t = 0; t < 4; t++)
		p0[t] = wl_progress(&vm, t);

	t0 = wl_now_us();
	ASSERT_EQ(0, pthread_create(&tr, NULL, reader, &c));
	ASSERT_EQ(0, pthread_create(&ts, NULL, stocker, &c));
	for (t = 0; t < 4; t++) {
		w[t] = (struct worker){ .c = &c, .t = t };
		ASSERT_EQ(0, pthread_create(&tb[t], NULL, batcher, &w[t]));
	}
	for (t = 0; t < 4; t++) {
		pthread_join(tb[t], NULL);
		EXPECT_EQ(0, w[t].err) TH_LOG("batcher %d", t);
		routes |= w[t].routes;
	}
	us = wl_now_us() - t0;
	for (t = 0; t < 4; t++)
		p1[t] = wl_progress(&vm, t);
	pthread_join(ts, NULL);
	c.stop = 1;
	pthread_join(tr, NULL);
	usleep(20 * 1000);
	wl_pause_all(&vm);
	mmio1 = wl_vcpu_stat(&vm, -1, "pf_mmio_spte_created");

	EXPECT_EQ(0, c.errors);
	EXPECT_GT(c.snapshots, 10);
	EXPECT_EQ(0, wl_holes(&vm));
	EXPECT_EQ(0, wl_fatal(&vm));
	EXPECT_EQ(mmio0, mmio1);
	for (t = 0; t < 4; t++) {
		/* One ahead if paused between its function and loop count. */
		uint32_t d = wl_target_counter(&vm, t) - wl_progress(&vm, t);

		EXPECT_LE(d, 1)
		TH_LOG("vcpu %d: counter %u, calls %u", t,
		       wl_target_counter(&vm, t), wl_progress(&vm, t));
		/* It ran in its window while the batches were committed. */
		EXPECT_GT(p1[t] - p0[t], 0) TH_LOG("vcpu %d", t);
	}
	/* The final layout: each window as its thread's last batch left it. */
	ASSERT_EQ(0, kvmas_layout(c.dev, 0, 0, s, 32, &nr, NULL));
	EXPECT_EQ(0, conc_check(&c, s, nr));
	for (i = 0; i < nr; i++) {
		if (s[i].slot >= 10 && s[i].slot <= 17 && !(s[i].slot & 1)) {
			EXPECT_EQ(CONC_SPLIT(CONC_BATCHES - 1,
					     (s[i].slot - 10) / 2),
				  s[i].memory_size);
		}
		EXPECT_NE(99, s[i].slot); /* the stock thread deleted it last */
	}
	EXPECT_EQ(inval_route_ok(),
		  !!(routes & (1U << KVMAS_ROUTE_INVALIDATE)));
	TH_LOG("%d batches in %llu ms (routes %#x) + 200 stock ioctls, %lu "
	       "consistent snapshots; guest calls into the windows meanwhile "
	       "%u %u %u %u, %llu holes",
	       4 * CONC_BATCHES, (unsigned long long)us / 1000, routes,
	       c.snapshots, p1[0] - p0[0], p1[1] - p0[1], p1[2] - p0[2],
	       p1[3] - p0[3], (unsigned long long)wl_holes(&vm));
	wl_stop(&vm);
	close(c.dev);
	wl_destroy(&vm);
}

TEST_HARNESS_MAIN
