// SPDX-License-Identifier: GPL-2.0
/*
 * Differential oracle: KVMAS_COMMIT_BATCH against stock KVM.
 *
 * Two VMs with the same layout. Every case applies a request to VM A as a
 * batch and to its twin B through stock KVM_SET_USER_MEMORY_REGION, then
 * compares: the return value or errno, the resulting layout (GET_LAYOUT of
 * both, every user slot of both address spaces), and the generation: A's
 * must move by exactly grace_periods x address spaces (uapi D5), and stay
 * put exactly when stock's does. Where the uapi names a deliberate
 * difference (D1-D4), the oracle checks that difference instead: the
 * documented errno, and nothing changed.
 *
 * One-op cases draw each op kind over a space of arguments: existing and
 * free ids, edge ids, both address spaces and bad ones, unchanged fields,
 * zero size, overlaps with other slots and with the op's own old range,
 * unaligned, wrapping and huge values, the page limit, kernel addresses,
 * dirty logging on and off, read-only, fields an op does not use. Multi-op
 * cases draw batches of 2-6 ops whose final layout may or may not be valid
 * (a batch equals the stock sequence "every removal, every flags change,
 * every insertion"; D3), with now and then one op made invalid.
 *
 * Every case goes by either route (KVMAS_BATCH_ROUTE_INVALIDATE or not, at
 * random). guest_memfd (D7) needs a VM type with private memory, which
 * Debian's x86 kernels do not offer without SEV hardware: the oracle says
 * so and leaves it out.
 *
 * KVMAS_ORACLE_SEED (default: time) and KVMAS_ORACLE_CASES (default 10000)
 * steer it; the seed is printed. A mismatch prints the case as a
 * reproducer: the layout before, the ops, both answers; multi-op cases are
 * first shrunk (ops dropped while the mismatch persists, on fresh VMs).
 */
#include <inttypes.h>
#include <stdlib.h>
#include <time.h>

#include "batch_helpers.h"
#include "rng.h"
#include "kselftest_harness.h"

#ifndef KVM_CAP_GUEST_MEMFD
#define KVM_CAP_GUEST_MEMFD \
	234 /* 6.8+; the build host's headers may be older */
#endif

#define ORACLE_SLOTS 64 /* most slots a layout holds in this test */
#define GPA_UNIT (256 * KiB)
#define GPA_SPACE (32 * MiB)
#define HVA_SPACE (64 * MiB)
#define MAX_OPS 6
/* KVM_MEM_MAX_NR_PAGES: a slot's page count must stay below 2^31. */
#define MAX_NR_PAGES ((1ULL << 31) - 1)

struct layout {
	unsigned int nr;
	struct kvmas_slot s[ORACLE_SLOTS];
	uint64_t gen[KVMAS_MAX_AS];
};

struct twin {
	int vm[2]; /* A: batches, B: stock */
	int dev[2]; /* sessions, for GET_LAYOUT on each */
	uint8_t *mem;
	unsigned int nr_as;
	unsigned int user_slots;
	uint64_t va_limit; /* stock_va_limit() */
};

static int read_layout(int dev, struct layout *l)
{
	unsigned int nr = 0;
	int r;

	r = kvmas_layout(dev, KVMAS_LAYOUT_ALL_AS, 0, l->s, ORACLE_SLOTS, &nr,
			 l->gen);
	l->nr = nr;
	return r;
}

static int same_slots(const struct layout *a, const struct layout *b)
{
	return a->nr == b->nr && !memcmp(a->s, b->s, a->nr * sizeof(a->s[0]));
}

static const struct kvmas_slot *find(const struct layout *l, unsigned int as,
				     unsigned int slot)
{
	unsigned int i;

	for (i = 0; i < l->nr; i++)
		if (l->s[i].as_id == as && l->s[i].slot == slot)
			return &l->s[i];
	return NULL;
}

static int stock_set(int vm, unsigned int as, unsigned int slot,
		     unsigned int flags, uint64_t gpa, uint64_t size,
		     uint64_t hva)
{
	struct kvm_userspace_memory_region r = {
		.slot = slot | (as << 16),
		.flags = flags,
		.guest_phys_addr = gpa,
		.memory_size = size,
		.userspace_addr = hva,
	};

	return sys_ret(ioctl(vm, KVM_SET_USER_MEMORY_REGION, &r));
}

/*
 * The end of the user address range stock KVM accepts for a slot
 * (access_ok(): 2^47 - 4096 on x86, 2^VA_BITS on arm64, where Debian's 6.1
 * has 48 bits and 6.12 52), asked of KVM on a scratch VM rather than
 * guessed: a slot ending at @end is accepted exactly when end <= limit.
 */
static uint64_t stock_va_limit(void)
{
	uint64_t lo = 1ULL << 32, hi = 1ULL << 63;
	int vm = kvm_vm_create(), r;

	if (vm < 0)
		return 0;
	/* The search starts from an accepted end; only EINVAL is "too far". */
	r = stock_set(vm, 0, 0, 0, 0, 4096, lo - 4096);
	if (!r)
		r = stock_set(vm, 0, 0, 0, 0, 0, 0);
	while (!r && hi - lo > 4096) {
		uint64_t mid = (lo + (hi - lo) / 2) & ~4095ULL;

		r = stock_set(vm, 0, 0, 0, 0, 4096, mid - 4096);
		if (!r) {
			r = stock_set(vm, 0, 0, 0, 0, 0, 0);
			lo = mid;
		} else if (r == -EINVAL) {
			r = 0;
			hi = mid;
		}
	}
	close(vm);
	return r ? 0 : lo;
}

static void twin_close(struct twin *t)
{
	int i;

	for (i = 0; i < 2; i++) {
		if (t->dev[i] >= 0)
			close(t->dev[i]);
		if (t->vm[i] >= 0)
			close(t->vm[i]);
		t->dev[i] = t->vm[i] = -1;
	}
}

/* Fresh VMs, both given @base (if any) through stock ioctls. */
static int twin_open(struct twin *t, const struct layout *base)
{
	struct kvmas_vm_info info;
	unsigned int i, k;

	for (i = 0; i < 2; i++) {
		t->vm[i] = kvm_vm_create();
		t->dev[i] = kvmas_dev_open();
		if (t->vm[i] < 0 || t->dev[i] < 0 ||
		    kvmas_attach(t->dev[i], t->vm[i]))
			return -1;
		for (k = 0; base && k < base->nr; k++) {
			const struct kvmas_slot *s = &base->s[k];

			if (stock_set(t->vm[i], s->as_id, s->slot, s->flags,
				      s->guest_phys_addr, s->memory_size,
				      s->userspace_addr))
				return -1;
		}
	}
	if (kvmas_vm_info(t->dev[0], &info))
		return -1;
	t->nr_as = info.nr_address_spaces;
	t->user_slots = info.max_user_slots;
	t->va_limit = stock_va_limit();
	return t->va_limit ? 0 : -1;
}

/* Makes B's layout A's again, slot by slot, with stock ioctls. */
static int resync(struct twin *t)
{
	struct layout a, b;
	const struct kvmas_slot *x;
	unsigned int i;

	if (read_layout(t->dev[0], &a) || read_layout(t->dev[1], &b))
		return -1;
	for (i = 0; i < b.nr; i++) {
		x = find(&a, b.s[i].as_id, b.s[i].slot);
		if (!x || memcmp(x, &b.s[i], sizeof(*x)))
			stock_set(t->vm[1], b.s[i].as_id, b.s[i].slot, 0, 0, 0,
				  0);
	}
	if (read_layout(t->dev[1], &b))
		return -1;
	for (i = 0; i < a.nr; i++)
		if (!find(&b, a.s[i].as_id, a.s[i].slot))
			stock_set(t->vm[1], a.s[i].as_id, a.s[i].slot,
				  a.s[i].flags, a.s[i].guest_phys_addr,
				  a.s[i].memory_size, a.s[i].userspace_addr);
	if (read_layout(t->dev[1], &b))
		return -1;
	return same_slots(&a, &b) ? 0 : -1;
}

static const char *const kind_name[] = { "?",	 "CREATE",    "DELETE",
					 "MOVE", "SET_FLAGS", "REPLACE" };

static void print_op(const struct kvmas_batch_op *o)
{
	printf("#   { .op = KVMAS_OP_%s, .slot = %u, .as_id = %u, .flags = %#x, "
	       ".guest_phys_addr = %#" PRIx64 ", .memory_size = %#" PRIx64
	       ", .userspace_addr = %#" PRIx64 "%s },\n",
	       o->op < 6 ? kind_name[o->op] : "?", o->slot, o->as_id, o->flags,
	       (uint64_t)o->guest_phys_addr, (uint64_t)o->memory_size,
	       (uint64_t)o->userspace_addr,
	       o->dirty_bitmap ? ", .dirty_bitmap = <buffer>" : "");
}

static void print_layout(const char *what, const struct layout *l)
{
	unsigned int i;

	printf("# %s (%u slots, generation %" PRIu64 "/%" PRIu64 "):\n", what,
	       l->nr, l->gen[0], l->gen[1]);
	for (i = 0; i < l->nr; i++)
		printf("#   as %u slot %u gpa %#llx size %#llx hva %#llx flags %#x\n",
		       l->s[i].as_id, l->s[i].slot,
		       (unsigned long long)l->s[i].guest_phys_addr,
		       (unsigned long long)l->s[i].memory_size,
		       (unsigned long long)l->s[i].userspace_addr,
		       l->s[i].flags);
}

/* Stock KVM's own checks on a region, before it looks at any slot. */
static int region_ok(const struct twin *t, const struct kvmas_batch_op *o)
{
	return !(o->flags & ~(KVM_MEM_LOG_DIRTY_PAGES | KVM_MEM_READONLY)) &&
	       o->memory_size && !(o->memory_size & 4095) &&
	       !(o->guest_phys_addr & 4095) && !(o->userspace_addr & 4095) &&
	       o->userspace_addr + o->memory_size > o->userspace_addr &&
	       o->userspace_addr + o->memory_size <= t->va_limit &&
	       o->as_id < t->nr_as && o->slot < t->user_slots &&
	       o->guest_phys_addr + o->memory_size > o->guest_phys_addr &&
	       (o->memory_size >> 12) <= MAX_NR_PAGES;
}

static int unused_fields(const struct kvmas_batch_op *o)
{
	if (o->dirty_bitmap && o->op != KVMAS_OP_DELETE &&
	    o->op != KVMAS_OP_REPLACE)
		return 1;
	if (o->op == KVMAS_OP_DELETE)
		return o->flags || o->guest_phys_addr || o->memory_size ||
		       o->userspace_addr;
	if (o->op == KVMAS_OP_SET_FLAGS)
		return o->guest_phys_addr || o->memory_size ||
		       o->userspace_addr;
	return 0;
}

/*
 * The uapi's deliberate differences for one op on @l: the errno the batch
 * must return instead of stock's answer, or 0 if none applies.
 */
static int exception(const struct twin *t, const struct layout *l,
		     const struct kvmas_batch_op *o, const char **why)
{
	const struct kvmas_slot *old;

	if (o->as_id >= t->nr_as || o->slot >= t->user_slots)
		return 0; /* both EINVAL */
	old = find(l, o->as_id, o->slot);
	if (unused_fields(o)) {
		*why = "D2: a field the op does not use";
		return -EINVAL;
	}
	switch (o->op) {
	case KVMAS_OP_CREATE:
		if (old && !o->memory_size) {
			*why = "D1: size 0 is no create (stock deletes)";
			return -EINVAL;
		}
		if (old && region_ok(t, o)) {
			*why = "D1: create of an id in use";
			return -EEXIST;
		}
		return 0;
	case KVMAS_OP_MOVE:
		if (old && !o->memory_size) {
			*why = "D1: size 0 is no move (stock deletes)";
			return -EINVAL;
		}
		if (!old && region_ok(t, o)) {
			*why = "D1: move of an id not in use";
			return -ENOENT;
		}
		return 0;
	case KVMAS_OP_SET_FLAGS:
		if (!old) {
			*why = "D1: set_flags of an id not in use";
			return o->flags & ~(KVM_MEM_LOG_DIRTY_PAGES |
					    KVM_MEM_READONLY) ?
				       -EINVAL :
				       -ENOENT;
		}
		return 0;
	case KVMAS_OP_REPLACE:
		if (!old && region_ok(t, o)) {
			*why = "D1: replace of an id not in use";
			return -ENOENT;
		}
		return 0;
	}
	return 0;
}

/*
 * Stock's version of the batch @o[0..n) on B: every removal, every flags
 * change, every insertion (D3; one op: the op's own stock call). Returns
 * stock's answer: 0 or the errno of the first call that failed.
 */
static int stock_apply(struct twin *t, const struct layout *l,
		       const struct kvmas_batch_op *o, unsigned int n)
{
	const struct kvmas_slot *old;
	unsigned int i, pass;
	int r;

	/* An id or address space stock refuses: any call with it. */
	if (n == 1 && (o->op == KVMAS_OP_CREATE || o->op == KVMAS_OP_MOVE ||
		       o->as_id >= t->nr_as || o->slot >= t->user_slots))
		return stock_set(t->vm[1], o->as_id, o->slot, o->flags,
				 o->guest_phys_addr, o->memory_size,
				 o->userspace_addr);
	for (pass = 0; pass < 3; pass++) {
		for (i = 0; i < n; i++) {
			old = find(l, o[i].as_id, o[i].slot);
			r = 0;
			if (pass == 0 &&
			    (o[i].op == KVMAS_OP_DELETE ||
			     o[i].op == KVMAS_OP_REPLACE ||
			     (o[i].op == KVMAS_OP_MOVE && old &&
			      old->guest_phys_addr != o[i].guest_phys_addr)))
				r = stock_set(t->vm[1], o[i].as_id, o[i].slot,
					      0, 0, 0, 0);
			if (pass == 1 && old &&
			    (o[i].op == KVMAS_OP_SET_FLAGS ||
			     (o[i].op == KVMAS_OP_MOVE &&
			      old->guest_phys_addr == o[i].guest_phys_addr)))
				r = stock_set(t->vm[1], o[i].as_id, o[i].slot,
					      o[i].flags, old->guest_phys_addr,
					      old->memory_size,
					      old->userspace_addr);
			if (pass == 2 &&
			    (o[i].op == KVMAS_OP_CREATE ||
			     o[i].op == KVMAS_OP_REPLACE ||
			     (o[i].op == KVMAS_OP_MOVE && old &&
			      old->guest_phys_addr != o[i].guest_phys_addr)))
				r = stock_set(t->vm[1], o[i].as_id, o[i].slot,
					      o[i].flags, o[i].guest_phys_addr,
					      o[i].memory_size,
					      o[i].userspace_addr);
			if (r)
				return r;
		}
	}
	return 0;
}

static uint64_t gen_gpa(const struct kvmas_slot *old)
{
	switch (below(16)) {
	case 0:
		return old ? old->guest_phys_addr : 0;
	case 1:
		return below(GPA_SPACE / GPA_UNIT) * GPA_UNIT + 0x800;
	case 2:
		return 0xfffffffffffff000ULL;
	case 3:
		return 1ULL
		       << (40 + below(12)); /* past the MMU's reach, maybe */
	case 4:
		/* Overlapping its own old range. */
		return old ? old->guest_phys_addr + GPA_UNIT : GPA_UNIT;
	default:
		return below(GPA_SPACE / GPA_UNIT) * GPA_UNIT;
	}
}

static uint64_t gen_size(const struct kvmas_slot *old)
{
	switch (below(16)) {
	case 0:
		return 0;
	case 1:
		return old ? old->memory_size : 4096;
	case 2:
		return 4096 + below(4000) + 1;
	case 3:
		return (MAX_NR_PAGES + 1) << 12;
	case 4:
		return 1ULL << 63;
	case 5:
		return 4096;
	default:
		return (1 + below(8)) * GPA_UNIT;
	}
}

static uint64_t gen_hva(const struct twin *t, const struct kvmas_slot *old)
{
	uint64_t base = (uintptr_t)t->mem;

	switch (below(16)) {
	case 0:
	case 1:
		return old ? old->userspace_addr : base;
	case 2:
		return base + 0x100;
	case 3:
		return 0xffff888000000000ULL;
	case 4:
		return 0;
	case 5: /* at the end of what stock accepts: size decides */
		return t->va_limit - GPA_UNIT;
	default:
		return base +
		       below((HVA_SPACE - 8 * GPA_UNIT) / GPA_UNIT) * GPA_UNIT;
	}
}

static uint32_t gen_flags(const struct kvmas_slot *old)
{
	static const uint32_t bad[] = { 4, 8, 0x80000000u };

	switch (below(12)) {
	case 0:
		return bad[below(3)];
	case 1:
	case 2:
		return old ? old->flags : 0;
	case 3:
		return old ? old->flags ^ KVM_MEM_LOG_DIRTY_PAGES : 1;
	default:
		return below(4) == 3 ? KVM_MEM_LOG_DIRTY_PAGES :
				       (uint32_t)below(3);
	}
}

/* An id: mostly small ones (in use or free), sometimes an edge. */
static uint32_t gen_slot(const struct twin *t)
{
	const uint32_t edge[] = { t->user_slots - 1, t->user_slots, 32767,
				  65535 };

	if (chance(6))
		return edge[below(4)];
	return below(12);
}

/* One op of any kind over the whole argument space. */
static void gen_op(const struct twin *t, const struct layout *l,
		   struct kvmas_batch_op *o, uint64_t bitmap_buf)
{
	const struct kvmas_slot *old;

	memset(o, 0, sizeof(*o));
	o->op = 1 + below(5);
	o->as_id = chance(85) ? 0 : chance(80) ? 1 : 2 + below(6);
	o->slot = gen_slot(t);
	old = find(l, o->as_id, o->slot);
	switch (o->op) {
	case KVMAS_OP_DELETE:
		break;
	case KVMAS_OP_SET_FLAGS:
		o->flags = gen_flags(old);
		break;
	default:
		o->flags = gen_flags(old);
		o->guest_phys_addr = gen_gpa(old);
		o->memory_size = gen_size(old);
		o->userspace_addr = gen_hva(t, old);
		break;
	}
	if ((o->op == KVMAS_OP_DELETE || o->op == KVMAS_OP_REPLACE) &&
	    chance(30))
		o->dirty_bitmap = bitmap_buf;
	if (chance(5)) {
		/* A field the op does not use, or one it does. */
		switch (below(3)) {
		case 0:
			o->guest_phys_addr = GPA_UNIT;
			break;
		case 1:
			o->memory_size = GPA_UNIT;
			break;
		default:
			o->dirty_bitmap = bitmap_buf;
			break;
		}
	}
}

/*
 * A batch of 2-6 ops on distinct ids of one address space, each valid on
 * its own (the final layout may not be); with @bad one of them is made
 * invalid (unknown flag bit). Returns the number of ops.
 */
static unsigned int gen_batch(const struct twin *t, const struct layout *l,
			      struct kvmas_batch_op *o, int *bad)
{
	/* Mostly address space 0; x86's SMM space (1) sometimes. */
	unsigned int n = 2 + below(MAX_OPS - 1), i, k,
		     as = chance(80) ? 0 : t->nr_as - 1;
	const struct kvmas_slot *old;
	uint32_t used = 0;

	for (i = 0; i < n; i++) {
		memset(&o[i], 0, sizeof(o[i]));
		o[i].as_id = as;
		do
			o[i].slot = below(12);
		while (used & (1U << o[i].slot));
		used |= 1U << o[i].slot;
		old = find(l, as, o[i].slot);
		k = old ? 2 + below(4) : KVMAS_OP_CREATE;
		o[i].op = k;
		switch (k) {
		case KVMAS_OP_DELETE:
			break;
		case KVMAS_OP_SET_FLAGS:
			o[i].flags = old->flags ^
				     (chance(80) ? KVM_MEM_LOG_DIRTY_PAGES : 0);
			break;
		case KVMAS_OP_MOVE:
			o[i].flags = old->flags ^
				     (chance(20) ? KVM_MEM_LOG_DIRTY_PAGES : 0);
			o[i].memory_size = old->memory_size;
			o[i].userspace_addr = old->userspace_addr;
			o[i].guest_phys_addr =
				below(GPA_SPACE / GPA_UNIT) * GPA_UNIT;
			break;
		default:
			o[i].flags = below(3);
			o[i].guest_phys_addr =
				below(GPA_SPACE / GPA_UNIT) * GPA_UNIT;
			o[i].memory_size = (1 + below(4)) * GPA_UNIT;
			o[i].userspace_addr = gen_hva(t, NULL) & ~4095ULL;
			/* Valid here: the invalid op is made below. */
			if (!o[i].userspace_addr ||
			    o[i].userspace_addr + o[i].memory_size >
				    t->va_limit)
				o[i].userspace_addr = (uintptr_t)t->mem;
			break;
		}
	}
	*bad = -1;
	i = below(n);
	if (chance(15) && o[i].op != KVMAS_OP_DELETE) {
		/* An unknown memslot flag: invalid whatever the op. */
		o[i].flags |= 8;
		*bad = i;
	}
	return n;
}

struct verdict {
	int ok;
	char why[160];
	int ours, stock, exc;
	struct batch_res r;
	struct layout a0, a1, b0, b1;
};

/*
 * Applies @o[0..n) to A as a batch and B as stock would, and judges.
 * B is synced back to A afterwards whatever happened.
 */
static int run_case(struct twin *t, struct kvmas_batch_op *o, unsigned int n,
		    int bad, struct verdict *v)
{
	const char *why = "";
	uint64_t d;
	unsigned int as = o[0].as_id, i;

	memset(v, 0, sizeof(*v));
	v->ok = 1;
	if (read_layout(t->dev[0], &v->a0) || read_layout(t->dev[1], &v->b0))
		return -1;
	v->exc = 0;
	if (n == 1)
		v->exc = exception(t, &v->a0, o, &why);
	else if (bad >= 0)
		v->exc = -EINVAL, why = "an invalid op in a batch";
	/* Either route must give the same answers. */
	v->r = commit(t->dev[0], o, n, chance(50) ? inval_flag() : 0);
	v->ours = v->r.err;
	if (read_layout(t->dev[0], &v->a1))
		return -1;
	v->stock = v->exc ? 1 : stock_apply(t, &v->a0, o, n);
	if (read_layout(t->dev[1], &v->b1))
		return -1;

#define FAIL(...)                                              \
	do {                                                   \
		v->ok = 0;                                     \
		snprintf(v->why, sizeof(v->why), __VA_ARGS__); \
		goto out;                                      \
	} while (0)

	if (v->ours && (!same_slots(&v->a0, &v->a1) ||
			memcmp(v->a0.gen, v->a1.gen, sizeof(v->a0.gen))))
		FAIL("error %d, yet the layout or the generation changed",
		     v->ours);
	if (v->ours && v->r.index != (n == 1 ? 0 : v->r.index) &&
	    !(bad >= 0 && v->r.index == bad))
		FAIL("error %d names op %d", v->ours, v->r.index);
	if (v->exc) {
		if (v->ours != v->exc)
			FAIL("%s: expected %d, got %d", why, v->exc, v->ours);
		if (bad >= 0 && v->r.index != bad)
			FAIL("the invalid op is %d, the error names %d", bad,
			     v->r.index);
		goto out;
	}
	if (v->ours != v->stock)
		FAIL("stock %d, batch %d", v->stock, v->ours);
	if (v->ours)
		goto out;
	if (!same_slots(&v->a1, &v->b1))
		FAIL("layouts differ after success");
	for (i = 0; i < KVMAS_MAX_AS; i++) {
		d = v->a1.gen[i] - v->a0.gen[i];
		if (d != (i == as ? (uint64_t)v->r.gps * t->nr_as : 0))
			FAIL("as %u generation moved by %" PRIu64
			     " for %u grace periods (D5)",
			     i, d, v->r.gps);
	}
	/* What stock treats as "nothing to change", and only that, is a no-op. */
	if ((v->a1.gen[as] != v->a0.gen[as]) !=
	    (v->b1.gen[as] != v->b0.gen[as]))
		FAIL("stock's generation %s, the batch's %s",
		     v->b1.gen[as] != v->b0.gen[as] ? "moved" : "stayed",
		     v->a1.gen[as] != v->a0.gen[as] ? "moved" : "stayed");
out:
	if (resync(t))
		return -1;
	return 0;
}

static void report(struct __test_metadata *_metadata, uint64_t seed,
		   unsigned int no, struct kvmas_batch_op *o, unsigned int n,
		   const struct verdict *v)
{
	unsigned int i;

	printf("# MISMATCH seed %" PRIu64 " case %u: %s\n", seed, no, v->why);
	print_layout("layout before", &v->a0);
	printf("# batch of %u op(s):\n", n);
	for (i = 0; i < n; i++)
		print_op(&o[i]);
	printf("# batch: err %d index %d gps %u route %u; stock: %d\n", v->ours,
	       v->r.index, v->r.gps, v->r.route, v->stock);
	print_layout("batch VM after", &v->a1);
	print_layout("stock VM after", &v->b1);
}

/*
 * Shrinks a failing multi-op case on fresh VMs built from its layout:
 * drops ops while the mismatch persists. Returns the new op count.
 */
static unsigned int shrink(const struct layout *base, struct kvmas_batch_op *o,
			   unsigned int n, uint8_t *mem)
{
	struct kvmas_batch_op tryo[MAX_OPS];
	struct twin t = { .vm = { -1, -1 }, .dev = { -1, -1 }, .mem = mem };
	struct verdict v;
	unsigned int i, k, m;
	int progress = 1;

	while (progress && n > 1) {
		progress = 0;
		for (i = 0; i < n; i++) {
			for (k = 0, m = 0; k < n; k++)
				if (k != i)
					tryo[m++] = o[k];
			if (twin_open(&t, base) ||
			    run_case(&t, tryo, m, -1, &v)) {
				twin_close(&t);
				continue;
			}
			twin_close(&t);
			if (!v.ok) {
				memcpy(o, tryo, m * sizeof(*o));
				n = m;
				progress = 1;
				break;
			}
		}
	}
	return n;
}

/* A fresh random base layout on both VMs: 3-8 slots in 0, 0-2 in SMM. */
static int new_base(struct twin *t)
{
	struct kvmas_batch_op o;
	unsigned int want = 3 + below(6), tries;

	for (tries = 0; tries < 200 && want; tries++) {
		memset(&o, 0, sizeof(o));
		o.as_id = (tries % 4 == 3 && t->nr_as > 1) ? 1 : 0;
		o.slot = below(12);
		o.flags = below(3);
		o.guest_phys_addr = below(GPA_SPACE / GPA_UNIT) * GPA_UNIT;
		o.memory_size = (1 + below(4)) * GPA_UNIT;
		o.userspace_addr = (uintptr_t)t->mem +
				   below(HVA_SPACE / GPA_UNIT - 8) * GPA_UNIT;
		if (stock_set(t->vm[0], o.as_id, o.slot, o.flags,
			      o.guest_phys_addr, o.memory_size,
			      o.userspace_addr))
			continue;
		want--;
	}
	return resync(t);
}

FIXTURE(diff){};
FIXTURE_SETUP(diff)
{
}
FIXTURE_TEARDOWN(diff)
{
}

TEST_F_TIMEOUT(diff, oracle, 1800)
{
	const char *s_seed = getenv("KVMAS_ORACLE_SEED");
	const char *s_cases = getenv("KVMAS_ORACLE_CASES");
	unsigned int cases = s_cases ? atoi(s_cases) : 10000, no;
	unsigned int one = 0, multi = 0, excs = 0, errs = 0, oks = 0, bad = 0;
	uint64_t seed = s_seed ? strtoull(s_seed, NULL, 0) :
				 (uint64_t)time(NULL) * 2654435761u;
	struct kvmas_batch_op o[MAX_OPS];
	struct twin t = { .vm = { -1, -1 }, .dev = { -1, -1 } };
	struct verdict v;
	uint8_t *bitmap;
	unsigned int n;
	int badop;

	if (kvmas_cap(KVMAS_CAP_BATCH_COMMIT) <= 0)
		SKIP(return, "no batch commits on this kernel");
	printf("# oracle seed %" PRIu64 " (KVMAS_ORACLE_SEED=%" PRIu64
	       " replays), %u cases\n",
	       seed, seed, cases);
	rng_seed(seed);
	t.mem = guest_mem(HVA_SPACE);
	bitmap = guest_mem(1 * MiB);
	ASSERT_NE(NULL, t.mem);
	ASSERT_NE(NULL, bitmap);
	ASSERT_EQ(0, twin_open(&t, NULL));
	printf("# guest_memfd: %s\n",
	       ioctl(t.vm[0], KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD) > 0 ?
		       "available, but batch ops cannot name it (D7)" :
		       "no VM type with private memory here: not covered");

	for (no = 0; no < cases && bad < 5; no++) {
		if (no % 250 == 0) {
			twin_close(&t);
			ASSERT_EQ(0, twin_open(&t, NULL));
			ASSERT_EQ(0, new_base(&t));
		}
		if (chance(70)) {
			n = 1;
			badop = -1;
			/* Drawn against the current layout ("old" values). */
			ASSERT_EQ(0, read_layout(t.dev[0], &v.a0));
			gen_op(&t, &v.a0, o, (uintptr_t)bitmap);
			one++;
		} else {
			ASSERT_EQ(0, read_layout(t.dev[0], &v.a0));
			n = gen_batch(&t, &v.a0, o, &badop);
			multi++;
		}
		ASSERT_EQ(0, run_case(&t, o, n, badop, &v))
		TH_LOG("case %u: the twin VMs could not be read or synced", no);
		excs += !!v.exc;
		errs += v.ours != 0;
		oks += v.ours == 0;
		if (!v.ok) {
			struct layout base = v.a0;

			bad++;
			if (n > 1)
				n = shrink(&base, o, n, t.mem);
			report(_metadata, seed, no, o, n, &v);
		}
	}
	twin_close(&t);
	printf("# oracle: %u cases (%u one-op, %u multi-op): %u succeeded, "
	       "%u failed as stock did or as the uapi says (%u by a named "
	       "difference), %u mismatches\n",
	       no, one, multi, oks, errs, excs, bad);
	EXPECT_EQ(0, bad);
}

TEST_HARNESS_MAIN
