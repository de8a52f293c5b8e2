/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Batch-commit helpers shared by the suites that drive KVMAS_COMMIT_BATCH
 * with raw ioctls (batch_*_test, contract_test, oracle_test).
 */
#ifndef KVMAS_BATCH_HELPERS_H
#define KVMAS_BATCH_HELPERS_H

#include <stdio.h>
#include <stdint.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/ioctl.h>

#include "kvm_helpers.h"

#define MiB (1ULL << 20)
#define KiB (1ULL << 10)

struct batch_res {
	int err;
	int index;
	unsigned int gps;
	unsigned int route;
	unsigned long long dirty;
};

/* kvm_amd loaded with npt=0: shadow paging, the legacy MMU with rmaps. */
static inline int legacy_mmu(void)
{
	char buf[4] = "";
	int fd = open("/sys/module/kvm_amd/parameters/npt", O_RDONLY);

	if (fd < 0)
		return 0;
	if (read(fd, buf, sizeof(buf) - 1) < 0)
		buf[0] = 0;
	close(fd);
	return buf[0] == 'N' || buf[0] == '0';
}

/*
 * Whether KVMAS_BATCH_ROUTE_INVALIDATE is honoured (x86); arm64 has only
 * the fence route and refuses the flag with EOPNOTSUPP.
 */
static inline int inval_route_ok(void)
{
	return kvmas_cap(KVMAS_CAP_ROUTE_INVALIDATE) > 0;
}

/* The flag for "the invalidate route" where it exists, else the fence's. */
static inline unsigned int inval_flag(void)
{
	return inval_route_ok() ? KVMAS_BATCH_ROUTE_INVALIDATE : 0;
}

/*
 * What KVM's prepare step answers for a slot beyond the guest's physical
 * address space (validation passes it: the limit is the arch's): x86's
 * kvm_arch_prepare_memory_region() says EINVAL (beyond the MMU's max gfn),
 * arm64's EFAULT (beyond the IPA size).
 */
#if defined(__aarch64__)
#define PREPARE_BEYOND_ERRNO EFAULT
#else
#define PREPARE_BEYOND_ERRNO EINVAL
#endif

/* Grace periods a batch with removals takes on the route it reports. */
#define GPS_REMOVING(r) ((r).route == KVMAS_ROUTE_FENCE ? 1U : 2U)

static inline struct batch_res commit(int dev, struct kvmas_batch_op *ops,
				      unsigned int n, unsigned int flags)
{
	struct kvmas_commit_batch c = {
		.size = sizeof(c),
		.flags = flags,
		.nr_ops = n,
		.op_size = sizeof(*ops),
		.ops = (uintptr_t)ops,
	};
	struct batch_res r;

	r.err = sys_ret(ioctl(dev, KVMAS_COMMIT_BATCH, &c));
	r.index = c.error_index;
	r.gps = c.grace_periods;
	r.route = c.route;
	r.dirty = c.dirty_pages;
	return r;
}

static inline struct kvmas_batch_op op(unsigned int kind, unsigned int slot,
				       uint64_t gpa, uint64_t size, void *hva,
				       unsigned int flags)
{
	return (struct kvmas_batch_op){
		.op = kind,
		.slot = slot,
		.flags = flags,
		.guest_phys_addr = gpa,
		.memory_size = size,
		.userspace_addr = (uintptr_t)hva,
	};
}

static inline struct kvmas_batch_op del(unsigned int slot)
{
	return (struct kvmas_batch_op){ .op = KVMAS_OP_DELETE, .slot = slot };
}

/* The layout of address space @as as "slot:gpa+size[flags] ..." text. */
static inline void layout_str(int dev, unsigned int as, char *buf, size_t len)
{
	struct kvmas_slot s[64];
	unsigned int nr = 0, i;
	size_t used = 0;

	buf[0] = 0;
	if (kvmas_layout(dev, 0, as, s, 64, &nr, NULL))
		snprintf(buf, len, "(error)");
	for (i = 0; i < nr && used < len; i++)
		used += snprintf(buf + used, len - used,
				 "%u:%llx+%llx[%x]@%llx ", s[i].slot,
				 (unsigned long long)s[i].guest_phys_addr,
				 (unsigned long long)s[i].memory_size,
				 s[i].flags,
				 (unsigned long long)s[i].userspace_addr);
}

/* KVM's memslot generation of every address space (GET_LAYOUT's snapshot). */
static inline void vm_generation(int dev, uint64_t gen[KVMAS_MAX_AS])
{
	memset(gen, 0xff, sizeof(uint64_t) * KVMAS_MAX_AS);
	kvmas_layout(dev, KVMAS_LAYOUT_ALL_AS, 0, NULL, 0, NULL, gen);
}

#endif /* KVMAS_BATCH_HELPERS_H */
