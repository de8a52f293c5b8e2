// SPDX-License-Identifier: GPL-2.0
/*
 * Allocation-failure driver for the debug kernel (CONFIG_FAULT_INJECTION,
 * FAILSLAB, FAIL_PAGE_ALLOC, FAULT_INJECTION_USERCOPY).
 *
 * For each command, n = 1, 2, ...: build a fresh context (VM, slots,
 * session), write n to /proc/thread-self/fail-nth, make the call, and read
 * fail-nth back. If the n-th fault site of the call was failed, the call must
 * either fail with a clean errno (ENOMEM from an allocation, EFAULT from a
 * user copy) leaving everything as before (layout, KVM's memslot generation,
 * the caller's buffers, ring entries), or succeed (a site with a fallback).
 * The walk ends at the first n the call no longer reaches: every fault site
 * on the call's path has then been failed once. At the end no VM may be
 * left alive (no reference leaked by an error path).
 *
 * The debugfs knobs make fail-nth reach sleeping allocations of every order
 * (by default both injectors skip __GFP_DIRECT_RECLAIM allocations and
 * fail_page_alloc skips order 0) and keep the injectors quiet; probability
 * stays 0, so only fail-nth injects.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>

#include "batch_helpers.h"
#include "ringvm.h"
#include "kselftest_harness.h"

#define MAX_SITES 4000

static const char *const knobs[][2] = {
	{ "failslab/ignore-gfp-wait", "N" },
	{ "failslab/verbose", "0" },
	{ "fail_page_alloc/ignore-gfp-wait", "N" },
	{ "fail_page_alloc/ignore-gfp-highmem", "N" },
	{ "fail_page_alloc/min-order", "0" },
	{ "fail_page_alloc/verbose", "0" },
	{ "fail_usercopy/verbose", "0" },
};

static int set_knobs(void)
{
	char path[128];
	unsigned int i;
	int fd, r;

	for (i = 0; i < sizeof(knobs) / sizeof(knobs[0]); i++) {
		snprintf(path, sizeof(path), "/sys/kernel/debug/%s",
			 knobs[i][0]);
		fd = open(path, O_WRONLY);
		if (fd < 0)
			return -errno;
		r = write(fd, knobs[i][1], strlen(knobs[i][1]));
		close(fd);
		if (r < 0)
			return -errno;
	}
	return 0;
}

/* /proc/thread-self/fail-nth of the calling thread. */
static int nth_open(void)
{
	return open("/proc/thread-self/fail-nth", O_RDWR);
}

static int nth_arm(int fd, unsigned int n)
{
	char b[16];
	int l = snprintf(b, sizeof(b), "%u", n);

	return pwrite(fd, b, l, 0) == l ? 0 : -errno;
}

/*
 * 1 if the armed fault was injected, 0 if not; disarms in any case. Reading
 * and writing fail-nth copy to/from user space, which is a fault site itself
 * (FAULT_INJECTION_USERCOPY) while the count is still running: a read that
 * fails with EFAULT consumed the last count (so the call did not), and the
 * disarming write may fail the same way, which leaves the count at 0 too.
 */
static int nth_fired(int fd)
{
	char b[16];
	ssize_t l = pread(fd, b, sizeof(b) - 1, 0);

	if (l < 0)
		return errno == EFAULT ? 0 : -1;
	b[l] = 0;
	if (atoi(b) == 0)
		return 1;
	if (pwrite(fd, "0", 1, 0) != 1 && errno != EFAULT)
		return -1;
	return 0;
}

struct walk {
	unsigned int sites; /* fault sites failed (n of the last fired) */
	unsigned int enomem; /* calls failed with ENOMEM */
	unsigned int efault; /* calls failed with EFAULT */
	unsigned int tolerated; /* faults after which the call succeeded */
	unsigned int other; /* calls failed with another errno */
	int other_err;
	unsigned int dirty; /* failed calls that changed something */
	char what[160]; /* the first change seen */
};

/*
 * One command under test: setup() builds a fresh context, call() makes the
 * call (0 or -errno), same() says whether everything is as setup() left it
 * (writing what differs to why), done() checks a success, teardown() frees.
 * A success after an injected user-copy fault may have lost its outputs: the
 * header allows that (the change was made, the copy-out failed, as when
 * another thread unmaps the buffer), so done() then checks the change only.
 */
struct cmd {
	const char *name;
	int (*setup)(void *ctx);
	int (*call)(void *ctx);
	int (*same)(void *ctx, char *why, size_t len);
	int (*done)(void *ctx, int fired, char *why, size_t len);
	void (*teardown)(void *ctx);
};

/* Returns 0, or a negative step that went wrong (reported by the caller). */
static int walk(const struct cmd *c, void *ctx, struct walk *w, char *why,
		size_t len)
{
	unsigned int n;
	int fd = nth_open(), r, fired;

	memset(w, 0, sizeof(*w));
	if (fd < 0) {
		snprintf(why, len, "open fail-nth: %s", strerror(errno));
		return -1;
	}
	for (n = 1; n <= MAX_SITES; n++) {
		r = c->setup(ctx);
		if (r) {
			snprintf(why, len, "setup: %s", strerror(-r));
			break;
		}
		if (nth_arm(fd, n)) {
			snprintf(why, len, "arm %u: %s", n, strerror(errno));
			r = -1;
			c->teardown(ctx);
			break;
		}
		r = c->call(ctx);
		fired = nth_fired(fd);
		if (fired < 0) {
			snprintf(why, len, "read fail-nth: %s",
				 strerror(errno));
			c->teardown(ctx);
			r = -1;
			break;
		}
		if (!fired) {
			/* The call's path has fewer than n sites: done. */
			if (r) {
				snprintf(why, len,
					 "fails with no fault injected: %s",
					 strerror(-r));
			} else if (c->done(ctx, 0, why, len)) {
				r = -1;
			}
			c->teardown(ctx);
			close(fd);
			return r ? -1 : 0;
		}
		w->sites = n;
		if (r == 0) {
			w->tolerated++;
			if (c->done(ctx, 1, why, len)) {
				snprintf(why + strlen(why), len - strlen(why),
					 " (after a fault at site %u)", n);
				c->teardown(ctx);
				r = -1;
				break;
			}
		} else {
			if (r == -ENOMEM)
				w->enomem++;
			else if (r == -EFAULT)
				w->efault++;
			else if (!w->other++)
				w->other_err = -r;
			if (!c->same(ctx, why, len) && !w->dirty++)
				snprintf(w->what, sizeof(w->what),
					 "site %u (%s): %s", n, strerror(-r),
					 why);
		}
		c->teardown(ctx);
	}
	if (n > MAX_SITES)
		snprintf(why, len, "more than %d fault sites", MAX_SITES);
	close(fd);
	return -1;
}

static void report(const char *name, const struct walk *w)
{
	printf("# %s: %u fault sites failed one by one: %u ENOMEM, %u EFAULT,"
	       " %u other (%s), %u tolerated; %u left a change behind\n",
	       name, w->sites, w->enomem, w->efault, w->other,
	       w->other ? strerror(w->other_err) : "-", w->tolerated, w->dirty);
	if (w->dirty)
		printf("# %s: first change: %s\n", name, w->what);
}

/* Every walk builds a VM per fault site: allow minutes under KASAN + TCG. */
FIXTURE(nth){};
FIXTURE_SETUP(nth)
{
}
FIXTURE_TEARDOWN(nth)
{
}

/* ---- KVMAS_COMMIT_BATCH ------------------------------------------------ */

#define NR_BATCH_OPS 5
#define BM_BYTES (((1 * MiB) >> 12) / 8)

struct batch_ctx {
	unsigned int flags;
	int vm, vcpu, dev;
	uint8_t *mem;
	uint8_t bm[BM_BYTES];
	struct kvmas_batch_op ops[NR_BATCH_OPS];
	struct batch_res res;
	char layout[1024];
	uint64_t gen[KVMAS_MAX_AS];
};

static int batch_setup(void *p)
{
	struct batch_ctx *b = p;
	int r;

	b->vm = kvm_vm_create();
	if (b->vm < 0)
		return b->vm;
	b->vcpu = kvm_vcpu_create(b->vm, 0);
	if (b->vcpu < 0)
		return b->vcpu;
	/* slot 1: dirty-logged, deleted by the batch (bits handed back) */
	r = kvm_set_slot(b->vm, 0, 1, KVM_MEM_LOG_DIRTY_PAGES, 0x100000,
			 1 * MiB, b->mem);
	/* slot 2: moved; slot 3: dirty logging switched on */
	r = r	  ?:
		    kvm_set_slot(b->vm, 0, 2, 0, 0x400000, 512 * KiB,
				 b->mem + 1 * MiB);
	r = r	  ?:
		    kvm_set_slot(b->vm, 0, 3, 0, 0x800000, 256 * KiB,
				 b->mem + 2 * MiB);
	/* slot 5: replaced by a bigger one */
	r = r	  ?:
		    kvm_set_slot(b->vm, 0, 5, 0, 0x3000000, 256 * KiB,
				 b->mem + 3 * MiB);
	if (r)
		return r;
	b->dev = kvmas_dev_open();
	if (b->dev < 0)
		return b->dev;
	r = kvmas_attach(b->dev, b->vm);
	if (r)
		return r;
	memset(b->bm, 0x5a, sizeof(b->bm));
	b->ops[0] = del(1);
	b->ops[0].dirty_bitmap = (uintptr_t)b->bm;
	b->ops[1] =
		op(KVMAS_OP_MOVE, 2, 0x1000000, 512 * KiB, b->mem + 1 * MiB, 0);
	b->ops[2] =
		op(KVMAS_OP_SET_FLAGS, 3, 0, 0, NULL, KVM_MEM_LOG_DIRTY_PAGES);
	b->ops[3] =
		op(KVMAS_OP_CREATE, 4, 0x2000000, 1 * MiB, b->mem + 4 * MiB, 0);
	b->ops[4] = op(KVMAS_OP_REPLACE, 5, 0x3000000, 512 * KiB,
		       b->mem + 3 * MiB, KVM_MEM_LOG_DIRTY_PAGES);
	layout_str(b->dev, 0, b->layout, sizeof(b->layout));
	vm_generation(b->dev, b->gen);
	return 0;
}

static int batch_call(void *p)
{
	struct batch_ctx *b = p;

	b->res = commit(b->dev, b->ops, NR_BATCH_OPS, b->flags);
	return b->res.err;
}

static int batch_same(void *p, char *why, size_t len)
{
	struct batch_ctx *b = p;
	char now[sizeof(b->layout)];
	uint64_t gen[KVMAS_MAX_AS];
	unsigned int i;

	layout_str(b->dev, 0, now, sizeof(now));
	vm_generation(b->dev, gen);
	if (strcmp(now, b->layout)) {
		snprintf(why, len, "layout %s, was %s", now, b->layout);
		return 0;
	}
	if (memcmp(gen, b->gen, sizeof(gen))) {
		snprintf(why, len, "generation %" PRIu64 ", was %" PRIu64,
			 gen[0], b->gen[0]);
		return 0;
	}
	for (i = 0; i < sizeof(b->bm); i++) {
		if (b->bm[i] != 0x5a) {
			snprintf(why, len, "dirty bitmap written");
			return 0;
		}
	}
	return 1;
}

static int batch_done(void *p, int fired, char *why, size_t len)
{
	struct batch_ctx *b = p;
	unsigned int want = (b->flags & KVMAS_BATCH_ROUTE_INVALIDATE) ||
					    legacy_mmu() ?
				    KVMAS_ROUTE_INVALIDATE :
				    KVMAS_ROUTE_FENCE;
	char now[sizeof(b->layout)];

	layout_str(b->dev, 0, now, sizeof(now));
	if ((b->res.route != want &&
	     !(fired && b->res.route == KVMAS_ROUTE_NONE)) ||
	    !strstr(now, "4:2000000+100000") ||
	    !strstr(now, "2:1000000+80000") || strstr(now, "1:100000")) {
		snprintf(why, len, "success, route %u, layout %s", b->res.route,
			 now);
		return -1;
	}
	return 0;
}

static void batch_teardown(void *p)
{
	struct batch_ctx *b = p;

	close(b->dev);
	close(b->vcpu);
	close(b->vm);
}

static const struct cmd batch_cmd = { "commit_batch", batch_setup,
				      batch_call,     batch_same,
				      batch_done,     batch_teardown };

static void batch_walk(struct __test_metadata *_metadata, unsigned int flags,
		       const char *name)
{
	static struct batch_ctx b;
	char why[512] = "";
	struct walk w;

	if (kvmas_cap(KVMAS_CAP_BATCH_COMMIT) <= 0)
		SKIP(return, "no batch commits on this kernel");
	ASSERT_EQ(0, set_knobs());
	b.flags = flags;
	b.mem = guest_mem(5 * MiB);
	ASSERT_NE(NULL, b.mem);
	EXPECT_EQ(0, walk(&batch_cmd, &b, &w, why, sizeof(why)))
	TH_LOG("%s", why);
	report(name, &w);
	EXPECT_EQ(0, w.dirty) TH_LOG("%s", w.what);
	EXPECT_EQ(0, w.other) TH_LOG("errno %s", strerror(w.other_err));
	/* Creating KVM memslots allocates: the injectors reached the call. */
	EXPECT_LT(0, w.enomem);
	EXPECT_EQ(0, kvm_debugfs_nr_vms());
	munmap(b.mem, 5 * MiB);
}

TEST_F_TIMEOUT(nth, commit_batch, 900)
{
	batch_walk(_metadata, 0, "commit_batch");
}

TEST_F_TIMEOUT(nth, commit_batch_route_invalidate, 900)
{
	batch_walk(_metadata, KVMAS_BATCH_ROUTE_INVALIDATE,
		   "commit_batch_route_invalidate");
}

/* ---- KVMAS_RESET_RING -------------------------------------------------- */

#define RING_PAGES 64
#define PAT 0xa5a5a5a5u

struct ring_ctx {
	struct ringvm r;
	int dev;
	uint32_t harvested;
	uint32_t flags[RING_PAGES];
	struct kvmas_ring_vcpu v;
	uint64_t gen[KVMAS_MAX_AS];
};

static int ring_setup(void *p)
{
	struct ring_ctx *c = p;
	uint32_t i;
	int r;

	r = rv_create(&c->r, 1, 1024, RING_PAGES);
	if (r)
		return r;
	r = rv_run_pass(&c->r, 0);
	if (r)
		return r > 0 ? -EIO : r;
	c->harvested = rv_harvest(&c->r, 0);
	if (c->harvested != RING_PAGES)
		return -EIO;
	for (i = 0; i < RING_PAGES; i++)
		c->flags[i] = __atomic_load_n(&c->r.ring[0][i].flags,
					      __ATOMIC_ACQUIRE);
	c->dev = kvmas_dev_open();
	if (c->dev < 0)
		return c->dev;
	r = kvmas_attach(c->dev, c->r.vm);
	if (r)
		return r;
	vm_generation(c->dev, c->gen);
	c->v = (struct kvmas_ring_vcpu){ .vcpu_id = 0,
					 .boundary = c->r.fetch[0],
					 .reset = PAT,
					 .reset_index = PAT,
					 .stop_reason = PAT,
					 .invalid = PAT };
	return 0;
}

static int ring_call(void *p)
{
	struct ring_ctx *c = p;
	struct kvmas_reset_ring rr = {
		.size = sizeof(rr),
		.nr_vcpus = 1,
		.vcpu_size = sizeof(c->v),
		.vcpus = (uintptr_t)&c->v,
	};

	return sys_ret(ioctl(c->dev, KVMAS_RESET_RING, &rr));
}

static int ring_same(void *p, char *why, size_t len)
{
	struct ring_ctx *c = p;
	uint64_t gen[KVMAS_MAX_AS];
	uint32_t i, f;

	for (i = 0; i < RING_PAGES; i++) {
		f = __atomic_load_n(&c->r.ring[0][i].flags, __ATOMIC_ACQUIRE);
		if (f != c->flags[i]) {
			snprintf(why, len, "ring entry %u flags %#x, was %#x",
				 i, f, c->flags[i]);
			return 0;
		}
	}
	if (c->v.reset != PAT || c->v.reset_index != PAT ||
	    c->v.stop_reason != PAT || c->v.invalid != PAT) {
		snprintf(why, len, "vcpu outputs written (reset %u stop %u)",
			 c->v.reset, c->v.stop_reason);
		return 0;
	}
	vm_generation(c->dev, gen);
	if (memcmp(gen, c->gen, sizeof(gen))) {
		snprintf(why, len, "generation changed");
		return 0;
	}
	return 1;
}

static int ring_done(void *p, int fired, char *why, size_t len)
{
	struct ring_ctx *c = p;
	uint32_t i, f;

	for (i = 0; i < RING_PAGES; i++) {
		f = __atomic_load_n(&c->r.ring[0][i].flags, __ATOMIC_ACQUIRE);
		if (f) {
			snprintf(why, len, "success, entry %u flags %#x", i, f);
			return -1;
		}
	}
	if (fired && c->v.reset == PAT && c->v.stop_reason == PAT)
		return 0; /* outputs lost to the injected copy-out fault */
	if (c->v.reset != RING_PAGES ||
	    c->v.stop_reason != KVMAS_RING_STOP_BOUNDARY) {
		snprintf(why, len, "success with reset %u stop %u", c->v.reset,
			 c->v.stop_reason);
		return -1;
	}
	return 0;
}

static void ring_teardown(void *p)
{
	struct ring_ctx *c = p;

	close(c->dev);
	rv_destroy(&c->r);
}

static const struct cmd ring_cmd = { "reset_ring", ring_setup, ring_call,
				     ring_same,	   ring_done,  ring_teardown };

TEST_F_TIMEOUT(nth, reset_ring, 900)
{
	static struct ring_ctx c;
	char why[512] = "";
	struct walk w;

	if (kvmas_cap(KVMAS_CAP_RING_RESET) <= 0)
		SKIP(return, "no per-vCPU ring reset on this kernel");
	ASSERT_EQ(0, set_knobs());
	EXPECT_EQ(0, walk(&ring_cmd, &c, &w, why, sizeof(why)))
	TH_LOG("%s", why);
	report("reset_ring", &w);
	EXPECT_EQ(0, w.dirty) TH_LOG("%s", w.what);
	EXPECT_EQ(0, w.other) TH_LOG("errno %s", strerror(w.other_err));
	/* At least the copy of the call's struct is a fault site. */
	EXPECT_LT(0, w.sites);
	EXPECT_EQ(0, kvm_debugfs_nr_vms());
}

/* ---- KVMAS_ATTACH_VM --------------------------------------------------- */

struct attach_ctx {
	int vm, dev, peer;
	uint8_t *mem;
	char layout[1024];
	uint64_t gen[KVMAS_MAX_AS];
};

static int attach_setup(void *p)
{
	struct attach_ctx *a = p;
	int r;

	a->vm = kvm_vm_create();
	if (a->vm < 0)
		return a->vm;
	r = kvm_set_slot(a->vm, 0, 1, 0, 0x100000, 1 * MiB, a->mem);
	if (r)
		return r;
	/* A second session sees the VM's state across the failed attach. */
	a->peer = kvmas_dev_open();
	a->dev = kvmas_dev_open();
	if (a->peer < 0 || a->dev < 0)
		return -ENODEV;
	r = kvmas_attach(a->peer, a->vm);
	if (r)
		return r;
	layout_str(a->peer, 0, a->layout, sizeof(a->layout));
	vm_generation(a->peer, a->gen);
	return 0;
}

static int attach_call(void *p)
{
	struct attach_ctx *a = p;

	return kvmas_attach(a->dev, a->vm);
}

static int attach_same(void *p, char *why, size_t len)
{
	struct attach_ctx *a = p;
	struct kvmas_vm_info info;
	char now[sizeof(a->layout)];
	uint64_t gen[KVMAS_MAX_AS];
	int r;

	r = kvmas_vm_info(a->dev, &info);
	if (r != -ENOTCONN) {
		snprintf(why, len, "session after a failed attach: %s",
			 r ? strerror(-r) : "attached");
		return 0;
	}
	layout_str(a->peer, 0, now, sizeof(now));
	vm_generation(a->peer, gen);
	if (strcmp(now, a->layout) || memcmp(gen, a->gen, sizeof(gen))) {
		snprintf(why, len, "layout/generation changed: %s", now);
		return 0;
	}
	/* Nothing half-done is left: the same session attaches now. */
	r = kvmas_attach(a->dev, a->vm);
	if (r) {
		snprintf(why, len, "attach after the failure: %s",
			 strerror(-r));
		return 0;
	}
	return 1;
}

static int attach_done(void *p, int fired, char *why, size_t len)
{
	struct attach_ctx *a = p;
	struct kvmas_vm_info info;
	int r = kvmas_vm_info(a->dev, &info);

	if (r || info.user_slots[0] != 1) {
		snprintf(why, len, "attached session: %s, %u slots",
			 strerror(-r), info.user_slots[0]);
		return -1;
	}
	return 0;
}

static void attach_teardown(void *p)
{
	struct attach_ctx *a = p;

	close(a->dev);
	close(a->peer);
	close(a->vm);
}

static const struct cmd attach_cmd = { "attach_vm", attach_setup,
				       attach_call, attach_same,
				       attach_done, attach_teardown };

TEST_F_TIMEOUT(nth, attach_vm, 900)
{
	static struct attach_ctx a;
	char why[512] = "";
	struct walk w;

	ASSERT_EQ(0, set_knobs());
	a.mem = guest_mem(1 * MiB);
	ASSERT_NE(NULL, a.mem);
	EXPECT_EQ(0, walk(&attach_cmd, &a, &w, why, sizeof(why)))
	TH_LOG("%s", why);
	report("attach_vm", &w);
	EXPECT_EQ(0, w.dirty) TH_LOG("%s", w.what);
	EXPECT_EQ(0, w.other) TH_LOG("errno %s", strerror(w.other_err));
	EXPECT_LT(0, w.sites);
	/* No error path kept a reference on a VM. */
	EXPECT_EQ(0, kvm_debugfs_nr_vms());
	munmap(a.mem, 1 * MiB);
}

/* ---- KVMAS_GET_LAYOUT -------------------------------------------------- */

#define LAYOUT_CAP 16

struct layout_ctx {
	int vm, dev;
	uint8_t *mem;
	struct kvmas_slot ents[LAYOUT_CAP];
	struct kvmas_layout l;
	uint64_t gen[KVMAS_MAX_AS];
	int err; /* of the last call */
};

static int layout_setup(void *p)
{
	struct layout_ctx *c = p;
	int r;

	c->vm = kvm_vm_create();
	if (c->vm < 0)
		return c->vm;
	r = kvm_set_slot(c->vm, 0, 1, 0, 0x100000, 1 * MiB, c->mem);
	r = r	  ?:
		    kvm_set_slot(c->vm, 0, 2, KVM_MEM_LOG_DIRTY_PAGES, 0x400000,
				 512 * KiB, c->mem + 1 * MiB);
	r = r	  ?:
		    kvm_set_slot(c->vm, 1, 3, 0, 0x800000, 256 * KiB,
				 c->mem + 2 * MiB);
	if (r)
		return r;
	c->dev = kvmas_dev_open();
	if (c->dev < 0)
		return c->dev;
	r = kvmas_attach(c->dev, c->vm);
	if (r)
		return r;
	vm_generation(c->dev, c->gen);
	memset(c->ents, 0xa5, sizeof(c->ents));
	memset(&c->l, 0xa5, sizeof(c->l));
	c->l.size = sizeof(c->l);
	c->l.flags = KVMAS_LAYOUT_ALL_AS | KVMAS_LAYOUT_INTERNAL;
	c->l.as_id = 0;
	c->l.entry_size = sizeof(struct kvmas_slot);
	c->l.nr_entries = LAYOUT_CAP;
	c->l.__reserved = 0;
	c->l.entries = (uintptr_t)c->ents;
	return 0;
}

static int layout_call(void *p)
{
	struct layout_ctx *c = p;

	c->err = sys_ret(ioctl(c->dev, KVMAS_GET_LAYOUT, &c->l));
	return c->err;
}

static int layout_same(void *p, char *why, size_t len)
{
	struct layout_ctx *c = p;
	uint64_t gen[KVMAS_MAX_AS];
	const uint8_t *b = (const uint8_t *)c->ents;
	unsigned int i;

	/*
	 * An injected user-copy fault is a copy lost as if another thread had
	 * unmapped the buffer: the header lets a query fail with EFAULT after
	 * part of its outputs went out. Only the VM must be as it was.
	 */
	for (i = 0; c->err != -EFAULT && i < sizeof(c->ents); i++) {
		if (b[i] != 0xa5) {
			snprintf(why, len, "entries written (byte %u)", i);
			return 0;
		}
	}
	if (c->err != -EFAULT &&
	    (c->l.nr_entries != LAYOUT_CAP ||
	     c->l.generation[0] != 0xa5a5a5a5a5a5a5a5ULL)) {
		snprintf(why, len, "out fields written (nr %u)",
			 c->l.nr_entries);
		return 0;
	}
	vm_generation(c->dev, gen);
	if (memcmp(gen, c->gen, sizeof(gen))) {
		snprintf(why, len, "generation changed");
		return 0;
	}
	return 1;
}

static int layout_done(void *p, int fired, char *why, size_t len)
{
	struct layout_ctx *c = p;
	unsigned int i, user = 0;

	if (fired && c->l.generation[0] == 0xa5a5a5a5a5a5a5a5ULL)
		return 0; /* outputs lost to the injected copy-out fault */

	for (i = 0; i < c->l.nr_entries && i < LAYOUT_CAP; i++)
		user += !(c->ents[i].attrs & KVMAS_SLOT_INTERNAL);
	if (user != 3 || memcmp(c->l.generation, c->gen, sizeof(c->gen))) {
		snprintf(why, len, "success with %u user slots of %u", user,
			 c->l.nr_entries);
		return -1;
	}
	return 0;
}

static void layout_teardown(void *p)
{
	struct layout_ctx *c = p;

	close(c->dev);
	close(c->vm);
}

static const struct cmd layout_cmd = { "get_layout", layout_setup,
				       layout_call,  layout_same,
				       layout_done,  layout_teardown };

TEST_F_TIMEOUT(nth, get_layout, 900)
{
	static struct layout_ctx c;
	char why[512] = "";
	struct walk w;

	ASSERT_EQ(0, set_knobs());
	c.mem = guest_mem(3 * MiB);
	ASSERT_NE(NULL, c.mem);
	EXPECT_EQ(0, walk(&layout_cmd, &c, &w, why, sizeof(why)))
	TH_LOG("%s", why);
	report("get_layout", &w);
	EXPECT_EQ(0, w.dirty) TH_LOG("%s", w.what);
	EXPECT_EQ(0, w.other) TH_LOG("errno %s", strerror(w.other_err));
	EXPECT_LT(0, w.sites);
	EXPECT_EQ(0, kvm_debugfs_nr_vms());
	munmap(c.mem, 3 * MiB);
}

/* ---- generic netlink: GET_STATS (doit), GET_SESSIONS, GET_VMS (dumpit) -- */

struct nl_ctx {
	int vm, dev, sock;
	int dump; /* 1: GET_SESSIONS, 2: GET_VMS, 0: GET_STATS */
	uint16_t family;
	uint32_t seq;
	unsigned int msgs; /* family messages the last call received */
	int mine; /* ... of which describe this context's session */
};

/* A netlink message with room for a request or a reply part. */
union nl_buf {
	struct nlmsghdr h;
	char b[16384];
};

static int nl_send(int sock, uint16_t type, uint16_t flags, uint32_t seq,
		   uint8_t cmd, const char *name)
{
	union nl_buf m;
	struct genlmsghdr *g;
	struct nlattr *a;
	size_t l = name ? strlen(name) + 1 : 0;

	memset(&m, 0, sizeof(struct nlmsghdr) + GENL_HDRLEN + NLA_HDRLEN + 32);
	m.h.nlmsg_type = type;
	m.h.nlmsg_flags = NLM_F_REQUEST | flags;
	m.h.nlmsg_seq = seq;
	m.h.nlmsg_len = NLMSG_LENGTH(GENL_HDRLEN);
	g = NLMSG_DATA(&m.h);
	g->cmd = cmd;
	g->version = name ? 1 : KVMAS_GENL_VERSION;
	if (name) {
		a = (struct nlattr *)((char *)g + GENL_HDRLEN);
		a->nla_type = CTRL_ATTR_FAMILY_NAME;
		a->nla_len = NLA_HDRLEN + l;
		memcpy((char *)a + NLA_HDRLEN, name, l);
		m.h.nlmsg_len += NLA_ALIGN(a->nla_len);
	}
	return send(sock, &m, m.h.nlmsg_len, 0) < 0 ? -errno : 0;
}

/*
 * Receives the answer to request @seq: calls @fn for each message of
 * @type, returns at NLMSG_DONE or the ACK (0), or the error the kernel
 * sent (-errno from NLMSG_ERROR, from the DONE of a failed dump, or from
 * recv itself).
 */
static int nl_recv(int sock, uint32_t seq, uint16_t type,
		   void (*fn)(struct nlmsghdr *h, void *arg), void *arg)
{
	union nl_buf m;
	struct nlmsghdr *h;
	ssize_t l;

	for (;;) {
		l = recv(sock, &m, sizeof(m), 0);
		if (l < 0)
			return -errno;
		for (h = &m.h; NLMSG_OK(h, l); h = NLMSG_NEXT(h, l)) {
			if (h->nlmsg_seq != seq)
				continue;
			if (h->nlmsg_type == NLMSG_ERROR)
				return ((struct nlmsgerr *)NLMSG_DATA(h))->error;
			if (h->nlmsg_type == NLMSG_DONE) {
				int e = 0;

				if (h->nlmsg_len >= NLMSG_LENGTH(sizeof(e)))
					memcpy(&e, NLMSG_DATA(h), sizeof(e));
				return e;
			}
			if (h->nlmsg_type == type)
				fn(h, arg);
		}
	}
}

/* The payload of the first attribute @type of a generic netlink message. */
static const void *nl_attr(const struct nlmsghdr *h, uint16_t type)
{
	const char *p = (const char *)NLMSG_DATA(h) + GENL_HDRLEN;
	int l = h->nlmsg_len - NLMSG_LENGTH(GENL_HDRLEN);
	const struct nlattr *a;

	for (; l >= NLA_HDRLEN;
	     p += NLA_ALIGN(a->nla_len), l -= NLA_ALIGN(a->nla_len)) {
		a = (const struct nlattr *)p;
		if (a->nla_len < NLA_HDRLEN || a->nla_len > l)
			break;
		if (a->nla_type == type)
			return p + NLA_HDRLEN;
	}
	return NULL;
}

static void nl_family_id(struct nlmsghdr *h, void *arg)
{
	const void *id = nl_attr(h, CTRL_ATTR_FAMILY_ID);

	if (id)
		memcpy(arg, id, sizeof(uint16_t));
}

/* A bound generic netlink socket and the family's id; 0 or -errno. */
static int nl_open(int *sock, uint16_t *family)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	int r;

	*family = 0;
	*sock = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC);
	if (*sock < 0)
		return -errno;
	if (bind(*sock, (struct sockaddr *)&sa, sizeof(sa)))
		return -errno;
	r = nl_send(*sock, GENL_ID_CTRL, NLM_F_ACK, 1, CTRL_CMD_GETFAMILY,
		    KVMAS_GENL_NAME);
	r = r ?: nl_recv(*sock, 1, GENL_ID_CTRL, nl_family_id, family);
	return r ?: (*family ? 0 : -ENOENT);
}

/*
 * Counts the family's messages and the ones naming our process' session
 * (GET_SESSIONS), or whole VM messages (GET_VMS: ours is the only VM, and
 * KVM names it after the creating thread, not the process).
 */
static void nl_count(struct nlmsghdr *h, void *arg)
{
	const void *a = nl_attr(h, KVMAS_NL_A_SESSION_PID);
	struct nl_ctx *c = arg;
	uint32_t pid;

	c->msgs++;
	if (c->dump == 2) {
		/* Scalars only: nl_attr() does not mask NLA_F_NESTED. */
		c->mine += nl_attr(h, KVMAS_NL_A_VM_ID) &&
			   nl_attr(h, KVMAS_NL_A_SESSION_VM_STATS_ID) &&
			   nl_attr(h, KVMAS_NL_A_VM_BATCHES) &&
			   nl_attr(h, KVMAS_NL_A_VM_EVENTS_SUPPRESSED);
	} else if (a) {
		memcpy(&pid, a, sizeof(pid));
		c->mine += pid == (uint32_t)getpid();
	}
}

/* What a full answer holds: one message, ours for a dump (0 for stats). */
static int nl_mine_wanted(const struct nl_ctx *c)
{
	return !!c->dump;
}

/* One request of the context's kind on @sock; 0 or -errno. */
static int nl_request(struct nl_ctx *c, int sock)
{
	int r;

	c->msgs = 0;
	c->mine = 0;
	c->seq++;
	r = nl_send(sock, c->family, c->dump ? NLM_F_DUMP : NLM_F_ACK, c->seq,
		    c->dump == 2 ? KVMAS_NL_CMD_GET_VMS :
		    c->dump	 ? KVMAS_NL_CMD_GET_SESSIONS :
				   KVMAS_NL_CMD_GET_STATS,
		    NULL);
	return r ?: nl_recv(sock, c->seq, c->family, nl_count, c);
}

static int nl_setup(void *p)
{
	struct nl_ctx *c = p;
	int r;

	c->vm = kvm_vm_create();
	if (c->vm < 0)
		return c->vm;
	c->dev = kvmas_dev_open();
	if (c->dev < 0)
		return c->dev;
	r = kvmas_attach(c->dev, c->vm);
	return r ?: nl_open(&c->sock, &c->family);
}

static int nl_call(void *p)
{
	return nl_request(p, ((struct nl_ctx *)p)->sock);
}

/*
 * After a failed request the module answers the next one in full, on a
 * fresh socket: our session still listed once, its stats intact.
 */
static int nl_same(void *p, char *why, size_t len)
{
	struct nl_ctx *c = p;
	struct kvmas_vm_info info;
	uint16_t family;
	int sock, r;

	r = nl_open(&sock, &family);
	r = r ?: nl_request(c, sock);
	if (sock >= 0)
		close(sock);
	if (r || c->msgs != 1 || c->mine != nl_mine_wanted(c)) {
		snprintf(why, len, "the next request: %s, %u messages, %d ours",
			 r ? strerror(-r) : "ok", c->msgs, c->mine);
		return 0;
	}
	r = kvmas_vm_info(c->dev, &info);
	if (r) {
		snprintf(why, len, "session after a failed request: %s",
			 strerror(-r));
		return 0;
	}
	return 1;
}

static int nl_done(void *p, int fired, char *why, size_t len)
{
	struct nl_ctx *c = p;

	/* GET_STATS: one reply; the dumps: ours, the only session and VM. */
	if (c->msgs != 1 || c->mine != nl_mine_wanted(c)) {
		snprintf(why, len, "success with %u messages, %d ours", c->msgs,
			 c->mine);
		return -1;
	}
	return 0;
}

static void nl_teardown(void *p)
{
	struct nl_ctx *c = p;

	if (c->sock >= 0)
		close(c->sock);
	close(c->dev);
	close(c->vm);
	c->sock = -1;
}

static const struct cmd nl_cmd = { "netlink", nl_setup, nl_call,
				   nl_same,   nl_done,	nl_teardown };

static void nl_walk(struct __test_metadata *_metadata, int dump)
{
	static struct nl_ctx c;
	char why[512] = "";
	struct walk w;

	ASSERT_EQ(0, set_knobs());
	memset(&c, 0, sizeof(c));
	c.sock = -1;
	c.dump = dump;
	EXPECT_EQ(0, walk(&nl_cmd, &c, &w, why, sizeof(why)))
	TH_LOG("%s", why);
	report(dump == 2 ? "netlink_get_vms" :
	       dump	 ? "netlink_get_sessions" :
			   "netlink_get_stats",
	       &w);
	EXPECT_EQ(0, w.dirty) TH_LOG("%s", w.what);
	/* A dump that cannot allocate its next part reports ENOBUFS. */
	EXPECT_TRUE(!w.other || w.other_err == ENOBUFS)
	TH_LOG("errno %s", strerror(w.other_err));
	EXPECT_LT(0, w.sites);
	EXPECT_EQ(0, kvm_debugfs_nr_vms());
}

TEST_F_TIMEOUT(nth, netlink_get_stats, 900)
{
	nl_walk(_metadata, 0);
}

TEST_F_TIMEOUT(nth, netlink_get_sessions, 900)
{
	nl_walk(_metadata, 1);
}
TEST_F_TIMEOUT(nth, netlink_get_vms, 900)
{
	nl_walk(_metadata, 2);
}

TEST_HARNESS_MAIN
