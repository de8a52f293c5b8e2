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
 *   ring, batch  KVMAS_RESET_RING (ring.c), KVMAS_COMMIT_BATCH (batch.c)
 *   livepatch    the klp patch: hardened kvm_dirty_ring_reset (livepatch.c)
 *   netlink      stats, session dumps, attach/detach events (netlink.c)
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
 *  - the vendor module (kvm_amd/kvm_intel, the VM file's f_op->owner):
 *    try_module_get() at attach, module_put() after kvm_put_kvm() in
 *    release, since destroying the VM calls into it.
 *  - a stock KVM_RESET_DIRTY_RINGS: KVM's own ioctl holds the VM file, and
 *    the patched function cannot be entered once the transition that
 *    disables the patch has finished.
 */
#ifndef KVMAS_PRIV_H
#define KVMAS_PRIV_H

#include <linux/atomic.h>
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/types.h>
#include <linux/kvm_atomic_slots.h>

struct kvm;
struct module;

/*
 * One open file of /dev/kvm-atomic-slots. @kvm is set once by ATTACH_VM and
 * never changes until release, when no ioctl can still be running; readers
 * load it with acquire semantics (see kvmas_session_vm()).
 */
struct kvmas_session {
	struct mutex attach_lock; /* serialises ATTACH_VM on this session */
	struct kvm *kvm;
	struct module *kvm_owner; /* module providing the VM's fops */
	u64 id;
	pid_t tgid;
	struct list_head node; /* on kvmas_sessions, for netlink dumps */
	/* Per vCPU index: ring reset index at our last flush (ring.c). */
	u64 *ring_seen;
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
