/* SPDX-License-Identifier: GPL-2.0 */
/*
 * kvm_atomic_slots: types shared by every layer, and the module's lock order
 * and object lifetimes. docs/internals.md has the same section in prose.
 *
 * Layers (a file includes only headers of layers below it; the include
 * graph of module/ is acyclic, checked by tests/include-graph.sh, and
 * because every call needs a prototype the call graph follows it):
 *
 *   compat.h     kernel differences, force-included everywhere
 *   internals    KVM functions kvm.ko does not export (internals.c)
 *   kvmas_priv.h these types and counters
 *   session      open files, VM attach, VM gate, layout (session.c)
 *   netlink      stats, session and VM dumps, events, per-VM accounting
 *                (netlink.c)
 *   ring, batch  KVMAS_RESET_RING (ring.c), KVMAS_COMMIT_BATCH (batch.c)
 *   livepatch    the klp patch: hardened kvm_dirty_ring_reset (livepatch.c)
 *   main         device, ioctl dispatch, module init/exit (main.c)
 *
 * Locks, outermost first. A lock may be taken while holding only locks
 * above it in this list; none of ours is taken in atomic context.
 *
 *  1. kvmas_internals_rwsem (internals.c), read: held by every command for
 *     its whole use of a KVM internal (kvmas_internals_get()/put()); write:
 *     kvmas_internals_set_features() (module init, livepatch pre_unpatch),
 *     which thereby waits for every in-flight user before the patch goes.
 *  2. kvmas_session.attach_lock: serialises ATTACH_VM on one session; only
 *     try_module_get() and kvm_get_kvm() run under it.
 *  3. kvm->slots_lock (KVM's): a whole batch commit (validation to commit),
 *     the layout snapshot, the serial ring reset (kallsyms route). KVM
 *     holds it around stock KVM_RESET_DIRTY_RINGS, i.e. around our
 *     livepatched kvm_dirty_ring_reset().
 *  4. kvmas_ring_locks[] stripe (ring.c), one per (VM, vCPU index) hash:
 *     the single resetter of a dirty ring. Taken under slots_lock by the
 *     hardened stock reset, without it by the parallel KVMAS_RESET_RING.
 *     Never two stripes at once.
 *  5. kvm->slots_arch_lock (KVM's), batch only, inside slots_lock: from
 *     preparing slots until kvm_swap_active_memslots() publishes (which
 *     drops it). Never nests with a ring stripe.
 *  6. kvm->srcu, read side: memslot pointers (VM info, layout, ring reset
 *     lookups). Never held across synchronize_srcu (our swaps run under
 *     slots_lock without it).
 *  7. kvm->mmu_lock for write (an rwlock on x86/arm64; spinning):
 *     re-protecting dirty pages, raising/dropping the invalidation fence.
 *     Innermost; nothing sleeps under it.
 *  kvmas_sessions_lock: the session list only (open, release, netlink
 *  dump); nothing else is taken under it, and it is never taken under any
 *  of the above.
 *  kvmas_vms_lock (session.c): the VM list and each VM's session count.
 *  Taken under attach_lock (ATTACH_VM) or with nothing held (release, the
 *  netlink dumps); nothing is taken under it; never together with
 *  kvmas_sessions_lock.
 *  genl_mutex (the kernel's, generic netlink): held around our doit/dumpit
 *  and dump start callbacks, so it is outside the two list locks. Events
 *  are multicast with none of our locks held except, on the ring path,
 *  lock 1 for read; the per-VM and module-wide event ratelimit_state locks
 *  are raw spinlocks taken by ___ratelimit() alone (innermost, trylock).
 *  Counters are atomics: no command takes a lock to count.
 *
 * References and what keeps what alive:
 *  - our module: every open file pins it (fops.owner); on the livepatch
 *    route the enabled patch pins it too, until disabled through sysfs and
 *    its transition is over (rmmod -> EAGAIN before that).
 *  - the livepatch (livepatch.c): enabled in module init, after every step
 *    that can be unwound; its post_patch callback marks the hardened reset
 *    active, pre_unpatch withdraws every feature (lock 1 for write) first.
 *  - the VM: ATTACH_VM takes kvm_get_kvm() while the VM file (fget) holds
 *    one, so users_count > 0; the session drops it in release, which runs
 *    only when no ioctl on the file is in flight, with no lock held,
 *    because kvm_put_kvm() may destroy the VM there. So during a commit or
 *    a ring reset the session's reference keeps struct kvm alive (the
 *    ioctl's own file reference pins the session); the memslots a command
 *    reads are kept by slots_lock or kvm->srcu, the vCPUs by online_vcpus
 *    only growing while the VM lives.
 *  - struct kvmas_vm (per-VM counters): one reference per attached
 *    session (nr_sessions, under kvmas_vms_lock), dropped in release before
 *    the session's kvm_put_kvm(), so a live kvmas_vm's @kvm is a live VM
 *    and no later VM at the same address can be matched to it. A session
 *    on kvmas_sessions keeps its @vm alive (release unlinks it first).
 *  - the vendor module (kvm_amd/kvm_intel, the VM file's f_op->owner):
 *    try_module_get() at attach, module_put() after kvm_put_kvm() in
 *    release, since destroying the VM calls into it.
 *  - a stock KVM_RESET_DIRTY_RINGS: KVM's own ioctl holds the VM file, and
 *    the patched function cannot be entered once the transition that
 *    disables the patch has finished.
 *  - the batch reaper (batch.c): a committed batch's removed slots are
 *    freed by the session's reap_work after the ioctl returned. It uses the
 *    session's VM reference (release drains the work before dropping it)
 *    and an internal (kvm_arch_free_memslot): the committing ioctl counts
 *    a deferred user (kvmas_internals_defer()) inside its get/put, and
 *    withdrawing the features waits for those too. It takes no lock.
 */
#ifndef KVMAS_PRIV_H
#define KVMAS_PRIV_H

#include <linux/atomic.h>
#include <linux/list.h>
#include <linux/llist.h>
#include <linux/mutex.h>
#include <linux/ratelimit_types.h>
#include <linux/types.h>
#include <linux/workqueue.h>
#include <linux/kvm_atomic_slots.h>

struct kvm;
struct module;

/*
 * Per-VM counters (uapi: "Per-VM counters"); atomics, no lock. Arrays are
 * indexed by the uapi value (reject bucket, stop reason, latency bucket)
 * minus one.
 */
struct kvmas_vm_stats {
	atomic64_t batches;
	atomic64_t batch_ops;
	atomic64_t grace_periods;
	atomic64_t route_fence;
	atomic64_t route_invalidate;
	atomic64_t route_none;
	atomic64_t dirty_pages;
	atomic64_t dry_runs;
	atomic64_t dry_runs_rejected;
	atomic64_t rejected[KVMAS_NL_REJECT_MAX];
	atomic64_t latency[KVMAS_NL_LATENCY_BUCKETS];
	atomic64_t latency_sum_ns;
	atomic64_t latency_max_ns;
	atomic64_t ring_calls;
	atomic64_t ring_entries;
	atomic64_t ring_invalid;
	atomic64_t ring_stops[KVMAS_RING_STOP_NO_RING];
	atomic64_t ring_tlb_flushes;
	atomic64_t events_sent;
	atomic64_t events_suppressed;
};

/* KVM's KVM_STATS_NAME_SIZE, which this header cannot include. */
#define KVMAS_VM_NAME_SIZE 48

/*
 * One KVM VM with at least one session attached (session.c): the sessions
 * attached to the same struct kvm share it. @kvm is an identity only (the
 * sessions' references keep it alive); @name is KVM's stats id, copied.
 */
struct kvmas_vm {
	struct kvm *kvm;
	u64 id;
	unsigned int nr_sessions; /* kvmas_vms_lock */
	struct list_head node; /* on kvmas_vms, in id order */
	char name[KVMAS_VM_NAME_SIZE];
	struct ratelimit_state events_rs;
	struct kvmas_vm_stats st;
};

/*
 * One open file of /dev/kvm-atomic-slots. @kvm is set once by ATTACH_VM and
 * never changes until release, when no ioctl can still be running; readers
 * load it with acquire semantics (see kvmas_session_vm()).
 */
struct kvmas_session {
	struct mutex attach_lock; /* serialises ATTACH_VM on this session */
	struct kvm *kvm;
	struct module *kvm_owner; /* module providing the VM's fops */
	/* Set before @kvm is published, never changes until release. */
	struct kvmas_vm *vm;
	u64 id;
	pid_t tgid;
	struct list_head node; /* on kvmas_sessions, for netlink dumps */
	/* Per vCPU index: ring reset index at our last flush (ring.c). */
	u64 *ring_seen;
	/*
	 * The batch reaper (batch.c): committed batches whose removed slots
	 * are still to be freed, the work that frees them (drained before
	 * release drops the VM), and how many ops it has pending.
	 */
	struct llist_head reap_list;
	struct work_struct reap_work;
	atomic_t reap_ops;
};

/* Module-wide counters (netlink KVMAS_NL_CMD_GET_STATS); atomics, no lock. */
struct kvmas_stats {
	atomic_t sessions_open;
	atomic64_t sessions_total;
	atomic_t attached;
	atomic64_t attach_ok;
	atomic64_t attach_failed;
	atomic64_t ioctl_errors;
	atomic64_t batches_committed;
	atomic64_t batch_ops_committed;
	atomic64_t ring_reset_calls;
	atomic64_t ring_entries_reset;
};

/* Defined in session.c, the lowest layer that counts. */
extern struct kvmas_stats kvmas_stats;

#endif /* KVMAS_PRIV_H */
