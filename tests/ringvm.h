/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A dirty-ring VM for tests: each vCPU runs a flat 32-bit loop that writes
 * one dword into each page of its own stripe of a dirty-logged data slot,
 * then HLTs (an exit to userspace, no in-kernel irqchip). Every pass dirties
 * exactly the stripe's pages, so the ring entries a pass produces are known;
 * pass p (counted from 0 per vCPU) writes the value p (rv_value()).
 */
#ifndef KVMAS_RINGVM_H
#define KVMAS_RINGVM_H

#include <stdint.h>
#include <linux/kvm.h>

#include "kvmas.h"

#define RV_MAX_VCPUS 4
/* The guest's page: x86's 4 KiB, the unit of dirty tracking. */
#define RV_PAGE 4096
/*
 * Default ring size in entries: more than any pass of the tests writes
 * (their stripes are smaller), so a ring fills only where a test asks for
 * it with a smaller ring or a bigger stripe.
 */
#define RV_RING_ENTRIES 1024
#define RV_DATA_SLOT 1
#define RV_DATA_GPA 0x100000ULL

struct ringvm {
	int vm;
	int nr_vcpus;
	int vcpu[RV_MAX_VCPUS];
	struct kvm_run *run[RV_MAX_VCPUS];
	struct kvm_dirty_gfn *ring[RV_MAX_VCPUS];
	uint32_t fetch[RV_MAX_VCPUS]; /* the VMM's harvest index per ring */
	uint32_t ring_entries;
	size_t run_size;
	uint8_t *base;
	uint8_t *data;
	uint32_t pages_per_vcpu;
	int acq_rel; /* KVM_CAP_DIRTY_LOG_RING_ACQ_REL in use */
};

/*
 * Creates the VM with rings of @ring_entries (0: no ring, dirty bitmaps),
 * @pages per vCPU stripe.
 */
int rv_create(struct ringvm *r, int nr_vcpus, uint32_t ring_entries,
	      uint32_t pages);
void rv_destroy(struct ringvm *r);

/*
 * Points vCPU i at other code in the base slot (a test's own guest): on
 * arm64 x27 holds @arg (the code's parameter block), x86 code ignores it.
 * Only before the vCPU first runs: on arm64 the next KVM_RUN after a
 * pass's MMIO exit completes that access by stepping the PC, which would
 * skip the new entry's first instruction.
 */
int rv_set_entry(struct ringvm *r, int i, uint64_t pc, uint64_t arg);
/*
 * Runs vCPU @i until its pass ends (x86: HLT; arm64: a store to an
 * unbacked address). Returns 0, or the KVM exit reason (> 0) if it stopped
 * for something else (e.g. ring full), or -errno.
 */
int rv_run_pass(struct ringvm *r, int i);
/*
 * Makes vCPU @i's next passes write only the first @pages pages of its
 * stripe (1 <= @pages <= the stripe; rv_create() sets the whole stripe), so
 * one VM can hold a vCPU that dirties a handful of pages per pass next to
 * one that dirties tens of thousands. Only between passes (the vCPU stopped
 * at a pass's end): the new bound is read by the next pass. 0 or -errno.
 */
int rv_set_pass_pages(struct ringvm *r, int i, uint32_t pages);
/* Whether KVM offers a dirty ring here (not arm64 before 6.2): 1 or 0. */
int rv_have_ring(void);
/*
 * The largest ring KVM allows here, in entries (KVM_CHECK_EXTENSION of the
 * ring cap answers in bytes: KVM_DIRTY_RING_MAX_ENTRIES, 65536, x 16); 0
 * without a ring.
 */
uint32_t rv_ring_max_entries(void);
/* First statement of a kselftest test that needs a dirty ring. */
#define RV_NEED_RING()                                                \
	do {                                                          \
		if (!rv_have_ring())                                  \
			SKIP(return, "no dirty ring on this kernel"); \
	} while (0)

/*
 * The dword the last pass wrote into page @k of vCPU @i's stripe. Relaxed:
 * the caller reads it after the pass ended in HLT, ordered by its own
 * handshake with the vCPU thread (ring_epochs.c: the acquire of done).
 */
static inline uint32_t rv_value(struct ringvm *r, int i, uint32_t k)
{
	return __atomic_load_n(
		(uint32_t *)(r->data +
			     ((size_t)i * r->pages_per_vcpu + k) * RV_PAGE),
		__ATOMIC_RELAXED);
}

/* libkvmas's view of vCPU @i's ring, from the VMM's fetch index in @r. */
void rv_ring(struct ringvm *r, int i, struct kvmas_ring *kr);

/*
 * The VMM side done right, by libkvmas (kvmas_ring_harvest()): collects
 * every DIRTY entry from the fetch index, marks each RESET. Returns the
 * number harvested.
 */
uint32_t rv_harvest(struct ringvm *r, int i);

/* Stock KVM_RESET_DIRTY_RINGS: returns its count or -errno. */
int rv_reset_all(struct ringvm *r);

#endif /* KVMAS_RINGVM_H */
