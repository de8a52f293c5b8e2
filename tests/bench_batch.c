// SPDX-License-Identifier: GPL-2.0
/*
 * Batch-commit benchmark: prints ratios measured in one boot (absolute
 * times under TCG mean nothing, ratios of two methods in the same boot do).
 *  1. N slot resizes as one batch vs N stock DELETE+CREATE pairs, N = 1, 8,
 *     64, 256 (time, grace periods); and a 64-op batch vs one stock CREATE.
 *  2. Stall of a vCPU outside the changed range: batch commits (nobody is
 *     paused) vs a QEMU-style update (pause every vCPU, stock ioctls, resume).
 *  3. Commit cost as the number of existing slots grows from 10 to 32,000.
 * Prints "target met" / "target missed" per target; exits 0 either way
 * (tests assert behaviour, this program reports speed).
 */
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>

#include "kvm_helpers.h"
#include "workload.h"

#define KiB 1024ULL
#define SLOT_SZ (64 * KiB)
#define BASE_GPA 0x40000000ULL

static int dev;

static int commit_ops(struct kvmas_batch_op *ops, unsigned int n,
		      unsigned int *gps)
{
	struct kvmas_commit_batch c = {
		.size = sizeof(c),
		.nr_ops = n,
		.op_size = sizeof(*ops),
		.ops = (uintptr_t)ops,
	};
	int r = ioctl(dev, KVMAS_COMMIT_BATCH, &c);

	if (gps)
		*gps = c.grace_periods;
	return r ? -errno : 0;
}

/* Creates @n 64 KiB slots from id @first, in batches of 512. */
static int create_slots(int vm, uint8_t *mem, unsigned int first,
			unsigned int n)
{
	static struct kvmas_batch_op ops[KVMAS_MAX_BATCH_OPS];
	unsigned int i, k = 0;
	int r;

	(void)vm;
	for (i = 0; i < n; i++) {
		ops[k++] = (struct kvmas_batch_op){
			.op = KVMAS_OP_CREATE,
			.slot = first + i,
			.guest_phys_addr =
				BASE_GPA + (uint64_t)(first + i) * SLOT_SZ,
			.memory_size = SLOT_SZ,
			.userspace_addr = (uintptr_t)mem +
					  (uint64_t)(first + i) * SLOT_SZ,
		};
		if (k == KVMAS_MAX_BATCH_OPS || i == n - 1) {
			r = commit_ops(ops, k, NULL);
			if (r)
				return r;
			k = 0;
		}
	}
	return 0;
}

static void target(const char *what, int met)
{
	printf("  target %-48s %s\n", what, met ? "met" : "MISSED");
}

/* 1. Batches of N vs N stock replaces. */
static void bench_sizes(void)
{
	static struct kvmas_batch_op ops[256];
	unsigned int sizes[] = { 1, 8, 64, 256 }, gps, k, i;
	uint64_t t0, t_stock, t_batch, t_create = 0;
	double ratio64 = 0, vs_create = 0;
	int vm = kvm_vm_create();
	uint8_t *mem = guest_mem(256 * SLOT_SZ);

	if (vm < 0 || !mem || kvmas_attach(dev, vm)) {
		printf("setup failed\n");
		exit(1);
	}
	printf("1. N slot resizes: one batch vs N stock DELETE+CREATE\n");
	printf("  %5s %12s %12s %8s %10s %10s\n", "N", "stock us", "batch us",
	       "ratio", "stock GPs", "batch GPs");
	create_slots(vm, mem, 0, 256);
	/* One stock CREATE, the reference for "a 64-op batch costs ~ one op". */
	for (i = 0; i < 8; i++) {
		kvm_set_slot(vm, 0, 300, 0, 0, 0, NULL);
		t0 = wl_now_us();
		kvm_set_slot(vm, 0, 300, 0, 0x80000000ULL, SLOT_SZ, mem);
		t_create += wl_now_us() - t0;
	}
	t_create /= 8;
	kvm_set_slot(vm, 0, 300, 0, 0, 0, NULL);

	for (k = 0; k < 4; k++) {
		unsigned int n = sizes[k];

		/* Stock: shrink each slot to 32 KiB and back, as DELETE+CREATE. */
		t0 = wl_now_us();
		for (i = 0; i < n; i++) {
			kvm_set_slot(vm, 0, i, 0, 0, 0, NULL);
			kvm_set_slot(vm, 0, i, 0, BASE_GPA + i * SLOT_SZ,
				     SLOT_SZ / 2, mem + i * SLOT_SZ);
		}
		t_stock = wl_now_us() - t0;
		for (i = 0; i < n; i++)
			ops[i] = (struct kvmas_batch_op){
				.op = KVMAS_OP_REPLACE,
				.slot = i,
				.guest_phys_addr = BASE_GPA + i * SLOT_SZ,
				.memory_size = SLOT_SZ,
				.userspace_addr = (uintptr_t)mem + i * SLOT_SZ,
			};
		t0 = wl_now_us();
		if (commit_ops(ops, n, &gps))
			printf("  batch of %u failed\n", n);
		t_batch = wl_now_us() - t0;
		printf("  %5u %12llu %12llu %7.1fx %10u %10u\n", n,
		       (unsigned long long)t_stock, (unsigned long long)t_batch,
		       (double)t_stock / t_batch, 3 * n, gps);
		if (n == 64) {
			ratio64 = (double)t_stock / t_batch;
			vs_create = (double)t_batch / t_create;
		}
	}
	printf("  one stock CREATE: %llu us; a 64-op batch costs %.2fx that\n",
	       (unsigned long long)t_create, vs_create);
	target("64-op batch >= 20x faster than 64 stock replaces",
	       ratio64 >= 20);
	target("64-op batch <= 2x one stock CREATE", vs_create <= 2);
	close(vm);
	munmap(mem, 256 * SLOT_SZ);
}

/*
 * 2. Stall of a vCPU outside the changed range: batches vs pause-all. One
 * vCPU looping outside the target slot, pinned to guest CPU 1, the VMM on
 * CPU 0, so neither steals the other's CPU (run with parallel guest CPUs:
 * multi-threaded TCG). Its loop rate while commits run, against its rate
 * in idle phases interleaved with them, gives the time it lost.
 */
static void bench_stall(int slot_local)
{
	uint64_t t0, dur = 0, idle_us = 0, paused = 0;
	uint64_t idle_loops = 0, batch_loops = 0;
	int i, k, phases = 5, per = 40, d = kvmas_dev_open();
	double stall_batch, stall_pause, rate_idle, rate_batch;
	cpu_set_t cpus;
	struct wl_vm w;
	uint32_t p;

	if (d < 0 || wl_create(&w, 1, 256 * KiB, 0x0) ||
	    kvm_set_slot(w.vm, 0, 1, 0, WL_TARGET_GPA, 128 * KiB, w.target) ||
	    kvmas_attach(d, w.vm)) {
		printf("  setup failed\n");
		return;
	}
	if (slot_local && !kvm_disable_slot_zap_all(w.vm)) {
		wl_destroy(&w);
		close(d);
		return;
	}
	printf("2%s. stall of a vCPU outside the changed range, %d resizes%s\n",
	       slot_local ? "b" : "", phases * per,
	       slot_local ? ",\n    KVM_X86_QUIRK_SLOT_ZAP_ALL disabled "
			    "(removals zap only their own range)" :
			    "");
	CPU_ZERO(&cpus);
	CPU_SET(0, &cpus);
	sched_setaffinity(0, sizeof(cpus), &cpus);
	if (wl_start(&w)) {
		printf("  setup failed\n");
		return;
	}
	CPU_ZERO(&cpus);
	CPU_SET(1, &cpus);
	pthread_setaffinity_np(w.thread[0], sizeof(cpus), &cpus);
	usleep(200 * 1000);

	for (k = 0; k < phases; k++) {
		p = wl_progress(&w, 0);
		t0 = wl_now_us();
		usleep(100 * 1000);
		idle_us += wl_now_us() - t0;
		idle_loops += wl_progress(&w, 0) - p;

		p = wl_progress(&w, 0);
		t0 = wl_now_us();
		for (i = 0; i < per; i++)
			wl_batch_resize(&w, d, (i & 1) ? 128 * KiB : 256 * KiB,
					NULL);
		dur += wl_now_us() - t0;
		batch_loops += wl_progress(&w, 0) - p;
	}
	rate_idle = (double)idle_loops / idle_us;
	rate_batch = (double)batch_loops / dur;
	/* Progress the vCPU lost to the commits, expressed as time. */
	stall_batch = rate_batch >= rate_idle ?
			      0 :
			      dur * (1.0 - rate_batch / rate_idle);

	/* QEMU >= 8.0 style: pause all vCPUs, stock DELETE+CREATE, resume. */
	for (i = 0; i < phases * per; i++) {
		t0 = wl_now_us();
		wl_pause_all(&w);
		kvm_set_slot(w.vm, 0, 1, 0, 0, 0, NULL);
		kvm_set_slot(w.vm, 0, 1, 0, WL_TARGET_GPA,
			     (i & 1) ? 128 * KiB : 256 * KiB, w.target);
		wl_resume_all(&w);
		paused += wl_now_us() - t0;
	}
	stall_pause = paused;
	printf("  vCPU rate: %.0f/ms idle, %.0f/ms during batches\n",
	       rate_idle * 1000, rate_batch * 1000);
	printf("  stall per update: batch %.1f us, pause-all %.1f us (ratio %.3f)\n",
	       stall_batch / (phases * per), stall_pause / (phases * per),
	       stall_pause ? stall_batch / stall_pause : 0);
	printf("  holes during batches and pauses: %llu\n",
	       (unsigned long long)wl_holes(&w));
	target("outside-range stall <= 1/10 of pause-all",
	       stall_batch * 10 <= stall_pause);
	wl_stop(&w);
	wl_destroy(&w);
	close(d);
}

/* 3. Cost of a 1-op commit as the slot count grows. */
static void bench_scaling(void)
{
	unsigned int counts[] = { 10, 100, 1000, 10000, 32000 }, have = 0, k, i;
	uint8_t *mem = guest_mem(32001ULL * SLOT_SZ);
	int vm = kvm_vm_create();
	double first = 0, ratio = 0;

	printf("3. one-op commit cost as existing slots grow\n");
	if (vm < 0 || !mem || kvmas_attach(dev, vm)) {
		printf("  setup failed\n");
		return;
	}
	for (k = 0; k < 5; k++) {
		uint64_t t0, t;

		if (create_slots(vm, mem, have, counts[k] - have)) {
			printf("  could not create %u slots\n", counts[k]);
			break;
		}
		have = counts[k];
		t0 = wl_now_us();
		for (i = 0; i < 20; i++) {
			struct kvmas_batch_op op = {
				.op = KVMAS_OP_REPLACE,
				.slot = have / 2,
				.guest_phys_addr =
					BASE_GPA +
					(uint64_t)(have / 2) * SLOT_SZ,
				.memory_size = (i & 1) ? SLOT_SZ : SLOT_SZ / 2,
				.userspace_addr =
					(uintptr_t)mem +
					(uint64_t)(have / 2) * SLOT_SZ,
			};

			commit_ops(&op, 1, NULL);
		}
		t = (wl_now_us() - t0) / 20;
		if (!first)
			first = t;
		ratio = t / first;
		printf("  %6u slots: %8llu us per commit (%.2fx the 10-slot cost)\n",
		       have, (unsigned long long)t, ratio);
	}
	/* log2(32000)/log2(10) ~ 4.5: per-op cost no faster than log n. */
	target("cost at 32k slots <= 4.5x the cost at 10 (log n)",
	       ratio <= 4.5);
	close(vm);
}

int main(int argc, char **argv)
{
	const char *only = argc > 1 ? argv[1] : "";

	dev = kvmas_dev_open();
	if (dev < 0 ||
	    ioctl(dev, KVMAS_CHECK_EXTENSION, KVMAS_CAP_BATCH_COMMIT) <= 0) {
		printf("batch commits unavailable\n");
		return 1;
	}
	printf("== batch-commit benchmark (ratios within one boot)\n");
	if (!*only || !strcmp(only, "sizes"))
		bench_sizes();
	close(dev);
	dev = kvmas_dev_open();
	if (!*only || !strcmp(only, "stall")) {
		bench_stall(0);
		bench_stall(1);
	}
	if (!*only || !strcmp(only, "scaling"))
		bench_scaling();
	printf("== benchmark done\n");
	return 0;
}
