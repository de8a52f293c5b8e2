/* SPDX-License-Identifier: (GPL-2.0 WITH Linux-syscall-note) OR MIT */
/*
 * kvm-atomic-slots: userspace API of /dev/kvm-atomic-slots.
 *
 * This header is the protocol specification. A VMM includes it (directly or
 * through libkvmas) to talk to the kvm_atomic_slots module.
 *
 * Model
 * -----
 * Every open() of /dev/kvm-atomic-slots is a *session*. A session is attached
 * to at most one KVM VM (KVMAS_ATTACH_VM) and holds a reference on that VM
 * until the session's file is released, so the VM outlives its own fd if the
 * session does. Closing the session releases everything it holds.
 *
 * Like KVM's own VM ioctls, every command that operates on the attached VM
 * is accepted only from a process whose mm is the VM's (the process that
 * created it); any other caller gets EPERM. A VM that KVM has marked dead
 * (after an internal bug) answers EIO.
 *
 * Commands
 * --------
 * All commands except GET_API_VERSION and CHECK_EXTENSION take a pointer to
 * a struct whose first member is `size`, the caller's sizeof() of the struct.
 * This makes the structs extensible in both directions (iommufd style):
 *  - a caller built against an older, smaller struct passes its smaller size
 *    and the kernel treats the missing tail as zero;
 *  - a caller built against a newer, larger struct may pass it to an older
 *    kernel only if the tail the kernel does not know is all zero, otherwise
 *    E2BIG;
 *  - output is written back up to min(size, kernel's size).
 * A size below the first version of a struct is EINVAL. Unknown flags and
 * non-zero reserved fields are EINVAL. Unknown commands are ENOTTY.
 *
 * Errors and changes
 * ------------------
 * Every command obeys one rule: an error return means that nothing changed,
 * and a success means that everything the command describes happened.
 * "Nothing" covers the VM's memslots, KVM's memslot generation, dirty-ring
 * indices and entries, and the caller's memory: a command writes only its
 * documented out fields and buffers, and writes them only on success unless
 * its text says otherwise (error_index, E2BIG's needed size). Every user
 * buffer a state-changing command will write (its own struct, hand-off
 * bitmaps, the ring-reset array) is proved writable, without writing to it,
 * before the first change, so no copy can fail after one: a read-only,
 * unmapped or partly mapped buffer fails the call with EFAULT and nothing
 * changed. Only if another thread of the caller unmaps or write-protects a
 * buffer while the call runs can an output be lost; the call then still
 * returns success, because the change was made (and logs one rate-limited
 * line). A query (KVMAS_GET_LAYOUT, KVMAS_GET_VM_INFO) that loses a copy
 * that way returns EFAULT, and may have written part of its outputs first;
 * it changed nothing else. KVMAS_BATCH_VALIDATE_ONLY is a state-changing command that changes
 * nothing: it writes only its struct's out fields.
 *
 * Where KVMAS_COMMIT_BATCH does what a stock KVM_SET_USER_MEMORY_REGION(2)
 * call (or a sequence of them) would do, it answers as stock KVM would: the
 * same success or errno, the same final layout. The deliberate differences
 * are listed under "Differences from stock KVM" below; tests/oracle_test.c
 * checks every rule of this paragraph against a twin VM driven with stock
 * ioctls.
 *
 * The ioctl numbers do not encode the struct size (_IO), on purpose: the
 * size travels in the struct.
 */
#ifndef _UAPI_LINUX_KVM_ATOMIC_SLOTS_H
#define _UAPI_LINUX_KVM_ATOMIC_SLOTS_H

#include <linux/types.h>
#include <linux/ioctl.h>

#define KVMAS_DEVICE_NAME "kvm-atomic-slots"
#define KVMAS_DEVICE_PATH "/dev/kvm-atomic-slots"

/* Incremented only on an incompatible change; extensions use capabilities. */
#define KVMAS_API_VERSION 1

#define KVMAS_TYPE 0xBE

enum {
	KVMAS_CMD_GET_API_VERSION = 0x00,
	KVMAS_CMD_CHECK_EXTENSION = 0x01,
	KVMAS_CMD_GET_CAPS = 0x02,
	KVMAS_CMD_ATTACH_VM = 0x03,
	KVMAS_CMD_GET_VM_INFO = 0x04,
	KVMAS_CMD_GET_LAYOUT = 0x05,
	KVMAS_CMD_COMMIT_BATCH = 0x06,
	/* 0x07..0x0f reserved for memslot batch commits */
	KVMAS_CMD_RESET_RING = 0x10,
	/* 0x11..0x1f reserved for dirty-ring reset (KVMAS_CAP_RING_RESET) */
};

/*
 * KVMAS_GET_API_VERSION: no argument (must be 0). Returns KVMAS_API_VERSION.
 * Works on any session, attached or not.
 */
#define KVMAS_GET_API_VERSION _IO(KVMAS_TYPE, KVMAS_CMD_GET_API_VERSION)

/*
 * KVMAS_CHECK_EXTENSION: argument is a KVMAS_CAP_* number (not a pointer).
 * Returns 0 if the capability is absent on this kernel, a positive value if
 * present (1, or the value documented for the capability). Unknown numbers
 * return 0, like KVM_CHECK_EXTENSION, so a VMM can probe future caps.
 */
#define KVMAS_CHECK_EXTENSION _IO(KVMAS_TYPE, KVMAS_CMD_CHECK_EXTENSION)

enum kvmas_cap {
	/* Session basics: ATTACH_VM, GET_VM_INFO, GET_LAYOUT. Always 1. */
	KVMAS_CAP_SESSION = 0,
	/* GET_LAYOUT can snapshot all address spaces at once. Always 1. */
	KVMAS_CAP_LAYOUT_ALL_AS = 1,
	/* Batched atomic memslot commits are available. */
	KVMAS_CAP_BATCH_COMMIT = 2,
	/*
	 * Per-vCPU ordered dirty-ring reset (KVMAS_RESET_RING) is available.
	 * Value KVMAS_RING_RESET_PARALLEL: resets of different vCPUs run
	 * concurrently (each ring has its own lock, shared with the hardened
	 * stock reset). Value KVMAS_RING_RESET_SERIAL: correct, but every reset
	 * holds the VM's slots_lock like stock KVM_RESET_DIRTY_RINGS (kernels
	 * where the stock reset cannot be routed through the module).
	 */
	KVMAS_CAP_RING_RESET = 3,
	/* KVM internals are reached through livepatch relocations (IBT-safe). */
	KVMAS_CAP_ROUTE_LIVEPATCH = 4,
	/* KVM internals are reached through kallsyms with landing-pad checks. */
	KVMAS_CAP_ROUTE_KALLSYMS = 5,
	/* Stock KVM_RESET_DIRTY_RINGS is replaced by a bounded version. */
	KVMAS_CAP_HARDENED_RING_RESET = 6,
	/* Value: the maximum number of ops in one batch. */
	KVMAS_CAP_MAX_BATCH_OPS = 7,
	/* Value: the number of address spaces KVM has on this architecture. */
	KVMAS_CAP_MAX_ADDRESS_SPACES = 8,
	/* Generic netlink family KVMAS_GENL_NAME is registered. */
	KVMAS_CAP_NETLINK = 9,
	/*
	 * KVMAS_BATCH_ROUTE_INVALIDATE is honoured: KVM's INVALID-slot
	 * protocol is hole-free here (x86, whose faults on an INVALID slot
	 * retry). 0 on arm64, where a fault on an INVALID slot is a hole like
	 * a missing slot; the flag then fails with EOPNOTSUPP and every batch
	 * takes the fence route.
	 */
	KVMAS_CAP_ROUTE_INVALIDATE = 10,
	/*
	 * KVMAS_BATCH_ZAP_RANGE is accepted (see there). 0: the flag fails
	 * with EOPNOTSUPP (the kallsyms route could not resolve what 6.1
	 * needs for it).
	 */
	KVMAS_CAP_ZAP_RANGE = 11,
	KVMAS_CAP_COUNT /* not a capability: one past the last */
};

/*
 * KVMAS_GET_CAPS: every capability at once.
 * @size:        sizeof(struct kvmas_caps)
 * @flags:       must be 0
 * @api_version: out, KVMAS_API_VERSION
 * @nr_caps:     out, KVMAS_CAP_COUNT of the running module
 * @caps:        out, bit N set iff KVMAS_CHECK_EXTENSION(N) > 0
 * @max_batch_ops:       out, value of KVMAS_CAP_MAX_BATCH_OPS
 * @max_address_spaces:  out, value of KVMAS_CAP_MAX_ADDRESS_SPACES
 * @kvm_user_mem_slots:  out, KVM_USER_MEM_SLOTS of the running kernel
 */
struct kvmas_caps {
	__u32 size;
	__u32 flags;
	__u32 api_version;
	__u32 nr_caps;
	__u64 caps;
	__u32 max_batch_ops;
	__u32 max_address_spaces;
	__u32 kvm_user_mem_slots;
	__u32 __reserved;
};
#define KVMAS_GET_CAPS _IO(KVMAS_TYPE, KVMAS_CMD_GET_CAPS)

/*
 * KVMAS_ATTACH_VM: attach the session to a KVM VM.
 * @size:   sizeof(struct kvmas_attach_vm)
 * @flags:  must be 0
 * @vm_fd:  a file descriptor returned by KVM_CREATE_VM
 * @__reserved: must be 0
 *
 * Errors:
 *  EBADF   @vm_fd is not an open file descriptor
 *  EINVAL  @vm_fd is open but is not a KVM VM (e.g. /dev/kvm, a vCPU fd)
 *  EPERM   the caller's mm is not the VM's (KVM's own rule for VM ioctls)
 *  EIO     KVM has marked the VM dead
 *  EBUSY   the session is already attached (one VM per session, for life)
 *  ENODEV  the KVM module providing the VM is going away
 */
struct kvmas_attach_vm {
	__u32 size;
	__u32 flags;
	__s32 vm_fd;
	__u32 __reserved;
};
#define KVMAS_ATTACH_VM _IO(KVMAS_TYPE, KVMAS_CMD_ATTACH_VM)

/* Address spaces are bounded by KVM itself (x86: 0 = normal, 1 = SMM). */
#define KVMAS_MAX_AS 2

/* kvmas_vm_info.vm_flags */
#define KVMAS_VM_DIRTY_RING		(1U << 0) /* KVM_CAP_DIRTY_LOG_RING* enabled */
#define KVMAS_VM_DIRTY_RING_WITH_BITMAP	(1U << 1) /* ..._WITH_BITMAP enabled */
#define KVMAS_VM_BUGGED			(1U << 2) /* KVM flagged an internal bug */

/*
 * KVMAS_GET_VM_INFO: describe the attached VM. Errors: ENOTCONN if the
 * session is not attached, EPERM/EIO as for every VM command.
 * @size:               sizeof(struct kvmas_vm_info)
 * @flags:              must be 0
 * @nr_address_spaces:  out, address spaces this VM uses (1 or 2)
 * @nr_vcpus:           out, vCPUs created so far
 * @max_vcpus:          out, KVM's limit for this VM
 * @max_user_slots:     out, slot ids 0..max_user_slots-1 per address space
 * @dirty_ring_size:    out, bytes per vCPU ring; 0 if the ring is not enabled
 * @vm_flags:           out, KVMAS_VM_*
 * @user_slots:         out, per address space: user memslots in use
 * @internal_slots:     out, per address space: KVM-internal memslots
 *                      (x86: APIC access page, TSS, identity map)
 * @dirty_log_slots:    out, per address space: slots with
 *                      KVM_MEM_LOG_DIRTY_PAGES
 * @generation:         out, per address space: KVM's memslot generation
 * @guest_pages:        out, per address space: pages covered by all slots
 */
struct kvmas_vm_info {
	__u32 size;
	__u32 flags;
	__u32 nr_address_spaces;
	__u32 nr_vcpus;
	__u32 max_vcpus;
	__u32 max_user_slots;
	__u32 dirty_ring_size;
	__u32 vm_flags;
	__u32 user_slots[KVMAS_MAX_AS];
	__u32 internal_slots[KVMAS_MAX_AS];
	__u32 dirty_log_slots[KVMAS_MAX_AS];
	__u64 generation[KVMAS_MAX_AS];
	__u64 guest_pages[KVMAS_MAX_AS];
};
#define KVMAS_GET_VM_INFO _IO(KVMAS_TYPE, KVMAS_CMD_GET_VM_INFO)

/* kvmas_slot.attrs */
#define KVMAS_SLOT_INTERNAL	(1U << 0) /* KVM-internal slot, id >= max_user_slots */
#define KVMAS_SLOT_DIRTY_BITMAP	(1U << 1) /* KVM keeps a dirty bitmap for it */
#define KVMAS_SLOT_GUEST_MEMFD	(1U << 2) /* backed by guest_memfd */

/*
 * One memslot as GET_LAYOUT reports it. @slot and @flags have the meaning of
 * struct kvm_userspace_memory_region (slot without the as_id bits).
 */
struct kvmas_slot {
	__u32 slot;
	__u32 flags;
	__u64 guest_phys_addr;
	__u64 memory_size;
	__u64 userspace_addr;
	__u32 as_id;
	__u32 attrs;
};

/* kvmas_layout.flags */
#define KVMAS_LAYOUT_ALL_AS	(1U << 0) /* every address space, @as_id must be 0 */
#define KVMAS_LAYOUT_INTERNAL	(1U << 1) /* include KVM-internal slots */

/*
 * KVMAS_GET_LAYOUT: the VM's memslots, one consistent snapshot.
 * @size:       sizeof(struct kvmas_layout)
 * @flags:      KVMAS_LAYOUT_*
 * @as_id:      address space to read (ignored, must be 0, with ALL_AS)
 * @entry_size: sizeof(struct kvmas_slot) as the caller knows it; at least
 *              the first version's 40 bytes. Entries are written with this
 *              stride and truncated to it.
 * @nr_entries: in: capacity of @entries; out: number of slots in the
 *              snapshot. If the capacity is too small nothing is copied,
 *              @nr_entries says how many are needed, and the call fails
 *              with E2BIG (retry with a larger buffer).
 * @__reserved: must be 0
 * @entries:    user pointer to an array of @nr_entries entries
 * @generation: out, KVM's memslot generation of each address space read in
 *              the same snapshot (unread address spaces: 0)
 *
 * The snapshot is taken inside one kvm->srcu read-side section covering
 * every address space read, so it is a state KVM's vCPUs could observe:
 * never a half-applied update. Entries are sorted by address space, then
 * guest physical address.
 */
struct kvmas_layout {
	__u32 size;
	__u32 flags;
	__u32 as_id;
	__u32 entry_size;
	__u32 nr_entries;
	__u32 __reserved;
	__u64 entries;
	__u64 generation[KVMAS_MAX_AS];
};
#define KVMAS_GET_LAYOUT _IO(KVMAS_TYPE, KVMAS_CMD_GET_LAYOUT)

/*
 * Batched memslot commits (KVMAS_CAP_BATCH_COMMIT)
 * ------------------------------------------------
 * KVMAS_COMMIT_BATCH applies a whole memory-layout change of one address
 * space in one call, atomically for vCPUs:
 *
 *  - Validation first, nothing changed before it passes: every op is checked
 *    with the checks KVM_SET_USER_MEMORY_REGION makes, in its order and with
 *    its errno (flags, alignment, slot id range, address space, sizes,
 *    overflow: EINVAL), and overlaps are checked against the FINAL layout of
 *    the address space, KVM-internal slots included, not against
 *    intermediate states (EEXIST). A failure returns the errno and
 *    @error_index names the op (-1: not op-specific).
 *  - What stock treats as "nothing to change" is a no-op here too: a
 *    SET_FLAGS with the slot's current flags, a MOVE to the slot's current
 *    gpa with its current flags. Such an op succeeds and does nothing; a
 *    batch made only of them returns 0 with @route KVMAS_ROUTE_NONE, 0 grace
 *    periods and KVM's generation unchanged. A MOVE to the current gpa that
 *    toggles KVM_MEM_LOG_DIRTY_PAGES is the flags change it is in stock, and
 *    a MOVE may toggle that flag while it moves (as in stock).
 *  - Atomic for vCPUs: a guest-physical address mapped both before and after
 *    the batch never appears unmapped to a vCPU. Removed and resized ranges
 *    are first published as "invalid" (x86 vCPUs faulting there retry
 *    instead of taking an MMIO exit), then the whole new layout is published
 *    at once. vCPUs keep running; nobody is paused.
 *  - Two routes, chosen per VM and reported in @route:
 *    KVMAS_ROUTE_FENCE: the ranges that change are fenced the way KVM fences
 *    an mmu-notifier invalidation (faults there retry), unmapped while the old
 *    slots are still published, and the new layout is published with ONE
 *    swap: one SRCU grace period for any batch. Used unless the VM has
 *    shadow-MMU roots (x86 shadow paging or nested guests), whose page
 *    accounting must see the old slots go INVALID first.
 *    KVMAS_ROUTE_INVALIDATE: removed slots are first published as INVALID
 *    (KVM's own protocol, batched), then the new layout: two grace periods
 *    if anything is removed, moved or replaced, one otherwise.
 *    Either way the count is constant in the number of ops and reported in
 *    @grace_periods.
 *  - All-or-nothing: every op is prepared (KVM's arch hook, allocations)
 *    before anything is published; if one fails (e.g. ENOMEM, or EINVAL for
 *    a gpa beyond what the MMU can map) the call returns its errno with the
 *    layout and KVM's generation exactly as before. One exception, on the
 *    invalidate route only: if the VM gets its first shadow page-table root
 *    between the INVALID swap and the final one (a nested guest starting,
 *    or a shadow-paging guest enabling paging), the new slots are prepared
 *    again, and if that second allocation fails the old slots are published
 *    again: the layout is as before, the generation advanced by two swaps.
 *  - Dirty bits: when a slot with a dirty bitmap (dirty logging without the
 *    ring) is deleted or replaced, the bits it holds at the commit point are
 *    ORed into every slot created by the same batch that covers the same
 *    guest pages with dirty logging on, and, if the op gives @dirty_bitmap,
 *    copied there (one bit per page of the removed slot, like
 *    KVM_GET_DIRTY_LOG, rounded up to 64 bits). No dirty page is lost.
 *  - One address space per batch (x86: 0 normal, 1 SMM): each address space
 *    is published by its own pointer in KVM; a batch naming two is refused
 *    (EINVAL) rather than published non-atomically.
 *  - At most one op per slot id per batch; at most KVMAS_MAX_BATCH_OPS ops
 *    (EMSGSIZE beyond).
 *  - Serialisation: a batch holds the VM's slots_lock from validation to the
 *    end, like every stock memslot and dirty-log ioctl.
 *  - guest_memfd slots are neither created nor touched (EOPNOTSUPP).
 *
 * Differences from stock KVM (deliberate; each is checked by the oracle):
 *  D1 Typed ops. CREATE of an id in use is EEXIST (stock's call would modify
 *     that slot); MOVE, SET_FLAGS and REPLACE of an id not in use are ENOENT
 *     (stock's call would create one). Both only once the op's fields passed
 *     stock's checks, which come first. DELETE of an id not in use is EINVAL,
 *     as in stock.
 *  D2 Fields an op does not use must be 0 (EINVAL): a DELETE carries no gpa,
 *     size, hva or flags, a SET_FLAGS no gpa, size or hva (stock checks and
 *     then ignores what a delete carries).
 *  D3 Final-layout validation: a batch is checked as one step, so it may do
 *     what no stock order can (two slots exchange their ranges), and its ops
 *     may come in any order. Where the stock sequence of the ops succeeds,
 *     the batch succeeds with the same layout (REPLACE = DELETE + CREATE of
 *     the same id); where the batch fails, nothing changed.
 *  D4 One address space per batch, one op per slot id, at most
 *     KVMAS_MAX_BATCH_OPS ops (EINVAL, EINVAL, EMSGSIZE).
 *  D5 Generation: KVM advances a memslot generation by the number of
 *     address spaces per swap. Stock takes one swap per CREATE or flags
 *     change and two per DELETE or MOVE; a batch takes @grace_periods swaps
 *     (1, or 2 on the invalidate route when it removes something) for all of
 *     its ops, and none if every op is a no-op.
 *  D6 Dirty bits of removed slots are handed over (above); stock drops them.
 *  D7 guest_memfd slots: EOPNOTSUPP.
 *  D8 Errors leave KVM's generation untouched (with the exception above),
 *     where a stock DELETE or MOVE whose prepare fails has already published
 *     and withdrawn an INVALID slot (two swaps).
 */
#define KVMAS_MAX_BATCH_OPS 512

enum kvmas_batch_op_kind {
	KVMAS_OP_CREATE = 1,	/* new slot id: gpa, size, hva, flags */
	KVMAS_OP_DELETE = 2,	/* existing slot id */
	KVMAS_OP_MOVE = 3,	/* existing slot to a new gpa; same size/hva/flags */
	KVMAS_OP_SET_FLAGS = 4,	/* toggle KVM_MEM_LOG_DIRTY_PAGES only */
	KVMAS_OP_REPLACE = 5,	/* same id, any new gpa/size/hva/flags */
};

/*
 * One op. @slot is the slot id (without the address-space bits), @as_id the
 * address space. @flags are KVM_MEM_LOG_DIRTY_PAGES / KVM_MEM_READONLY.
 * Fields an op does not use must be 0.
 */
struct kvmas_batch_op {
	__u32 op;
	__u32 slot;
	__u32 as_id;
	__u32 flags;
	__u64 guest_phys_addr;
	__u64 memory_size;
	__u64 userspace_addr;
	__u64 dirty_bitmap;	/* DELETE/REPLACE: user buffer for the old slot's bits, or 0 */
	__u64 __reserved[2];
};

/* kvmas_commit_batch.flags */
#define KVMAS_BATCH_VALIDATE_ONLY (1U << 0)	/* dry run: validate, change nothing */
#define KVMAS_BATCH_ROUTE_INVALIDATE (1U << 1)	/* use KVM's INVALID protocol even
						 * where the fence route is allowed */
/*
 * KVMAS_BATCH_ZAP_RANGE: unmap only the ranges the batch removes, not the
 * whole VM. x86 KVM zaps every mapping of a default VM on any slot removal
 * (6.1 always; 6.12 while KVM_X86_QUIRK_SLOT_ZAP_ALL is enabled, the
 * default), so every vCPU refaults its whole working set after a change
 * far away from it. Upstream history: range-only zapping was merged
 * (4e103134b862, 5.1) and reverted (d012a06ab1d2) after a VFIO-assigned
 * GPU misbehaved in guests whose slots were deleted, a bug never found; 6.12
 * lets the VMM decide with the quirk (aa8d1f48d353). This flag is that
 * decision, per batch, on kernels without the quirk too: a VMM that set it
 * gets what 6.12 gives with the quirk disabled. Taken on the fence route
 * only (KVMAS_ROUTE_FENCE): a VM with shadow pages (KVMAS_ROUTE_INVALIDATE)
 * gets KVM's own flush; so does a 6.1 VM with an external page-track user
 * (KVMGT), whose per-slot notification needs KVM's flush. arm64 always
 * unmaps per range: the flag changes nothing there. EINVAL with
 * KVMAS_BATCH_ROUTE_INVALIDATE; EOPNOTSUPP where KVMAS_CAP_ZAP_RANGE is 0.
 */
#define KVMAS_BATCH_ZAP_RANGE (1U << 2)

/* kvmas_commit_batch.route */
#define KVMAS_ROUTE_NONE	0	/* no route chosen: the batch failed validation,
					 * or every op is a no-op */
#define KVMAS_ROUTE_INVALIDATE	1	/* INVALID stand-ins, then the layout */
#define KVMAS_ROUTE_FENCE	2	/* fence + unmap, one swap */

/*
 * KVMAS_COMMIT_BATCH
 * @size:          sizeof(struct kvmas_commit_batch)
 * @flags:         KVMAS_BATCH_*
 * @nr_ops:        number of ops, 1..KVMAS_MAX_BATCH_OPS
 * @op_size:       sizeof(struct kvmas_batch_op) as the caller knows it
 *                 (at least the first version's 64 bytes)
 * @ops:           user pointer to the ops
 * @error_index:   out: the op that made the batch fail, or -1
 * @grace_periods: out: SRCU grace periods the commit waited for
 * @dirty_pages:   out: dirty bits found in removed slots (handed back)
 * @route:         out: KVMAS_ROUTE_* the commit took, or would have taken
 *                 (dry run, or an error from KVM's prepare step: nothing
 *                 was published then, whatever the route)
 * @__reserved32, @__reserved: must be 0
 * Errors: ENOTCONN/EPERM/EIO as every VM command; EOPNOTSUPP if the
 * capability is absent; EINVAL, EEXIST (overlap in the final layout, or
 * CREATE of an id in use), ENOENT (MOVE/SET_FLAGS/REPLACE of an id not in
 * use), EOPNOTSUPP (guest_memfd; KVMAS_BATCH_ROUTE_INVALIDATE where
 * KVMAS_CAP_ROUTE_INVALIDATE is 0; KVMAS_BATCH_ZAP_RANGE where
 * KVMAS_CAP_ZAP_RANGE is 0), EMSGSIZE (too many ops),
 * EFAULT (this struct, @ops or a dirty_bitmap buffer: checked before
 * anything changes), ENOMEM or an arch error from preparing a slot
 * (nothing changed). With KVMAS_BATCH_VALIDATE_ONLY the hand-off buffers are
 * checked but not written.
 */
struct kvmas_commit_batch {
	__u32 size;
	__u32 flags;
	__u32 nr_ops;
	__u32 op_size;
	__u64 ops;
	__s32 error_index;
	__u32 grace_periods;
	__u64 dirty_pages;
	__u32 route;
	__u32 __reserved32;
	__u64 __reserved;
};
#define KVMAS_COMMIT_BATCH _IO(KVMAS_TYPE, KVMAS_CMD_COMMIT_BATCH)

/*
 * Per-vCPU ordered dirty-ring reset (KVMAS_CAP_RING_RESET)
 * --------------------------------------------------------
 * The VMM side of KVM's dirty ring (Documentation/virt/kvm/api.rst,
 * KVM_CAP_DIRTY_LOG_RING) stays as KVM defines it: for each vCPU, starting at
 * its fetch index (a free-running u32 counting entries harvested since the
 * vCPU was created), load-acquire an entry's flags, stop at the first without
 * KVM_DIRTY_GFN_F_DIRTY, read slot/offset, then store-release
 * KVM_DIRTY_GFN_F_RESET into flags with one single-copy-atomic 32-bit store.
 * libkvmas does exactly this (kvmas_ring_harvest()).
 *
 * KVMAS_RESET_RING replaces the global KVM_RESET_DIRTY_RINGS for the vCPUs it
 * names. For each one, in order:
 *  - it walks the ring from KVM's reset index towards @boundary (the caller's
 *    fetch index: the entries it claims to have collected), never past what
 *    KVM has pushed (the producer index) and never more than one lap;
 *  - each entry's flags are load-acquired (pairing with the VMM's
 *    store-release of RESET, so the slot/offset read next are the ones the
 *    VMM saw); the walk stops at the first entry not marked collected;
 *  - each reset entry is released back to KVM (flags store-released to 0)
 *    and its page write-protected again (or its dirty bit cleared) exactly as
 *    KVM's own reset does, so a page written again is pushed again;
 *  - entries naming a slot or offset that does not exist (a slot deleted
 *    since the push, or garbage) are released without touching any page and
 *    counted in @invalid, as stock does; with KVMAS_RING_RESET_STOP_INVALID
 *    the walk stops in front of such an entry instead, leaving it in place.
 * After all vCPUs, one TLB flush for the VM before the call returns, if
 * the call re-protected a page or finds that another resetter (stock
 * KVM_RESET_DIRTY_RINGS, another thread or session) reset entries of a ring
 * since this session's last flush for it (that resetter's own flush may
 * still be pending): page contents read after the call are current.
 *
 * Work per call is bounded (one lap per vCPU, and @max_entries if set); the
 * walk reschedules between groups of entries and stops early, with a partial
 * result and return value 0, when a signal is pending. It never loops on
 * flags another thread keeps rewriting.
 *
 * Locking: each ring has its own lock. With KVMAS_CAP_RING_RESET ==
 * KVMAS_RING_RESET_PARALLEL, stock KVM_RESET_DIRTY_RINGS (replaced by the
 * module's hardened version, KVMAS_CAP_HARDENED_RING_RESET) takes the same
 * per-ring locks, so stock resets, ours, and ours on other vCPUs from other
 * threads interleave correctly while only resets of the same ring serialise.
 * Memslot lookups run under kvm->srcu, so batch commits and stock memslot
 * ioctls are neither blocked nor blocking. With KVMAS_RING_RESET_SERIAL the
 * call holds slots_lock instead.
 *
 * Stop reasons, per vCPU. The walk stops at the first index where one
 * applies, and @reset_index is that index. When several apply at that
 * index, the one reported is the first in this order of precedence:
 *   1. BOUNDARY       the caller's boundary is reached (with
 *                     KVMAS_RING_RESET_ALL_COLLECTED there is no boundary and
 *                     KVM's producer index, as read when the walk starts, is
 *                     it: reaching it is BOUNDARY, and PRODUCER is never
 *                     reported);
 *   2. PRODUCER       KVM's producer index is reached before the boundary;
 *   3. BOUND          one lap, or the call's @max_entries, is used up;
 *   4. SIGNAL         a signal is pending;
 *   5. NOT_COLLECTED  the entry there lacks KVM_DIRTY_GFN_F_RESET;
 *   6. INVALID        the entry names no guest page (only with
 *                     KVMAS_RING_RESET_STOP_INVALID).
 * So a boundary ahead of the producer gives PRODUCER only if every entry up
 * to the producer was collected, and NOT_COLLECTED at the first one that was
 * not. vCPUs after the one whose walk ended the call (a signal, or
 * @max_entries used up) are not walked: they report that same reason (SIGNAL
 * or BOUND) with @reset 0.
 */
enum kvmas_ring_stop {
	KVMAS_RING_STOP_NONE = 0,		/* never reported (0 = not set) */
	KVMAS_RING_STOP_BOUNDARY = 1,		/* reached @boundary (or it lies behind
						 * the reset index: nothing to do) */
	KVMAS_RING_STOP_NOT_COLLECTED = 2,	/* next entry lacks KVM_DIRTY_GFN_F_RESET */
	KVMAS_RING_STOP_INVALID = 3,		/* next entry names no guest page
						 * (only with ..._STOP_INVALID) */
	KVMAS_RING_STOP_PRODUCER = 4,		/* reached KVM's producer index before
						 * @boundary: the boundary claims entries
						 * KVM has not pushed (yet) */
	KVMAS_RING_STOP_BOUND = 5,		/* one lap, or the call's @max_entries */
	KVMAS_RING_STOP_SIGNAL = 6,		/* a signal is pending: call again */
	KVMAS_RING_STOP_NO_RING = 7,		/* the VM has no dirty ring (ENXIO) */
};

/* Values of KVMAS_CHECK_EXTENSION(KVMAS_CAP_RING_RESET). */
#define KVMAS_RING_RESET_SERIAL		1
#define KVMAS_RING_RESET_PARALLEL	2

/* Most vCPUs one call may name. */
#define KVMAS_MAX_RING_RESET_VCPUS 4096

/*
 * One vCPU of a KVMAS_RESET_RING call.
 * @vcpu_id:     in: the id given to KVM_CREATE_VCPU
 * @boundary:    in: the caller's fetch index for this ring (free-running,
 *               u32 arithmetic like KVM's own indices); ignored with
 *               KVMAS_RING_RESET_ALL_COLLECTED
 * @reset:       out: entries reset (including @invalid ones)
 * @reset_index: out: KVM's reset index after the call; the walk stopped at
 *               the entry with this index
 * @stop_reason: out: enum kvmas_ring_stop
 * @invalid:     out: entries reset that named no guest page
 */
struct kvmas_ring_vcpu {
	__u32 vcpu_id;
	__u32 boundary;
	__u32 reset;
	__u32 reset_index;
	__u32 stop_reason;
	__u32 invalid;
};

/* kvmas_reset_ring.flags */
#define KVMAS_RING_RESET_STOP_INVALID	(1U << 0) /* stop in front of entries naming no page */
#define KVMAS_RING_RESET_ALL_COLLECTED	(1U << 1) /* no boundary: every collected entry
						   * (stock's rule, per vCPU) */

/*
 * KVMAS_RESET_RING
 * @size:        sizeof(struct kvmas_reset_ring)
 * @flags:       KVMAS_RING_RESET_*
 * @nr_vcpus:    entries in @vcpus, 1..KVMAS_MAX_RING_RESET_VCPUS (a vCPU may
 *               appear more than once; it is walked again)
 * @vcpu_size:   sizeof(struct kvmas_ring_vcpu) as the caller knows it (at
 *               least the first version's 24 bytes)
 * @vcpus:       user pointer to the entries; outputs are written back
 * @max_entries: in: most entries the whole call may reset, 0 = no limit
 *               beyond one lap per vCPU
 * @total_reset: out: sum of the entries' @reset
 * @error_index: out: the entry that made the call fail, or -1
 * @tlb_flushes: out: 1 if the call flushed the VM's TLBs, else 0 (a
 *               session's first call on a ring always flushes)
 * @__reserved32, @__reserved: must be 0
 *
 * Every vCPU id is checked before any ring is touched. Errors: ENOTCONN/
 * EPERM/EIO as every VM command; EOPNOTSUPP if the capability is absent;
 * ENXIO if the VM has no dirty ring (every entry reports NO_RING); ENOENT if
 * a vCPU id does not exist (@error_index names it); EINVAL (flags, reserved
 * fields, sizes, @nr_vcpus 0); EMSGSIZE (too many vCPUs); EFAULT (@vcpus, or
 * this struct, not readable and writable: checked before any ring changes).
 * A pending signal is not an error: see KVMAS_RING_STOP_SIGNAL.
 */
struct kvmas_reset_ring {
	__u32 size;
	__u32 flags;
	__u32 nr_vcpus;
	__u32 vcpu_size;
	__u64 vcpus;
	__u32 max_entries;
	__u32 total_reset;
	__s32 error_index;
	__u32 tlb_flushes;
	__u32 __reserved32;
	__u32 __reserved;
};
#define KVMAS_RESET_RING _IO(KVMAS_TYPE, KVMAS_CMD_RESET_RING)

/*
 * Generic netlink family: statistics and events for operators (see
 * tools/kvmas). Not needed by VMMs.
 *
 * KVMAS_NL_CMD_GET_STATS (doit): replies with the KVMAS_NL_A_STAT_* counters
 *   (module-wide, since the module was loaded).
 * KVMAS_NL_CMD_GET_SESSIONS (dumpit): one message per session with
 *   KVMAS_NL_A_SESSION_* attributes, and KVMAS_NL_A_VM_ID if attached.
 * KVMAS_NL_CMD_GET_VMS (dumpit): one message per VM with its counters (see
 *   "Per-VM counters" below). Optional filter, at most one of:
 *   KVMAS_NL_A_SESSION_VM_STATS_ID (the VMs KVM names so; one process may
 *   own several), KVMAS_NL_A_SESSION_ID (the VM that session is attached
 *   to), KVMAS_NL_A_VM_ID. A filter that names no VM when the dump starts
 *   ends it before any message with ENOENT in NLMSG_DONE, which carries an
 *   extended-ack message (NETLINK_EXT_ACK); more than one filter, EINVAL
 *   the same way.
 * Multicast group KVMAS_GENL_MCGRP_EVENTS: KVMAS_NL_CMD_EVENT messages with
 *   KVMAS_NL_A_EVENT_TYPE and the session attributes of the event's session
 *   (see enum kvmas_nl_event for what each type adds).
 * Reading is allowed to everyone who can open a generic netlink socket;
 * nothing in the family changes state.
 *
 * Dumps and concurrent change: sessions and VMs are dumped in the order of
 * their ids (increasing), and a dump that continues over several messages
 * resumes after the last id it sent. So an entry is never sent twice, an
 * entry that exists for the whole dump is always sent, and each message is
 * filled from one entry at one time (never torn). If the set of sessions
 * (or VMs) changed between two parts of one dump, the messages after the
 * change, or the final NLMSG_DONE, carry NLM_F_DUMP_INTR: the listing is not
 * one snapshot, and a reader that needs one dumps again.
 *
 * Per-VM counters (KVMAS_NL_CMD_GET_VMS)
 * --------------------------------------
 * A VM here is one struct kvm with at least one session attached. Every
 * session attached to the same VM counts into the same counters; the VM
 * and its counters appear at the first attach and go away when its last
 * attached session is released. KVMAS_NL_A_VM_ID (unique per module load,
 * like session ids) tells a VM that came back (a new attach after the last
 * session went) from one that stayed. KVM's own name for the VM
 * (KVMAS_NL_A_SESSION_VM_STATS_ID, "kvm-<id of the thread that created it>",
 * the process id when its main thread did) is the same for every VM that
 * thread created. Each counter is read atomically on its own;
 * counters of a VM that is working while it is read may be one command
 * apart from each other.
 *
 * Commits (KVMAS_COMMIT_BATCH on an attached session):
 *  - a batch is counted once the command returns: success without
 *    KVMAS_BATCH_VALIDATE_ONLY is a commit (BATCHES, BATCH_OPS, GRACE_PERIODS,
 *    DIRTY_PAGES, the route it took, and its latency); a dry run counts in
 *    DRY_RUNS or DRY_RUNS_REJECTED only; any other failure is a rejected
 *    batch, counted by errno in the KVMAS_NL_A_VM_REJECTED nest (types:
 *    enum kvmas_nl_reject) and announced by a KVMAS_NL_EVENT_BATCH_REJECTED
 *    event. A struct the ioctl could not read at all is only an ioctl error
 *    (KVMAS_NL_A_STAT_IOCTL_ERRORS).
 *  - latency: from entry into the command to its return (ktime_get_ns, so it
 *    includes waiting for the VM's slots_lock), in a log2 histogram of
 *    microseconds, the KVMAS_NL_A_VM_LATENCY nest: attribute type b (1 ..
 *    KVMAS_NL_LATENCY_BUCKETS), a u64, counts the commits that took
 *    under 1 us for b = 1, and [2^(b-2), 2^(b-1)) us for b >= 2; the last
 *    bucket has no upper bound. The buckets add up to BATCHES.
 * Ring resets (KVMAS_RESET_RING):
 *  - RING_CALLS counts calls that succeeded, RING_ENTRIES and RING_INVALID
 *    the entries they reset (@total_reset) and, of those, the ones naming
 *    no page; the KVMAS_NL_A_VM_RING_STOPS nest counts each vCPU entry of
 *    those calls by its @stop_reason (attribute type = enum kvmas_ring_stop
 *    value), and of calls that failed with ENXIO (KVMAS_RING_STOP_NO_RING).
 *  - a call in which a vCPU's walk stopped at KVM's producer index
 *    (PRODUCER) or in front of an invalid entry (INVALID), or reset entries
 *    naming no page, is announced by one KVMAS_NL_EVENT_RING_ANOMALY event.
 * The stock KVM_RESET_DIRTY_RINGS is not counted here (it has no session).
 *
 * Events other than attach/detach are rate-limited, per VM and for the
 * module as a whole (module parameters events_burst, events per
 * events_interval_ms per VM, and ten times that module-wide), so that a VMM
 * cannot flood the listeners. They are generated only while someone
 * listens; EVENTS_SENT and EVENTS_SUPPRESSED count them, and every event
 * carries KVMAS_NL_A_EVENT_SUPPRESSED, its VM's suppressed count so far.
 */
#define KVMAS_GENL_NAME "kvmas" /* GENL_NAMSIZ is 16 with the NUL */
#define KVMAS_GENL_VERSION 1
#define KVMAS_GENL_MCGRP_EVENTS "events"

enum kvmas_nl_cmd {
	KVMAS_NL_CMD_UNSPEC,
	KVMAS_NL_CMD_GET_STATS,
	KVMAS_NL_CMD_GET_SESSIONS,
	KVMAS_NL_CMD_EVENT,
	KVMAS_NL_CMD_GET_VMS,
	__KVMAS_NL_CMD_MAX,
};
#define KVMAS_NL_CMD_MAX (__KVMAS_NL_CMD_MAX - 1)

enum kvmas_nl_event {
	KVMAS_NL_EVENT_ATTACH = 1,
	KVMAS_NL_EVENT_DETACH = 2,
	/*
	 * A KVMAS_COMMIT_BATCH (not a dry run) failed: KVMAS_NL_A_VM_ID,
	 * KVMAS_NL_A_EVENT_ERRNO, _ERROR_INDEX (the batch's @error_index),
	 * _NR_OPS, _BATCH_FLAGS, _SUPPRESSED.
	 */
	KVMAS_NL_EVENT_BATCH_REJECTED = 3,
	/*
	 * A KVMAS_RESET_RING call met a ring anomaly (see "Per-VM counters"):
	 * KVMAS_NL_A_VM_ID, KVMAS_NL_A_EVENT_VCPU_ID and _STOP_REASON of the
	 * first vCPU entry with one, _RING_VCPUS (entries with one),
	 * _RING_INVALID (entries naming no page the call reset), _SUPPRESSED.
	 */
	KVMAS_NL_EVENT_RING_ANOMALY = 4,
};

/* Types in the KVMAS_NL_A_VM_REJECTED nest: rejected batches by errno. */
enum kvmas_nl_reject {
	KVMAS_NL_REJECT_EINVAL = 1,
	KVMAS_NL_REJECT_EEXIST,
	KVMAS_NL_REJECT_ENOENT,
	KVMAS_NL_REJECT_ENOMEM,
	KVMAS_NL_REJECT_EFAULT,
	KVMAS_NL_REJECT_EOPNOTSUPP,
	KVMAS_NL_REJECT_EMSGSIZE,
	KVMAS_NL_REJECT_EINTR,
	KVMAS_NL_REJECT_OTHER,			/* any other errno */
	__KVMAS_NL_REJECT_MAX,
};
#define KVMAS_NL_REJECT_MAX (__KVMAS_NL_REJECT_MAX - 1)

/* Buckets of the commit-latency histogram (types 1..N of its nest). */
#define KVMAS_NL_LATENCY_BUCKETS 24

enum kvmas_nl_attr {
	KVMAS_NL_A_UNSPEC,
	KVMAS_NL_A_PAD,
	KVMAS_NL_A_STAT_SESSIONS_OPEN,		/* u32 */
	KVMAS_NL_A_STAT_SESSIONS_TOTAL,		/* u64 */
	KVMAS_NL_A_STAT_ATTACHED,		/* u32: sessions attached now */
	KVMAS_NL_A_STAT_ATTACH_OK,		/* u64 */
	KVMAS_NL_A_STAT_ATTACH_FAILED,		/* u64 */
	KVMAS_NL_A_STAT_IOCTL_ERRORS,		/* u64: ioctls that failed */
	KVMAS_NL_A_SESSION_ID,			/* u64: unique per module load */
	KVMAS_NL_A_SESSION_PID,			/* u32: tgid that opened it */
	KVMAS_NL_A_SESSION_VM_STATS_ID,		/* string: KVM's "kvm-<pid>" id */
	KVMAS_NL_A_SESSION_ATTACHED,		/* flag */
	KVMAS_NL_A_EVENT_TYPE,			/* u32: enum kvmas_nl_event */
	KVMAS_NL_A_STAT_BATCHES,		/* u64: batches committed */
	KVMAS_NL_A_STAT_BATCH_OPS,		/* u64: ops in those batches */
	KVMAS_NL_A_STAT_RING_RESETS,		/* u64: KVMAS_RESET_RING calls that reset */
	KVMAS_NL_A_STAT_RING_ENTRIES,		/* u64: entries they reset */
	/* Per VM (KVMAS_NL_CMD_GET_VMS), see "Per-VM counters" above. */
	KVMAS_NL_A_VM_ID,			/* u64: unique per module load */
	KVMAS_NL_A_VM_SESSIONS,			/* u32: sessions attached now */
	KVMAS_NL_A_VM_BATCHES,			/* u64: batches committed */
	KVMAS_NL_A_VM_BATCH_OPS,		/* u64: ops in those batches */
	KVMAS_NL_A_VM_GRACE_PERIODS,		/* u64: their @grace_periods */
	KVMAS_NL_A_VM_ROUTE_FENCE,		/* u64: commits on KVMAS_ROUTE_FENCE */
	KVMAS_NL_A_VM_ROUTE_INVALIDATE,		/* u64: ... KVMAS_ROUTE_INVALIDATE */
	KVMAS_NL_A_VM_ROUTE_NONE,		/* u64: ... of no-ops only */
	KVMAS_NL_A_VM_DIRTY_PAGES,		/* u64: their @dirty_pages */
	KVMAS_NL_A_VM_DRY_RUNS,			/* u64: VALIDATE_ONLY calls that passed */
	KVMAS_NL_A_VM_DRY_RUNS_REJECTED,	/* u64: ... that failed */
	KVMAS_NL_A_VM_REJECTED,			/* nest: u64 per enum kvmas_nl_reject */
	KVMAS_NL_A_VM_LATENCY,			/* nest: u64 per bucket 1..N */
	KVMAS_NL_A_VM_LATENCY_SUM_NS,		/* u64: total commit latency */
	KVMAS_NL_A_VM_LATENCY_MAX_NS,		/* u64: longest commit */
	KVMAS_NL_A_VM_RING_CALLS,		/* u64: KVMAS_RESET_RING calls that succeeded */
	KVMAS_NL_A_VM_RING_ENTRIES,		/* u64: entries they reset */
	KVMAS_NL_A_VM_RING_INVALID,		/* u64: ... that named no page */
	KVMAS_NL_A_VM_RING_STOPS,		/* nest: u64 per enum kvmas_ring_stop */
	KVMAS_NL_A_VM_RING_TLB_FLUSHES,		/* u64: their @tlb_flushes */
	KVMAS_NL_A_VM_EVENTS_SENT,		/* u64: rate-limited events multicast */
	KVMAS_NL_A_VM_EVENTS_SUPPRESSED,	/* u64: ... dropped by the limit */
	/* Event details (KVMAS_NL_CMD_EVENT), see enum kvmas_nl_event. */
	KVMAS_NL_A_EVENT_ERRNO,			/* u32: positive errno */
	KVMAS_NL_A_EVENT_ERROR_INDEX,		/* s32: the batch's @error_index */
	KVMAS_NL_A_EVENT_NR_OPS,		/* u32: the batch's @nr_ops */
	KVMAS_NL_A_EVENT_BATCH_FLAGS,		/* u32: the batch's @flags */
	KVMAS_NL_A_EVENT_VCPU_ID,		/* u32 */
	KVMAS_NL_A_EVENT_STOP_REASON,		/* u32: enum kvmas_ring_stop */
	KVMAS_NL_A_EVENT_RING_VCPUS,		/* u32 */
	KVMAS_NL_A_EVENT_RING_INVALID,		/* u32 */
	KVMAS_NL_A_EVENT_SUPPRESSED,		/* u64: the VM's EVENTS_SUPPRESSED */
	__KVMAS_NL_A_MAX,
};
#define KVMAS_NL_A_MAX (__KVMAS_NL_A_MAX - 1)

#endif /* _UAPI_LINUX_KVM_ATOMIC_SLOTS_H */
