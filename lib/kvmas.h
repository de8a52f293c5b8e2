/* SPDX-License-Identifier: (GPL-2.0 WITH Linux-syscall-note) OR MIT */
/*
 * libkvmas: userspace shim for /dev/kvm-atomic-slots.
 *
 * Thin, allocation-light wrappers around the ioctls of
 * <linux/kvm_atomic_slots.h>. Every function that can fail returns 0 (or a
 * documented non-negative value) on success and a negative errno on failure;
 * nothing is ever printed. Turn an error into a sentence for the user with
 * kvmas_error_string().
 *
 * Structs passed to the kernel are zeroed and their @size set to the
 * sizeof() this library was built with, so a VMM built against an older
 * header keeps working on newer modules and vice versa (see the uapi header).
 *
 * An ioctl interrupted by a signal before the module did anything (EINTR) is
 * restarted: every command here is either read-only or all-or-nothing.
 *
 * Environment:
 *   KVMAS_DEVICE  path of the device node to open instead of
 *                 KVMAS_DEVICE_PATH (for tests and unusual /dev layouts).
 *                 Ignored when empty and in set-uid/set-gid programs.
 *
 * A struct kvmas is not locked internally: share one between threads only if
 * the caller serialises kvmas_close() against everything else. Concurrent
 * ioctls on one session are fine as far as the library is concerned.
 */
#ifndef KVMAS_H
#define KVMAS_H

#include <stddef.h>
#include <linux/kvm.h>
#include <linux/kvm_atomic_slots.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifdef __GNUC__
#define KVMAS_API __attribute__((visibility("default")))
#else
#define KVMAS_API
#endif

/*
 * Pseudo command for kvmas_error_string(): errors of kvmas_open(), which is
 * not an ioctl. Chosen outside both the KVMAS_CMD_* space and the
 * KVMAS_TYPE ioctl numbers.
 */
#define KVMAS_OP_OPEN 0x1000U

/* Upper bound on GET_LAYOUT attempts in kvmas_get_layout(). */
#define KVMAS_LAYOUT_MAX_TRIES 8

struct kvmas;

/*
 * kvmas_open() - open a session on the device.
 * @out: receives the session; untouched on failure.
 *
 * Opens KVMAS_DEVICE_PATH (or $KVMAS_DEVICE) O_RDWR|O_CLOEXEC and checks
 * that KVMAS_GET_API_VERSION equals the KVMAS_API_VERSION this library was
 * built with.
 *
 * Return: 0, or -errno from open() (-ENOENT: no device node, module not
 * loaded), -ENOTTY if the node does not answer the protocol (not our
 * device), -EPROTO if the module speaks another API version, -ENOMEM.
 */
KVMAS_API int kvmas_open(struct kvmas **out);

/*
 * kvmas_close() - close the session and free @kv. NULL is a no-op.
 * Closing releases the session's reference on the attached VM.
 */
KVMAS_API void kvmas_close(struct kvmas *kv);

/*
 * kvmas_fd() - the session's file descriptor, for poll() or raw ioctls.
 * It stays owned by @kv: do not close it.
 */
KVMAS_API int kvmas_fd(const struct kvmas *kv);

/* kvmas_api_version() - the API version the module reported at open. */
KVMAS_API int kvmas_api_version(const struct kvmas *kv);

/*
 * kvmas_device_path() - the device path kvmas_open() uses: $KVMAS_DEVICE if
 * set (and honoured, see above), else KVMAS_DEVICE_PATH. For messages.
 */
KVMAS_API const char *kvmas_device_path(void);

/*
 * kvmas_check_extension() - KVMAS_CHECK_EXTENSION.
 * @cap: a KVMAS_CAP_* number; unknown numbers are valid and answer 0.
 *
 * Return: the capability's value (0 = absent, >0 = present or its
 * documented value), or a negative errno.
 */
KVMAS_API int kvmas_check_extension(struct kvmas *kv, unsigned int cap);

/*
 * kvmas_cap_name() - short lower-case name of a KVMAS_CAP_* ("batch_commit"),
 * or NULL if this library does not know @cap.
 */
KVMAS_API const char *kvmas_cap_name(unsigned int cap);

/*
 * kvmas_get_caps() - KVMAS_GET_CAPS into @caps (fully overwritten).
 * Fields a smaller (older) module does not know read as 0.
 *
 * Return: 0 or a negative errno.
 */
KVMAS_API int kvmas_get_caps(struct kvmas *kv, struct kvmas_caps *caps);

/*
 * kvmas_attach_vm() - KVMAS_ATTACH_VM: attach the session to a VM.
 * @vm_fd: fd returned by KVM_CREATE_VM, owned by the caller; the session
 *         holds its own VM reference, so @vm_fd may be closed afterwards.
 *
 * Return: 0, or -EBADF (not an fd), -EINVAL (not a KVM VM fd), -EPERM (VM
 * of another process), -EIO (VM dead), -EBUSY (already attached), -ENODEV
 * (KVM going away).
 */
KVMAS_API int kvmas_attach_vm(struct kvmas *kv, int vm_fd);

/*
 * kvmas_get_vm_info() - KVMAS_GET_VM_INFO into @info (fully overwritten).
 *
 * Return: 0, or -ENOTCONN (not attached), -EPERM, -EIO, other -errno.
 */
KVMAS_API int kvmas_get_vm_info(struct kvmas *kv, struct kvmas_vm_info *info);

/*
 * kvmas_get_layout() - KVMAS_GET_LAYOUT into a buffer allocated here.
 * @flags:      KVMAS_LAYOUT_*
 * @as_id:      address space (0 with KVMAS_LAYOUT_ALL_AS)
 * @slots:      out: array of *@nr entries; free with kvmas_free(). Non-NULL
 *              on success even when *@nr is 0.
 * @nr:         out: number of entries
 * @generation: out, may be NULL: memslot generation per address space, of
 *              the same snapshot as the entries
 *
 * The buffer is sized from the count the module reports with E2BIG. Since
 * slots may be added between two calls, this retries up to
 * KVMAS_LAYOUT_MAX_TRIES times with some headroom. Outputs are written only
 * on success.
 *
 * Return: 0, or -ENOTCONN, -EPERM, -EIO, -EINVAL (bad flags/as_id),
 * -ENOMEM, -EAGAIN (the layout kept growing; retry later), -EPROTO (the
 * module answered inconsistently), other -errno.
 */
KVMAS_API int kvmas_get_layout(struct kvmas *kv, unsigned int flags,
			       unsigned int as_id, struct kvmas_slot **slots,
			       unsigned int *nr,
			       __u64 generation[KVMAS_MAX_AS]);

/* kvmas_free() - free memory returned by libkvmas. NULL is a no-op. */
KVMAS_API void kvmas_free(void *p);

/*
 * kvmas_error_string() - a sentence explaining @err for command @cmd.
 * @cmd: KVMAS_CMD_* number, the ioctl request (KVMAS_ATTACH_VM, ...), or
 *       KVMAS_OP_OPEN for kvmas_open().
 * @err: errno, positive or negative (a libkvmas return value works as is).
 *
 * Errnos documented for @cmd get a specific sentence, the errnos every
 * command shares a generic one, anything else strerror()'s text.
 *
 * Return: a string that is never NULL and must not be freed.
 */
KVMAS_API const char *kvmas_error_string(unsigned int cmd, int err);

/*
 * Batches (KVMAS_COMMIT_BATCH): build a list of ops, commit it in one call.
 * A struct kvmas_batch is plain memory: reuse it with kvmas_batch_reset().
 * The add functions return 0, -ENOMEM, or -EMSGSIZE past
 * KVMAS_MAX_BATCH_OPS; they do not validate (the kernel does, against the
 * final layout). @dirty_bitmap, when not NULL, receives the removed slot's
 * dirty bits (one bit per page, rounded up to 64 bits).
 */
struct kvmas_batch;

struct kvmas_batch_result {
	int error_index; /* op that failed, or -1 */
	unsigned int grace_periods; /* SRCU grace periods the commit took */
	unsigned long long dirty_pages; /* dirty bits found in removed slots */
};

KVMAS_API struct kvmas_batch *kvmas_batch_new(void);
KVMAS_API void kvmas_batch_free(struct kvmas_batch *b);
KVMAS_API void kvmas_batch_reset(struct kvmas_batch *b);
KVMAS_API unsigned int kvmas_batch_len(const struct kvmas_batch *b);
KVMAS_API int kvmas_batch_create(struct kvmas_batch *b, unsigned int as_id,
				 unsigned int slot, unsigned int flags,
				 __u64 gpa, __u64 size, void *hva);
KVMAS_API int kvmas_batch_delete(struct kvmas_batch *b, unsigned int as_id,
				 unsigned int slot, void *dirty_bitmap);
KVMAS_API int kvmas_batch_move(struct kvmas_batch *b, unsigned int as_id,
			       unsigned int slot, unsigned int flags,
			       __u64 new_gpa, __u64 size, void *hva);
KVMAS_API int kvmas_batch_set_flags(struct kvmas_batch *b, unsigned int as_id,
				    unsigned int slot, unsigned int flags);
KVMAS_API int kvmas_batch_replace(struct kvmas_batch *b, unsigned int as_id,
				  unsigned int slot, unsigned int flags,
				  __u64 gpa, __u64 size, void *hva,
				  void *dirty_bitmap);
/*
 * kvmas_batch_commit() - commit @b (flags: KVMAS_BATCH_*). Returns 0 or a
 * negative errno; @res (may be NULL) names the failing op and reports the
 * grace periods and handed-back dirty pages.
 */
KVMAS_API int kvmas_batch_commit(struct kvmas *kv, const struct kvmas_batch *b,
				 unsigned int flags,
				 struct kvmas_batch_result *res);
/*
 * kvmas_batch_describe_error() - a readable sentence naming the failing op,
 * e.g. "op 2 (create slot 3 as 0 gpa 0x... size 0x... flags 0x0): overlaps
 * another slot in the final layout, ...". Returns what snprintf() returns.
 */
KVMAS_API int kvmas_batch_describe_error(const struct kvmas_batch *b, int err,
					 const struct kvmas_batch_result *res,
					 char *buf, size_t len);

/*
 * Dirty rings (KVM_CAP_DIRTY_LOG_RING): the VMM side done right on any
 * architecture, plus the per-vCPU reset of KVMAS_RESET_RING.
 *
 * Per vCPU the protocol is: harvest (kvmas_ring_harvest(): load-acquire each
 * entry's flags from the fetch index, stop at the first not DIRTY, collect
 * (slot, offset), store-release RESET with one 32-bit store), then reset
 * (kvmas_ring_reset(): the kernel resets up to the fetch index, re-protects
 * the pages and flushes TLBs), and only then read the collected pages'
 * contents. A write that lands after the reset is pushed again.
 *
 * Threads: one struct kvmas_ring belongs to one harvesting thread at a time.
 * One harvester per vCPU (each calls kvmas_ring_reset() for its own ring) or
 * one for all (one kvmas_ring_reset() call naming every ring) both work; the
 * per-vCPU form scales when KVMAS_CAP_RING_RESET is
 * KVMAS_RING_RESET_PARALLEL.
 */
struct kvmas_ring {
	/*
	 * in: sizeof(struct kvmas_ring) as the caller was compiled with; set
	 * it (KVMAS_RING_INIT) before any kvmas_ring_*() call. The library
	 * reads and writes no byte past it, so later versions can append
	 * fields; it refuses a size below KVMAS_RING_MIN_SIZE (-EINVAL).
	 */
	__u32 size;
	__u32 vcpu_id; /* as given to KVM_CREATE_VCPU */
	struct kvm_dirty_gfn *gfns; /* the vCPU's ring, mmap'd from its fd */
	__u32 entries; /* ring size in entries (a power of two) */
	__u32 fetch; /* free-running harvest index (KVM's numbering) */
	__u32 reset_index; /* KVM's reset index, as of the last reset */
	__u32 last_reset; /* entries the last reset released */
	__u32 stop_reason; /* enum kvmas_ring_stop of the last reset */
	__u32 invalid; /* entries of the last reset that named no page */
	size_t bytes; /* mapping length */
};

/* The first (2.0) layout: the smallest size the library accepts. */
#define KVMAS_RING_MIN_SIZE \
	(offsetof(struct kvmas_ring, bytes) + sizeof(size_t))
/* Initialiser for a ring the caller allocates: struct kvmas_ring r = KVMAS_RING_INIT; */
#define KVMAS_RING_INIT                           \
	{                                         \
		.size = sizeof(struct kvmas_ring) \
	}

/* kvmas_ring_enable() flags: also ..._WITH_BITMAP if KVM has it */
#define KVMAS_RING_ENABLE_WITH_BITMAP (1U << 0)

/* kvmas_ring_enable() return bits */
#define KVMAS_RING_MODE_ACQ_REL (1U << 0) /* KVM_CAP_DIRTY_LOG_RING_ACQ_REL */
#define KVMAS_RING_MODE_WITH_BITMAP (1U << 1) /* ..._WITH_BITMAP enabled */

/*
 * kvmas_ring_enable() - enable the dirty ring on a VM that has no vCPU yet.
 * @vm_fd:  the VM
 * @bytes:  ring size per vCPU in bytes (power of two; KVM's limits apply)
 * @flags:  KVMAS_RING_ENABLE_*
 *
 * Prefers KVM_CAP_DIRTY_LOG_RING_ACQ_REL (the only one arm64 offers; the
 * harvest here uses acquire/release either way). With WITH_BITMAP, also
 * enables KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP where KVM offers it (arm64
 * 6.2+): pages dirtied without a running vCPU then land in the slots'
 * bitmaps, which the VMM must fetch with KVM_GET_DIRTY_LOG after the final
 * ring harvest (kvmas_ring_get_bitmap()).
 *
 * Return: KVMAS_RING_MODE_* bits (>= 0) or -errno (-EOPNOTSUPP: no ring).
 */
KVMAS_API int kvmas_ring_enable(int vm_fd, __u32 bytes, unsigned int flags);

/*
 * The page offset of a vCPU's dirty ring in the vCPU fd's mmap: 64 on
 * every architecture that has a ring (x86; arm64 from Linux 6.2;
 * loongarch). Use this
 * rather than KVM_DIRTY_LOG_PAGE_OFFSET: headers older than an arch's ring
 * (bookworm's linux-libc-dev 6.1 on arm64) define that as 0, which maps
 * the kvm_run page instead of the ring.
 */
#define KVMAS_DIRTY_LOG_PAGE_OFFSET 64

/*
 * kvmas_ring_map() - map vCPU @vcpu_fd's ring into @r (every field after
 * @r->size zeroed first; @r->size must be set, see struct kvmas_ring).
 * @bytes: the VM's ring size in bytes; @vcpu_id: its KVM_CREATE_VCPU id.
 * The fetch index starts at 0: call this before the vCPU first runs.
 * Return: 0 or -errno from mmap().
 */
KVMAS_API int kvmas_ring_map(struct kvmas_ring *r, int vcpu_fd,
			     unsigned int vcpu_id, __u32 bytes);
/* kvmas_ring_unmap() - undo kvmas_ring_map(); safe on an unmapped ring. */
KVMAS_API void kvmas_ring_unmap(struct kvmas_ring *r);

/* Called once per harvested entry: slot is as_id << 16 | id, offset in pages. */
typedef void kvmas_ring_collect_fn(void *opaque, __u32 slot, __u64 offset);

/*
 * kvmas_ring_harvest() - collect up to @max entries (0: no limit beyond one
 * lap) from the fetch index, calling @fn for each, marking each collected.
 * Return: entries harvested.
 */
KVMAS_API __u32 kvmas_ring_harvest(struct kvmas_ring *r,
				   kvmas_ring_collect_fn *fn, void *opaque,
				   __u32 max);

/*
 * kvmas_ring_reset() - KVMAS_RESET_RING up to each ring's fetch index.
 * @rings: @n rings of the session's VM; each gets last_reset, reset_index,
 *         stop_reason and invalid updated
 * @flags: KVMAS_RING_RESET_* (ALL_COLLECTED is refused: use the fetch index)
 *
 * Retries by itself while a reset stops for a pending signal and other rings
 * still have work. Return: entries reset in total (>= 0), or -errno
 * (-EOPNOTSUPP without KVMAS_CAP_RING_RESET, -ENXIO without a ring).
 */
KVMAS_API long kvmas_ring_reset(struct kvmas *kv,
				struct kvmas_ring *const *rings, unsigned int n,
				unsigned int flags);

/*
 * kvmas_ring_drain() - for KVM_EXIT_DIRTY_RING_FULL on @r's vCPU, or before
 * a final pass: harvest and reset until the ring has nothing collected left
 * (or @rounds rounds, 0 = 4). Return: entries harvested, or -errno.
 */
KVMAS_API long kvmas_ring_drain(struct kvmas *kv, struct kvmas_ring *r,
				kvmas_ring_collect_fn *fn, void *opaque,
				unsigned int rounds);

/*
 * kvmas_ring_get_bitmap() - KVM_GET_DIRTY_LOG of slot (as_id << 16 | id)
 * into @bitmap, for VMs with KVMAS_RING_MODE_WITH_BITMAP (and bitmap VMs).
 * Return: 0 or -errno.
 */
KVMAS_API int kvmas_ring_get_bitmap(int vm_fd, __u32 slot, void *bitmap);

/*
 * kvmas_ring_stop_name() - "boundary", "not-collected", ... for an enum
 * kvmas_ring_stop value; "unknown" for others.
 */
KVMAS_API const char *kvmas_ring_stop_name(unsigned int reason);

#ifdef __cplusplus
}
#endif

#endif /* KVMAS_H */
