// SPDX-License-Identifier: GPL-2.0
/*
 * The demo, run inside a QEMU-booted Debian kernel by tests/demo.sh: a real
 * 2-vCPU KVM guest executes code from, reads and writes a memslot while the
 * VMM resizes that slot, first with stock KVM ioctls (DELETE + CREATE), and
 * every hole the vCPUs run into is counted. Then what kvm-atomic-slots
 * offers on this kernel.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "kvm_helpers.h"
#include "kvmas.h"
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
	p0 = wl_progress(&w, 0);
	c0 = wl_target_counter(&w, 0);
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
	printf("  vCPU0: %llu MMIO exits, %llu emulation failures; "
	       "pf_mmio_spte_created grew by %lld\n",
	       (unsigned long long)w.count[0].hole_mmio,
	       (unsigned long long)w.count[0].hole_emul,
	       (long long)(mmio1 - mmio0));
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
	c0_before = wl_target_counter(&w, 0);
	p0 = wl_progress(&w, 0);
	p1 = wl_progress(&w, 1);
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
	printf("  vCPU0 (in the changed slot): %llu MMIO exits and %llu "
	       "emulation failures at GPAs that were mapped before and after\n",
	       (unsigned long long)(w.count[0].hole_mmio),
	       (unsigned long long)(w.count[0].hole_emul));
	printf("  KVM stat pf_mmio_spte_created grew by %lld\n",
	       (long long)(mmio1 - mmio0));
	printf("  vCPU0 made %u calls; the counter it keeps in guest memory "
	       "moved by %u: %s\n",
	       wl_progress(&w, 0) - p0, c0_after - c0_before,
	       c0_after - c0_before == wl_progress(&w, 0) - p0 ?
		       "consistent" :
		       "INCONSISTENT, guest-visible state was corrupted");
	printf("  (after each emulation failure the demo resets vCPU0 to its "
	       "loop; QEMU would have stopped the VM)\n");
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
	printf("== demo done\n");
	return 0;
}
