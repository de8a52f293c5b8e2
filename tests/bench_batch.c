// SPDX-License-Identifier: GPL-2.0
/*
 * Batch-commit benchmark: ratios measured in one boot (absolute times
 * under TCG mean nothing, ratios of two methods in the same boot do), each
 * the median of repeated rounds with its spread, the conditions stated.
 *  1. N slot resizes as one batch vs N stock DELETE+CREATE pairs, N = 1,
 *     8, 64, 256; with no vCPU (a) and with a vCPU running elsewhere (b).
 *  2. One op of each kind as a batch vs the stock ioctl it replaces.
 *  3. A batch's per-op marginal cost vs KVM's own per-slot prepare work.
 *  4. Stall of a vCPU outside the changed range: batch commits (nobody is
 *     paused) vs a QEMU-style update (pause every vCPU, stock ioctls,
 *     resume); with KVM's default zapping and slot-local zapping.
 *  5. Commit cost as the number of existing slots grows from 10 to 32,000.
 * Prints "target met" / "target MISSED" per target and every figure as a
 * JSON line too (bench_common.h); exits 0 either way (tests assert
 * behaviour, this program reports speed). KVMAS_BENCH_QUICK=1: 3 rounds
 * and short phases, to prove it runs (make check).
 * Usage: bench_batch [sizes|ops|marginal|stall|scaling]
 */
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mount.h>

#include "bench_common.h"
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

/*
 * The VM a commit-latency section measures on, in one of two conditions:
 * "idle" (no vCPU) or "running" (one vCPU looping in the guest, outside
 * the slots changed, pinned to another guest CPU than the VMM). Slots
 * FIRST_ID.. at BASE_GPA are the ones resized.
 */
#define FIRST_ID 16
#define NSLOTS 256
#define MAX_ROUNDS 64

struct bvm {
	int vm, dev;
	uint8_t *mem;
	uint64_t size[NSLOTS]; /* each slot's current size */
	int running;
	struct wl_vm w;
};

static unsigned int rounds = 21;
static int quick;

static void pin_self(int cpu)
{
	cpu_set_t cpus;

	CPU_ZERO(&cpus);
	CPU_SET(cpu, &cpus);
	sched_setaffinity(0, sizeof(cpus), &cpus);
}

static int bvm_setup(struct bvm *v, int running)
{
	unsigned int i;

	memset(v, 0, sizeof(*v));
	v->running = running;
	v->dev = kvmas_dev_open();
	v->mem = guest_mem(NSLOTS * SLOT_SZ);
	if (v->dev < 0 || !v->mem)
		return -1;
	if (running) {
		if (wl_create(&v->w, 1, 128 * KiB, 0x1) ||
		    kvm_set_slot(v->w.vm, 0, 1, 0, WL_TARGET_GPA, 128 * KiB,
				 v->w.target))
			return -1;
		v->vm = v->w.vm;
	} else {
		v->vm = kvm_vm_create();
	}
	if (v->vm < 0 || kvmas_attach(v->dev, v->vm))
		return -1;
	for (i = 0; i < NSLOTS; i++) {
		v->size[i] = SLOT_SZ;
		if (kvm_set_slot(v->vm, 0, FIRST_ID + i, 0,
				 BASE_GPA + i * SLOT_SZ, SLOT_SZ,
				 v->mem + i * SLOT_SZ))
			return -1;
	}
	if (running) {
		cpu_set_t cpus;

		pin_self(0);
		if (wl_start(&v->w))
			return -1;
		CPU_ZERO(&cpus);
		CPU_SET(sysconf(_SC_NPROCESSORS_ONLN) > 1 ? 1 : 0, &cpus);
		pthread_setaffinity_np(v->w.thread[0], sizeof(cpus), &cpus);
		usleep(100 * 1000);
	}
	return 0;
}

static void bvm_destroy(struct bvm *v)
{
	if (v->running) {
		if (wl_holes(&v->w))
			printf("  UNEXPECTED: %llu holes seen by the vCPU\n",
			       (unsigned long long)wl_holes(&v->w));
		wl_stop(&v->w);
		wl_destroy(&v->w);
	} else if (v->vm >= 0) {
		close(v->vm);
	}
	close(v->dev);
	munmap(v->mem, NSLOTS * SLOT_SZ);
}

static const char *cond_name(int running)
{
	return running ? "running" : "idle";
}

/* The other of a slot's two sizes: the resize both methods perform. */
static uint64_t bvm_flip(struct bvm *v, unsigned int i)
{
	v->size[i] = v->size[i] == SLOT_SZ ? SLOT_SZ / 2 : SLOT_SZ;
	return v->size[i];
}

/* Stock: N resizes as DELETE+CREATE pairs (what a VMM does today). */
static uint64_t stock_resize(struct bvm *v, unsigned int n)
{
	uint64_t t0 = wl_now_us();
	unsigned int i;

	for (i = 0; i < n; i++) {
		uint64_t sz = bvm_flip(v, i);

		kvm_set_slot(v->vm, 0, FIRST_ID + i, 0, 0, 0, NULL);
		if (kvm_set_slot(v->vm, 0, FIRST_ID + i, 0,
				 BASE_GPA + i * SLOT_SZ, sz,
				 v->mem + i * SLOT_SZ))
			printf("  stock resize failed\n");
	}
	return wl_now_us() - t0;
}

/* Ours: the same N resizes as one batch of REPLACE ops. */
static uint64_t batch_resize(struct bvm *v, unsigned int n, unsigned int *gps)
{
	static struct kvmas_batch_op ops[NSLOTS];
	unsigned int i;
	uint64_t t0;

	for (i = 0; i < n; i++)
		ops[i] = (struct kvmas_batch_op){
			.op = KVMAS_OP_REPLACE,
			.slot = FIRST_ID + i,
			.guest_phys_addr = BASE_GPA + i * SLOT_SZ,
			.memory_size = bvm_flip(v, i),
			.userspace_addr = (uintptr_t)v->mem + i * SLOT_SZ,
		};
	dev = v->dev;
	t0 = wl_now_us();
	if (commit_ops(ops, n, gps))
		printf("  batch of %u failed\n", n);
	return wl_now_us() - t0;
}

/* Prints "name: p50 [p10 .. p90]" and the JSON twin. */
static struct bench_stats report(const char *cas, const char *cond,
				 const char *method, unsigned int n, double *s,
				 unsigned int k)
{
	struct bench_stats st;

	bench_json_begin("batch", cas);
	bench_json_kv("\"condition\":\"%s\",\"method\":\"%s\",\"ops\":%u", cond,
		      method, n);
	bench_json_samples(s, k);
	st = bench_stats(s, k);
	bench_json_stats("us", st);
	bench_json_end();
	return st;
}

/*
 * 1. N resizes: one batch vs N stock DELETE+CREATE pairs, both methods in
 * every round (their order alternating, so drift hits both alike); the
 * ratio is taken per round and reported as median and spread.
 */
static double median_ratio64[2], spread64[2];

static void bench_sizes(int running)
{
	unsigned int sizes[] = { 1, 8, 64, 256 }, k, r, gps = 0;
	double ts[MAX_ROUNDS], tb[MAX_ROUNDS], ratio[MAX_ROUNDS];
	struct bench_stats ss, sb, sr;
	char cas[32];
	struct bvm v;

	printf("1%s. N slot resizes: one batch vs N stock DELETE+CREATE, vCPU %s, "
	       "%u rounds\n",
	       running ? "b" : "a", running ? "running" : "idle (none)",
	       rounds);
	if (bvm_setup(&v, running)) {
		printf("  setup failed\n");
		exit(1);
	}
	printf("  %5s %18s %18s %8s %14s %5s %5s\n", "N", "stock us p50",
	       "batch us p50", "ratio", "ratio p10-p90", "GPs", "ours");
	for (k = 0; k < 4; k++) {
		unsigned int n = sizes[k];

		for (r = 0; r < rounds; r++) {
			if (r & 1) {
				tb[r] = batch_resize(&v, n, &gps);
				ts[r] = stock_resize(&v, n);
			} else {
				ts[r] = stock_resize(&v, n);
				tb[r] = batch_resize(&v, n, &gps);
			}
			ratio[r] = tb[r] ? ts[r] / tb[r] : 0;
		}
		snprintf(cas, sizeof(cas), "resize%u", n);
		ss = report(cas, cond_name(running), "stock", n, ts, rounds);
		sb = report(cas, cond_name(running), "batch", n, tb, rounds);
		sr = bench_stats(ratio, rounds);
		bench_json_begin("batch", cas);
		bench_json_kv("\"condition\":\"%s\",\"method\":\"ratio\","
			      "\"ops\":%u,\"stock_gps\":%u,\"batch_gps\":%u",
			      cond_name(running), n, 3 * n, gps);
		bench_json_stats("x", sr);
		bench_json_end();
		printf("  %5u %10.0f [%5.0f] %10.0f [%5.0f] %7.1fx %6.1f-%-6.1f %5u %5u\n",
		       n, ss.p50, ss.p90 - ss.p10, sb.p50, sb.p90 - sb.p10,
		       sr.p50, sr.p10, sr.p90, 3 * n, gps);
		if (n == 64) {
			median_ratio64[running] = sr.p50;
			spread64[running] = sr.p10 ? sr.p90 / sr.p10 : 0;
		}
	}
	printf("  ([..]: p90-p10 of the time; GPs: grace periods per commit)\n");
	target(running ? "64 resizes, vCPU running: batch >= 10x (median)" :
			 "64 resizes, idle VM: batch >= 10x (median)",
	       median_ratio64[running] >= 10);
	target("  ... its ratio's spread p90/p10 <= 2",
	       spread64[running] && spread64[running] <= 2);
	bvm_destroy(&v);
}

/*
 * 2. One op, batch vs the stock ioctl it replaces, per kind. Every kind
 * leaves the slot as it found it after a stock+batch round.
 */
enum { K_CREATE, K_DELETE, K_REPLACE, K_FLAGS, K_MOVE, NKINDS };
static const char *const kind_name[NKINDS] = { "create", "delete", "replace",
					       "set_flags", "move" };

static uint64_t one_stock(struct bvm *v, int kind, int phase)
{
	unsigned int id = FIRST_ID;
	uint8_t *hva = v->mem;
	uint64_t t0, t;

	switch (kind) {
	case K_CREATE: /* phase: the slot exists after; delete untimed */
		kvm_set_slot(v->vm, 0, id, 0, 0, 0, NULL);
		t0 = wl_now_us();
		kvm_set_slot(v->vm, 0, id, 0, BASE_GPA, SLOT_SZ, hva);
		return wl_now_us() - t0;
	case K_DELETE:
		t0 = wl_now_us();
		kvm_set_slot(v->vm, 0, id, 0, 0, 0, NULL);
		t = wl_now_us() - t0;
		kvm_set_slot(v->vm, 0, id, 0, BASE_GPA, SLOT_SZ, hva);
		return t;
	case K_REPLACE:
		t0 = wl_now_us();
		kvm_set_slot(v->vm, 0, id, 0, 0, 0, NULL);
		kvm_set_slot(v->vm, 0, id, 0, BASE_GPA,
			     phase ? SLOT_SZ : SLOT_SZ / 2, hva);
		return wl_now_us() - t0;
	case K_FLAGS:
		t0 = wl_now_us();
		kvm_set_slot(v->vm, 0, id, phase ? 0 : KVM_MEM_LOG_DIRTY_PAGES,
			     BASE_GPA, SLOT_SZ, hva);
		return wl_now_us() - t0;
	case K_MOVE: /* to the end of the window and back */
		t0 = wl_now_us();
		kvm_set_slot(v->vm, 0, id, 0,
			     phase ? BASE_GPA : BASE_GPA + NSLOTS * SLOT_SZ,
			     SLOT_SZ, hva);
		return wl_now_us() - t0;
	}
	return 0;
}

static uint64_t one_batch(struct bvm *v, int kind, int phase)
{
	struct kvmas_batch_op op = {
		.slot = FIRST_ID,
		.guest_phys_addr = BASE_GPA,
		.memory_size = SLOT_SZ,
		.userspace_addr = (uintptr_t)v->mem,
	};
	uint64_t t0, t;

	dev = v->dev;
	switch (kind) {
	case K_CREATE:
		kvm_set_slot(v->vm, 0, FIRST_ID, 0, 0, 0, NULL);
		op.op = KVMAS_OP_CREATE;
		break;
	case K_DELETE: /* unused fields must be 0 */
		op = (struct kvmas_batch_op){ .op = KVMAS_OP_DELETE,
					      .slot = FIRST_ID };
		break;
	case K_REPLACE:
		op.op = KVMAS_OP_REPLACE;
		op.memory_size = phase ? SLOT_SZ : SLOT_SZ / 2;
		break;
	case K_FLAGS:
		op = (struct kvmas_batch_op){
			.op = KVMAS_OP_SET_FLAGS,
			.slot = FIRST_ID,
			.flags = phase ? 0 : KVM_MEM_LOG_DIRTY_PAGES,
		};
		break;
	case K_MOVE:
		op.op = KVMAS_OP_MOVE;
		op.guest_phys_addr = phase ? BASE_GPA :
					     BASE_GPA + NSLOTS * SLOT_SZ;
		break;
	}
	t0 = wl_now_us();
	if (commit_ops(&op, 1, NULL)) {
		printf("  one-op %s batch failed: %m\n", kind_name[kind]);
		exit(1);
	}
	t = wl_now_us() - t0;
	if (kind == K_DELETE)
		kvm_set_slot(v->vm, 0, FIRST_ID, 0, BASE_GPA, SLOT_SZ, v->mem);
	return t;
}

static int one_op_ok = 1;

static void bench_one_op(int running)
{
	double ts[MAX_ROUNDS], tb[MAX_ROUNDS], ratio[MAX_ROUNDS];
	struct bench_stats ss, sb, sr;
	unsigned int r;
	struct bvm v;
	int kind;

	printf("2%s. one op: a one-op batch vs the stock ioctl it replaces, "
	       "vCPU %s, %u rounds\n",
	       running ? "b" : "a", running ? "running" : "idle (none)",
	       rounds);
	if (bvm_setup(&v, running)) {
		printf("  setup failed\n");
		exit(1);
	}
	printf("  %-10s %10s %10s %12s %14s\n", "op", "stock p50", "batch p50",
	       "batch/stock", "p10-p90");
	for (kind = 0; kind < NKINDS; kind++) {
		for (r = 0; r < rounds; r++) {
			/* Each method takes the slot one way, the other back. */
			if (r & 1) {
				tb[r] = one_batch(&v, kind, 0);
				ts[r] = one_stock(&v, kind, 1);
			} else {
				ts[r] = one_stock(&v, kind, 0);
				tb[r] = one_batch(&v, kind, 1);
			}
			ratio[r] = ts[r] ? tb[r] / ts[r] : 0;
		}
		ss = report(kind_name[kind], cond_name(running), "stock", 1, ts,
			    rounds);
		sb = report(kind_name[kind], cond_name(running), "batch", 1, tb,
			    rounds);
		sr = bench_stats(ratio, rounds);
		bench_json_begin("batch", kind_name[kind]);
		bench_json_kv("\"condition\":\"%s\",\"method\":\"batch/stock\"",
			      cond_name(running));
		bench_json_stats("x", sr);
		bench_json_end();
		printf("  %-10s %8.0fus %8.0fus %11.2fx %6.2f-%-6.2f\n",
		       kind_name[kind], ss.p50, sb.p50, sr.p50, sr.p10, sr.p90);
		if (sr.p50 > 1.0)
			one_op_ok = 0;
	}
	/*
	 * The module's own fixed cost per command (ioctl, session and
	 * internals checks, copying and validating the op): a dry run of the
	 * same CREATE, which stops before KVM's prepare.
	 */
	{
		struct kvmas_batch_op op = {
			.op = KVMAS_OP_CREATE,
			.slot = NSLOTS + FIRST_ID,
			.guest_phys_addr = BASE_GPA + 2 * NSLOTS * SLOT_SZ,
			.memory_size = SLOT_SZ,
			.userspace_addr = (uintptr_t)v.mem,
		};
		struct kvmas_commit_batch c = {
			.size = sizeof(c),
			.flags = KVMAS_BATCH_VALIDATE_ONLY,
			.nr_ops = 1,
			.op_size = sizeof(op),
			.ops = (uintptr_t)&op,
		};
		struct bench_stats sd;
		uint64_t t0;

		for (r = 0; r < rounds; r++) {
			t0 = wl_now_us();
			ioctl(v.dev, KVMAS_COMMIT_BATCH, &c);
			tb[r] = wl_now_us() - t0;
		}
		sd = report("create_dry_run", cond_name(running), "batch", 1,
			    tb, rounds);
		printf("  (a dry run of the create, the module's fixed cost per "
		       "command: %.0f us p50)\n",
		       sd.p50);
	}
	target("a one-op batch costs <= the stock ioctl (median, every op)",
	       one_op_ok);
	bvm_destroy(&v);
}

/*
 * 3. Per-op marginal cost of a batch against KVM's own per-slot prepare
 * work (kvm_arch_prepare_memory_region(), the floor: it allocates the
 * slot's arch metadata, stock or batch). The prepare time comes from the
 * function-graph tracer limited to that one function; the tracer's own
 * cost per traced call is measured (64-op batches with it on vs off) and
 * taken off. Needs tracefs; skipped without it.
 */
#define TRACEFS "/sys/kernel/tracing"

static int tracefs_write(const char *file, const char *val)
{
	char path[128];
	FILE *f;
	int r;

	snprintf(path, sizeof(path), TRACEFS "/%s", file);
	f = fopen(path, "w");
	if (!f)
		return -1;
	r = fputs(val, f) < 0 ? -1 : 0;
	return fclose(f) || r ? -1 : 0;
}

/* KVM's per-slot hooks a REPLACE op runs, traced in section 3. */
enum { H_PREPARE, H_COMMIT, H_FLUSH, H_NR };
static const char *const hook_fn[H_NR] = { "kvm_arch_prepare_memory_region",
					   "kvm_arch_commit_memory_region",
					   "kvm_arch_flush_shadow_memslot" };

/* Sum and count of each hook's durations in the trace buffer. */
static int trace_durations(double sum[H_NR], unsigned int cnt[H_NR])
{
	char line[512];
	FILE *f = fopen(TRACEFS "/trace", "r");
	int h;

	memset(sum, 0, H_NR * sizeof(*sum));
	memset(cnt, 0, H_NR * sizeof(*cnt));
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		char *us = strstr(line, " us ");
		char *p;

		if (line[0] == '#' || !us)
			continue;
		/* "  0)   12.345 us    |  kvm_arch_prepare_memory_region();" */
		for (h = 0; h < H_NR; h++)
			if (strstr(line, hook_fn[h]))
				break;
		if (h == H_NR)
			continue;
		for (p = us; p > line && p[-1] != ' '; p--)
			;
		sum[h] += strtod(p, NULL);
		cnt[h]++;
	}
	fclose(f);
	return 0;
}

static void bench_marginal(void)
{
	double t1[MAX_ROUNDS], t64[MAX_ROUNDS], on[MAX_ROUNDS], off[MAX_ROUNDS];
	double sum[H_NR] = { 0 }, per_op[H_NR], marginal, overhead, hooks = 0;
	unsigned int r, h, cnt[H_NR] = { 0 }, calls = 0;
	struct bench_stats s1, s64, son, soff;
	struct bvm v;

	printf("3. per-op marginal cost of a batch vs KVM's own per-slot work, "
	       "%u rounds\n",
	       rounds);
	if (bvm_setup(&v, 0)) {
		printf("  setup failed\n");
		exit(1);
	}
	for (r = 0; r < rounds; r++) {
		t1[r] = batch_resize(&v, 1, NULL);
		t64[r] = batch_resize(&v, 64, NULL);
	}
	s1 = bench_stats(t1, rounds);
	s64 = bench_stats(t64, rounds);
	marginal = (s64.p50 - s1.p50) / 63;
	/*
	 * Only KVM's hooks are instrumented (set_ftrace_filter), so the
	 * functions they call carry no tracing cost of their own.
	 */
	if (tracefs_write("tracing_on", "0"))
		mount("tracefs", TRACEFS, "tracefs", 0, NULL);
	if (tracefs_write("tracing_on", "0") ||
	    tracefs_write("set_ftrace_filter",
			  "kvm_arch_prepare_memory_region "
			  "kvm_arch_commit_memory_region "
			  "kvm_arch_flush_shadow_memslot") ||
	    tracefs_write("current_tracer", "function_graph")) {
		printf("  no function-graph tracer: skipped\n");
		bvm_destroy(&v);
		return;
	}
	for (r = 0; r < rounds; r++) {
		double s[H_NR];
		unsigned int c[H_NR];

		off[r] = batch_resize(&v, 64, NULL);
		tracefs_write("trace", "");
		tracefs_write("tracing_on", "1");
		on[r] = batch_resize(&v, 64, NULL);
		tracefs_write("tracing_on", "0");
		trace_durations(s, c);
		for (h = 0; h < H_NR; h++) {
			sum[h] += s[h];
			cnt[h] += c[h];
			calls += c[h];
		}
	}
	tracefs_write("current_tracer", "nop");
	tracefs_write("set_ftrace_filter", "");
	son = bench_stats(on, rounds);
	soff = bench_stats(off, rounds);
	/*
	 * The tracer's cost per traced call, all of it taken off each
	 * duration although only part of it falls inside: KVM's figure comes
	 * out low, which is against the batch.
	 */
	overhead = calls ? (son.p50 - soff.p50) / ((double)calls / rounds) : 0;
	if (overhead < 0)
		overhead = 0;
	for (h = 0; h < H_NR; h++) {
		/* Per op of the 64-op batches (a REPLACE prepares twice). */
		per_op[h] = cnt[h] ? (sum[h] - cnt[h] * overhead) /
					     (64.0 * rounds) :
				     0;
		if (per_op[h] < 0)
			per_op[h] = 0;
		hooks += per_op[h];
	}
	printf("  1-op batch %.0f us, 64-op batch %.0f us (p50): marginal %.1f us/op\n",
	       s1.p50, s64.p50, marginal);
	printf("  KVM's hooks per op: prepare %.1f us, commit %.1f us, flush "
	       "%.1f us (%u calls traced, tracer cost %.1f us/call taken off)\n",
	       per_op[H_PREPARE], per_op[H_COMMIT], per_op[H_FLUSH], calls,
	       overhead);
	printf("  marginal / KVM's prepare: %.2fx; / all of KVM's per-slot "
	       "hooks: %.2fx\n",
	       per_op[H_PREPARE] > 0 ? marginal / per_op[H_PREPARE] : 0,
	       hooks > 0 ? marginal / hooks : 0);
	bench_json_begin("batch", "marginal");
	bench_json_kv("\"unit\":\"us\",\"marginal_per_op\":%.3f,"
		      "\"kvm_prepare_per_op\":%.3f,\"kvm_commit_per_op\":%.3f,"
		      "\"kvm_flush_per_op\":%.3f,\"tracer_cost_per_call\":%.3f,"
		      "\"ratio\":%.3f,\"ratio_all_hooks\":%.3f",
		      marginal, per_op[H_PREPARE], per_op[H_COMMIT],
		      per_op[H_FLUSH], overhead,
		      per_op[H_PREPARE] > 0 ? marginal / per_op[H_PREPARE] : 0,
		      hooks > 0 ? marginal / hooks : 0);
	bench_json_end();
	target("per-op marginal cost <= 1.2x KVM's per-slot prepare",
	       per_op[H_PREPARE] > 0 && marginal <= 1.2 * per_op[H_PREPARE]);
	bvm_destroy(&v);
}

/*
 * 4. Stall of a vCPU outside the changed range: batches vs pause-all. One
 * vCPU looping outside the target slot, pinned to guest CPU 1, the VMM on
 * CPU 0 (run with parallel guest CPUs: multi-threaded TCG). Both methods
 * are measured alike, phase by phase: the progress the vCPU lost during a
 * phase of updates, against its rate in the reference phase just before
 * (the VMM spinning), expressed as time per update. So pause-all is
 * charged its pause and the refaults after it, batches their kicks and
 * refaults; each figure is the median over the phases.
 */

/* The reference phase: the VMM's CPU busy too (a spin, not a sleep). */
static double ref_rate(struct wl_vm *w)
{
	uint32_t p = wl_progress(w, 0);
	uint64_t t0 = wl_now_us(), t;

	/*
	 * Under TCG each guest CPU is a host thread: a sleeping VMM CPU
	 * would hand the vCPU's thread host time that the update phase
	 * takes back, which is not stall.
	 */
	while ((t = wl_now_us() - t0) < 50 * 1000)
		;
	return (double)(wl_progress(w, 0) - p) / t;
}

/* Time per update the vCPU lost in a phase of @per updates taking @us. */
static double lost_per_update(double ref, uint32_t loops, uint64_t us, int per)
{
	double rate = us ? (double)loops / us : 0;

	return ref > 0 && rate < ref ? us * (1.0 - rate / ref) / per : 0;
}

enum { STALL_DEFAULT, STALL_SLOT_LOCAL, STALL_ZAP_RANGE };
static const char *const stall_mode[] = { "kvm_default", "slot_local",
					  "zap_range" };

static void stall_json(int mode, const char *method, double *s, int n,
		       int updates)
{
	bench_json_begin("batch", "stall");
	bench_json_kv("\"mode\":\"%s\",\"method\":\"%s\",\"updates\":%d",
		      stall_mode[mode], method, updates);
	bench_json_samples(s, n);
	bench_json_stats("us", bench_stats(s, n));
	bench_json_end();
}

static void bench_stall(int mode)
{
	int slot_local = mode == STALL_SLOT_LOCAL;
	unsigned int flags = mode == STALL_ZAP_RANGE ? KVMAS_BATCH_ZAP_RANGE :
						       0;
	int i, k, phases = quick ? 2 : 10, per = quick ? 5 : 20;
	int d = kvmas_dev_open();
	double sb[16], sp[16], ratio;
	int64_t ex[2] = { 0, 0 }, pf[2] = { 0, 0 }, e0, f0;
	struct bench_stats stb, stp;
	cpu_set_t cpus;
	struct wl_vm w;

	if (d < 0 || wl_create(&w, 1, 256 * KiB, 0x0) ||
	    kvm_set_slot(w.vm, 0, 1, 0, WL_TARGET_GPA, 128 * KiB, w.target) ||
	    kvmas_attach(d, w.vm)) {
		printf("  setup failed\n");
		exit(1);
	}
	if (slot_local && !kvm_disable_slot_zap_all(w.vm)) {
		printf("4b. (no KVM_X86_QUIRK_SLOT_ZAP_ALL on this kernel)\n");
		wl_destroy(&w);
		close(d);
		return;
	}
	if (flags &&
	    ioctl(d, KVMAS_CHECK_EXTENSION, KVMAS_CAP_ZAP_RANGE) <= 0) {
		printf("4c. (KVMAS_CAP_ZAP_RANGE is 0)\n");
		wl_destroy(&w);
		close(d);
		return;
	}
	printf("4%c. stall of a vCPU outside the changed range, %d x %d resizes "
	       "per method, %s\n",
	       'a' + mode, phases, per,
	       mode == STALL_DEFAULT ?
		       "KVM's default zapping (x86: the whole VM)" :
	       slot_local ? "KVM_X86_QUIRK_SLOT_ZAP_ALL disabled (both methods "
			    "zap only the removed range)" :
			    "batches with KVMAS_BATCH_ZAP_RANGE (pause-all: "
			    "KVM's default)");
	pin_self(0);
	if (wl_start(&w)) {
		printf("  setup failed\n");
		exit(1);
	}
	CPU_ZERO(&cpus);
	CPU_SET(1, &cpus);
	pthread_setaffinity_np(w.thread[0], sizeof(cpus), &cpus);
	usleep(200 * 1000);

	for (k = 0; k < phases; k++) {
		uint64_t t0, us;
		uint32_t p;
		double ref;

		ref = ref_rate(&w);
		e0 = wl_vcpu_stat(&w, 0, "exits");
		f0 = wl_vcpu_stat(&w, 0, "pf_taken");
		p = wl_progress(&w, 0);
		t0 = wl_now_us();
		for (i = 0; i < per; i++)
			wl_batch_resize_flags(&w, d,
					      (i & 1) ? 128 * KiB : 256 * KiB,
					      flags, NULL);
		us = wl_now_us() - t0;
		sb[k] = lost_per_update(ref, wl_progress(&w, 0) - p, us, per);
		ex[0] += wl_vcpu_stat(&w, 0, "exits") - e0;
		pf[0] += wl_vcpu_stat(&w, 0, "pf_taken") - f0;

		/* QEMU >= 8.0 style: pause all, stock DELETE+CREATE, resume. */
		ref = ref_rate(&w);
		e0 = wl_vcpu_stat(&w, 0, "exits");
		f0 = wl_vcpu_stat(&w, 0, "pf_taken");
		p = wl_progress(&w, 0);
		t0 = wl_now_us();
		for (i = 0; i < per; i++) {
			wl_pause_all(&w);
			kvm_set_slot(w.vm, 0, 1, 0, 0, 0, NULL);
			kvm_set_slot(w.vm, 0, 1, 0, WL_TARGET_GPA,
				     (i & 1) ? 128 * KiB : 256 * KiB, w.target);
			wl_resume_all(&w);
		}
		us = wl_now_us() - t0;
		sp[k] = lost_per_update(ref, wl_progress(&w, 0) - p, us, per);
		ex[1] += wl_vcpu_stat(&w, 0, "exits") - e0;
		pf[1] += wl_vcpu_stat(&w, 0, "pf_taken") - f0;
	}
	stall_json(mode, "batch", sb, phases, phases * per);
	stall_json(mode, "pause_all", sp, phases, phases * per);
	stb = bench_stats(sb, phases);
	stp = bench_stats(sp, phases);
	ratio = stp.p50 ? stb.p50 / stp.p50 : 0;
	printf("  stall per update (p50 over phases [p10-p90]): batch %.1f us "
	       "[%.0f-%.0f], pause-all %.1f us [%.0f-%.0f], ratio %.3f\n",
	       stb.p50, stb.p10, stb.p90, stp.p50, stp.p10, stp.p90, ratio);
	/*
	 * Where the vCPU's time goes: its exits (every memslot swap kicks
	 * every vCPU on x86, kvm_arch_memslots_updated()) and page faults
	 * (refaults after a zap), per update, as KVM counts them; the
	 * reference phases' own are included (timer ticks), alike for both.
	 */
	if (e0 >= 0)
		printf("  vCPU per update: exits batch %.1f, pause-all %.1f; page "
		       "faults batch %.1f, pause-all %.1f\n",
		       (double)ex[0] / (phases * per),
		       (double)ex[1] / (phases * per),
		       f0 >= 0 ? (double)pf[0] / (phases * per) : 0,
		       f0 >= 0 ? (double)pf[1] / (phases * per) : 0);
	printf("  holes during batches and pauses: %llu\n",
	       (unsigned long long)wl_holes(&w));
	target("outside-range stall <= 1/10 of pause-all (p50)",
	       stb.p50 * 10 <= stp.p50);
	wl_stop(&w);
	wl_destroy(&w);
	close(d);
}

/* 5. Cost of a 1-op commit as the slot count grows. */
static void bench_scaling(void)
{
	unsigned int counts[] = { 10, 100, 1000, 10000, 32000 }, have = 0, k, i;
	uint8_t *mem = guest_mem(32001ULL * SLOT_SZ);
	int vm = kvm_vm_create();
	double first = 0, ratio = 0;

	printf("5. one-op commit cost as existing slots grow\n");
	if (vm < 0 || !mem || kvmas_attach(dev, vm)) {
		printf("  setup failed\n");
		return;
	}
	for (k = 0; k < (quick ? 3U : 5U); k++) {
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
		bench_json_begin("batch", "scaling");
		bench_json_kv("\"slots\":%u,\"unit\":\"us\",\"p50\":%llu,"
			      "\"vs_10\":%.3f",
			      have, (unsigned long long)t, ratio);
		bench_json_end();
	}
	/* log2(32000)/log2(10) ~ 4.5: per-op cost no faster than log n. */
	target(quick ? "cost at 1,000 slots <= 4.5x the cost at 10 (quick)" :
		       "cost at 32k slots <= 4.5x the cost at 10 (log n)",
	       ratio <= 4.5);
	close(vm);
}

int main(int argc, char **argv)
{
	const char *only = argc > 1 ? argv[1] : "";
	int all = !*only;

	quick = getenv("KVMAS_BENCH_QUICK") &&
		atoi(getenv("KVMAS_BENCH_QUICK"));
	if (quick)
		rounds = 3;
	setvbuf(stdout, NULL, _IOLBF, 0);
	dev = kvmas_dev_open();
	if (dev < 0 ||
	    ioctl(dev, KVMAS_CHECK_EXTENSION, KVMAS_CAP_BATCH_COMMIT) <= 0) {
		printf("batch commits unavailable\n");
		return 1;
	}
	close(dev);
	printf("== batch-commit benchmark (ratios within one boot)%s\n",
	       quick ? ", quick mode: figures not meaningful" : "");
	bench_conditions("batch");
	if (all || !strcmp(only, "sizes")) {
		bench_sizes(0);
		bench_sizes(1);
	}
	if (all || !strcmp(only, "ops")) {
		bench_one_op(0);
		bench_one_op(1);
	}
	if (all || !strcmp(only, "marginal"))
		bench_marginal();
	dev = kvmas_dev_open();
	if (all || !strcmp(only, "stall")) {
		bench_stall(STALL_DEFAULT);
		bench_stall(STALL_SLOT_LOCAL);
		bench_stall(STALL_ZAP_RANGE);
	}
	if (all || !strcmp(only, "scaling"))
		bench_scaling();
	bench_host_load("batch", "after");
	printf("== benchmark done\n");
	return 0;
}
