// SPDX-License-Identifier: (GPL-2.0 WITH Linux-syscall-note) OR MIT
/*
 * libkvmas: the VMM side of KVM's dirty ring, and KVMAS_RESET_RING.
 * See kvmas.h and Documentation/virt/kvm/api.rst (KVM_CAP_DIRTY_LOG_RING).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kvmas.h"

#ifndef KVM_CAP_DIRTY_LOG_RING_ACQ_REL
#define KVM_CAP_DIRTY_LOG_RING_ACQ_REL 223
#endif
#ifndef KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP
#define KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP 225
#endif

/* Fields a caller's ring has, by its size (none past @r->size is touched). */
static int kvmas_ring_ok(const struct kvmas_ring *r)
{
	return r && r->size >= KVMAS_RING_MIN_SIZE;
}

/* Zeroes everything after @r->size's own field, up to what both know. */
static void kvmas_ring_clear(struct kvmas_ring *r)
{
	size_t n = r->size < sizeof(*r) ? r->size : sizeof(*r);

	memset((char *)r + sizeof(r->size), 0, n - sizeof(r->size));
}

static int kvm_enable_cap(int vm_fd, __u32 cap, __u64 arg0)
{
	struct kvm_enable_cap c = { .cap = cap, .args = { arg0 } };

	return ioctl(vm_fd, KVM_ENABLE_CAP, &c) < 0 ? -errno : 0;
}

KVMAS_API int kvmas_ring_enable(int vm_fd, __u32 bytes, unsigned int flags)
{
	int mode = 0, r;

	if (flags & ~KVMAS_RING_ENABLE_WITH_BITMAP)
		return -EINVAL;
	if (ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_DIRTY_LOG_RING_ACQ_REL) >
	    0) {
		r = kvm_enable_cap(vm_fd, KVM_CAP_DIRTY_LOG_RING_ACQ_REL,
				   bytes);
		mode |= KVMAS_RING_MODE_ACQ_REL;
	} else if (ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_DIRTY_LOG_RING) >
		   0) {
		r = kvm_enable_cap(vm_fd, KVM_CAP_DIRTY_LOG_RING, bytes);
	} else {
		return -EOPNOTSUPP;
	}
	if (r)
		return r;
	if ((flags & KVMAS_RING_ENABLE_WITH_BITMAP) &&
	    ioctl(vm_fd, KVM_CHECK_EXTENSION,
		  KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP) > 0) {
		r = kvm_enable_cap(vm_fd, KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP,
				   1);
		if (r)
			return r;
		mode |= KVMAS_RING_MODE_WITH_BITMAP;
	}
	return mode;
}

KVMAS_API int kvmas_ring_map(struct kvmas_ring *r, int vcpu_fd,
			     unsigned int vcpu_id, __u32 bytes)
{
	long page = sysconf(_SC_PAGESIZE);
	void *p;

	if (!kvmas_ring_ok(r))
		return -EINVAL;
	kvmas_ring_clear(r);
	if (!bytes || (bytes & (bytes - 1)) ||
	    bytes < sizeof(struct kvm_dirty_gfn))
		return -EINVAL;
	/* KVM's own rule: shared, never executable. */
	p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu_fd,
		 (off_t)page * KVMAS_DIRTY_LOG_PAGE_OFFSET);
	if (p == MAP_FAILED)
		return -errno;
	r->gfns = p;
	r->bytes = bytes;
	r->entries = bytes / sizeof(struct kvm_dirty_gfn);
	r->vcpu_id = vcpu_id;
	return 0;
}

KVMAS_API void kvmas_ring_unmap(struct kvmas_ring *r)
{
	if (!kvmas_ring_ok(r))
		return;
	if (r->gfns)
		munmap(r->gfns, r->bytes);
	kvmas_ring_clear(r);
}

KVMAS_API __u32 kvmas_ring_harvest(struct kvmas_ring *r,
				   kvmas_ring_collect_fn *fn, void *opaque,
				   __u32 max)
{
	__u32 n = 0, lap;

	if (!kvmas_ring_ok(r))
		return 0;
	lap = r->entries;
	if (!max || max > lap)
		max = lap;
	while (n < max) {
		struct kvm_dirty_gfn *e = &r->gfns[r->fetch & (lap - 1)];
		/*
		 * Pairs with KVM's smp_wmb() before it sets DIRTY (and with
		 * the release of ACQ_REL rings): slot and offset are valid
		 * once DIRTY is seen.
		 */
		__u32 flags = __atomic_load_n(&e->flags, __ATOMIC_ACQUIRE);

		if (!(flags & KVM_DIRTY_GFN_F_DIRTY))
			break;
		/*
		 * Ordered after the flags by the acquire above (its pair is
		 * KVM's push); relaxed: only read once, untorn.
		 */
		if (fn)
			fn(opaque, __atomic_load_n(&e->slot, __ATOMIC_RELAXED),
			   __atomic_load_n(&e->offset, __ATOMIC_RELAXED));
		/*
		 * One single-copy-atomic 32-bit store, releasing our reads
		 * above; pairs with the kernel's load-acquire of flags in the
		 * reset, which then reads slot and offset.
		 */
		__atomic_store_n(&e->flags, KVM_DIRTY_GFN_F_RESET,
				 __ATOMIC_RELEASE);
		r->fetch++;
		n++;
	}
	return n;
}

/*
 * Calls one reset makes when signals keep cutting it short; each call that
 * stops on a signal has still reset what it reached, so this only bounds
 * the time spent under a signal storm.
 */
#define KVMAS_RING_SIGNAL_RETRIES 16

/* Rings per KVMAS_RESET_RING call made here (the stack buffer). */
#define KVMAS_RING_BATCH 64

static long kvmas_ring_reset_some(int fd, struct kvmas_ring *const *rings,
				  unsigned int n, unsigned int flags,
				  int *signalled)
{
	struct kvmas_ring_vcpu v[KVMAS_RING_BATCH];
	struct kvmas_reset_ring c = {
		.size = sizeof(c),
		.flags = flags,
		.nr_vcpus = n,
		.vcpu_size = sizeof(v[0]),
		.vcpus = (__u64)(uintptr_t)v,
	};
	unsigned int i;

	memset(v, 0, sizeof(v));
	for (i = 0; i < n; i++) {
		v[i].vcpu_id = rings[i]->vcpu_id;
		v[i].boundary = rings[i]->fetch;
	}
	if (ioctl(fd, KVMAS_RESET_RING, &c) < 0)
		return -errno;
	for (i = 0; i < n; i++) {
		struct kvmas_ring *r = rings[i];

		r->last_reset = v[i].reset;
		r->reset_index = v[i].reset_index;
		r->stop_reason = v[i].stop_reason;
		r->invalid = v[i].invalid;
		if (v[i].stop_reason == KVMAS_RING_STOP_SIGNAL)
			*signalled = 1;
	}
	return c.total_reset;
}

KVMAS_API long kvmas_ring_reset(struct kvmas *kv,
				struct kvmas_ring *const *rings, unsigned int n,
				unsigned int flags)
{
	long total = 0, got;
	unsigned int i, k, tries;
	int signalled;

	if (flags & KVMAS_RING_RESET_ALL_COLLECTED)
		return -EINVAL;
	for (i = 0; i < n; i++)
		if (!kvmas_ring_ok(rings[i]))
			return -EINVAL;
	for (i = 0; i < n; i += k) {
		k = n - i < KVMAS_RING_BATCH ? n - i : KVMAS_RING_BATCH;
		/* A pending signal ends a call early with nothing lost: redo. */
		for (tries = 0; tries < KVMAS_RING_SIGNAL_RETRIES; tries++) {
			signalled = 0;
			got = kvmas_ring_reset_some(kvmas_fd(kv), rings + i, k,
						    flags, &signalled);
			if (got < 0)
				return got;
			total += got;
			if (!signalled)
				break;
		}
	}
	return total;
}

/*
 * Default harvest+reset rounds of a drain: a vCPU that is stopped (ring
 * full, or the VM paused) is empty after one; the rest covers pushes that
 * were in flight when the first harvest ran.
 */
#define KVMAS_RING_DRAIN_ROUNDS 4

KVMAS_API long kvmas_ring_drain(struct kvmas *kv, struct kvmas_ring *r,
				kvmas_ring_collect_fn *fn, void *opaque,
				unsigned int rounds)
{
	long total = 0, got;
	__u32 n;

	if (!kvmas_ring_ok(r))
		return -EINVAL;
	if (!rounds)
		rounds = KVMAS_RING_DRAIN_ROUNDS;
	while (rounds--) {
		n = kvmas_ring_harvest(r, fn, opaque, 0);
		total += n;
		got = kvmas_ring_reset(kv, &r, 1, 0);
		if (got < 0)
			return got;
		if (!n && r->reset_index == r->fetch)
			break;
	}
	return total;
}

KVMAS_API int kvmas_ring_get_bitmap(int vm_fd, __u32 slot, void *bitmap)
{
	struct kvm_dirty_log log = { .slot = slot, .dirty_bitmap = bitmap };

	return ioctl(vm_fd, KVM_GET_DIRTY_LOG, &log) < 0 ? -errno : 0;
}

static const char *const kvmas_stop_names[] = {
	[KVMAS_RING_STOP_NONE] = "none",
	[KVMAS_RING_STOP_BOUNDARY] = "boundary",
	[KVMAS_RING_STOP_NOT_COLLECTED] = "not-collected",
	[KVMAS_RING_STOP_INVALID] = "invalid",
	[KVMAS_RING_STOP_PRODUCER] = "producer",
	[KVMAS_RING_STOP_BOUND] = "bound",
	[KVMAS_RING_STOP_SIGNAL] = "signal",
	[KVMAS_RING_STOP_NO_RING] = "no-ring",
};

KVMAS_API const char *kvmas_ring_stop_name(unsigned int reason)
{
	if (reason < sizeof(kvmas_stop_names) / sizeof(kvmas_stop_names[0]))
		return kvmas_stop_names[reason];
	return "unknown";
}
