// SPDX-License-Identifier: GPL-2.0
/*
 * Dirty-ring reset benchmark, KVMAS_RESET_RING ("ours", per vCPU) vs stock
 * KVM_RESET_DIRTY_RINGS, measured in one boot (ratios only: absolute times
 * under TCG mean nothing). Two parts:
 *
 * 1. What a VMM feels: the harvest-to-reset latency of a well-behaved vCPU.
 *    vCPU 0 dirties a handful of pages per round; its VMM thread (CPU 0)
 *    harvests its ring and resets it, timed from "harvest done" to "reset
 *    returned". vCPU 1 and its VMM thread (CPU 1) are, by variant:
 *      idle       vCPU 1 idle, its ring empty (the cost of a reset alone);
 *      backlog    vCPU 1 dirties BACKLOG pages in order and stops; vCPU 0
 *                 does COLLIDE - 1 quiet rounds (vCPU 1's ring full of
 *                 entries not collected yet, which stock stops at: no
 *                 cost); then vCPU 1's VMM thread harvests its backlog and
 *                 starts resetting it, and vCPU 0's round COLLIDE resets
 *                 LEAD_US later, that reset in flight (stock: it waits for
 *                 slots_lock; ours, per-ring locks: for mmu_lock rounds
 *                 only; ours where KVMAS_CAP_RING_RESET = 1, as on arm64:
 *                 for slots_lock too);
 *      scattered  the same, the backlog's entries naming one page per
 *                 64-page group in turn (what a guest writing those pages
 *                 with a 256 KiB stride leaves in its ring, or a hostile VMM
 *                 rewriting its entries): KVM coalesces nothing, one
 *                 re-protection under mmu_lock per entry, the most a
 *                 backlog can cost per entry;
 *      poller     vCPU 1's VMM thread calls its reset in a tight loop
 *                 (nothing to reset: a VMM polling its rings; stock's
 *                 global call then also resets vCPU 0's harvested entries,
 *                 which leaves vCPU 0's own call less to do).
 *    Methods: "stock", both VMM threads call KVM_RESET_DIRTY_RINGS (global:
 *    under slots_lock it walks every vCPU's ring, so whoever resets pays for
 *    vCPU 1's backlog, or waits for the thread that does); "ours", each
 *    thread resets only its own vCPU's ring with KVMAS_RESET_RING. Methods
 *    alternate every COLLIDE rounds so drift hits both alike. Target: p99
 *    of stock >= 10x p99 of ours where vCPU 1 has a backlog (backlog) or
 *    a hostile one (scattered).
 *    vCPU 1 never runs during vCPU 0's rounds, and the threads mostly wait
 *    for each other sleeping: under TCG a busy guest CPU is a busy host
 *    thread, and with both busy on a 2-CPU host the host's own work
 *    preempts one of them for milliseconds (noise that would swamp both
 *    p99s). Both are busy only around the colliding reset.
 *
 * 2. Throughput, entries reset per second: two vCPUs each dirty their stripe,
 *    the rings are harvested (not timed), then one method is timed:
 *      stock     one thread, KVM_RESET_DIRTY_RINGS (both rings, slots_lock)
 *      ours x1   one thread, one KVMAS_RESET_RING call naming both vCPUs
 *      ours x2   two threads, each resetting its own vCPU's ring at once
 *    and the two "ours" methods again on entries naming no page (the walk
 *    alone, without KVM's re-protection under mmu_lock; the pages are
 *    re-protected afterwards by toggling dirty logging). On x86 two threads
 *    do not beat one: the re-protection holds mmu_lock for write.
 *
 * Run it with truly parallel guest CPUs (multi-threaded TCG). Every figure
 * is also printed as a JSON line (tests/bench_common.h). Quick mode
 * (argument "quick" or KVMAS_BENCH_QUICK=1): a few rounds of everything,
 * proving it runs, for make check. KVMAS_BENCH_BACKLOG=N sets the backlog
 * (entries; default 24576, 4096 on arm64, at most the ring's maximum less
 * 1024). Arguments "latency" / "throughput" run one part. Exits 0 whatever
 * the figures, and on a kernel without a dirty ring; non-zero only when
 * something could not be set up or a reset did not reset what it had to.
 */
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>

#include "bench_common.h"
#include "kvm_helpers.h"
#include "kvmas.h"
#include "ringvm.h"

static struct kvmas *kv;
static int quick;

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

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#endif
}

/* ------------------------------------------------------------------ */
/* Part 1: harvest-to-reset latency of a well-behaved vCPU             */
/* ------------------------------------------------------------------ */

enum { STOCK, OURS, NR_METHODS };
static const char *const method_name[] = { "stock", "ours" };

enum { V_IDLE, V_BACKLOG, V_SCATTERED, V_POLLER, NR_VARIANTS };
static const char *const variant_name[] = { "idle", "backlog", "scattered",
					    "poller" };

/* Pages vCPU 0 dirties per round: a handful. */
#define WELL_PAGES 8
/*
 * The time between vCPU 1's thread entering its backlog reset and vCPU 0's
 * thread calling its own (us): enough for the first to hold its locks, so
 * a colliding round meets that reset in flight rather than racing it for
 * the locks (which matters where ours takes slots_lock too).
 */
#if defined(__aarch64__)
#define LEAD_US 100
#else
#define LEAD_US 50
#endif
/*
 * Default backlog (entries) and throughput stripe (pages): what keeps the
 * whole run well under a minute of TCG, where each backlog entry is a
 * nested write fault (~35 us on x86, ~4x that on arm64) and 2 x 10
 * backlogs per variant are dirtied. Stock pays in proportion to the
 * backlog (KVMAS_BENCH_BACKLOG=64512 for the largest ring), ours does not.
 */
#if defined(__aarch64__)
#define BACKLOG_DEFAULT 4096
#define TP_PAGES 2048
#else
#define BACKLOG_DEFAULT 24576
#define TP_PAGES 8192
#endif

static struct ringvm lv;
static struct kvmas_ring lr[2];
static uint32_t backlog; /* vCPU 1's backlog, entries (a multiple of 64) */
static unsigned int collide; /* one round in COLLIDE meets the backlog */
static unsigned int cycles; /* per method: collisions = cycles */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

/*
 * Waiting between the threads sleeps (futex): under TCG a busy guest CPU
 * is a busy host thread, and with both guest CPUs busy on a 2-CPU host the
 * host's own work preempts one of them for milliseconds, which would land
 * in whatever that CPU is timing. So the two threads are both busy only
 * while vCPU 0's thread resets with vCPU 1's reset in flight.
 */
static int failed;

static void futex_wake(unsigned int *addr)
{
	syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

/* Sleeps until *@addr == @want; -1 once the other thread failed. */
static int wait_for(unsigned int *addr, unsigned int want)
{
	static const struct timespec nap = { 0, 10 * 1000 * 1000 };
	unsigned int cur;

	/* Pairs with the release stores of the value (and what preceded). */
	while ((cur = __atomic_load_n(addr, __ATOMIC_ACQUIRE)) != want) {
		if (__atomic_load_n(&failed, __ATOMIC_RELAXED))
			return -1;
		syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, cur, &nap, NULL,
			0);
	}
	return 0;
}

/* Two-party barrier, sleeping. */
static struct {
	unsigned int count, gen;
} bar;

static int barrier_wait(void)
{
	unsigned int gen = __atomic_load_n(&bar.gen, __ATOMIC_ACQUIRE);

	if (__atomic_add_fetch(&bar.count, 1, __ATOMIC_ACQ_REL) == 2) {
		__atomic_store_n(&bar.count, 0, __ATOMIC_RELAXED);
		/* Publishes everything before it to the waiter's acquire. */
		__atomic_store_n(&bar.gen, gen + 1, __ATOMIC_RELEASE);
		futex_wake(&bar.gen);
		return 0;
	}
	return wait_for(&bar.gen, gen + 1);
}

/* What the two threads share for one variant. */
static struct {
	int variant;
	/* poller: the method vCPU 1's thread uses, its acknowledgement */
	int want, have, stop;
	/*
	 * backlogged, per cycle c, c + 1 once: vCPU 1's thread harvested its
	 * backlog (ready), vCPU 0's thread lets it go (go), it enters its
	 * reset (peer_in), vCPU 0's colliding round is over (done: vCPU 1 may
	 * run again; a running vCPU would make the other's TLB flush wait for
	 * it to leave guest mode)
	 */
	unsigned int ready, go, peer_in, done;
	/* per cycle: that reset's start and end (ns; 0 = not yet) */
	uint64_t *peer_start, *peer_end;
	/* vCPU 1's backlog resets, per method (us) */
	double *peer[NR_METHODS];
	unsigned int npeer[NR_METHODS];
} sh;

static void fail(const char *what, long v)
{
	fprintf(stderr, "bench_ring: %s (%ld)\n", what, v);
	__atomic_store_n(&failed, 1, __ATOMIC_RELAXED);
	futex_wake(&bar.gen);
	futex_wake(&sh.ready);
	futex_wake(&sh.done);
}

/* One reset of vCPU @i's ring by method @m; entries reset or -errno. */
static long reset_own(int m, int i)
{
	struct kvmas_ring *one = &lr[i];

	return m == STOCK ? rv_reset_all(&lv) :
			    kvmas_ring_reset(kv, &one, 1, 0);
}

/* Whether the @n entries before vCPU @i's fetch index are all reset. */
static int entries_reset(int i, uint32_t n)
{
	struct kvmas_ring *kr = &lr[i];
	uint32_t k;

	for (k = 1; k <= n; k++) {
		struct kvm_dirty_gfn *e =
			&kr->gfns[(kr->fetch - k) & (kr->entries - 1)];

		/* Pairs with the reset's release of flags = 0. */
		if (__atomic_load_n(&e->flags, __ATOMIC_ACQUIRE))
			return 0;
	}
	return 1;
}

/*
 * vCPU 1's harvest for the scattered variant: like kvmas_ring_harvest(),
 * but entry k is rewritten, before its RESET is released, to name page
 * (k mod G) * 64 + k / G of the stripe (G = groups of 64 pages): the same
 * pages, in the order a stride-64 writer pushes them.
 */
static uint32_t harvest_scattered(uint32_t n)
{
	struct kvmas_ring *kr = &lr[1];
	uint32_t groups = n / 64, base = lv.pages_per_vcpu, k;

	for (k = 0; k < n; k++) {
		struct kvm_dirty_gfn *e =
			&kr->gfns[kr->fetch & (kr->entries - 1)];
		uint64_t off;

		/* Pairs with KVM's push (smp_wmb() before DIRTY). */
		if (!(__atomic_load_n(&e->flags, __ATOMIC_ACQUIRE) &
		      KVM_DIRTY_GFN_F_DIRTY))
			break;
		off = __atomic_load_n(&e->offset, __ATOMIC_RELAXED);
		if (__atomic_load_n(&e->slot, __ATOMIC_RELAXED) !=
			    RV_DATA_SLOT ||
		    off < base || off >= base + n)
			return k;
		__atomic_store_n(&e->offset,
				 base + (uint64_t)(k % groups) * 64 +
					 k / groups,
				 __ATOMIC_RELAXED);
		/* Releases the rewrite to the reset's acquire of flags. */
		__atomic_store_n(&e->flags, KVM_DIRTY_GFN_F_RESET,
				 __ATOMIC_RELEASE);
		kr->fetch++;
	}
	return k;
}

/* vCPU 1's VMM thread. */
static void *peer_main(void *arg)
{
	uint64_t t;
	unsigned int c;
	long got;
	int m;

	(void)arg;
	pin(1);
	if (sh.variant == V_POLLER) {
		while (!__atomic_load_n(&sh.stop, __ATOMIC_ACQUIRE)) {
			m = __atomic_load_n(&sh.want, __ATOMIC_ACQUIRE);
			__atomic_store_n(&sh.have, m, __ATOMIC_RELEASE);
			got = reset_own(m, 1);
			if (got < 0) {
				fail("poller reset failed", got);
				return NULL;
			}
		}
		return NULL;
	}
	for (c = 0; c < NR_METHODS * cycles; c++) {
		m = c % NR_METHODS;
		got = rv_run_pass(&lv, 1);
		if (got) {
			fail("vCPU 1's pass did not end in its stop exit", got);
			return NULL;
		}
		/*
		 * A: vCPU 1 stopped, its ring full of entries not collected
		 * yet; vCPU 0's thread does its quiet rounds. B: they are done;
		 * this harvest runs while vCPU 0 runs its colliding round's
		 * pass, then that thread sleeps until we are ready.
		 */
		if (barrier_wait() || barrier_wait())
			return NULL;
		got = sh.variant == V_SCATTERED ?
			      harvest_scattered(backlog) :
			      kvmas_ring_harvest(&lr[1], NULL, NULL, 0);
		if (got != backlog) {
			fail("vCPU 1's harvest found a different backlog", got);
			return NULL;
		}
		__atomic_store_n(&sh.ready, c + 1, __ATOMIC_RELEASE);
		futex_wake(&sh.ready);
		/* Spinning: starts as soon as vCPU 0's thread, now awake, says. */
		while (__atomic_load_n(&sh.go, __ATOMIC_ACQUIRE) != c + 1) {
			if (__atomic_load_n(&failed, __ATOMIC_RELAXED))
				return NULL;
			cpu_relax();
		}
		t = now_ns();
		__atomic_store_n(&sh.peer_start[c], t, __ATOMIC_RELAXED);
		/* vCPU 0's thread resets LEAD_US after this. */
		__atomic_store_n(&sh.peer_in, c + 1, __ATOMIC_RELEASE);
		got = reset_own(m, 1);
		/* Read by vCPU 0's thread after its reset: in flight or not. */
		__atomic_store_n(&sh.peer_end[c], now_ns(), __ATOMIC_RELEASE);
		if (got < 0) {
			fail("vCPU 1's reset failed", got);
			return NULL;
		}
		if (!entries_reset(1, backlog)) {
			fail("vCPU 1's backlog not reset after its reset", m);
			return NULL;
		}
		sh.peer[m][sh.npeer[m]++] = (sh.peer_end[c] - t) / 1e3;
		if (wait_for(&sh.done, c + 1))
			return NULL;
	}
	return NULL;
}

/*
 * A colliding round whose reset began this long after vCPU 1's (us), LEAD
 * being a few dozen us, was held up by the host: with both guest CPUs busy
 * it descheduled one of them (another VM or build on a 2-CPU host does
 * that for milliseconds), and such stalls come in bursts, landing in the
 * timed resets too. Counted and reported, not filtered out.
 */
#define STALL_US 1000

struct lat_result {
	double *all, *hit; /* every round; the colliding rounds */
	double *lead; /* colliding rounds: us after vCPU 1's reset began */
	unsigned int n, nhit, in_flight, stalled;
};

/* Colliding rounds held up by the host, over the whole run. */
static unsigned int stalled_total;

/*
 * vCPU 0's colliding round, its harvest done: sleeps until vCPU 1's
 * thread has harvested its backlog (so only that thread's CPU is busy
 * meanwhile), lets it go, and returns LEAD_US after it entered its reset.
 * Both CPUs are busy from here until our reset returns: that window is
 * kept short because under TCG, with both guest CPUs busy on a 2-CPU host,
 * the host's own work preempts one of them for milliseconds.
 */
static int follow(unsigned int c, double *lead)
{
	uint64_t start;

	if (wait_for(&sh.ready, c + 1))
		return -1;
	__atomic_store_n(&sh.go, c + 1, __ATOMIC_RELEASE);
	/* Pairs with the release of peer_in: peer_start is set. */
	while (__atomic_load_n(&sh.peer_in, __ATOMIC_ACQUIRE) != c + 1) {
		if (__atomic_load_n(&failed, __ATOMIC_RELAXED))
			return -1;
		cpu_relax();
	}
	start = __atomic_load_n(&sh.peer_start[c], __ATOMIC_RELAXED);
	while (now_ns() < start + LEAD_US * 1000ULL)
		cpu_relax();
	*lead = (now_ns() - start) / 1e3;
	return 0;
}

/* One variant, both methods; fills res[method]. */
static int run_variant(int v, struct lat_result *res)
{
	unsigned int c, j, rounds = cycles * collide;
	int m, ret = 0, backlogged = v == V_BACKLOG || v == V_SCATTERED;
	uint64_t t0, t1, end;
	pthread_t peer;
	double lead = 0;
	long got;

	memset(&sh, 0, sizeof(sh));
	sh.variant = v;
	sh.have = -1; /* poller: not started */
	sh.peer_start = calloc(NR_METHODS * cycles, sizeof(uint64_t));
	sh.peer_end = calloc(NR_METHODS * cycles, sizeof(uint64_t));
	if (!sh.peer_start || !sh.peer_end)
		return -1;
	for (m = 0; m < NR_METHODS; m++) {
		memset(&res[m], 0, sizeof(res[m]));
		res[m].all = calloc(rounds, sizeof(double));
		res[m].hit = calloc(cycles, sizeof(double));
		res[m].lead = calloc(cycles, sizeof(double));
		sh.peer[m] = calloc(cycles, sizeof(double));
		if (!res[m].all || !res[m].hit || !res[m].lead || !sh.peer[m])
			return -1;
	}
	__atomic_store_n(&failed, 0, __ATOMIC_RELAXED);
	if (v != V_IDLE && pthread_create(&peer, NULL, peer_main, NULL))
		return -1;
	for (c = 0; c < NR_METHODS * cycles && !ret; c++) {
		m = c % NR_METHODS;
		if (v == V_POLLER) {
			__atomic_store_n(&sh.want, m, __ATOMIC_RELEASE);
			while (__atomic_load_n(&sh.have, __ATOMIC_ACQUIRE) !=
				       m &&
			       !__atomic_load_n(&failed, __ATOMIC_RELAXED))
				cpu_relax();
		}
		/* A: vCPU 1 has dirtied the next backlog and stopped. */
		if (backlogged && barrier_wait()) {
			ret = -1;
			break;
		}
		for (j = 0; j < collide; j++) {
			int hit = backlogged && j == collide - 1;

			/* B: vCPU 1's thread harvests its backlog now. */
			if (hit && barrier_wait()) {
				ret = -1;
				break;
			}
			got = rv_run_pass(&lv, 0);
			if (got) {
				fail("vCPU 0's pass did not end in its stop exit",
				     got);
				ret = -1;
				break;
			}
			got = kvmas_ring_harvest(&lr[0], NULL, NULL, 0);
			if (got != WELL_PAGES) {
				fail("vCPU 0's harvest", got);
				ret = -1;
				break;
			}
			if (hit && follow(c, &lead)) {
				ret = -1;
				break;
			}
			t0 = now_ns();
			got = reset_own(m, 0);
			t1 = now_ns();
			if (got < 0) {
				fail("vCPU 0's reset failed", got);
				ret = -1;
				break;
			}
			if (!entries_reset(0, WELL_PAGES)) {
				fail("vCPU 0's entries not reset after its reset",
				     m);
				ret = -1;
				break;
			}
			res[m].all[res[m].n++] = (t1 - t0) / 1e3;
			if (!hit)
				continue;
			res[m].lead[res[m].nhit] = lead;
			if (lead > STALL_US)
				res[m].stalled++;
			res[m].hit[res[m].nhit++] = (t1 - t0) / 1e3;
			/* Pairs with the release of the end by vCPU 1's thread. */
			end = __atomic_load_n(&sh.peer_end[c],
					      __ATOMIC_ACQUIRE);
			if (!end || end > t0)
				res[m].in_flight++;
			__atomic_store_n(&sh.done, c + 1, __ATOMIC_RELEASE);
			futex_wake(&sh.done);
		}
	}
	if (ret) {
		/* Wakes vCPU 1's thread if it sleeps at a barrier. */
		__atomic_store_n(&failed, 1, __ATOMIC_RELAXED);
		futex_wake(&bar.gen);
	}
	__atomic_store_n(&sh.stop, 1, __ATOMIC_RELEASE);
	if (v != V_IDLE)
		pthread_join(peer, NULL);
	if (__atomic_load_n(&failed, __ATOMIC_RELAXED))
		ret = -1;
	return ret;
}

static const char *variant_text(int v)
{
	switch (v) {
	case V_IDLE:
		return "vCPU 1 idle, its ring empty: the cost of a reset alone";
	case V_BACKLOG:
		return "vCPU 1 dirties the backlog's pages in order and stops; "
		       "vCPU 0 does COLLIDE-1 quiet rounds (vCPU 1's ring full "
		       "of entries not collected yet); at round COLLIDE vCPU 1's "
		       "VMM thread harvests its backlog and starts resetting it, "
		       "and vCPU 0's thread resets LEAD us later, that reset in "
		       "flight";
	case V_SCATTERED:
		return "as backlog, each entry naming the page 64 pages after "
		       "the last (a stride-64 writer's ring, or a hostile VMM "
		       "rewriting entries): one mmu_lock round per entry";
	default:
		return "vCPU 1's VMM thread calls its reset in a tight loop, "
		       "nothing to reset (a VMM polling its ring; stock's global "
		       "call also resets vCPU 0's harvested entries for it); no "
		       "backlog, so no target";
	}
}

static void report_variant(int v, struct lat_result *res, const char *stock)
{
	struct bench_stats st[NR_METHODS], hit[NR_METHODS], peer[NR_METHODS],
		lead[NR_METHODS];
	int m, backlogged = v == V_BACKLOG || v == V_SCATTERED;
	double r50, r99;

	for (m = 0; m < NR_METHODS; m++) {
		bench_json_begin("ring", "harvest_reset");
		bench_json_kv("\"variant\":\"%s\",\"method\":\"%s\"",
			      variant_name[v], method_name[m]);
		bench_json_kv("\"stock_reset\":\"%s\",\"pages_per_round\":%d",
			      stock, WELL_PAGES);
		bench_json_kv("\"backlog\":%u,\"collide_every\":%u",
			      backlogged ? backlog : 0,
			      backlogged ? collide : 0);
		bench_json_samples(res[m].all, res[m].n);
		st[m] = bench_stats(res[m].all, res[m].n);
		hit[m] = bench_stats(res[m].hit, res[m].nhit);
		lead[m] = bench_stats(res[m].lead, res[m].nhit);
		peer[m] = bench_stats(sh.peer[m], sh.npeer[m]);
		bench_json_stats("us", st[m]);
		if (backlogged)
			bench_json_kv("\"collisions\":%u,\"in_flight\":%u,"
				      "\"collide_p50\":%.3f,"
				      "\"collide_max\":%.3f,\"lead_p50\":%.3f,"
				      "\"host_stalled\":%u,"
				      "\"peer_reset_p50\":%.3f",
				      hit[m].n, res[m].in_flight, hit[m].p50,
				      hit[m].max, lead[m].p50, res[m].stalled,
				      peer[m].p50);
		bench_json_end();
	}
	r50 = st[OURS].p50 > 0 ? st[STOCK].p50 / st[OURS].p50 : 0;
	r99 = st[OURS].p99 > 0 ? st[STOCK].p99 / st[OURS].p99 : 0;
	printf("# %-9s", variant_name[v]);
	for (m = 0; m < NR_METHODS; m++)
		printf("  %s: %4u rounds p50 %8.1f p99 %8.1f us",
		       method_name[m], st[m].n, st[m].p50, st[m].p99);
	printf("\n");
	if (backlogged) {
		printf("# %-9s  colliding rounds: p50 stock %.1f us, ours %.1f us "
		       "(max %.1f / %.1f; %u / %u of %u met vCPU 1's reset in "
		       "flight, %.0f / %.0f us after it began, %u / %u held up "
		       "by the host); vCPU 1's backlog reset itself: p50 stock "
		       "%.1f us, ours %.1f us\n",
		       "", hit[STOCK].p50, hit[OURS].p50, hit[STOCK].max,
		       hit[OURS].max, res[STOCK].in_flight, res[OURS].in_flight,
		       hit[STOCK].n, lead[STOCK].p50, lead[OURS].p50,
		       res[STOCK].stalled, res[OURS].stalled, peer[STOCK].p50,
		       peer[OURS].p50);
		stalled_total += res[STOCK].stalled + res[OURS].stalled;
	}
	printf("# %-9s  stock/ours: p50 %.2fx, p99 %.2fx", "", r50, r99);
	if (v == V_IDLE)
		printf(" (baseline, no target)\n");
	else if (!backlogged)
		printf(" (no target)\n");
	else
		printf(" (target p99 >= 10x: %s)\n",
		       quick	 ? "not judged in quick mode" :
		       r99 >= 10 ? "met" :
				   "MISSED");
	bench_json_begin("ring", "harvest_reset_ratio");
	bench_json_kv(
		"\"variant\":\"%s\",\"p50_ratio\":%.3f,\"p99_ratio\":%.3f",
		variant_name[v], r50, r99);
	if (!backlogged || quick)
		bench_json_kv("\"target\":null,\"met\":null");
	else
		bench_json_kv("\"target\":10,\"met\":%s",
			      r99 >= 10 ? "true" : "false");
	bench_json_end();
	for (m = 0; m < NR_METHODS; m++) {
		free(res[m].all);
		free(res[m].hit);
		free(res[m].lead);
		free(sh.peer[m]);
	}
	free(sh.peer_start);
	free(sh.peer_end);
}

static int bench_latency(void)
{
	uint32_t max = rv_ring_max_entries(), entries;
	struct lat_result res[NR_METHODS];
	const char *env = getenv("KVMAS_BENCH_BACKLOG");
	const char *stock;
	int hardened, serial, v, ret, k;

	if (max < 4096) {
		fprintf(stderr, "dirty ring of at most %u entries\n", max);
		return -1;
	}
	backlog = quick ? 1024 : BACKLOG_DEFAULT;
	if (env && *env)
		backlog = strtoul(env, NULL, 0);
	/*
	 * KVM stops a vCPU with KVM_EXIT_DIRTY_RING_FULL at the ring's size
	 * less 64 reserved entries (and PML's 512 on Intel): a pass must end
	 * below that.
	 */
	if (backlog > max - 1024)
		backlog = max - 1024;
	backlog &= ~63U;
	if (backlog < 64)
		backlog = 64;
	for (entries = 1024; entries < backlog + 1024; entries *= 2)
		;
	collide = quick ? 4 : 32;
	cycles = quick ? 3 : 10;

	ret = rv_create(&lv, 2, entries, backlog);
	if (ret) {
		fprintf(stderr, "ringvm (%u entries, %u pages): %s\n", entries,
			backlog, strerror(-ret));
		return -1;
	}
	/* A session per VM: closing it drops its reference on the VM. */
	if (kvmas_open(&kv) || kvmas_attach_vm(kv, lv.vm)) {
		fprintf(stderr, "cannot attach a session\n");
		return -1;
	}
	hardened = kvmas_check_extension(kv, KVMAS_CAP_HARDENED_RING_RESET) > 0;
	serial = kvmas_check_extension(kv, KVMAS_CAP_RING_RESET) ==
		 KVMAS_RING_RESET_SERIAL;
	stock = hardened ? "hardened" : "kvm";
	for (k = 0; k < 2; k++)
		rv_ring(&lv, k, &lr[k]);
	if (rv_set_pass_pages(&lv, 0, WELL_PAGES)) {
		fprintf(stderr, "cannot shorten vCPU 0's pass\n");
		return -1;
	}
	/* Warm-up: first writes map pages (costlier than re-faults). */
	for (k = 0; k < 2; k++) {
		if (rv_run_pass(&lv, k) ||
		    kvmas_ring_harvest(&lr[k], NULL, NULL, 0) !=
			    (k ? backlog : WELL_PAGES) ||
		    reset_own(OURS, k) != (k ? backlog : WELL_PAGES)) {
			fprintf(stderr, "warm-up of vCPU %d failed\n", k);
			return -1;
		}
	}

	printf("# 1. harvest-to-reset latency of a well-behaved vCPU (vCPU 0 "
	       "dirties %d pages per round; its VMM thread harvests, then "
	       "resets; timed from harvest done to reset returned)\n",
	       WELL_PAGES);
	printf("#    stock = both VMM threads call KVM_RESET_DIRTY_RINGS "
	       "(global, slots_lock, walks every vCPU's ring); here that is %s\n",
	       hardened ?
		       "the module's hardened kvm_dirty_ring_reset() (livepatch, "
		       "KVMAS_CAP_HARDENED_RING_RESET = 1): KVM's walk, bounded, "
		       "plus a per-ring lock" :
		       "KVM's own kvm_dirty_ring_reset() (not livepatched here)");
	printf("#    ours  = each VMM thread calls KVMAS_RESET_RING naming its "
	       "own vCPU only%s\n",
	       serial ? " (KVMAS_CAP_RING_RESET = 1 here: ours too holds "
			"slots_lock, so it cannot be isolated)" :
			" (per-ring lock, no slots_lock)");
	printf("#    backlog %u entries (ring %u of max %u), COLLIDE = %u, "
	       "LEAD = %d us, methods alternate every %u rounds, %u rounds "
	       "per method\n",
	       backlog, entries, max, collide, LEAD_US, collide,
	       cycles * collide);
	for (v = 0; v < NR_VARIANTS; v++) {
		printf("#    %-9s %s\n", variant_name[v], variant_text(v));
		fflush(stdout);
		if (run_variant(v, res)) {
			fprintf(stderr, "variant %s failed\n", variant_name[v]);
			return -1;
		}
		report_variant(v, res, stock);
	}
	if (stalled_total > 2)
		printf("#    warning: the host held up %u colliding rounds "
		       "(their reset began > %d us after vCPU 1's, not ~%d): "
		       "it descheduled the guest's CPUs, and its stalls land "
		       "in the timed resets too; rerun on an idle host\n",
		       stalled_total, STALL_US, LEAD_US);
	kvmas_close(kv);
	rv_destroy(&lv);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Part 2: reset throughput                                            */
/* ------------------------------------------------------------------ */

static struct ringvm r;
static struct kvmas_ring kr[2];
static uint32_t tp_pages, tp_ring;

/* Dirty both stripes and harvest them (untimed). */
static int dirty_and_harvest(void)
{
	int i;

	for (i = 0; i < 2; i++) {
		if (rv_run_pass(&r, i))
			return -1;
		if (kvmas_ring_harvest(&kr[i], NULL, NULL, 0) != tp_pages)
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
		for (k = 0; k < tp_ring; k++)
			r.ring[i][k].slot = 0x7fff;
}

/* Dirty logging off and on: every page write-protected again. */
static int reprotect_all(void)
{
	uint64_t size = (uint64_t)tp_pages * 2 * 4096;

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

static int bench_throughput(void)
{
	static const char *const names[] = { "stock KVM_RESET_DIRTY_RINGS",
					     "ours, 1 thread (one call)",
					     "ours, 2 per-vCPU threads",
					     "ours, 1 thread, walk only",
					     "ours, 2 threads, walk only" };
	static const char *const keys[] = { "stock", "ours_1thread",
					    "ours_2threads",
					    "ours_1thread_walk",
					    "ours_2threads_walk" };
	int rounds = quick ? 1 : 4, k, m, ret;
	double t[5] = { 0 }, rate[5];
	long n[5] = { 0 }, got;

	tp_pages = quick ? 1024 : TP_PAGES;
	tp_ring = tp_pages * 2;
	ret = rv_create(&r, 2, tp_ring, tp_pages);
	if (ret) {
		fprintf(stderr, "ringvm: %s\n", strerror(-ret));
		return -1;
	}
	if (kvmas_open(&kv) || kvmas_attach_vm(kv, r.vm)) {
		fprintf(stderr, "cannot attach a session\n");
		return -1;
	}
	printf("# 2. reset throughput: 2 vCPUs x %u entries per round, "
	       "%d rounds per method, methods rotating\n",
	       tp_pages, rounds);
	for (k = 0; k < 2; k++)
		rv_ring(&r, k, &kr[k]);
	/* Warm-up round: first faults map pages, not just re-protect them. */
	if (dirty_and_harvest() || timed(1, &t[1]) != 2 * tp_pages) {
		fprintf(stderr, "warm-up failed\n");
		return -1;
	}
	t[1] = 0;
	for (k = 0; k < 5 * rounds; k++) {
		m = k % 5;
		if (dirty_and_harvest()) {
			fprintf(stderr, "round %d: dirtying failed\n", k);
			return -1;
		}
		if (m >= 3)
			spoil();
		got = timed(m == 4 ? 2 : m, &t[m]);
		if (m >= 3 && reprotect_all()) {
			fprintf(stderr, "round %d: re-protecting failed\n", k);
			return -1;
		}
		if (got != 2 * tp_pages) {
			fprintf(stderr, "round %d (%s): reset %ld of %u\n", k,
				names[m], got, 2 * tp_pages);
			return -1;
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
	printf("# ours 2 threads / stock = %.2fx (no target: KVM's "
	       "re-protection serialises on mmu_lock; part 1 measures what "
	       "per-vCPU buys)\n",
	       rate[2] / rate[0]);
	printf("# ours 2 threads / ours 1 thread = %.2fx\n", rate[2] / rate[1]);
	printf("# share of a reset spent in KVM's re-protection (mmu_lock held "
	       "for write, serialising): %.0f%%\n",
	       100.0 * (1 - rate[1] / rate[3]));
	printf("# walk alone, 2 threads / 1 thread = %.2fx\n",
	       rate[4] / rate[3]);
	for (m = 0; m < 5; m++) {
		bench_json_begin("ring", "reset_throughput");
		bench_json_kv("\"method\":\"%s\",\"unit\":\"entries/s\","
			      "\"rounds\":%d,\"entries\":%ld,\"seconds\":%.6f,"
			      "\"rate\":%.0f,\"vs_stock\":%.3f",
			      keys[m], rounds, n[m], t[m], rate[m],
			      rate[m] / rate[0]);
		bench_json_end();
	}
	kvmas_close(kv);
	rv_destroy(&r);
	return 0;
}

int main(int argc, char **argv)
{
	const char *q = getenv("KVMAS_BENCH_QUICK");
	int lat = 1, tput = 1, i, cap;
	double t0;

	quick = q && *q && strcmp(q, "0");
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "quick")) {
			quick = 1;
		} else if (!strcmp(argv[i], "latency")) {
			tput = 0;
		} else if (!strcmp(argv[i], "throughput")) {
			lat = 0;
		} else {
			fprintf(stderr,
				"usage: %s [quick] [latency|throughput]\n",
				argv[0]);
			return 2;
		}
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("== dirty-ring reset benchmark%s (ratios within one boot)\n",
	       quick ? ", quick mode: proves it runs, judges nothing" : "");
	bench_conditions("ring");
	if (!rv_have_ring()) {
		printf("# no dirty ring on this kernel (KVM_CAP_DIRTY_LOG_RING"
		       "): nothing to measure\n");
		return 0;
	}
	pin(0);
	if (kvmas_open(&kv)) {
		fprintf(stderr, "cannot open a session\n");
		return 1;
	}
	cap = kvmas_check_extension(kv, KVMAS_CAP_RING_RESET);
	kvmas_close(kv);
	printf("# KVMAS_CAP_RING_RESET = %d (2 = per-vCPU parallel)\n", cap);
	if (sysconf(_SC_NPROCESSORS_ONLN) < 2)
		printf("# one CPU online: the threads cannot run in parallel, "
		       "the figures mean little\n");
	t0 = now_s();
	if (lat && bench_latency())
		return 1;
	if (lat)
		printf("#    (part 1 took %.1f s)\n", now_s() - t0);
	t0 = now_s();
	if (tput && bench_throughput())
		return 1;
	if (tput)
		printf("#    (part 2 took %.1f s)\n", now_s() - t0);
	printf("== benchmark done\n");
	return 0;
}
