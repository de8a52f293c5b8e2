// SPDX-License-Identifier: GPL-2.0
/*
 * Four vCPUs on the dirty ring, the module against stock, alternating in one
 * boot (meant for multi-threaded TCG: race-all.sh, `make soak`). A user once
 * saw, in 1 of 4 runs of such a workload on 6.1, a vCPU triple-fault
 * (KVM_EXIT_SHUTDOWN), its pages hold wrong values and another vCPU's page
 * show up in its ring. Each round runs the workload twice for
 * KVMAS_RING4_SECONDS (default 10):
 *
 *   module: per-vCPU harvesters reset their own ring with KVMAS_RESET_RING
 *           in random chunks (partial boundaries), a thread calls stock
 *           KVM_RESET_DIRTY_RINGS now and then (and with KVMAS_RING4_SLOTS
 *           another commits batches on a scratch slot);
 *   stock:  the same, but the harvesters reset with KVM_RESET_DIRTY_RINGS
 *           and the scratch slot changes by stock ioctls (the control).
 *
 * Every epoch checks each stripe: every page harvested, no foreign entry,
 * every page holding its last pass's value, no exit but HLT. The module's
 * runs must be clean; the control's figures are printed beside them, so an
 * anomaly of the emulator shows on both sides. KVMAS_RING4_ROUNDS (default 1).
 */
#include <stdlib.h>

#include "kvm_helpers.h"
#include "ring_epochs.h"
#include "workload.h"
#include "kselftest_harness.h"

struct ring4_sum {
	int runs, bad_runs, epochs;
	uint64_t entries, misses, foreign, wrong;
	int errs; /* lanes that stopped early */
	int last_err;
};

static int env_int(const char *name, int def)
{
	const char *s = getenv(name);

	return s && *s ? atoi(s) : def;
}

/* One run; returns 0 if it was clean. */
static int ring4_run(struct __test_metadata *_metadata, unsigned int flags,
		     int secs, struct ring4_sum *sum)
{
	struct epochs *x = calloc(1, sizeof(*x));
	int i, bad = 0;

	if (!x)
		return -ENOMEM;
	EXPECT_EQ(0, ep_start(x, 4, INT32_MAX,
			      wl_now_us() + (uint64_t)secs * 1000000, flags));
	ep_join(x);
	EXPECT_EQ(0, x->batch_err);
	EXPECT_EQ(0, x->stock_err);
	for (i = 0; i < 4; i++) {
		struct ep_lane *l = &x->lane[i];

		sum->epochs += l->epochs;
		sum->entries += l->entries;
		sum->misses += l->misses;
		sum->foreign += l->foreign;
		sum->wrong += l->wrong;
		if (l->err) {
			sum->errs++;
			sum->last_err = l->err;
		}
		if (l->err || l->misses || l->foreign || l->wrong ||
		    !l->epochs) {
			bad = 1;
			TH_LOG("%s run %d, vcpu %d: error %d (> 0: KVM exit reason, 8 = SHUTDOWN; < 0: -errno) after %d epochs; "
			       "%llu pages lost, %llu foreign entries, %llu wrong values",
			       (flags & EP_STOCK_RESETS) ? "stock" : "module",
			       sum->runs + 1, i, l->err, l->epochs,
			       (unsigned long long)l->misses,
			       (unsigned long long)l->foreign,
			       (unsigned long long)l->wrong);
		}
	}
	sum->runs++;
	sum->bad_runs += bad;
	ep_destroy(x);
	free(x);
	return bad;
}

static void ring4_log(struct __test_metadata *_metadata, const char *name,
		      const struct ring4_sum *s)
{
	TH_LOG("%s: %d runs, %d with an anomaly; %d epochs, %llu entries, "
	       "%llu pages lost, %llu foreign, %llu wrong values, %d vCPUs stopped (last: %d)",
	       name, s->runs, s->bad_runs, s->epochs,
	       (unsigned long long)s->entries, (unsigned long long)s->misses,
	       (unsigned long long)s->foreign, (unsigned long long)s->wrong,
	       s->errs, s->last_err);
}

FIXTURE(ring4){};
FIXTURE_SETUP(ring4)
{
}
FIXTURE_TEARDOWN(ring4)
{
}

TEST_F_TIMEOUT(ring4, module_beside_stock, 7200)
{
	int rounds = env_int("KVMAS_RING4_ROUNDS", 1);
	int secs = env_int("KVMAS_RING4_SECONDS", 10);
	/*
	 * KVMAS_RING4_SLOTS=1 adds a scratch slot changed all along (batches;
	 * stock ioctls in the control). Off by default: on 6.12 under
	 * multi-threaded TCG the stock control hangs the kernel that way too.
	 */
	unsigned int flags =
		EP_PARTIAL | EP_STOCK_THREAD |
		(env_int("KVMAS_RING4_SLOTS", 0) ? EP_SLOT_THREAD : 0);
	struct ring4_sum mod = { 0 }, stock = { 0 };
	int r;

	if (kvmas_cap(KVMAS_CAP_RING_RESET) <= 0)
		SKIP(return, "no KVMAS_RESET_RING on this kernel");
	for (r = 0; r < rounds; r++) {
		ring4_run(_metadata, flags, secs, &mod);
		ring4_run(_metadata, flags | EP_STOCK_RESETS | EP_STOCK_SLOTS,
			  secs, &stock);
	}
	ring4_log(_metadata, "module (KVMAS_RESET_RING)", &mod);
	ring4_log(_metadata, "stock (KVM_RESET_DIRTY_RINGS)", &stock);
	EXPECT_EQ(0, mod.bad_runs);
	EXPECT_GT(mod.epochs, 0);
	EXPECT_GT(stock.epochs, 0);
}

TEST_HARNESS_MAIN
