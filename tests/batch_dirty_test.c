// SPDX-License-Identifier: GPL-2.0
/*
 * KVMAS_COMMIT_BATCH dirty hand-off: the dirty bits of split, shrunk and
 * merged slots while a vCPU writes them, against stock DELETE + CREATE.
 */
#include "batch_fixture.h"

/*
 * Dirty hand-off under a running guest (bitmap mode, no ring). vCPU 0 sweeps
 * a logged data slot: it writes a value unique to the sweep into each page
 * of a range, in ascending order and each page once, then HLTs. While it
 * sweeps, batches split the slot in two, shrink the upper half (pages from
 * DH_KEEP on then belong to no slot) and merge it back, on both routes.
 * Each page is written once per round, so a bit a commit drops is not set
 * again by a later write, and the VMM knows from guest memory which pages
 * were written before the ioctl and which only after it returned. After
 * each round, against the KVM_GET_DIRTY_LOG clear at its start:
 *  - every page written is dirty in the log of the new slot covering it
 *    (the bits of removed slots are ORed into the new ones);
 *  - every page written that no slot covers any more is in the bits handed
 *    back (the ops' dirty_bitmap), and so is every page of a removed slot
 *    written before the ioctl was issued;
 *  - no bit names a page the guest did not write, and no handed-back bit a
 *    page it reached only after the commit returned;
 *  - the batch's dirty_pages count equals the bits handed back.
 * Stock DELETE + CREATE for the same split loses the bits (the negative
 * control).
 */
#define DH_PAGES 256
#define DH_MID 128 /* first page of slot DH_SLOT2 after the split */
#define DH_KEEP 192 /* the shrink keeps slot DH_SLOT2 below this page */
#define DH_WORDS (DH_PAGES / 64)
#define DH_SLOT2 7
#define DH_CODE_GPA 0x2000U /* in ringvm's base slot, clear of its code */
#define DH_PARAM_GPA 0x3000U /* value, first gpa, end gpa, spins per page */

enum { DH_SPLIT, DH_SHRINK, DH_MERGE, DH_KINDS };
static const char *const dh_kind[DH_KINDS] = { "split", "shrink", "merge" };

static unsigned int popcount_buf(const uint64_t *b, unsigned int words)
{
	unsigned int n = 0, i;

	for (i = 0; i < words; i++)
		n += __builtin_popcountll(b[i]);
	return n;
}

static int dirty_log(int vm, unsigned int slot, uint64_t *bits)
{
	struct kvm_dirty_log l = { .slot = slot, .dirty_bitmap = bits };

	return sys_ret(ioctl(vm, KVM_GET_DIRTY_LOG, &l));
}

static int bit_test(const uint64_t *b, unsigned int i)
{
	return (b[i / 64] >> (i % 64)) & 1;
}

static void bits_set_range(uint64_t *b, unsigned int lo, unsigned int hi)
{
	for (; lo < hi; lo++)
		b[lo / 64] |= 1ULL << (lo % 64);
}

/* ORs the bitmap of a slot of @n pages starting at page @first into @dst. */
static void bits_or_slot(uint64_t *dst, const uint64_t *src, unsigned int first,
			 unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n; i++)
		if (bit_test(src, i))
			bits_set_range(dst, first + i, first + i + 1);
}

#if !defined(__aarch64__)
static void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

/*
 * again: mov eax, [value]     a1 abs32
 *        mov ebx, [first]     8b 1d abs32
 * loop:  mov [ebx], eax       89 03
 *        mov ecx, [spins]     8b 0d abs32
 * spin:  dec ecx              49
 *        jnz spin             75 fd
 *        add ebx, 0x1000      81 c3 00 10 00 00
 *        cmp ebx, [end]       3b 1d abs32
 *        jb loop              72 rel8
 *        hlt                  f4
 *        jmp again            eb rel8
 */
static void dh_emit_sweeper(uint8_t *base)
{
	uint8_t *p = base + DH_CODE_GPA;

	p[0] = 0xa1;
	put32(p + 1, DH_PARAM_GPA);
	p[5] = 0x8b;
	p[6] = 0x1d;
	put32(p + 7, DH_PARAM_GPA + 4);
	p[11] = 0x89; /* loop at +11 */
	p[12] = 0x03;
	p[13] = 0x8b;
	p[14] = 0x0d;
	put32(p + 15, DH_PARAM_GPA + 12);
	p[19] = 0x49; /* spin at +19 */
	p[20] = 0x75;
	p[21] = (uint8_t)(19 - 22);
	p[22] = 0x81;
	p[23] = 0xc3;
	put32(p + 24, 0x1000);
	p[28] = 0x3b;
	p[29] = 0x1d;
	put32(p + 30, DH_PARAM_GPA + 8);
	p[34] = 0x72;
	p[35] = (uint8_t)(11 - 36);
	p[36] = 0xf4;
	p[37] = 0xeb;
	p[38] = (uint8_t)(0 - 39);
}
#else
/*
 * The same sweeper in A64, x27 = DH_PARAM_GPA (rv_set_entry), x26 = the
 * address whose MMIO store ends a pass (ringvm.c):
 *   again: ldr w0, [x27]          value
 *          ldr w1, [x27, #4]      first
 *   loop:  str w0, [x1]
 *          ldr w2, [x27, #12]     spins
 *   spin:  subs w2, w2, #1
 *          b.ne spin
 *          add x1, x1, #1, lsl #12
 *          ldr w3, [x27, #8]      end
 *          cmp x1, x3
 *          b.lo loop
 *          str wzr, [x26]
 *          b again
 */
static void dh_emit_sweeper(uint8_t *base)
{
	const uint64_t at = DH_CODE_GPA;
	const uint32_t insn[] = {
		a64_ldr_w(0, 27, 0),
		a64_ldr_w(1, 27, 4),
		a64_str_w(0, 1, 0),
		a64_ldr_w(2, 27, 12),
		A64_SUBS_W2_1,
		a64_b_cond(at + 20, at + 16, A64_COND_NE),
		a64_add_x_lsl12(1, 1, 1),
		a64_ldr_w(3, 27, 8),
		a64_cmp_x(1, 3),
		a64_b_cond(at + 36, at + 8, A64_COND_LO),
		a64_str_w(31, 26, 0),
		a64_b(at + 44, at),
	};

	memcpy(base + at, insn, sizeof(insn));
}
#endif

struct dh_slot {
	unsigned int slot, first, n; /* pages from RV_DATA_GPA */
};

struct dh {
	struct ringvm r;
	int dev;
	uint32_t value; /* what the current sweep writes */
	uint32_t spins; /* delay per page, doubled while sweeps end too soon */
	unsigned int first, end; /* the current sweep's pages */
	pthread_t th;
	volatile int done;
	int ret;
	/* Per kind of round. */
	unsigned int rounds[DH_KINDS], overlapped[DH_KINDS];
	unsigned int early[DH_KINDS], inflight[DH_KINDS], late[DH_KINDS];
	unsigned int handed[DH_KINDS], orphans[DH_KINDS], live[DH_KINDS];
	unsigned int routes;
};

static void *dh_vcpu(void *arg)
{
	struct dh *d = arg;

	d->ret = rv_run_pass(&d->r, 0);
	__atomic_store_n(&d->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* Starts one sweep over pages [first, end) on a vCPU thread. */
static int dh_sweep(struct dh *d, unsigned int first, unsigned int end)
{
	uint32_t prm[4] = { ++d->value, RV_DATA_GPA + first * 4096,
			    RV_DATA_GPA + end * 4096, d->spins };

	/* The vCPU is halted (outside KVM_RUN): it reloads these on resume. */
	memcpy(d->r.base + DH_PARAM_GPA, prm, sizeof(prm));
	d->first = first;
	d->end = end;
	d->done = 0;
	return pthread_create(&d->th, NULL, dh_vcpu, d) ? -EAGAIN : 0;
}

/* 0 once the sweep ended in its HLT; an exit reason or -errno otherwise. */
static int dh_wait(struct dh *d)
{
	pthread_join(d->th, NULL);
	return d->ret;
}

/* The first page the current sweep has not written yet (it goes in order). */
static unsigned int dh_pos(struct dh *d)
{
	unsigned int p = d->first;

	while (p < d->end &&
	       __atomic_load_n((uint32_t *)(d->r.data + (size_t)p * 4096),
			       __ATOMIC_ACQUIRE) == d->value)
		p++;
	return p;
}

/*
 * One round. With the guest halted, clear the logs of the @nold slots @old;
 * sweep pages [pre0, pre1) to completion (pages the batch will take away);
 * start a sweep over [s0, s1), commit @ops once it has reached page
 * @trigger, let it finish, read the logs of the @nnew slots @new and check
 * the hand-off. Every DELETE/REPLACE op gets a dirty_bitmap buffer.
 */
static void dh_round(struct __test_metadata *_metadata, struct dh *d, int kind,
		     const struct dh_slot *old, int nold,
		     const struct dh_slot *new, int nnew,
		     struct kvmas_batch_op *ops, int nops, unsigned int flags,
		     unsigned int pre0, unsigned int pre1, unsigned int s0,
		     unsigned int s1, unsigned int trigger)
{
	uint64_t back[2][DH_WORDS], bits[DH_WORDS];
	uint64_t written[DH_WORDS] = { 0 }, early[DH_WORDS] = { 0 };
	uint64_t late[DH_WORDS] = { 0 }, handed[DH_WORDS] = { 0 };
	uint64_t removed[DH_WORDS] = { 0 }, live[DH_WORDS] = { 0 };
	uint64_t covered[DH_WORDS] = { 0 };
	unsigned int pos0, pos1, p, miss_live = 0, miss_gone = 0;
	unsigned int miss_early = 0, stray_back = 0, stray_live = 0,
		     orphans = 0;
	struct batch_res res;
	int i, j;

	ASSERT_LE(nops, 2);
	for (i = 0; i < nold; i++)
		ASSERT_EQ(0, dirty_log(d->r.vm, old[i].slot, bits));
	if (pre1 > pre0) {
		ASSERT_EQ(0, dh_sweep(d, pre0, pre1));
		ASSERT_EQ(0, dh_wait(d));
		bits_set_range(written, pre0, pre1);
		bits_set_range(early, pre0, pre1);
	}
	for (j = 0; j < nops; j++) {
		if (ops[j].op != KVMAS_OP_DELETE &&
		    ops[j].op != KVMAS_OP_REPLACE)
			continue;
		/* All ones: bits the module did not write show up as stray. */
		memset(back[j], 0xff, sizeof(back[j]));
		ops[j].dirty_bitmap = (uintptr_t)back[j];
	}

	ASSERT_EQ(0, dh_sweep(d, s0, s1));
	while (dh_pos(d) < trigger &&
	       !__atomic_load_n(&d->done, __ATOMIC_ACQUIRE))
		sched_yield();
	pos0 = dh_pos(d); /* pages below: written before the ioctl */
	res = commit(d->dev, ops, nops, flags);
	/*
	 * Pages beyond this one were written after the ioctl returned. The
	 * page itself may have been faulted in before (KVM marks it dirty in
	 * the old slot when it makes the writable SPTE, and the fence then
	 * sends the vCPU back to fault again on the new slot) while the store
	 * lands only now: an over-report, which dirty logging allows.
	 */
	pos1 = dh_pos(d);
	/* The sweep never met a hole: it ended in its own HLT. */
	ASSERT_EQ(0, dh_wait(d));
	ASSERT_EQ(0, res.err);
	d->routes |= 1U << res.route;
	bits_set_range(written, s0, s1);
	bits_set_range(early, s0, pos0);
	bits_set_range(late, pos1 + 1, s1);

	for (j = 0; j < nops; j++) {
		if (!ops[j].dirty_bitmap)
			continue;
		for (i = 0; i < nold && old[i].slot != ops[j].slot; i++)
			;
		ASSERT_LT(i, nold);
		bits_set_range(removed, old[i].first, old[i].first + old[i].n);
		bits_or_slot(handed, back[j], old[i].first, old[i].n);
		ops[j].dirty_bitmap = 0;
	}
	for (i = 0; i < nnew; i++) {
		memset(bits, 0, sizeof(bits));
		ASSERT_EQ(0, dirty_log(d->r.vm, new[i].slot, bits));
		bits_or_slot(live, bits, new[i].first, new[i].n);
		bits_set_range(covered, new[i].first, new[i].first + new[i].n);
	}

	for (p = 0; p < DH_PAGES; p++) {
		int w = bit_test(written, p), h = bit_test(handed, p);

		if (w && bit_test(covered, p) && !bit_test(live, p))
			miss_live++;
		if (w && !bit_test(covered, p)) {
			orphans += h;
			miss_gone += !h;
		}
		if (bit_test(early, p) && bit_test(removed, p) && !h)
			miss_early++;
		if (h && (!w || bit_test(late, p)))
			stray_back++;
		if (bit_test(live, p) && !w)
			stray_live++;
	}
	EXPECT_EQ(0, miss_live)
	TH_LOG("%s: %u written pages not in the new slots' logs", dh_kind[kind],
	       miss_live);
	EXPECT_EQ(0, miss_gone)
	TH_LOG("%s: %u written pages outside every slot not handed back",
	       dh_kind[kind], miss_gone);
	EXPECT_EQ(0, miss_early)
	TH_LOG("%s: %u pages written before the ioctl not handed back",
	       dh_kind[kind], miss_early);
	EXPECT_EQ(0, stray_back)
	TH_LOG("%s: %u handed-back bits for pages not written by the return",
	       dh_kind[kind], stray_back);
	EXPECT_EQ(0, stray_live)
	TH_LOG("%s: %u logged pages the guest did not write", dh_kind[kind],
	       stray_live);
	EXPECT_EQ(popcount_buf(handed, DH_WORDS), res.dirty)
	TH_LOG("%s: dirty_pages", dh_kind[kind]);

	d->rounds[kind]++;
	/* The commit returned while the guest was still writing this sweep. */
	if (pos1 < s1)
		d->overlapped[kind]++;
	else if (d->spins < (1U << 17))
		d->spins *= 2;
	d->early[kind] += popcount_buf(early, DH_WORDS);
	d->inflight[kind] += pos1 - pos0;
	d->late[kind] += s1 - pos1; /* incl. the page in progress at return */
	d->handed[kind] += popcount_buf(handed, DH_WORDS);
	d->orphans[kind] += orphans;
	d->live[kind] += popcount_buf(live, DH_WORDS);
}

TEST_F_TIMEOUT(b, dirty_bits_handed_off, 180)
{
	const unsigned int lf = KVM_MEM_LOG_DIRTY_PAGES;
	const struct dh_slot whole[1] = { { RV_DATA_SLOT, 0, DH_PAGES } };
	const struct dh_slot halves[2] = {
		{ RV_DATA_SLOT, 0, DH_MID },
		{ DH_SLOT2, DH_MID, DH_PAGES - DH_MID },
	};
	const struct dh_slot shrunk[2] = {
		{ RV_DATA_SLOT, 0, DH_MID },
		{ DH_SLOT2, DH_MID, DH_KEEP - DH_MID },
	};
	uint64_t a[DH_WORDS] = { 0 }, c[DH_WORDS] = { 0 }, t0 = wl_now_us();
	struct kvmas_batch_op ops[2];
	unsigned int k, least = 0;
	struct dh d;
	uint8_t *data;
	int it;

	memset(&d, 0, sizeof(d));
	ASSERT_EQ(0, rv_create(&d.r, 1, 0, DH_PAGES));
	data = d.r.data;
	dh_emit_sweeper(d.r.base);
	ASSERT_EQ(0, rv_set_entry(&d.r, 0, DH_CODE_GPA, DH_PARAM_GPA));
	d.dev = kvmas_dev_open();
	ASSERT_GE(d.dev, 0);
	ASSERT_EQ(0, kvmas_attach(d.dev, d.r.vm));
	d.spins = 1;

	/* Until every kind of round has overlapped its commit a few times. */
	for (it = 0; it < 200 && least < 10 && wl_now_us() - t0 < 30000000;
	     it++) {
		unsigned int fl = (it & 1) ? inval_flag() : 0;

		/* Split: slot 1 keeps the low half, slot 7 takes the rest. */
		ops[0] = op(KVMAS_OP_REPLACE, RV_DATA_SLOT, RV_DATA_GPA,
			    DH_MID * 4096, data, lf);
		ops[1] = op(KVMAS_OP_CREATE, DH_SLOT2,
			    RV_DATA_GPA + DH_MID * 4096,
			    (DH_PAGES - DH_MID) * 4096, data + DH_MID * 4096,
			    lf);
		dh_round(_metadata, &d, DH_SPLIT, whole, 1, halves, 2, ops, 2,
			 fl, 0, 0, 0, DH_PAGES, 8 + (it * 29) % 112);
		/*
		 * Shrink slot 7 to [DH_MID, DH_KEEP): the guest wrote the part
		 * that goes away just before and now sweeps from slot 1 into
		 * what stays of slot 7.
		 */
		ops[0] = op(KVMAS_OP_REPLACE, DH_SLOT2,
			    RV_DATA_GPA + DH_MID * 4096,
			    (DH_KEEP - DH_MID) * 4096, data + DH_MID * 4096,
			    lf);
		dh_round(_metadata, &d, DH_SHRINK, halves, 2, shrunk, 2, ops, 1,
			 fl, DH_KEEP, DH_PAGES, 112, DH_KEEP,
			 132 + (it * 7) % 24);
		/* Merge back into one slot 1 over all pages. */
		ops[0] = del(DH_SLOT2);
		ops[1] = op(KVMAS_OP_REPLACE, RV_DATA_SLOT, RV_DATA_GPA,
			    DH_PAGES * 4096, data, lf);
		dh_round(_metadata, &d, DH_MERGE, shrunk, 2, whole, 1, ops, 2,
			 fl, 0, 0, 96, DH_KEEP, 132 + (it * 11) % 24);
		least = d.overlapped[0];
		for (k = 1; k < DH_KINDS; k++)
			if (d.overlapped[k] < least)
				least = d.overlapped[k];
	}
	for (k = 0; k < DH_KINDS; k++)
		TH_LOG("%s: %u rounds, %u ending mid-sweep; pages written "
		       "before the ioctl %u, in flight %u, after it %u; %u "
		       "bits handed back (%u for pages no slot covers), %u in "
		       "the new logs",
		       dh_kind[k], d.rounds[k], d.overlapped[k], d.early[k],
		       d.inflight[k], d.late[k], d.handed[k], d.orphans[k],
		       d.live[k]);
	TH_LOG("%d iterations in %llu ms, %u spins per page, routes %#x "
	       "(2=invalidate 4=fence)",
	       it, (unsigned long long)(wl_now_us() - t0) / 1000, d.spins,
	       d.routes);
	/* The guest really was writing while commits ran, on every kind. */
	for (k = 0; k < DH_KINDS; k++) {
		EXPECT_GE(d.overlapped[k], 2) TH_LOG("%s", dh_kind[k]);
		EXPECT_GT(d.inflight[k] + d.late[k], 0)
		TH_LOG("%s", dh_kind[k]);
	}
	EXPECT_GT(d.orphans[DH_SHRINK], 0);
	EXPECT_EQ(inval_route_ok(),
		  !!(d.routes & (1U << KVMAS_ROUTE_INVALIDATE)));

	/* Negative control: the same split with stock ioctls loses the bits. */
	ASSERT_EQ(0, dirty_log(d.r.vm, RV_DATA_SLOT, a));
	ASSERT_EQ(0, dh_sweep(&d, 0, DH_PAGES));
	ASSERT_EQ(0, dh_wait(&d));
	ASSERT_EQ(0, kvm_set_slot(d.r.vm, 0, RV_DATA_SLOT, 0, 0, 0, NULL));
	ASSERT_EQ(0, kvm_set_slot(d.r.vm, 0, RV_DATA_SLOT, lf, RV_DATA_GPA,
				  DH_MID * 4096, data));
	ASSERT_EQ(0, kvm_set_slot(d.r.vm, 0, DH_SLOT2, lf,
				  RV_DATA_GPA + DH_MID * 4096,
				  (DH_PAGES - DH_MID) * 4096,
				  data + DH_MID * 4096));
	memset(a, 0, sizeof(a));
	ASSERT_EQ(0, dirty_log(d.r.vm, RV_DATA_SLOT, a));
	ASSERT_EQ(0, dirty_log(d.r.vm, DH_SLOT2, c));
	EXPECT_EQ(0, popcount_buf(a, DH_WORDS) + popcount_buf(c, DH_WORDS));
	TH_LOG("stock split: %u pages written, %u dirty bits left", DH_PAGES,
	       popcount_buf(a, DH_WORDS) + popcount_buf(c, DH_WORDS));
	close(d.dev);
	rv_destroy(&d.r);
}

TEST_HARNESS_MAIN
