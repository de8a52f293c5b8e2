// SPDX-License-Identifier: GPL-2.0
/* Dirty-ring epochs: see ring_epochs.h. */
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <string.h>
#include <unistd.h>

#include "kvm_helpers.h"
#include "ring_epochs.h"
#include "workload.h"

static void *ep_vcpu_main(void *arg)
{
	struct ep_lane *l = arg;
	int e, p, ret;

	for (e = 1; !l->err; e++) {
		/* Pairs with the harvester's release store of go. */
		while (__atomic_load_n(&l->go, __ATOMIC_ACQUIRE) < e)
			sched_yield();
		/* Stored before that go: the acquire above makes it visible. */
		if (e > __atomic_load_n(&l->last, __ATOMIC_RELAXED))
			break;
		for (p = 0; p < EP_PASSES; p++) {
			ret = rv_run_pass(&l->x->r, l->i);
			if (ret) {
				l->err = ret;
				break;
			}
		}
		/* Pairs with the harvester's acquire load of done. */
		__atomic_store_n(&l->done, e, __ATOMIC_RELEASE);
	}
	/*
	 * An error ends the lane: let the harvester stop waiting. Pairs with
	 * its acquire load of done, which then sees l->err.
	 */
	__atomic_store_n(&l->done, INT_MAX, __ATOMIC_RELEASE);
	return NULL;
}

static void ep_collect(void *opaque, __u32 slot, __u64 offset)
{
	struct ep_lane *l = opaque;
	uint64_t first = (uint64_t)l->i * EP_PAGES;

	l->entries++;
	if (slot != RV_DATA_SLOT || offset < first ||
	    offset >= first + EP_PAGES) {
		l->foreign++;
		return;
	}
	l->seen[offset - first] = 1;
}

/* Harvests what the ring holds (all, or a random chunk) and resets it. */
static int ep_step(struct ep_lane *l, int final)
{
	struct kvmas_ring *kr = &l->kr;
	uint32_t max = 0;
	long got;

	if ((l->x->flags & EP_PARTIAL) && !final) {
		l->rng = l->rng * 1103515245u + 12345u;
		max = 1 + (l->rng >> 16) % 16;
	}
	/* Nothing new collected and nothing pending: no call. */
	if (!kvmas_ring_harvest(kr, ep_collect, l, max) &&
	    kr->fetch == kr->reset_index)
		return 0;
	if (l->x->flags & EP_STOCK_RESETS) {
		got = rv_reset_all(&l->x->r);
		/* KVM reset this ring up to the fetch index. */
		kr->reset_index = kr->fetch;
	} else {
		got = kvmas_ring_reset(l->x->kv, &kr, 1, 0);
	}
	if (got < 0)
		return (int)got;
	l->resets++;
	return 0;
}

static int ep_over(struct ep_lane *l, int e)
{
	struct epochs *x = l->x;

	return e > x->nr_epochs ||
	       (x->deadline_us && wl_now_us() >= x->deadline_us);
}

/* One harvester per vCPU: collects while the vCPU runs, checks each epoch. */
static void *ep_harvest_main(void *arg)
{
	struct ep_lane *l = arg;
	int e, k;

	for (e = 1; !l->err && !ep_over(l, e); e++) {
		memset(l->seen, 0, sizeof(l->seen));
		/* Pairs with the vCPU thread's acquire load of go. */
		__atomic_store_n(&l->go, e, __ATOMIC_RELEASE);
		/* Pairs with the vCPU thread's release store of done. */
		while (__atomic_load_n(&l->done, __ATOMIC_ACQUIRE) < e &&
		       !l->err) {
			l->err = ep_step(l, 0);
			sched_yield();
		}
		if (l->err)
			break;
		/*
		 * Every write of the epoch was pushed before the HLT: one
		 * unbounded harvest (final) collects the rest.
		 */
		l->err = ep_step(l, 1);
		for (k = 0; k < EP_PAGES; k++) {
			l->misses += !l->seen[k];
			/* Passes count from 0: epoch e's last is e * EP_PASSES - 1. */
			l->wrong += rv_value(&l->x->r, l->i, k) !=
				    (uint32_t)(e * EP_PASSES - 1);
		}
		l->epochs++;
	}
	/*
	 * No epoch after e - 1. last needs no order of its own: the release
	 * store of go below publishes it (the vCPU thread's acquire of go).
	 */
	__atomic_store_n(&l->last, e - 1, __ATOMIC_RELAXED);
	__atomic_store_n(&l->go, INT_MAX, __ATOMIC_RELEASE);
	return NULL;
}

static void *ep_stock_main(void *arg)
{
	struct epochs *x = arg;
	int ret;

	while (!x->stop) {
		ret = rv_reset_all(&x->r);
		if (ret < 0) {
			x->stock_err = ret;
			break;
		}
		x->stock_entries += ret;
		x->stock_calls++;
		usleep(500);
	}
	return NULL;
}

/* The stock ioctl for step @k of ep_batch_main(). */
static int ep_stock_slot(struct epochs *x, int k, void *mem)
{
	static const uint64_t gpa[] = { 0x40000000, 0x50000000, 0 };

	return kvm_set_slot(x->r.vm, 0, 7, 0, gpa[k], k == 2 ? 0 : 0x10000,
			    k == 2 ? NULL : mem);
}

/* Creates, moves and deletes a scratch slot, in batches, all along. */
static void *ep_batch_main(void *arg)
{
	struct epochs *x = arg;
	struct kvmas_batch *b = kvmas_batch_new();
	void *mem = guest_mem(0x10000);
	int k;

	if (!b || !mem)
		x->batch_err = -ENOMEM;
	for (k = 0; !x->stop && !x->batch_err; k++) {
		kvmas_batch_reset(b);
		switch (k % 3) {
		case 0:
			kvmas_batch_create(b, 0, 7, 0, 0x40000000, 0x10000,
					   mem);
			break;
		case 1:
			kvmas_batch_move(b, 0, 7, 0, 0x50000000, 0x10000, mem);
			break;
		default:
			kvmas_batch_delete(b, 0, 7, NULL);
			break;
		}
		if (x->flags & EP_STOCK_SLOTS)
			x->batch_err = ep_stock_slot(x, k % 3, mem);
		else
			x->batch_err = kvmas_batch_commit(x->kv, b, 0, NULL);
		if (!x->batch_err)
			x->batches++;
		usleep(1000);
	}
	kvmas_batch_free(b);
	return NULL;
}

int ep_start(struct epochs *x, int nr_lanes, int nr_epochs,
	     uint64_t deadline_us, unsigned int flags)
{
	int i, ret;

	memset(x, 0, sizeof(*x));
	x->nr_lanes = nr_lanes;
	x->nr_epochs = nr_epochs;
	x->deadline_us = deadline_us;
	x->flags = flags;
	ret = rv_create(&x->r, nr_lanes, RV_RING_ENTRIES, EP_PAGES);
	if (ret)
		return ret;
	/* A stock-only run (the control) has no session. */
	if (!(flags & EP_STOCK_RESETS) ||
	    ((flags & EP_SLOT_THREAD) && !(flags & EP_STOCK_SLOTS))) {
		ret = kvmas_open(&x->kv);
		if (ret)
			return ret;
		ret = kvmas_attach_vm(x->kv, x->r.vm);
		if (ret)
			return ret;
	}
	for (i = 0; i < nr_lanes; i++) {
		struct ep_lane *l = &x->lane[i];

		l->x = x;
		l->i = i;
		l->rng = 1 + i;
		l->last = INT_MAX;
		rv_ring(&x->r, i, &l->kr);
		if (pthread_create(&l->vcpu_thread, NULL, ep_vcpu_main, l) ||
		    pthread_create(&l->harvest_thread, NULL, ep_harvest_main,
				   l))
			return -EAGAIN;
	}
	if ((flags & EP_STOCK_THREAD) &&
	    pthread_create(&x->stock_thread, NULL, ep_stock_main, x))
		return -EAGAIN;
	if ((flags & EP_SLOT_THREAD) &&
	    pthread_create(&x->batch_thread, NULL, ep_batch_main, x))
		return -EAGAIN;
	return 0;
}

void ep_join(struct epochs *x)
{
	int i;

	for (i = 0; i < x->nr_lanes; i++) {
		pthread_join(x->lane[i].harvest_thread, NULL);
		pthread_join(x->lane[i].vcpu_thread, NULL);
	}
	x->stop = 1;
	if (x->flags & EP_STOCK_THREAD)
		pthread_join(x->stock_thread, NULL);
	if (x->flags & EP_SLOT_THREAD)
		pthread_join(x->batch_thread, NULL);
}

void ep_destroy(struct epochs *x)
{
	if (x->kv)
		kvmas_close(x->kv);
	rv_destroy(&x->r);
}
