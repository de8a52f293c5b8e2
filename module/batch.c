// SPDX-License-Identifier: GPL-2.0
/*
 * Batched memslot commits, atomic for vCPUs (uapi: KVMAS_COMMIT_BATCH).
 *
 * Two routes publish a validated, prepared batch; both keep every gfn that
 * is mapped before and after the batch mapped for vCPUs throughout.
 *
 * Route B, "fence" (kvmas_publish_fenced(), one grace period): the changing
 * ranges are fenced like an mmu-notifier invalidation, unmapped while the old
 * slots are still published, and the whole new layout goes out in one swap.
 * A vCPU faulting in a fenced range finds the old or the new slot and
 * retries until the fence drops. Used whenever the VM has no shadow-MMU root.
 *
 * Route A, "invalidate" (two grace periods): KVM's own memslot protocol
 * (kvm_set_memslot()), batched, for VMs with shadow pages, which account into
 * slot arch data and must be zapped while their slot is INVALID:
 *
 *   validate every op against a simulated final layout (nothing touched)
 *   allocate every object                              (may fail: nothing touched)
 *   slots_arch_lock
 *   if anything is removed/moved/replaced:
 *     install INVALID copies of all of them, swap      (grace period 1)
 *     flush their mappings, re-take slots_arch_lock, take back their arch data
 *   prepare every op                                   (may fail: roll back, see below)
 *   in the inactive set: all removals, then flag changes, then insertions
 *   swap                                               (grace period 2, or 1)
 *   replay the same on the other set, hand dirty bits over, commit, free
 *
 * A gfn seen by a vCPU is therefore mapped by the old slot, by its INVALID
 * copy (x86 faults retry on it instead of exiting to userspace as MMIO), or
 * by the new slot; never by nothing. Removals precede insertions in every
 * set because two slots with the same base gfn in one set is a BUG() in
 * kvm_insert_gfn_node(). The only failures after validation are allocation
 * and kvm_arch_prepare_memory_region(); both come before anything new is
 * published, and a failed prepare unwinds every earlier prepare and, if
 * INVALID copies were published, swaps the old slots back.
 *
 * Everything runs under kvm->slots_lock, which also serialises the batch
 * with stock memslot and dirty-log ioctls.
 */
#include <linux/bitmap.h>
#include <linux/kvm_host.h>
#include <linux/slab.h>
#include <linux/sort.h>
#include <linux/uaccess.h>
#include <linux/vmalloc.h>

#include "batch.h"
#include "internals.h"
#include "session.h"

/*
 * A logged slot's dirty_bitmap holds two bitmaps, as kvm_alloc_dirty_bitmap()
 * allocates it: the bitmap itself and the second half KVM_GET_DIRTY_LOG
 * uses as its buffer (kvm_second_dirty_bitmap()).
 */
#define KVMAS_DIRTY_BITMAPS_PER_SLOT 2
/* The fence covers an op's old range (if it removes) and new (if it inserts). */
#define KVMAS_FENCE_RANGES_PER_OP 2

/* Kernel-side state of one op. */
struct kvmas_bop {
	struct kvmas_batch_op u;
	u32 index; /* position in the caller's array (for error_index) */
	struct kvm_memory_slot *old; /* slot the op changes (active set) */
	struct kvm_memory_slot *new; /* object the op installs */
	struct kvm_memory_slot *invalid; /* INVALID stand-in for a removed old */
	unsigned long *handoff; /* copy of old's dirty bits for the user */
	size_t handoff_bytes; /* size of the user's buffer */
	bool prepared;
	bool fresh_bitmap; /* new->dirty_bitmap allocated here */
	bool noop; /* stock would change nothing: dropped before commit */
	bool committed; /* old is unpublished: the reaper frees its memory */
	bool free_old_bitmap; /* ... including its dirty bitmap */
};

/*
 * A batch's kernel state, one allocation; after a commit it goes to the
 * session's reaper whole (kvmas_batch_reap_work()).
 */
struct kvmas_batch_mem {
	struct llist_node reap_node;
	u32 n;
	struct kvmas_bop b[];
};

/*
 * Removed slots a session may have waiting for the reaper before a commit
 * waits for it: about one full batch, so memory KVM would have freed
 * inside the ioctl is held back at most that long.
 */
#define KVMAS_REAP_BACKLOG_OPS KVMAS_MAX_BATCH_OPS
/* Batches removing at most this many slots free them inline (see there). */
#define KVMAS_REAP_INLINE_OPS 2

static bool kvmas_op_removes(const struct kvmas_bop *b)
{
	return b->u.op == KVMAS_OP_DELETE || b->u.op == KVMAS_OP_MOVE ||
	       b->u.op == KVMAS_OP_REPLACE;
}

static bool kvmas_op_inserts(const struct kvmas_bop *b)
{
	return b->u.op == KVMAS_OP_CREATE || b->u.op == KVMAS_OP_MOVE ||
	       b->u.op == KVMAS_OP_REPLACE;
}

/* The checks __kvm_set_memory_region() makes on a region it installs. */
static int kvmas_check_region(struct kvm *kvm, const struct kvmas_batch_op *u)
{
	u64 npages = u->memory_size >> PAGE_SHIFT;

	if (u->flags & ~(KVM_MEM_LOG_DIRTY_PAGES | KVM_MEM_READONLY))
		return -EINVAL;
	if ((u->flags & KVM_MEM_READONLY) && !kvmas_has_readonly_mem(kvm))
		return -EINVAL;
	if (!u->memory_size || (u->memory_size & (PAGE_SIZE - 1)) ||
	    u->memory_size != (unsigned long)u->memory_size)
		return -EINVAL;
	if (u->guest_phys_addr & (PAGE_SIZE - 1))
		return -EINVAL;
	if ((u->userspace_addr & (PAGE_SIZE - 1)) ||
	    u->userspace_addr != untagged_addr(u->userspace_addr) ||
	    !access_ok((void __user *)(unsigned long)u->userspace_addr,
		       u->memory_size))
		return -EINVAL;
	if (u->guest_phys_addr + u->memory_size < u->guest_phys_addr)
		return -EINVAL;
	if (npages > KVM_MEM_MAX_NR_PAGES)
		return -EINVAL;
	return 0;
}

static bool kvmas_ranges_overlap(gfn_t a, u64 an, gfn_t b, u64 bn)
{
	return a < b + bn && b < a + an;
}

/*
 * The checks __kvm_set_memory_region() makes on a request that names an
 * existing slot with a non-zero size ("modify"): only the gpa and the
 * dirty-logging flag may change. Returns 0 if @u is a valid modification
 * of @old, and tells whether it moves the slot.
 */
static int kvmas_check_modify(const struct kvm_memory_slot *old,
			      const struct kvmas_batch_op *u, bool *moves)
{
	if (u->userspace_addr != old->userspace_addr ||
	    u->memory_size != old->npages << PAGE_SHIFT ||
	    ((u->flags ^ old->flags) & KVM_MEM_READONLY))
		return -EINVAL;
	*moves = u->guest_phys_addr >> PAGE_SHIFT != old->base_gfn;
	return 0;
}

/*
 * One op on its own, against the active layout; stock KVM's checks in
 * stock KVM's order wherever the op has a stock equivalent (see the uapi
 * header for the deliberate differences). May turn a MOVE that keeps its
 * gpa into the SET_FLAGS it is, and marks ops that change nothing.
 */
/*
 * The slot ids a batch names. A bitmap of KVM_USER_MEM_SLOTS bits for
 * large batches; small ones (the common one-op commit) scan the ops
 * instead of allocating and clearing 4 KiB.
 */
#define KVMAS_SEEN_SCAN_MAX 16

struct kvmas_seen {
	unsigned long *bits; /* NULL: scan @b */
	unsigned long *flags_only; /* with @bits: ids of SET_FLAGS ops */
	const struct kvmas_bop *b;
	u32 n;
};

/* Whether an op of the batch changes only the flags of slot @id. */
static bool kvmas_seen_flags_only(const struct kvmas_seen *seen, u32 id)
{
	u32 j;

	if (seen->bits)
		return test_bit(id, seen->flags_only);
	for (j = 0; j < seen->n; j++)
		if (seen->b[j].u.slot == id &&
		    seen->b[j].u.op == KVMAS_OP_SET_FLAGS)
			return true;
	return false;
}

/* An inserted range, for the sorted overlap sweep. */
struct kvmas_span {
	gfn_t start, end;
};

static int kvmas_span_cmp(const void *a, const void *b)
{
	const struct kvmas_span *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

/*
 * Whether any two inserted ranges overlap: sorted by start, each must
 * begin at or after the furthest end so far. O(n log n); the caller's
 * pairwise search, which names the op stock would fail on, runs only when
 * this finds an overlap. -ENOMEM if the array cannot be had.
 */
static int kvmas_inserts_overlap(const struct kvmas_bop *b, u32 n)
{
	struct kvmas_span *sp;
	gfn_t end = 0;
	u32 i, k = 0;
	int r = 0;

	sp = kvmalloc_array(n, sizeof(*sp), GFP_KERNEL_ACCOUNT);
	if (!sp)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		if (!kvmas_op_inserts(&b[i]))
			continue;
		sp[k].start = b[i].u.guest_phys_addr >> PAGE_SHIFT;
		sp[k].end = sp[k].start + (b[i].u.memory_size >> PAGE_SHIFT);
		k++;
	}
	sort(sp, k, sizeof(*sp), kvmas_span_cmp, NULL);
	for (i = 0; i < k && !r; i++) {
		if (i && sp[i].start < end)
			r = 1;
		end = max(end, sp[i].end);
	}
	kvfree(sp);
	return r;
}

/* Whether op @i's slot id was named by an op before it; records it. */
static bool kvmas_seen_test_and_set(struct kvmas_seen *seen, u32 i)
{
	u32 id = seen->b[i].u.slot, j;

	if (seen->bits)
		return __test_and_set_bit(id, seen->bits);
	for (j = 0; j < i; j++)
		if (seen->b[j].u.slot == id)
			return true;
	return false;
}

/* Whether any op names @id (after every op was recorded). */
static bool kvmas_seen_test(const struct kvmas_seen *seen, u32 id)
{
	u32 j;

	if (seen->bits)
		return test_bit(id, seen->bits);
	for (j = 0; j < seen->n; j++)
		if (seen->b[j].u.slot == id)
			return true;
	return false;
}

static int kvmas_validate_op(struct kvm *kvm, struct kvm_memslots *slots,
			     struct kvmas_bop *b, struct kvmas_seen *seen,
			     u32 i, u32 as)
{
	struct kvmas_batch_op *u = &b->u;
	struct kvm_memory_slot *old;
	bool moves;
	int r;

	if (u->__reserved[0] || u->__reserved[1] || u->as_id != as ||
	    u->slot >= KVM_USER_MEM_SLOTS)
		return -EINVAL;
	/* One op per slot id: no chains to reason about. */
	if (kvmas_seen_test_and_set(seen, i))
		return -EINVAL;
	old = id_to_memslot(slots, u->slot);
	if (old && kvmas_slot_is_gmem(old))
		return -EOPNOTSUPP;
	b->old = old;
	if (u->dirty_bitmap && u->op != KVMAS_OP_DELETE &&
	    u->op != KVMAS_OP_REPLACE)
		return -EINVAL;

	switch (u->op) {
	case KVMAS_OP_CREATE:
		r = kvmas_check_region(kvm, u);
		if (r)
			return r;
		/* Stock would modify the slot in place: a typed op refuses. */
		return old ? -EEXIST : 0;
	case KVMAS_OP_DELETE:
		if (u->flags || u->guest_phys_addr || u->memory_size ||
		    u->userspace_addr)
			return -EINVAL;
		/* Stock: deleting an id that is not in use is EINVAL. */
		return old ? 0 : -EINVAL;
	case KVMAS_OP_MOVE:
		r = kvmas_check_region(kvm, u);
		if (r)
			return r;
		if (!old)
			return -ENOENT;
		r = kvmas_check_modify(old, u, &moves);
		if (r || moves)
			return r;
		/* Same gpa: what stock does with it is a flags change. */
		u->op = KVMAS_OP_SET_FLAGS;
		u->guest_phys_addr = 0;
		u->memory_size = 0;
		u->userspace_addr = 0;
		b->noop = u->flags == old->flags;
		return 0;
	case KVMAS_OP_SET_FLAGS:
		if (u->guest_phys_addr || u->memory_size || u->userspace_addr ||
		    (u->flags &
		     ~(KVM_MEM_LOG_DIRTY_PAGES | KVM_MEM_READONLY)) ||
		    ((u->flags & KVM_MEM_READONLY) &&
		     !kvmas_has_readonly_mem(kvm)))
			return -EINVAL;
		if (!old)
			return -ENOENT;
		if ((u->flags ^ old->flags) & KVM_MEM_READONLY)
			return -EINVAL;
		/*
		 * Nothing to change is stock's no-op, and must stay one: KVM's
		 * commit of a flags change that changes nothing WARNs.
		 */
		b->noop = u->flags == old->flags;
		return 0;
	case KVMAS_OP_REPLACE:
		r = kvmas_check_region(kvm, u);
		if (r)
			return r;
		return old ? 0 : -ENOENT;
	}
	return -EINVAL;
}

/*
 * Validates @b[0..n) against the active layout of their address space, as
 * if applied in one step. Caller holds slots_lock. On error *@idx names the
 * offending op.
 */
static int kvmas_batch_validate(struct kvm *kvm, struct kvmas_bop *b, u32 n,
				struct kvmas_seen *seen, s32 *idx)
{
	struct kvm_memslot_iter iter;
	struct kvm_memslots *slots;
	u64 added = 0, removed = 0;
	u32 as = b[0].u.as_id, i, j;
	bool pairwise;
	int r;

	lockdep_assert_held(&kvm->slots_lock);
	if (as >= kvmas_nr_as(kvm)) {
		*idx = 0;
		return -EINVAL;
	}
	slots = __kvm_memslots(kvm, as);

	for (i = 0; i < n; i++) {
		*idx = i;
		r = kvmas_validate_op(kvm, slots, &b[i], seen, i, as);
		if (r)
			return r;
		/* After validate_op: a MOVE to its own gpa became SET_FLAGS. */
		if (seen->bits && b[i].u.op == KVMAS_OP_SET_FLAGS)
			__set_bit(b[i].u.slot, seen->flags_only);
		if (kvmas_op_removes(&b[i]))
			removed += b[i].old->npages;
		if (kvmas_op_inserts(&b[i]))
			added += b[i].u.memory_size >> PAGE_SHIFT;
	}

	if (kvm->nr_memslot_pages - removed + added <
	    kvm->nr_memslot_pages - removed)
		return -EINVAL;

	/*
	 * Overlaps in the final layout: each inserted range against every
	 * slot that stays (internal slots included), then against the other
	 * inserted ranges. Ranges of removed slots no longer count. Large
	 * batches first sort the inserted ranges: only if two overlap is the
	 * quadratic search for the op stock would fail on needed.
	 */
	pairwise = true;
	if (n > KVMAS_SEEN_SCAN_MAX) {
		r = kvmas_inserts_overlap(b, n);
		if (r < 0) {
			*idx = -1;
			return r;
		}
		pairwise = r;
	}
	for (i = 0; i < n; i++) {
		gfn_t start = b[i].u.guest_phys_addr >> PAGE_SHIFT;
		u64 np = b[i].u.memory_size >> PAGE_SHIFT;

		if (!kvmas_op_inserts(&b[i]))
			continue;
		*idx = i;
		kvm_for_each_memslot_in_gfn_range(&iter, slots, start,
						  start + np) {
			struct kvm_memory_slot *s = iter.slot;

			if (s->id >= KVM_USER_MEM_SLOTS ||
			    !kvmas_seen_test(seen, s->id))
				return -EEXIST;
			/* In the batch: it stays only if just its flags change. */
			if (kvmas_seen_flags_only(seen, s->id))
				return -EEXIST;
		}
		if (!pairwise)
			continue;
		for (j = 0; j < i; j++) {
			if (!kvmas_op_inserts(&b[j]))
				continue;
			if (kvmas_ranges_overlap(
				    start, np,
				    b[j].u.guest_phys_addr >> PAGE_SHIFT,
				    b[j].u.memory_size >> PAGE_SHIFT))
				return -EEXIST;
		}
	}
	*idx = -1;
	return 0;
}

/*
 * Every hand-off buffer must be writable before anything changes, so that
 * no copy can fail after the commit. Probed without writing a byte (a dry
 * run must not touch the caller's memory).
 */
static int kvmas_probe_handoff(struct kvmas_bop *b, u32 n, s32 *idx)
{
	u32 i;

	for (i = 0; i < n; i++) {
		if (!b[i].u.dirty_bitmap || !b[i].old)
			continue;
		b[i].handoff_bytes = kvm_dirty_bitmap_bytes(b[i].old);
		if (kvmas_probe_writable(u64_to_user_ptr(b[i].u.dirty_bitmap),
					 b[i].handoff_bytes)) {
			*idx = i;
			return -EFAULT;
		}
	}
	return 0;
}

/* Drops the ops that change nothing; returns how many are left. */
static u32 kvmas_batch_compact(struct kvmas_bop *b, u32 n)
{
	u32 i, k = 0;

	for (i = 0; i < n; i++) {
		if (b[i].noop)
			continue;
		if (k != i)
			b[k] = b[i];
		k++;
	}
	return k;
}

static struct kvm_memory_slot *kvmas_slot_alloc(struct kvm_memory_slot *from)
{
	struct kvm_memory_slot *s = kzalloc(sizeof(*s), GFP_KERNEL_ACCOUNT);

	/* What kvm_copy_memslot() copies: everything but the tree nodes. */
	if (s && from) {
		s->base_gfn = from->base_gfn;
		s->npages = from->npages;
		s->dirty_bitmap = from->dirty_bitmap;
		s->arch = from->arch;
		s->userspace_addr = from->userspace_addr;
		s->flags = from->flags;
		s->id = from->id;
		s->as_id = from->as_id;
	}
	return s;
}

static int kvmas_batch_alloc(struct kvmas_bop *b, u32 n)
{
	u32 i;

	for (i = 0; i < n; i++) {
		struct kvmas_batch_op *u = &b[i].u;

		if (u->op != KVMAS_OP_DELETE) {
			b[i].new = kvmas_slot_alloc(b[i].old);
			if (!b[i].new)
				return -ENOMEM;
			b[i].new->as_id = u->as_id;
			b[i].new->id = u->slot;
			b[i].new->flags = u->flags;
			b[i].new->dirty_bitmap = NULL;
			memset(&b[i].new->arch, 0, sizeof(b[i].new->arch));
			if (u->op != KVMAS_OP_SET_FLAGS) {
				b[i].new->base_gfn = u->guest_phys_addr >>
						     PAGE_SHIFT;
				b[i].new->npages = u->memory_size >> PAGE_SHIFT;
				b[i].new->userspace_addr = u->userspace_addr;
			}
		}
		if (u->dirty_bitmap && b[i].old->dirty_bitmap) {
			b[i].handoff = kvzalloc(b[i].handoff_bytes,
						GFP_KERNEL_ACCOUNT);
			if (!b[i].handoff)
				return -ENOMEM;
		}
	}
	return 0;
}

/* Route A's INVALID stand-ins; the fence route needs none. */
static int kvmas_alloc_invalid(struct kvmas_bop *b, u32 n)
{
	u32 i;

	for (i = 0; i < n; i++) {
		if (!kvmas_op_removes(&b[i]))
			continue;
		b[i].invalid = kvmas_slot_alloc(b[i].old);
		if (!b[i].invalid)
			return -ENOMEM;
		b[i].invalid->flags |= KVM_MEMSLOT_INVALID;
	}
	return 0;
}

static void kvmas_batch_free(struct kvmas_bop *b, u32 n)
{
	u32 i;

	for (i = 0; i < n; i++) {
		kfree(b[i].new);
		kfree(b[i].invalid);
		kvfree(b[i].handoff);
	}
}

/* kvm_use_dirty_bitmap(): bitmaps unless the ring alone tracks dirtying. */
static bool kvmas_use_dirty_bitmap(struct kvm *kvm)
{
	return !kvm->dirty_ring_size || kvmas_ring_with_bitmap(kvm);
}

/*
 * kvm_prepare_memory_region() for an installed slot: the dirty bitmap as
 * KVM would set it up, then the arch hook. KVM frees bitmaps with vfree()
 * (6.12) or kvfree() (6.1), so they must come from vmalloc.
 */
static int kvmas_prepare_new(struct kvm *kvm, struct kvmas_bop *b,
			     struct kvm_memory_slot *old,
			     enum kvm_mr_change change)
{
	struct kvm_memory_slot *new = b->new;
	int r;

	if (!(new->flags &KVM_MEM_LOG_DIRTY_PAGES)) {
		new->dirty_bitmap = NULL;
	} else if (old && old->dirty_bitmap) {
		new->dirty_bitmap = old->dirty_bitmap;
	} else if (kvmas_use_dirty_bitmap(kvm)) {
		/* KVM's layout: the bitmap, then its GET_DIRTY_LOG buffer. */
		new->dirty_bitmap =
			__vmalloc(KVMAS_DIRTY_BITMAPS_PER_SLOT *
					  kvm_dirty_bitmap_bytes(new),
				  GFP_KERNEL_ACCOUNT | __GFP_ZERO);
		if (!new->dirty_bitmap)
			return -ENOMEM;
		b->fresh_bitmap = true;
		if (kvm_dirty_log_manual_protect_and_init_set(kvm))
			bitmap_set(new->dirty_bitmap, 0, new->npages);
	}
	r = kvmas_k_prepare_memory_region(kvm, old, new, change);
	if (r && b->fresh_bitmap) {
		vfree(new->dirty_bitmap);
		new->dirty_bitmap = NULL;
		b->fresh_bitmap = false;
	}
	return r;
}

static int kvmas_prepare_one(struct kvm *kvm, struct kvmas_bop *b)
{
	int r;

	switch (b->u.op) {
	case KVMAS_OP_CREATE:
		return kvmas_prepare_new(kvm, b, NULL, KVM_MR_CREATE);
	case KVMAS_OP_DELETE:
		return kvmas_k_prepare_memory_region(kvm, b->old, NULL,
						     KVM_MR_DELETE);
	case KVMAS_OP_MOVE:
		return kvmas_prepare_new(kvm, b, b->old, KVM_MR_MOVE);
	case KVMAS_OP_SET_FLAGS:
		return kvmas_prepare_new(kvm, b, b->old, KVM_MR_FLAGS_ONLY);
	case KVMAS_OP_REPLACE:
		r = kvmas_k_prepare_memory_region(kvm, b->old, NULL,
						  KVM_MR_DELETE);
		return r ? r : kvmas_prepare_new(kvm, b, NULL, KVM_MR_CREATE);
	}
	return -EINVAL;
}

/* Undoes a successful kvmas_prepare_one(). */
static void kvmas_unprepare_one(struct kvm *kvm, struct kvmas_bop *b)
{
	/*
	 * CREATE-like installs own the arch data prepare allocated; a flags
	 * change copied old's (x86) and must not free it.
	 */
	if (b->new && b->u.op != KVMAS_OP_SET_FLAGS)
		kvmas_k_free_memslot(kvm, b->new);
	if (b->fresh_bitmap) {
		vfree(b->new->dirty_bitmap);
		b->new->dirty_bitmap = NULL;
		b->fresh_bitmap = false;
	}
}

/*
 * Dirty bits of a removed slot: ORed into every slot this batch installs
 * over the same guest pages with a bitmap of its own, and copied for the
 * user. Runs after the final swap and its grace period: no vCPU can reach
 * @old or its INVALID copy any more, so its bitmap is final.
 */
static u64 kvmas_handoff_dirty(struct kvmas_bop *b, u32 n, struct kvmas_bop *rm)
{
	struct kvm_memory_slot *old = rm->old;
	u64 count, gfn;
	u32 j;

	if (!old->dirty_bitmap || rm->u.op == KVMAS_OP_MOVE)
		return 0; /* a move keeps its bitmap with the slot */
	count = bitmap_weight(old->dirty_bitmap, old->npages);
	if (rm->handoff)
		memcpy(rm->handoff, old->dirty_bitmap,
		       kvm_dirty_bitmap_bytes(old));
	if (!count)
		return 0;
	for (j = 0; j < n; j++) {
		struct kvm_memory_slot *new = b[j].new;
		gfn_t lo, hi;

		if (!kvmas_op_inserts(&b[j]) || !new->dirty_bitmap ||
		    new->dirty_bitmap == old->dirty_bitmap ||
		    !kvmas_ranges_overlap(old->base_gfn, old->npages,
					  new->base_gfn, new->npages))
			continue;
		lo = max(old->base_gfn, new->base_gfn);
		hi = min(old->base_gfn + old->npages,
			 new->base_gfn + new->npages);
		/* The new slot is live: vCPUs may set bits concurrently. */
		for (gfn = lo; gfn < hi; gfn++)
			if (test_bit_le(gfn - old->base_gfn, old->dirty_bitmap))
				set_bit_le(gfn - new->base_gfn,
					   new->dirty_bitmap);
	}
	return count;
}

static void kvmas_count_logging(struct kvm *kvm,
				const struct kvm_memory_slot *old,
				const struct kvm_memory_slot *new)
{
	u32 o = old ? old->flags : 0, f = new ? new->flags : 0;

	if ((o ^ f) & KVM_MEM_LOG_DIRTY_PAGES)
		kvmas_dirty_logging_add(kvm,
					f & KVM_MEM_LOG_DIRTY_PAGES ? 1 : -1);
}

/*
 * kvm_commit_memory_region() for a removed slot: the arch commit. The free
 * that follows there is the reaper's (kvmas_reap_old()).
 */
static void kvmas_commit_delete(struct kvm *kvm, struct kvmas_bop *b)
{
	struct kvm_memory_slot *old = b->old;

	kvm->nr_memslot_pages -= old->npages;
	kvmas_count_logging(kvm, old, NULL);
	kvmas_k_commit_memory_region(kvm, old, NULL, KVM_MR_DELETE);
	b->free_old_bitmap = !!old->dirty_bitmap;
}

static void kvmas_commit_create(struct kvm *kvm, struct kvm_memory_slot *new)
{
	kvm->nr_memslot_pages += new->npages;
	kvmas_count_logging(kvm, NULL, new);
	kvmas_k_commit_memory_region(kvm, NULL, new, KVM_MR_CREATE);
}

static void kvmas_commit_one(struct kvm *kvm, struct kvmas_bop *b)
{
	struct kvm_memory_slot *old = b->old, *new = b->new;

	/* After the final swap: slots_arch_lock is already dropped. */
	lockdep_assert_held(&kvm->slots_lock);

	switch (b->u.op) {
	case KVMAS_OP_CREATE:
		kvmas_commit_create(kvm, new);
		break;
	case KVMAS_OP_DELETE:
		kvmas_commit_delete(kvm, b);
		break;
	case KVMAS_OP_REPLACE:
		kvmas_commit_delete(kvm, b);
		kvmas_commit_create(kvm, new);
		break;
	case KVMAS_OP_MOVE:
	case KVMAS_OP_SET_FLAGS:
		kvmas_count_logging(kvm, old, new);
		kvmas_k_commit_memory_region(kvm, old, new,
					     b->u.op == KVMAS_OP_MOVE ?
						     KVM_MR_MOVE :
						     KVM_MR_FLAGS_ONLY);
		/*
		 * x86 frees a moved slot's arch data in its commit hook; a
		 * bitmap the new slot does not carry on is the reaper's.
		 */
		b->free_old_bitmap = old->dirty_bitmap && !new->dirty_bitmap;
		break;
	}
	/* Installed: not kvmas_batch_free()'s any more; old is the reaper's. */
	b->new = NULL;
	b->committed = true;
}

/*
 * The rest of kvm_commit_memory_region() for one committed op, run by the
 * reaper: what KVM frees of the old slot. Nothing can reach @b->old any
 * more (the final swap's grace period is over), so only memory goes.
 */
static void kvmas_reap_old(struct kvm *kvm, struct kvmas_bop *b)
{
	struct kvm_memory_slot *old = b->old;

	if (b->free_old_bitmap)
		kvfree(old->dirty_bitmap);
	/* A move's arch data went in its commit hook; a flags change's moved on. */
	if (kvmas_op_removes(b) && b->u.op != KVMAS_OP_MOVE)
		kvmas_k_free_memslot(kvm, old);
	kfree(old);
}

/* Applies one phase of changes to the inactive set: removals, flags, inserts. */
static void kvmas_edit_inactive(struct kvm *kvm, struct kvmas_bop *b, u32 n,
				bool replay)
{
	u32 i;

	for (i = 0; i < n; i++)
		if (kvmas_op_removes(&b[i]))
			kvmas_k_replace_memslot(
				kvm, replay ? b[i].invalid : b[i].old, NULL);
	for (i = 0; i < n; i++)
		if (b[i].u.op == KVMAS_OP_SET_FLAGS)
			kvmas_k_replace_memslot(kvm, b[i].old, b[i].new);
	for (i = 0; i < n; i++)
		if (kvmas_op_inserts(&b[i]))
			kvmas_k_replace_memslot(kvm, NULL, b[i].new);
}

/*
 * Whether the single-swap fence route is safe for this VM: no shadow pages
 * can be accounted into slot arch data (compat.h). Caller holds slots_lock;
 * a commit holds slots_arch_lock too, which keeps the answer stable.
 */
static bool kvmas_fence_route_ok(struct kvm *kvm)
{
	return !kvmas_arch_shadow_mmu_in_use(kvm);
}

/*
 * KVMAS_BATCH_ZAP_RANGE: unmaps @old's range only, what KVM's flush does
 * when it does not zap the whole VM, minus the shadow pages accounted in
 * the slot (the fence route runs only where there are none). Called with
 * the fence up and @old still published.
 */
static void kvmas_zap_range(struct kvm *kvm, struct kvm_memory_slot *old)
{
#if KVMAS_ZAP_RANGE_BY_INTERNAL
	struct kvm_gfn_range range = {
		.slot = old,
		.start = old->base_gfn,
		.end = old->base_gfn + old->npages,
		.may_block = true,
	};

	/* As KVM's mmu notifier does: unmap and flush under mmu_lock. */
	kvmas_mmu_write_lock(kvm);
	if (kvmas_k_unmap_gfn_range(kvm, &range))
		kvm_flush_remote_tlbs(kvm);
	kvmas_mmu_write_unlock(kvm);
#elif defined(CONFIG_X86)
	/* Nests its own invalidation inside our fence, flushes the TLBs. */
	kvm_zap_gfn_range(kvm, old->base_gfn, old->base_gfn + old->npages);
#else
	/* Never reached: only x86's flush zaps the whole VM. */
	kvmas_k_flush_shadow_memslot(kvm, old);
#endif
}

/* Adds @s's gfn range to the fence, and its hva range to the 6.1 fence. */
static void kvmas_fence_add(const struct kvm_memory_slot *s,
			    struct kvmas_gfn_range *ranges, u32 *nr,
			    unsigned long *hva_lo, unsigned long *hva_hi)
{
	ranges[(*nr)++] = (struct kvmas_gfn_range){ s->base_gfn,
						    s->base_gfn + s->npages };
	*hva_lo = min(*hva_lo, s->userspace_addr);
	*hva_hi = max(*hva_hi, s->userspace_addr + (s->npages << PAGE_SHIFT));
}

/*
 * Route B: fence every range that changes (faults there retry), unmap the
 * removed ranges while their slots are still the published ones, publish
 * the whole new layout with one swap, drop the fence. No INVALID state is
 * ever published, so it is hole-free on arm64 too (whose fault path treats
 * INVALID like no slot but retries under a fence). Called with
 * slots_arch_lock held after every op was prepared; returns with it
 * released.
 */
static void kvmas_publish_fenced(struct kvm *kvm, struct kvmas_bop *b, u32 n,
				 int as, struct kvmas_gfn_range *ranges,
				 u32 *gps, bool zap_range)
{
	unsigned long hva_lo = ULONG_MAX, hva_hi = 0;
	bool zap_all, kvm_flushed = false;
	u32 i, nr = 0;
	lockdep_assert_held(&kvm->slots_arch_lock);

	for (i = 0; i < n; i++) {
		if (kvmas_op_removes(&b[i]))
			kvmas_fence_add(b[i].old, ranges, &nr, &hva_lo,
					&hva_hi);
		if (kvmas_op_inserts(&b[i]))
			kvmas_fence_add(b[i].new, ranges, &nr, &hva_lo,
					&hva_hi);
	}

	kvmas_edit_inactive(kvm, b, n, false);
	kvmas_k_fence_begin(kvm, ranges, nr, hva_lo, hva_hi);
	/*
	 * Where KVM's flush zaps the whole VM whatever the slot, one call
	 * does for every removed slot (KVM would repeat it per slot, kicking
	 * every vCPU each time), or, with KVMAS_BATCH_ZAP_RANGE, each removed
	 * range alone is unmapped. Elsewhere KVM's flush is per slot already.
	 */
	zap_all = kvmas_arch_flush_zaps_all(kvm);
	for (i = 0; i < n; i++) {
		if (!kvmas_op_removes(&b[i]))
			continue;
		if (zap_all && zap_range) {
			kvmas_zap_range(kvm, b[i].old);
		} else if (!zap_all || !kvm_flushed) {
			kvmas_k_flush_shadow_memslot(kvm, b[i].old);
			kvm_flushed = true;
		}
	}
	kvmas_k_guest_memory_reclaimed(kvm);
	kvmas_k_swap_active_memslots(kvm, as);
	(*gps)++;
	/*
	 * The answer changed meanwhile (6.1: an external page-track user
	 * registered; 6.12: the quirk was toggled): give every slot whose
	 * KVM flush was skipped that flush now, as KVM would have. Still
	 * fenced, so nothing maps the ranges again meanwhile.
	 */
	if (zap_all && !kvmas_arch_flush_zaps_all(kvm))
		for (i = 0; i < n; i++) {
			if (!kvmas_op_removes(&b[i]))
				continue;
			if (zap_range || !kvm_flushed)
				kvmas_k_flush_shadow_memslot(kvm, b[i].old);
			kvm_flushed = false;
		}
	/* Bumps mmu_invalidate_seq: faults that sampled the old one retry. */
	kvmas_k_fence_end(kvm, hva_lo, hva_hi);
	/* The other set still holds the old objects. */
	kvmas_edit_inactive(kvm, b, n, false);
}

/* Prepares every op; on failure unwinds the prepared ones (*@idx: the op). */
static int kvmas_prepare_all(struct kvm *kvm, struct kvmas_bop *b, u32 n,
			     s32 *idx)
{
	u32 i;
	int r;

	lockdep_assert_held(&kvm->slots_arch_lock);
	for (i = 0; i < n; i++) {
		r = kvmas_prepare_one(kvm, &b[i]);
		if (r) {
			*idx = b[i].index;
			while (i--)
				kvmas_unprepare_one(kvm, &b[i]);
			return r;
		}
		b[i].prepared = true;
	}
	return 0;
}

/*
 * Route A's first step: publish INVALID stand-ins for every removed slot
 * and unmap their ranges. Called with slots_arch_lock held and every op
 * prepared; returns with slots_arch_lock held again. Returns 0, or the
 * error of a re-prepare that KVM's state change in the window forced, with
 * the stand-ins still published (the caller swaps the old slots back).
 */
static int kvmas_publish_invalid(struct kvm *kvm, struct kvmas_bop *b, u32 n,
				 int as, u32 *gps, s32 *idx)
{
	unsigned long epoch = kvmas_arch_prepare_epoch(kvm);
	u32 i;
	int r;
	lockdep_assert_held(&kvm->slots_arch_lock);

	for (i = 0; i < n; i++)
		if (kvmas_op_removes(&b[i]))
			kvmas_k_replace_memslot(kvm, b[i].old, b[i].invalid);
	kvmas_k_swap_active_memslots(kvm, as);
	(*gps)++;
	/* vCPUs now see INVALID copies: unmap the old ranges. */
	for (i = 0; i < n; i++)
		if (kvmas_op_removes(&b[i]))
			kvmas_k_flush_shadow_memslot(kvm, b[i].old);
	kvmas_k_guest_memory_reclaimed(kvm);
	mutex_lock(&kvm->slots_arch_lock);

	/*
	 * slots_arch_lock was dropped during the swap: KVM may have allocated
	 * arch data (x86 rmaps for a first shadow root) into the published
	 * slots meanwhile. Take it back into the objects we keep, as
	 * kvm_invalidate_memslot() does; a flags change copies its old slot's
	 * arch data (x86's prepare for FLAGS_ONLY is exactly that copy).
	 */
	for (i = 0; i < n; i++) {
		if (kvmas_op_removes(&b[i]))
			b[i].old->arch = b[i].invalid->arch;
		else if (b[i].u.op == KVMAS_OP_SET_FLAGS)
			b[i].new->arch = b[i].old->arch;
	}
	if (epoch == kvmas_arch_prepare_epoch(kvm))
		return 0;
	/*
	 * The new slots were prepared for a VM without that arch data: do it
	 * again. Only this can fail after something was published.
	 */
	for (i = 0; i < n; i++) {
		if (!kvmas_op_inserts(&b[i]))
			continue;
		kvmas_unprepare_one(kvm, &b[i]);
		b[i].prepared = false;
		r = kvmas_prepare_one(kvm, &b[i]);
		if (r) {
			*idx = b[i].index;
			return r;
		}
		b[i].prepared = true;
	}
	return 0;
}

/*
 * The commit proper. Caller holds slots_lock and has validated and
 * allocated. Every op is prepared before anything is published, so a
 * failed prepare returns with the layout and KVM's generation untouched.
 * Returns 0 or that error (*@idx its op).
 */
static int kvmas_batch_apply(struct kvm *kvm, struct kvmas_bop *b, u32 n,
			     int as, u32 flags, s32 *idx, u32 *gps, u64 *dirty,
			     u32 *route)
{
	struct kvmas_gfn_range *ranges;
	bool removals = false, fence;
	u32 i;
	int r;

	lockdep_assert_held(&kvm->slots_lock);
	for (i = 0; i < n; i++)
		removals |= kvmas_op_removes(&b[i]);
	mutex_lock(&kvm->slots_arch_lock);
	/* Where INVALID is a hole (arm64), the fence is the only route. */
	fence = !kvmas_arch_invalidate_route_ok() ||
		(!(flags & KVMAS_BATCH_ROUTE_INVALIDATE) &&
		 kvmas_fence_route_ok(kvm));
	/* Reported on a failed prepare too: the route it would have taken. */
	*route = fence ? KVMAS_ROUTE_FENCE : KVMAS_ROUTE_INVALIDATE;
	/*
	 * What only one route needs: the fence's ranges (each op fences at
	 * most its old and its new range), or the INVALID stand-ins.
	 */
	r = 0;
	ranges = NULL;
	if (removals && fence) {
		ranges = kvmalloc_array(KVMAS_FENCE_RANGES_PER_OP * n,
					sizeof(*ranges), GFP_KERNEL_ACCOUNT);
		if (!ranges)
			r = -ENOMEM;
	} else if (removals) {
		r = kvmas_alloc_invalid(b, n);
	}
	if (!r)
		r = kvmas_prepare_all(kvm, b, n, idx);
	if (r) {
		mutex_unlock(&kvm->slots_arch_lock);
		kvfree(ranges);
		return r;
	}

	if (removals && !fence) {
		r = kvmas_publish_invalid(kvm, b, n, as, gps, idx);
		if (r)
			goto unwind_invalid;
	}
	if (removals && fence) {
		kvmas_publish_fenced(kvm, b, n, as, ranges, gps,
				     flags & KVMAS_BATCH_ZAP_RANGE);
	} else {
		kvmas_edit_inactive(kvm, b, n, false);
		kvmas_k_swap_active_memslots(kvm, as);
		(*gps)++;
		kvmas_edit_inactive(kvm, b, n, removals);
	}
	kvfree(ranges);

	for (i = 0; i < n; i++)
		if (kvmas_op_removes(&b[i]))
			*dirty += kvmas_handoff_dirty(b, n, &b[i]);
	for (i = 0; i < n; i++)
		kvmas_commit_one(kvm, &b[i]);
	return 0;

unwind_invalid:
	kvfree(ranges);
	for (i = 0; i < n; i++)
		if (b[i].prepared)
			kvmas_unprepare_one(kvm, &b[i]);
	/* Publish the old slots again, then fix up the other set. */
	kvmas_k_swap_active_memslots(kvm, as);
	(*gps)++;
	for (i = 0; i < n; i++)
		if (kvmas_op_removes(&b[i]))
			kvmas_k_replace_memslot(kvm, b[i].invalid, b[i].old);
	return r;
}

/* Frees a batch's kernel state and what its committed ops left over. */
static void kvmas_reap_batch(struct kvm *kvm, struct kvmas_batch_mem *mem)
{
	u32 i;

	for (i = 0; i < mem->n; i++)
		if (mem->b[i].committed)
			kvmas_reap_old(kvm, &mem->b[i]);
	kvmas_batch_free(mem->b, mem->n);
	kvfree(mem);
}

/* Frees what committed batches left (see kvmas_reap_queue()). */
static void kvmas_batch_reap_work(struct work_struct *work)
{
	struct kvmas_session *s =
		container_of(work, struct kvmas_session, reap_work);
	struct kvmas_batch_mem *mem, *next;
	struct llist_node *list;

	/* Pairs with llist_add() in kvmas_reap_queue() (cmpxchg, full barrier). */
	list = llist_del_all(&s->reap_list);
	llist_for_each_entry_safe(mem, next, list, reap_node) {
		atomic_sub(mem->n, &s->reap_ops);
		kvmas_reap_batch(s->kvm, mem);
		kvmas_internals_undefer();
	}
}

/*
 * Hands a committed batch to the session's reaper: KVM frees a removed
 * slot's arch data and bitmap inside the ioctl (vfree()s of per-slot
 * arrays, the larger part of a removal's cost); here the caller does not
 * wait for it. Called inside the caller's kvmas_internals_get(), which the
 * deferral extends to the worker (the internal it calls: free_memslot).
 * The session's VM reference keeps struct kvm alive: release drains the
 * reaper before dropping it (kvmas_batch_session_drain()). If more than
 * KVMAS_REAP_BACKLOG_OPS ops are pending, the commit waits for the reaper
 * first, which bounds the memory held back.
 */
static void kvmas_reap_queue(struct kvmas_session *s,
			     struct kvmas_batch_mem *mem)
{
	if (atomic_read(&s->reap_ops) > KVMAS_REAP_BACKLOG_OPS)
		flush_work(&s->reap_work);
	atomic_add(mem->n, &s->reap_ops);
	kvmas_internals_defer();
	llist_add(&mem->reap_node, &s->reap_list);
	queue_work(system_unbound_wq, &s->reap_work);
}

void kvmas_batch_session_init(struct kvmas_session *s)
{
	init_llist_head(&s->reap_list);
	INIT_WORK(&s->reap_work, kvmas_batch_reap_work);
	atomic_set(&s->reap_ops, 0);
}

void kvmas_batch_session_drain(struct kvmas_session *s)
{
	/* No ioctl is in flight: nothing can queue behind this. */
	flush_work(&s->reap_work);
}

int kvmas_commit_batch(struct kvmas_session *s, struct kvmas_commit_batch *cmd)
{
	bool dry = cmd->flags & KVMAS_BATCH_VALIDATE_ONLY;
	struct kvmas_batch_mem *mem = NULL;
	struct kvmas_bop *b = NULL;
	struct kvmas_seen seen = { NULL };
	struct kvm *kvm;
	u32 i, n = cmd->nr_ops, live, gps = 0, route = KVMAS_ROUTE_NONE, reap;
	u64 dirty = 0;
	s32 idx = -1;
	int r;

	cmd->error_index = -1;
	cmd->grace_periods = 0;
	cmd->dirty_pages = 0;
	cmd->route = KVMAS_ROUTE_NONE;
	if ((cmd->flags &
	     ~(KVMAS_BATCH_VALIDATE_ONLY | KVMAS_BATCH_ROUTE_INVALIDATE |
	       KVMAS_BATCH_ZAP_RANGE)) ||
	    ((cmd->flags & KVMAS_BATCH_ROUTE_INVALIDATE) &&
	     (cmd->flags & KVMAS_BATCH_ZAP_RANGE)) ||
	    cmd->__reserved32 || cmd->__reserved || !n ||
	    cmd->op_size < offsetofend(struct kvmas_batch_op, __reserved))
		return -EINVAL;
	if (n > KVMAS_MAX_BATCH_OPS)
		return -EMSGSIZE;
	/* Where INVALID is a hole (arm64), do not build one on request. */
	if ((cmd->flags & KVMAS_BATCH_ROUTE_INVALIDATE) &&
	    !kvmas_arch_invalidate_route_ok())
		return -EOPNOTSUPP;
	kvm = kvmas_session_vm(s, &r);
	if (!kvm)
		return r;
	if (!kvmas_internals_get(KVMAS_FEAT_BATCH_COMMIT |
				 (cmd->flags & KVMAS_BATCH_ZAP_RANGE ?
					  KVMAS_FEAT_ZAP_RANGE :
					  0)))
		return -EOPNOTSUPP;

	r = -ENOMEM;
	mem = kvzalloc(struct_size(mem, b, n), GFP_KERNEL_ACCOUNT);
	if (n > KVMAS_SEEN_SCAN_MAX) {
		seen.bits =
			bitmap_zalloc(KVM_USER_MEM_SLOTS, GFP_KERNEL_ACCOUNT);
		seen.flags_only =
			bitmap_zalloc(KVM_USER_MEM_SLOTS, GFP_KERNEL_ACCOUNT);
	}
	if (!mem ||
	    (n > KVMAS_SEEN_SCAN_MAX && (!seen.bits || !seen.flags_only)))
		goto out;
	mem->n = n;
	b = mem->b;
	seen.b = b;
	seen.n = n;
	for (i = 0; i < n; i++) {
		void __user *src =
			u64_to_user_ptr(cmd->ops) + (size_t)i * cmd->op_size;

		b[i].index = i;
		r = copy_struct_from_user(&b[i].u, sizeof(b[i].u), src,
					  cmd->op_size);
		if (r) {
			idx = i;
			goto out;
		}
	}

	r = mutex_lock_killable(&kvm->slots_lock);
	if (r)
		goto out;
	r = kvmas_batch_validate(kvm, b, n, &seen, &idx);
	if (!r)
		r = kvmas_probe_handoff(b, n, &idx);
	live = r ? 0 : kvmas_batch_compact(b, n);
	if (!r && dry) {
		/* The route a commit would take now (a report only). */
		if (live)
			route = kvmas_fence_route_ok(kvm) &&
						!(cmd->flags &
						  KVMAS_BATCH_ROUTE_INVALIDATE) ?
					KVMAS_ROUTE_FENCE :
					KVMAS_ROUTE_INVALIDATE;
	} else if (!r && live) {
		r = kvmas_batch_alloc(b, live);
		if (!r)
			r = kvmas_batch_apply(kvm, b, live, b[0].u.as_id,
					      cmd->flags, &idx, &gps, &dirty,
					      &route);
	}
	mutex_unlock(&kvm->slots_lock);
	if (r || dry)
		goto out;
	atomic64_inc(&kvmas_stats.batches_committed);
	atomic64_add(n, &kvmas_stats.batch_ops_committed);

	/*
	 * Committed: hand the old bits over (zeros where the slot kept no
	 * bitmap). The buffers were probed writable before the commit, so a
	 * copy fails only if another thread of the caller unmapped one since;
	 * the change stands and the call still succeeds (uapi).
	 */
	for (i = 0; i < live; i++) {
		void __user *dst = u64_to_user_ptr(b[i].u.dirty_bitmap);
		unsigned long left;

		if (!b[i].u.dirty_bitmap)
			continue;
		left = b[i].handoff ? copy_to_user(dst, b[i].handoff,
						   b[i].handoff_bytes) :
				      clear_user(dst, b[i].handoff_bytes);
		if (left)
			pr_warn_ratelimited(
				"pid %d: dirty bits of slot %u lost: buffer unmapped during the commit\n",
				task_tgid_nr(current), b[i].u.slot);
	}
	/*
	 * The old slots' memory is freed off the caller's path, unless there
	 * is too little of it: waking the reaper costs more than a slot's
	 * own frees (under TCG ~24 us for queue_work() against ~10-15 us for
	 * a slot's two vfree()s), so small batches free inline, as KVM does.
	 */
	for (i = 0, reap = 0; i < live; i++)
		reap += kvmas_op_removes(&b[i]) && b[i].u.op != KVMAS_OP_MOVE;
	if (reap > KVMAS_REAP_INLINE_OPS) {
		kvmas_reap_queue(s, mem);
		mem = NULL;
	} else {
		kvmas_reap_batch(s->kvm, mem);
		mem = NULL;
	}
out:
	cmd->error_index = idx;
	cmd->grace_periods = gps;
	cmd->dirty_pages = dirty;
	cmd->route = route;
	if (mem) {
		kvmas_batch_free(b, n);
		kvfree(mem);
	}
	bitmap_free(seen.bits);
	bitmap_free(seen.flags_only);
	kvmas_internals_put();
	return r;
}
