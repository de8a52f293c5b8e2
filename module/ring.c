// SPDX-License-Identifier: GPL-2.0
/*
 * Per-vCPU ordered dirty-ring reset (KVMAS_RESET_RING), and the ring walk it
 * shares with the hardened stock KVM_RESET_DIRTY_RINGS (livepatch.c).
 *
 * Who may touch what in a struct kvm_dirty_ring:
 *  - the vCPU thread alone pushes: it fills an entry, smp_wmb(), sets
 *    DIRTY, then increments dirty_index;
 *  - the VMM reads DIRTY entries and store-releases RESET into their flags
 *    (shared memory, so anything may be written there by a hostile VMM);
 *  - a resetter consumes RESET entries, stores flags = 0 and advances
 *    reset_index. KVM assumes one resetter at a time (slots_lock in stock).
 *    Here every resetter of a ring, ours and the livepatched stock one,
 *    holds that ring's lock from kvmas_ring_lock() instead, so resets of
 *    different vCPUs run in parallel and each ring still has one resetter.
 *    Without our livepatch (kallsyms route) stock resets run under
 *    slots_lock only, so ours take slots_lock too.
 */
#include <linux/delay.h>
#include <linux/hash.h>
#include <linux/kvm_dirty_ring.h>
#include <linux/kvm_host.h>
#include <linux/mutex.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

#include "internals.h"
#include "netlink.h"
#include "ring.h"
#include "session.h"

/* 64 stripes: enough that the vCPUs of one VM (up to 64) never share one. */
#define KVMAS_RING_LOCK_BITS 6
static struct mutex kvmas_ring_locks[1 << KVMAS_RING_LOCK_BITS];

void kvmas_ring_init(void)
{
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(kvmas_ring_locks); i++)
		mutex_init(&kvmas_ring_locks[i]);
}

/*
 * Lock striping keyed by (VM, vCPU index): the vCPUs of one VM never share
 * a lock while their indices are below the table size; different VMs may,
 * which costs contention, never correctness.
 */
static struct mutex *kvmas_ring_lock(struct kvm_vcpu *vcpu)
{
	unsigned long h = hash_ptr(vcpu->kvm, KVMAS_RING_LOCK_BITS);

	h += vcpu->vcpu_idx;
	return &kvmas_ring_locks[h & (ARRAY_SIZE(kvmas_ring_locks) - 1)];
}

struct kvmas_walk {
	/* in */
	u32 want; /* entries up to the caller's boundary */
	u32 budget; /* entries this walk may reset */
	bool wait_producer; /* wait briefly for a push in flight (stock) */
	bool producer_is_boundary; /* reaching it is the normal end */
	bool stop_invalid; /* stop in front of an entry naming no page */
	bool any_signal; /* any signal stops the walk, not only a fatal one */
	/* out */
	u32 reset;
	u32 invalid;
	u32 reason;
	bool reprotected;
};

/* Up to 64 consecutive-ish pages of one memslot, re-protected at once. */
struct kvmas_group {
	struct kvm_memory_slot *slot;
	u64 offset;
	u64 mask;
};

/*
 * Re-protects a group exactly as KVM's kvm_reset_dirty_gfn() does, under
 * mmu_lock for write. Never with an empty mask (6.1's __fls(0) hazard).
 */
static void kvmas_group_flush(struct kvm *kvm, struct kvmas_group *g,
			      struct kvmas_walk *w)
{
	if (!g->mask)
		return;
	kvmas_mmu_write_lock(kvm);
	kvmas_k_enable_log_dirty_pt_masked(kvm, g->slot, g->offset, g->mask);
	kvmas_mmu_write_unlock(kvm);
	g->mask = 0;
	w->reprotected = true;
}

/* Adds page @off of @ms to the group if it fits KVM's coalescing rule. */
static bool kvmas_group_add(struct kvmas_group *g, struct kvm_memory_slot *ms,
			    u64 off)
{
	s64 delta;

	if (!g->mask || g->slot != ms)
		return false;
	delta = off - g->offset;
	if (delta >= 0 && delta < BITS_PER_LONG) {
		g->mask |= 1ull << delta;
		return true;
	}
	if (delta > -BITS_PER_LONG && delta < 0 &&
	    (g->mask << -delta >> -delta) == g->mask) {
		g->offset = off;
		g->mask = (g->mask << -delta) | 1;
		return true;
	}
	return false;
}

#define KVMAS_RING_SLOT_AS_SHIFT 16

/* What keeps the memslots a walk looks up alive: SRCU or slots_lock. */
#define kvmas_assert_memslots_stable(kvm)                              \
	RCU_LOCKDEP_WARN(!srcu_read_lock_held(&(kvm)->srcu) &&         \
				 !lockdep_is_held(&(kvm)->slots_lock), \
			 "memslot lookup without kvm->srcu or slots_lock")

/*
 * The page a ring entry names, or NULL. Caller holds kvm->srcu or
 * slots_lock, which keeps the returned memslot alive until it drops them.
 * The entry is userspace memory: every value is range-checked.
 */
static struct kvm_memory_slot *kvmas_entry_slot(struct kvm *kvm, u32 slot,
						u64 offset)
{
	/* KVM's ring encoding of a slot: as_id << 16 | id (kvm_dirty_ring.h). */
	u32 as_id = slot >> KVMAS_RING_SLOT_AS_SHIFT, id = (u16)slot;
	struct kvm_memory_slot *ms;

	kvmas_assert_memslots_stable(kvm);
	if (as_id >= kvmas_nr_as(kvm) || id >= KVM_USER_MEM_SLOTS)
		return NULL;
	ms = id_to_memslot(__kvm_memslots(kvm, as_id), id);
	if (!ms || offset >= ms->npages)
		return NULL;
	return ms;
}

static bool kvmas_walk_signalled(const struct kvmas_walk *w)
{
	return w->any_signal ? signal_pending(current) :
			       fatal_signal_pending(current);
}

/*
 * How long (in 1us steps) to wait for a push in flight: the two stores
 * are adjacent in kvm_dirty_ring_push(), so only a vCPU preempted between
 * them takes longer, and then the count is merely one short (stock-like).
 */
#define KVMAS_PUSH_WAIT_US 50

/*
 * At the producer index, with the entry there already marked collected:
 * either a hostile VMM marked an entry KVM never pushed, or the vCPU is
 * between setting DIRTY and incrementing dirty_index (two adjacent stores;
 * the VMM saw DIRTY in between). Waits up to ~50us for the latter. Returns
 * true if the producer moved on (@prod updated).
 */
static bool kvmas_producer_moved(struct kvm_dirty_ring *ring, u32 idx,
				 u32 *prod)
{
	struct kvm_dirty_gfn *entry = &ring->dirty_gfns[idx & (ring->size - 1)];
	unsigned int i;

	/* Pairs with the VMM's store-release of RESET, as in the walk. */
	if (!(smp_load_acquire(&entry->flags) & KVM_DIRTY_GFN_F_RESET))
		return false;
	for (i = 0; i < KVMAS_PUSH_WAIT_US; i++) {
		udelay(1);
		/* The vCPU's increment; an untorn value is all we need. */
		*prod = READ_ONCE(ring->dirty_index);
		if (*prod != idx)
			return true;
	}
	return false;
}

/*
 * Resets entries of @ring from its reset index: at most w->want, w->budget
 * and one lap, and never past the producer index. Caller holds the ring's
 * resetter lock and kvm->srcu or slots_lock. Leaves the last group in @g
 * (flushed by the caller, before any TLB flush).
 *
 * Never passing the producer is what keeps a hostile VMM (RESET written
 * on entries KVM never pushed) from moving reset_index ahead of
 * dirty_index: stock KVM then sees a "full" ring on the next push and
 * WARNs (kvm_dirty_ring_push()), which panics panic_on_warn hosts.
 */
static void kvmas_ring_walk(struct kvm *kvm, struct kvm_dirty_ring *ring,
			    struct kvmas_walk *w, struct kvmas_group *g)
{
	/* Only resetters write reset_index, and we are the one (see top). */
	u32 start = ring->reset_index, idx = start, cap, prod;
	struct kvm_memory_slot *ms, *last_ms = NULL;
	struct kvm_dirty_gfn *entry;
	u32 slot, last_slot = 0;
	u64 offset;

	kvmas_assert_memslots_stable(kvm);
	cap = min(w->budget, ring->size);
	/*
	 * The vCPU increments dirty_index after publishing an entry; an
	 * untorn snapshot bounds the walk to entries KVM pushed. No ordering
	 * is needed: we act only on RESET flags, which the VMM sets after
	 * seeing DIRTY (acquire below).
	 */
	prod = READ_ONCE(ring->dirty_index);

	/*
	 * At each index the stop reasons are tested in the uapi's order of
	 * precedence: the caller's boundary, the producer, the call's bound
	 * (or one lap), a signal, then the entry itself.
	 */
	for (;;) {
		if (idx - start == w->want) {
			w->reason = KVMAS_RING_STOP_BOUNDARY;
			break;
		}
		if (idx == prod && !(w->wait_producer &&
				     kvmas_producer_moved(ring, idx, &prod))) {
			w->reason = w->producer_is_boundary ?
					    KVMAS_RING_STOP_BOUNDARY :
					    KVMAS_RING_STOP_PRODUCER;
			break;
		}
		if (idx - start == cap) {
			w->reason = KVMAS_RING_STOP_BOUND;
			break;
		}
		if (kvmas_walk_signalled(w)) {
			w->reason = KVMAS_RING_STOP_SIGNAL;
			break;
		}
		entry = &ring->dirty_gfns[idx & (ring->size - 1)];
		/*
		 * Pairs with the VMM's store-release of RESET: the slot and
		 * offset it harvested are visible once RESET is.
		 */
		if (!(smp_load_acquire(&entry->flags) &
		      KVM_DIRTY_GFN_F_RESET)) {
			w->reason = KVMAS_RING_STOP_NOT_COLLECTED;
			break;
		}
		/* Userspace memory: each field read exactly once. */
		slot = READ_ONCE(entry->slot);
		offset = READ_ONCE(entry->offset);
		/*
		 * Runs of one slot are the rule: look it up once per run. The
		 * memslot stays valid while we hold srcu or slots_lock, and is
		 * as current as stock's per-group lookup under slots_lock.
		 */
		if (last_ms && slot == last_slot) {
			ms = offset < last_ms->npages ? last_ms : NULL;
		} else {
			ms = kvmas_entry_slot(kvm, slot, offset);
			if (ms) {
				last_ms = ms;
				last_slot = slot;
			}
		}
		if (!ms && w->stop_invalid) {
			w->reason = KVMAS_RING_STOP_INVALID;
			break;
		}
		/*
		 * Pairs with the VMM's load-acquire of flags before it reuses
		 * the entry: we are done reading it.
		 */
		smp_store_release(&entry->flags, 0);
		idx++;

		if (!ms) {
			w->invalid++;
			continue;
		}
		if (kvmas_group_add(g, ms, offset))
			continue;
		kvmas_group_flush(kvm, g, w);
		g->slot = ms;
		g->offset = offset;
		g->mask = 1;
		/* Between groups, outside mmu_lock. */
		cond_resched();
	}

	w->reset = idx - start;
	w->budget -= w->reset;

	/*
	 * Orders every flags = 0 above before the new index, which the vCPU
	 * reads (READ_ONCE in kvm_dirty_ring_used() on 6.12, a plain load on
	 * 6.1, both followed by the full barriers of guest entry) to decide
	 * that it may push into those entries again.
	 */
	smp_store_release(&ring->reset_index, idx);
}

/*
 * The livepatched kvm_dirty_ring_reset(): stock semantics (every collected
 * entry, invalid ones skipped silently, the count returned) with one lap
 * per call and the producer index as bounds, and only a fatal signal
 * cutting it short, because QEMU asserts that the count equals what it
 * harvested (hence also the wait for a push in flight). Called by
 * KVM_RESET_DIRTY_RINGS with slots_lock held; the TLB flush is the caller's.
 */
int kvmas_ring_reset_stock(struct kvm *kvm, struct kvm_dirty_ring *ring)
{
	struct kvm_vcpu *vcpu = container_of(ring, struct kvm_vcpu, dirty_ring);
	struct kvmas_walk w = {
		.want = U32_MAX,
		.budget = U32_MAX,
		.wait_producer = true,
	};
	struct kvmas_group g = {};
	struct mutex *lock = kvmas_ring_lock(vcpu);

	/* KVM_RESET_DIRTY_RINGS: kvm_vm_ioctl_reset_dirty_pages() holds it. */
	lockdep_assert_held(&kvm->slots_lock);
	mutex_lock(lock);
	kvmas_ring_walk(kvm, ring, &w, &g);
	kvmas_group_flush(kvm, &g, &w);
	mutex_unlock(lock);
	return w.reset;
}

/*
 * The TLB flush. A resetter re-protects pages under the ring's lock but
 * flushes after dropping it (stock: in its caller, after slots_lock). So a
 * call that finds the entries it claims already reset by someone else
 * must not assume they are flushed yet. Each session remembers, per vCPU,
 * the ring's reset index as it was when the session's last flush for that
 * ring had completed: a call flushes if it re-protected anything itself or
 * finds the reset index moved since (someone else's reset, whose flush may
 * still be pending). Remembered values are written only after the flush.
 */
#define KVMAS_SEEN_VALID (1ULL << 32)

static u64 *kvmas_ring_seen(struct kvmas_session *s)
{
	/* Pairs with the cmpxchg_release() below. */
	u64 *seen = smp_load_acquire(&s->ring_seen);

	if (seen)
		return seen;
	seen = kvcalloc(KVM_MAX_VCPUS, sizeof(*seen), GFP_KERNEL_ACCOUNT);
	if (!seen)
		return NULL;
	if (cmpxchg_release(&s->ring_seen, NULL, seen)) {
		kvfree(seen);
		/* Pairs with the winner's cmpxchg_release(). */
		seen = smp_load_acquire(&s->ring_seen);
	}
	return seen;
}

/* What the call records for a ring once its flush (if any) is done. */
struct kvmas_flush_mark {
	u32 vcpu_idx;
	u32 reset_index;
	bool flush;
	bool walked;
};

/* Resets one vCPU's ring for KVMAS_RESET_RING; fills in @mark. */
static void kvmas_ring_reset_one(struct kvm *kvm, struct kvm_vcpu *vcpu,
				 struct kvmas_ring_vcpu *v, u32 flags,
				 bool parallel, u64 seen, struct kvmas_walk *w,
				 struct kvmas_flush_mark *mark)
{
	struct kvm_dirty_ring *ring = &vcpu->dirty_ring;
	struct mutex *lock = parallel ? kvmas_ring_lock(vcpu) :
					&kvm->slots_lock;
	struct kvmas_group g = {};
	int idx;

	might_sleep();
	w->reset = 0;
	w->invalid = 0;
	w->reprotected = false;
	mark->vcpu_idx = vcpu->vcpu_idx;
	if (mutex_lock_killable(lock)) {
		w->reason = KVMAS_RING_STOP_SIGNAL;
	} else {
		/* Someone else reset entries since our last flush? */
		mark->flush = seen != (ring->reset_index | KVMAS_SEEN_VALID);
		/* Keeps the memslots we re-protect alive (they are not locked). */
		idx = srcu_read_lock(&kvm->srcu);
		w->want = flags & KVMAS_RING_RESET_ALL_COLLECTED ?
				  U32_MAX :
				  v->boundary - ring->reset_index;
		/* A boundary behind the reset index: nothing to do. */
		if (!(flags & KVMAS_RING_RESET_ALL_COLLECTED) &&
		    (s32)w->want < 0)
			w->want = 0;
		kvmas_ring_walk(kvm, ring, w, &g);
		kvmas_group_flush(kvm, &g, w);
		srcu_read_unlock(&kvm->srcu, idx);
		mark->flush |= w->reprotected;
		mark->reset_index = ring->reset_index;
		mark->walked = true;
		mutex_unlock(lock);
	}
	v->reset = w->reset;
	v->invalid = w->invalid;
	v->stop_reason = w->reason;
	/* Ours, or advanced since by another resetter: a report either way. */
	v->reset_index = READ_ONCE(ring->reset_index);
}

#define KVMAS_RING_RESET_FLAGS \
	(KVMAS_RING_RESET_STOP_INVALID | KVMAS_RING_RESET_ALL_COLLECTED)

static int kvmas_ring_copy_in(struct kvmas_reset_ring *cmd,
			      struct kvmas_ring_vcpu *v)
{
	void __user *u = u64_to_user_ptr(cmd->vcpus);
	u32 i;
	int r;

	for (i = 0; i < cmd->nr_vcpus; i++) {
		r = copy_struct_from_user(&v[i], sizeof(v[i]),
					  u + (size_t)i * cmd->vcpu_size,
					  cmd->vcpu_size);
		if (r) {
			cmd->error_index = i;
			return r;
		}
	}
	return 0;
}

static int kvmas_ring_copy_out(struct kvmas_reset_ring *cmd,
			       const struct kvmas_ring_vcpu *v)
{
	void __user *u = u64_to_user_ptr(cmd->vcpus);
	size_t n = min_t(size_t, cmd->vcpu_size, sizeof(*v));
	u32 i;

	for (i = 0; i < cmd->nr_vcpus; i++)
		if (copy_to_user(u + (size_t)i * cmd->vcpu_size, &v[i], n))
			return -EFAULT;
	return 0;
}

#define KVMAS_RING_ONSTACK 4

int kvmas_reset_ring(struct kvmas_session *s, struct kvmas_reset_ring *cmd)
{
	struct {
		struct kvmas_ring_vcpu v[KVMAS_RING_ONSTACK];
		struct kvm_vcpu *vcpus[KVMAS_RING_ONSTACK];
		struct kvmas_flush_mark marks[KVMAS_RING_ONSTACK];
	} small;
	struct kvmas_walk w = {};
	struct kvmas_flush_mark *marks = NULL;
	struct kvm_vcpu **vcpus = NULL;
	u64 *seen;
	struct kvmas_ring_vcpu *v = NULL;
	bool parallel, stopped = false, flush = false;
	struct kvm *kvm;
	u32 i;
	int r;

	cmd->error_index = -1;
	cmd->total_reset = 0;
	cmd->tlb_flushes = 0;
	if ((cmd->flags & ~KVMAS_RING_RESET_FLAGS) || cmd->__reserved32 ||
	    cmd->__reserved || !cmd->nr_vcpus ||
	    cmd->vcpu_size < offsetofend(struct kvmas_ring_vcpu, invalid))
		return -EINVAL;
	if (cmd->nr_vcpus > KVMAS_MAX_RING_RESET_VCPUS)
		return -EMSGSIZE;

	kvm = kvmas_session_vm(s, &r);
	if (!kvm)
		return r;
	if (!kvmas_internals_get(KVMAS_FEAT_RING_RESET))
		return -EOPNOTSUPP;
	/*
	 * Stable until put: the hardened stock reset (which takes our ring
	 * locks) stays installed while we hold the internals.
	 */
	parallel = kvmas_hardened_reset_active();

	r = -ENOMEM;
	if (cmd->nr_vcpus <= KVMAS_RING_ONSTACK) {
		/* The common calls (one vCPU, or a few) allocate nothing. */
		memset(&small, 0, sizeof(small));
		v = small.v;
		vcpus = small.vcpus;
		marks = small.marks;
	} else {
		v = kvcalloc(cmd->nr_vcpus, sizeof(*v), GFP_KERNEL_ACCOUNT);
		vcpus = kvcalloc(cmd->nr_vcpus, sizeof(*vcpus),
				 GFP_KERNEL_ACCOUNT);
		marks = kvcalloc(cmd->nr_vcpus, sizeof(*marks),
				 GFP_KERNEL_ACCOUNT);
		if (!v || !vcpus || !marks)
			goto out;
	}
	r = kvmas_ring_copy_in(cmd, v);
	if (r)
		goto out;
	/* Outputs go back after rings changed: no copy may fail then. */
	r = kvmas_probe_writable(u64_to_user_ptr(cmd->vcpus),
				 (size_t)cmd->nr_vcpus * cmd->vcpu_size);
	if (r)
		goto out;
	seen = kvmas_ring_seen(s);
	if (!seen) {
		r = -ENOMEM;
		goto out;
	}

	/* Set once, before any vCPU exists (kvm->lock); an untorn read. */
	if (!READ_ONCE(kvm->dirty_ring_size)) {
		for (i = 0; i < cmd->nr_vcpus; i++) {
			v[i].stop_reason = KVMAS_RING_STOP_NO_RING;
			/* Out fields: not the caller's input echoed. */
			v[i].reset = 0;
			v[i].reset_index = 0;
			v[i].invalid = 0;
		}
		r = kvmas_ring_copy_out(cmd, v) ?: -ENXIO;
		goto out;
	}
	/* Every id first: a bad one fails the call before any ring changes. */
	for (i = 0; i < cmd->nr_vcpus; i++) {
		if (v[i].vcpu_id <= INT_MAX)
			vcpus[i] = kvm_get_vcpu_by_id(kvm, v[i].vcpu_id);
		if (!vcpus[i] || !vcpus[i]->dirty_ring.dirty_gfns) {
			cmd->error_index = i;
			r = -ENOENT;
			goto out;
		}
	}

	w.any_signal = true;
	w.stop_invalid = cmd->flags & KVMAS_RING_RESET_STOP_INVALID;
	w.producer_is_boundary = cmd->flags & KVMAS_RING_RESET_ALL_COLLECTED;
	w.budget = cmd->max_entries ?: U32_MAX;
	for (i = 0; i < cmd->nr_vcpus; i++) {
		struct kvm_dirty_ring *ring = &vcpus[i]->dirty_ring;

		if (stopped) {
			/* The call's bound or a signal ended it: not walked. */
			v[i].stop_reason = w.reason;
			v[i].reset = 0;
			v[i].invalid = 0;
			v[i].reset_index = READ_ONCE(ring->reset_index);
			continue;
		}
		kvmas_ring_reset_one(
			kvm, vcpus[i], &v[i], cmd->flags, parallel,
			/* Pairs with WRITE_ONCE() after the flush. */
			READ_ONCE(seen[vcpus[i]->vcpu_idx]), &w, &marks[i]);
		flush |= marks[i].flush;
		cmd->total_reset += w.reset;
		stopped = w.reason == KVMAS_RING_STOP_SIGNAL || !w.budget;
		if (!w.budget && w.reason != KVMAS_RING_STOP_SIGNAL)
			w.reason = KVMAS_RING_STOP_BOUND;
	}
	/*
	 * One flush for every page re-protected above, or by resetters before
	 * us whose flush may still be pending, before we return: the VMM reads
	 * page contents after the reset (KVM's contract).
	 */
	if (flush) {
		kvmas_ring_flush_remote_tlbs(kvm);
		cmd->tlb_flushes = 1;
	}
	/*
	 * Only now, flushed: READ_ONCE() in the next call pairs with this; a
	 * stale value there costs one more flush, never one less.
	 */
	for (i = 0; i < cmd->nr_vcpus; i++)
		if (marks[i].walked)
			WRITE_ONCE(seen[marks[i].vcpu_idx],
				   marks[i].reset_index | KVMAS_SEEN_VALID);
	/*
	 * Probed writable above: only another thread of the caller unmapping
	 * the array meanwhile makes this fail, and the resets stand.
	 */
	if (kvmas_ring_copy_out(cmd, v))
		pr_warn_ratelimited(
			"pid %d: ring reset done, its report lost: array unmapped during the call\n",
			task_tgid_nr(current));
	r = 0;
	if (cmd->total_reset) {
		atomic64_inc(&kvmas_stats.ring_reset_calls);
		atomic64_add(cmd->total_reset, &kvmas_stats.ring_entries_reset);
	}
out:
	kvmas_account_ring(s, cmd, v, r);
	if (v != small.v) {
		kvfree(marks);
		kvfree(vcpus);
		kvfree(v);
	}
	kvmas_internals_put();
	return r;
}
