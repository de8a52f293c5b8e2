// SPDX-License-Identifier: GPL-2.0
/*
 * Dirty-ring reset benchmark: entries reset per second through
 * KVMAS_RESET_RING vs stock KVM_RESET_DIRTY_RINGS, measured in one boot
 * (ratios only; absolute rates under TCG mean nothing).
 *
 * Two vCPUs each dirty the pages of their stripe; the rings are harvested
 * (not timed); then one reset method is timed:
 *   stock     one thread, KVM_RESET_DIRTY_RINGS (both rings, slots_lock)
 *   ours x1   one thread, one KVMAS_RESET_RING call naming both vCPUs
 *   ours x2   two threads, each resetting its own vCPU's ring at once
 * and, to show where the time goes, the two "ours" methods again on entries
 * naming no page (the walk alone, without KVM's re-protection under
 * mmu_lock; the pages are re-protected afterwards by toggling dirty logging).
 * Methods rotate round by round so drift hits all alike. Run it with truly
 * parallel guest CPUs (multi-threaded TCG) or the x2 figure means nothing.
 * Exits 0 whatever the ratios; prints "target met/missed".
 */
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "kvm_helpers.h"
#include "kvmas.h"
#include "ringvm.h"

#define PAGES 8192
#define RING 16384

static struct ringvm r;
static struct kvmas *kv;
static struct kvmas_ring kr[2];

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void pin(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	sched_setaffinity(0, sizeof(set), &set);
}

/* Dirty both stripes and harvest them (untimed). */
static int dirty_and_harvest(void)
{
	int i;

	for (i = 0; i < 2; i++) {
		if (rv_run_pass(&r, i))
			return -1;
		if (kvmas_ring_harvest(&kr[i], NULL, NULL, 0) != PAGES)
			return -1;
	}
	return 0;
}

struct worker {
	int i;
	pthread_t t;
	volatile int *go;
	double end;
	long got;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct kvmas_ring *one = &kr[w->i];

	pin(w->i);
	while (!__atomic_load_n(w->go, __ATOMIC_ACQUIRE))
		;
	w->got = kvmas_ring_reset(kv, &one, 1, 0);
	w->end = now_s();
	return NULL;
}

/* Entries that name no page: the reset walks them without re-protecting. */
static void spoil(void)
{
	uint32_t k, i;

	for (i = 0; i < 2; i++)
		for (k = 0; k < RING; k++)
			r.ring[i][k].slot = 0x7fff;
}

/* Dirty logging off and on: every page write-protected again. */
static int reprotect_all(void)
{
	uint64_t size = (uint64_t)PAGES * 2 * 4096;

	if (kvm_set_slot(r.vm, 0, RV_DATA_SLOT, 0, RV_DATA_GPA, size, r.data))
		return -1;
	return kvm_set_slot(r.vm, 0, RV_DATA_SLOT, KVM_MEM_LOG_DIRTY_PAGES,
			    RV_DATA_GPA, size, r.data);
}

/* Returns entries reset and adds the elapsed time to *t. */
static long timed(int method, double *t)
{
	struct kvmas_ring *both[2] = { &kr[0], &kr[1] };
	static volatile int go;
	struct worker w[2];
	double t0;
	long got = 0;
	int i;

	if (method == 0) {
		t0 = now_s();
		got = rv_reset_all(&r);
		*t += now_s() - t0;
		/* Keep libkvmas's view in step with what stock reset. */
		return got;
	}
	if (method == 1 || method == 3) {
		t0 = now_s();
		got = kvmas_ring_reset(kv, both, 2, 0);
		*t += now_s() - t0;
		return got;
	}
	go = 0;
	for (i = 0; i < 2; i++) {
		w[i].i = i;
		w[i].go = &go;
		if (pthread_create(&w[i].t, NULL, worker_main, &w[i]))
			return -1;
	}
	usleep(20 * 1000); /* both spinning on their CPUs */
	t0 = now_s();
	__atomic_store_n(&go, 1, __ATOMIC_RELEASE);
	for (i = 0; i < 2; i++) {
		pthread_join(w[i].t, NULL);
		if (w[i].got < 0)
			return w[i].got;
		got += w[i].got;
	}
	*t += (w[0].end > w[1].end ? w[0].end : w[1].end) - t0;
	return got;
}

int main(int argc, char **argv)
{
	static const char *const names[] = { "stock KVM_RESET_DIRTY_RINGS",
					     "ours, 1 thread (one call)",
					     "ours, 2 per-vCPU threads",
					     "ours, 1 thread, walk only",
					     "ours, 2 threads, walk only" };
	int rounds = argc > 1 ? atoi(argv[1]) : 6, k, m, ret;
	double t[5] = { 0 }, rate[5];
	long n[5] = { 0 }, got;

	pin(0);
	ret = rv_create(&r, 2, RING, PAGES);
	if (ret) {
		fprintf(stderr, "ringvm: %s\n", strerror(-ret));
		return 1;
	}
	if (kvmas_open(&kv) || kvmas_attach_vm(kv, r.vm)) {
		fprintf(stderr, "cannot attach a session\n");
		return 1;
	}
	printf("# KVMAS_CAP_RING_RESET = %d (2 = per-vCPU parallel)\n",
	       kvmas_check_extension(kv, KVMAS_CAP_RING_RESET));
	for (k = 0; k < 2; k++)
		rv_ring(&r, k, &kr[k]);
	/* Warm-up round: first faults map pages, not just re-protect them. */
	if (dirty_and_harvest() || timed(1, &t[1]) != 2 * PAGES) {
		fprintf(stderr, "warm-up failed\n");
		return 1;
	}
	t[1] = 0;
	for (k = 0; k < 5 * rounds; k++) {
		m = k % 5;
		if (dirty_and_harvest()) {
			fprintf(stderr, "round %d: dirtying failed\n", k);
			return 1;
		}
		if (m >= 3)
			spoil();
		got = timed(m == 4 ? 2 : m, &t[m]);
		if (m >= 3 && reprotect_all()) {
			fprintf(stderr, "round %d: re-protecting failed\n", k);
			return 1;
		}
		if (got != 2 * PAGES) {
			fprintf(stderr, "round %d (%s): reset %ld of %d\n", k,
				names[m], got, 2 * PAGES);
			return 1;
		}
		n[m] += got;
	}
	for (m = 0; m < 5; m++) {
		rate[m] = n[m] / t[m];
		printf("# %-30s %8ld entries in %.3f s: %.0f entries/s\n",
		       names[m], n[m], t[m], rate[m]);
	}
	printf("# ours 1 thread / stock  = %.2fx (target >= 1.0x: %s)\n",
	       rate[1] / rate[0], rate[1] >= rate[0] ? "met" : "missed");
	printf("# ours 2 threads / stock = %.2fx (target >= 1.7x: %s)\n",
	       rate[2] / rate[0], rate[2] >= 1.7 * rate[0] ? "met" : "missed");
	printf("# ours 2 threads / ours 1 thread = %.2fx\n", rate[2] / rate[1]);
	printf("# share of a reset spent in KVM's re-protection (mmu_lock held "
	       "for write, serialising): %.0f%%\n",
	       100.0 * (1 - rate[1] / rate[3]));
	printf("# walk alone, 2 threads / 1 thread = %.2fx\n",
	       rate[4] / rate[3]);
	kvmas_close(kv);
	rv_destroy(&r);
	return 0;
}
