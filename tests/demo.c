// SPDX-License-Identifier: GPL-2.0
/*
 * The demo, run inside a QEMU-booted Debian kernel by tests/demo.sh: a real
 * 2-vCPU KVM guest executes code from, reads and writes a memslot while the
 * VMM resizes that slot, first with stock KVM ioctls (DELETE + CREATE), and
 * every hole the vCPUs run into is counted. Then what kvm-atomic-slots
 * offers on this kernel. Last, a dirty-tracking scene: a guest writing
 * while libkvmas harvests each vCPU's dirty ring from its own thread and
 * resets it through KVMAS_RESET_RING.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "kvm_helpers.h"
#include "kvmas.h"
#include "ringvm.h"
#include "workload.h"

#define KiB 1024UL

static void show_layout(int dev)
{
	struct kvmas_slot s[16];
	unsigned int nr, i;
	uint64_t gen[KVMAS_MAX_AS];

	if (kvmas_layout(dev, KVMAS_LAYOUT_ALL_AS, 0, s, 16, &nr, gen)) {
		printf("  (layout unavailable)\n");
		return;
	}
	printf("  as slot  gpa         size        flags  (generation %llu)\n",
	       (unsigned long long)gen[0]);
	for (i = 0; i < nr; i++)
		printf("  %2u %4u  0x%08llx  0x%08llx  0x%x\n", s[i].as_id,
		       s[i].slot, (unsigned long long)s[i].guest_phys_addr,
		       (unsigned long long)s[i].memory_size, s[i].flags);
}

static int set_target(struct wl_vm *w, uint64_t size)
{
	return kvm_set_slot(w->vm, 0, 1, 0, WL_TARGET_GPA, size, w->target);
}

/*
 * Stock resize as every VMM must do it today: DELETE, then CREATE with the
 * new size. The function and data GPAs are mapped before and after.
 */
static int stock_resize(struct wl_vm *w, uint64_t size)
{
	int r = set_target(w, 0);

	return r ? r : set_target(w, size);
}

/* The same workload, resized by batch commits (one REPLACE op each). */
static void run_batches(int iters, uint64_t t_stock)
{
	uint64_t small = 128 * KiB, big = 256 * KiB, t0, t_batch;
	unsigned long long gps = 0;
	struct wl_vm w;
	int64_t mmio0, mmio1;
	uint32_t p0, c0;
	int dev, i, r;

	dev = kvmas_dev_open();
	if (dev < 0 || wl_create(&w, 2, big, 0x1) || set_target(&w, small) ||
	    kvmas_attach(dev, w.vm) || wl_start(&w)) {
		printf("  batch setup failed\n");
		return;
	}
	usleep(200 * 1000);
	mmio0 = wl_vcpu_stat(&w, -1, "pf_mmio_spte_created");
	/* One instant for both counters: vCPUs run on other CPUs. */
	wl_pause_all(&w);
	p0 = wl_progress(&w, 0);
	c0 = wl_target_counter(&w, 0);
	wl_resume_all(&w);
	t0 = wl_now_us();
	for (i = 0; i < iters; i++) {
		unsigned int g;

		r = wl_batch_resize(&w, dev, (i & 1) ? small : big, &g);
		if (r) {
			printf("KVMAS_COMMIT_BATCH: %s\n", strerror(-r));
			break;
		}
		gps += g;
	}
	t_batch = wl_now_us() - t0;
	usleep(100 * 1000);
	wl_pause_all(&w);
	mmio1 = wl_vcpu_stat(&w, -1, "pf_mmio_spte_created");
	printf("  %d batch resizes in %.1f ms (%.1f us each, %.1f grace periods each)\n",
	       iters, t_batch / 1000.0, (double)t_batch / iters,
	       (double)gps / iters);
#if defined(__aarch64__)
	(void)mmio0;
	(void)mmio1;
	printf("  vCPU0: %llu MMIO exits, %llu aborts injected into the guest\n",
	       (unsigned long long)w.count[0].hole_mmio,
	       (unsigned long long)wl_guest_exceptions(&w, 0, NULL, NULL));
#else
	printf("  vCPU0: %llu MMIO exits, %llu emulation failures; "
	       "pf_mmio_spte_created grew by %lld\n",
	       (unsigned long long)w.count[0].hole_mmio,
	       (unsigned long long)w.count[0].hole_emul,
	       (long long)(mmio1 - mmio0));
#endif
	printf("  vCPU0 made %u calls; its counter moved by %u: %s\n",
	       wl_progress(&w, 0) - p0, wl_target_counter(&w, 0) - c0,
	       wl_target_counter(&w, 0) - c0 - (wl_progress(&w, 0) - p0) <= 1 ?
		       "consistent" :
		       "INCONSISTENT");
	printf("  holes seen by vCPUs: %llu; stock/batch time ratio %.2fx\n",
	       (unsigned long long)wl_holes(&w), (double)t_stock / t_batch);
	wl_stop(&w);
	wl_destroy(&w);
	close(dev);
}

/* ---- dirty-tracking scene ---- */

#define RS_PAGES 128

struct rs_lane {
	struct ringvm *r;
	struct kvmas *kv;
	struct kvmas_ring kr;
	int i, epochs;
	volatile int go, done;
	uint8_t seen[RS_PAGES];
	uint64_t entries, resets, missed;
	int err;
};

static void rs_collect(void *opaque, __u32 slot, __u64 offset)
{
	struct rs_lane *l = opaque;
	uint64_t first = (uint64_t)l->i * RS_PAGES;

	l->entries++;
	if (slot == RV_DATA_SLOT && offset >= first &&
	    offset < first + RS_PAGES)
		l->seen[offset - first] = 1;
}

static void *rs_vcpu(void *arg)
{
	struct rs_lane *l = arg;
	int e;

	for (e = 1; e <= l->epochs && !l->err; e++) {
		while (__atomic_load_n(&l->go, __ATOMIC_ACQUIRE) < e)
			usleep(50);
		l->err = rv_run_pass(l->r, l->i);
		__atomic_store_n(&l->done, e, __ATOMIC_RELEASE);
	}
	return NULL;
}

static int rs_step(struct rs_lane *l)
{
	struct kvmas_ring *kr = &l->kr;
	long got;

	/* Nothing new collected and nothing pending: no call. */
	if (!kvmas_ring_harvest(kr, rs_collect, l, 0) &&
	    kr->fetch == kr->reset_index)
		return 0;
	got = kvmas_ring_reset(l->kv, &kr, 1, 0);
	l->resets++;
	return got < 0 ? (int)got : 0;
}

static void *rs_harvester(void *arg)
{
	struct rs_lane *l = arg;
	int e, k;

	for (e = 1; e <= l->epochs && !l->err; e++) {
		memset(l->seen, 0, sizeof(l->seen));
		__atomic_store_n(&l->go, e, __ATOMIC_RELEASE);
		while (__atomic_load_n(&l->done, __ATOMIC_ACQUIRE) < e &&
		       !l->err)
			l->err = rs_step(l);
		l->err = l->err ?: rs_step(l);
		for (k = 0; k < RS_PAGES; k++)
			l->missed += !l->seen[k];
	}
	return NULL;
}

/* Time to reset one full harvest of both rings, ours (one call) vs stock. */
static int rs_ratio(struct ringvm *r, struct kvmas *kv, struct rs_lane *l,
		    double *ratio)
{
	struct kvmas_ring *both[2] = { &l[0].kr, &l[1].kr };
	uint64_t t_ours = 0, t_stock = 0, t0;
	int round, i;

	for (round = 0; round < 40; round++) {
		for (i = 0; i < 2; i++) {
			if (rv_run_pass(r, i))
				return -1;
			kvmas_ring_harvest(&l[i].kr, NULL, NULL, 0);
		}
		t0 = wl_now_us();
		if (round & 1) {
			if (rv_reset_all(r) != 2 * RS_PAGES)
				return -1;
			t_stock += wl_now_us() - t0;
		} else {
			if (kvmas_ring_reset(kv, both, 2, 0) != 2 * RS_PAGES)
				return -1;
			t_ours += wl_now_us() - t0;
		}
	}
	*ratio = (double)t_stock / t_ours;
	return 0;
}

static void ring_scene(int epochs)
{
	pthread_t tv[2], th[2];
	struct rs_lane l[2];
	struct kvmas *kv = NULL;
	struct ringvm r;
	double ratio;
	int i, par;

	printf("\nDirty tracking: a 2-vCPU guest writes %d pages per vCPU per "
	       "epoch; each vCPU's ring is\nharvested by its own thread with "
	       "libkvmas (acquire, collect, release) and reset per vCPU\n"
	       "(KVMAS_RESET_RING) while the vCPU runs.\n",
	       RS_PAGES);
	if (rv_create(&r, 2, RV_RING_ENTRIES, RS_PAGES) || kvmas_open(&kv) ||
	    kvmas_attach_vm(kv, r.vm)) {
		printf("  ring VM setup failed\n");
		goto out;
	}
	par = kvmas_check_extension(kv, KVMAS_CAP_RING_RESET);
	if (par <= 0) {
		printf("  This kernel does not offer the per-vCPU reset.\n");
		goto out;
	}
	memset(l, 0, sizeof(l));
	for (i = 0; i < 2; i++) {
		l[i].r = &r;
		l[i].kv = kv;
		l[i].i = i;
		l[i].epochs = epochs;
		rv_ring(&r, i, &l[i].kr);
		pthread_create(&tv[i], NULL, rs_vcpu, &l[i]);
		pthread_create(&th[i], NULL, rs_harvester, &l[i]);
	}
	for (i = 0; i < 2; i++) {
		pthread_join(th[i], NULL);
		pthread_join(tv[i], NULL);
	}
	for (i = 0; i < 2; i++)
		printf("  vCPU%d: %d epochs, %llu entries harvested in %llu "
		       "resets; pages written but never reported: %llu%s\n",
		       i, epochs, (unsigned long long)l[i].entries,
		       (unsigned long long)l[i].resets,
		       (unsigned long long)l[i].missed,
		       l[i].err ? " (error)" : "");
	printf("  resets of different vCPUs run %s\n",
	       par == KVMAS_RING_RESET_PARALLEL ?
		       "concurrently (per-ring locks; stock resets take them too)" :
		       "serialised under slots_lock on this kernel");
	if (!rs_ratio(&r, kv, l, &ratio))
		printf("  reset rate, ours (one call for both vCPUs) / stock "
		       "KVM_RESET_DIRTY_RINGS: %.2fx\n"
		       "  (2-thread scaling: tests/bench_ring, run in the "
		       "multi-threaded boot of make check)\n",
		       ratio);
out:
	kvmas_close(kv);
	rv_destroy(&r);
}

int main(int argc, char **argv)
{
	int iters = argc > 1 ? atoi(argv[1]) : 300;
	uint64_t small = 128 * KiB, big = 256 * KiB;
	uint32_t p0, p1, c0_before, c0_after;
	uint64_t t0, t_stock, mmio0, mmio1;
	struct kvmas_caps caps = { .size = sizeof(caps) };
	struct wl_vm w;
	int dev, i, r;

	printf("== kvm-atomic-slots demo\n");
	/* Capabilities as they are once the livepatch has taken over. */
	patch_wait_settled();
	dev = kvmas_dev_open();
	if (dev < 0) {
		printf("cannot open %s: %s\n", KVMAS_DEVICE_PATH,
		       strerror(-dev));
		return 1;
	}
	if (ioctl(dev, KVMAS_GET_CAPS, &caps)) {
		perror("KVMAS_GET_CAPS");
		return 1;
	}
	printf("module api %u, capabilities:", caps.api_version);
	for (i = 0; i < KVMAS_CAP_COUNT; i++)
		printf(" %s=%d", kvmas_cap_name(i),
		       ioctl(dev, KVMAS_CHECK_EXTENSION, i));
	printf("\n");

	r = wl_create(&w, 2, big, 0x1);
	if (!r)
		r = set_target(&w, small);
	if (!r)
		r = kvmas_attach(dev, w.vm);
	if (r) {
		printf("guest setup failed: %s\n", strerror(-r));
		return 1;
	}
	printf("\nA 2-vCPU guest: vCPU0 executes, reads and writes in slot 1; "
	       "vCPU1 only loops in slot 0.\nLayout seen through the session "
	       "(GET_LAYOUT):\n");
	show_layout(dev);

	if (wl_start(&w)) {
		printf("cannot start vCPUs\n");
		return 1;
	}
	usleep(200 * 1000);
	printf("\nResizing slot 1 between %lu and %lu KiB %d times with stock "
	       "KVM_SET_USER_MEMORY_REGION (DELETE + CREATE)...\n",
	       small / KiB, big / KiB, iters);
	mmio0 = wl_vcpu_stat(&w, -1, "pf_mmio_spte_created");
	/* One instant for all counters: vCPUs run on other CPUs. */
	wl_pause_all(&w);
	c0_before = wl_target_counter(&w, 0);
	p0 = wl_progress(&w, 0);
	p1 = wl_progress(&w, 1);
	wl_resume_all(&w);
	t0 = wl_now_us();
	for (i = 0; i < iters; i++) {
		r = stock_resize(&w, (i & 1) ? small : big);
		if (r) {
			printf("stock resize failed: %s\n", strerror(-r));
			break;
		}
	}
	t_stock = wl_now_us() - t0;
	usleep(100 * 1000);
	wl_stop(&w);
	mmio1 = wl_vcpu_stat(&w, -1, "pf_mmio_spte_created");
	c0_after = wl_target_counter(&w, 0);

	printf("  %d resizes in %.1f ms (%.1f us each, 2 ioctls, >= 3 SRCU "
	       "grace periods)\n",
	       iters, t_stock / 1000.0, (double)t_stock / iters);
#if defined(__aarch64__)
	{
		uint64_t esr, far;
		uint64_t exc = wl_guest_exceptions(&w, 0, &esr, &far);

		(void)mmio0;
		(void)mmio1;
		printf("  vCPU0 (in the changed slot): %llu MMIO exits and %llu "
		       "aborts KVM injected into the guest (last: ESR_EL1 %#llx, "
		       "FAR_EL1 %#llx) at GPAs that were mapped before and after\n",
		       (unsigned long long)w.count[0].hole_mmio,
		       (unsigned long long)exc, (unsigned long long)esr,
		       (unsigned long long)far);
	}
#else
	printf("  vCPU0 (in the changed slot): %llu MMIO exits and %llu "
	       "emulation failures at GPAs that were mapped before and after\n",
	       (unsigned long long)(w.count[0].hole_mmio),
	       (unsigned long long)(w.count[0].hole_emul));
	printf("  KVM stat pf_mmio_spte_created grew by %lld\n",
	       (long long)(mmio1 - mmio0));
#endif
	printf("  vCPU0 made %u calls; the counter it keeps in guest memory "
	       "moved by %u: %s\n",
	       wl_progress(&w, 0) - p0, c0_after - c0_before,
	       c0_after - c0_before == wl_progress(&w, 0) - p0 ?
		       "consistent" :
		       "INCONSISTENT, guest-visible state was corrupted");
#if defined(__aarch64__)
	printf("  (the guest's own abort handler restarts its loop; a real "
	       "guest kernel would have died)\n");
#else
	printf("  (after each emulation failure the demo resets vCPU0 to its "
	       "loop; QEMU would have stopped the VM)\n");
#endif
	printf("  vCPU1 (untouched slot) made %u loop iterations meanwhile\n",
	       wl_progress(&w, 1) - p1);
	printf("  holes seen by vCPUs: %llu\n",
	       (unsigned long long)wl_holes(&w));

	printf("\nWith kvm-atomic-slots the same resize is one batch commit "
	       "that vCPUs observe atomically.\n");
	if (ioctl(dev, KVMAS_CHECK_EXTENSION, KVMAS_CAP_BATCH_COMMIT) <= 0) {
		printf("  This kernel does not offer batch commits "
		       "(KVMAS_CAP_BATCH_COMMIT=0).\n");
	} else {
		run_batches(iters, t_stock);
	}
	wl_destroy(&w);
	close(dev);
	ring_scene(300);
	printf("== demo done\n");
	return 0;
}
