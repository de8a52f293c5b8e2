// SPDX-License-Identifier: GPL-2.0
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "guest_flat32.h"
#include "ringvm.h"

#define RV_BASE_SIZE 0x10000ULL
#define RV_CODE_GPA(i) (0x1000ULL + (i)*0x100)

static void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

/*
 * Pass p (from 0) writes p into the first dword of each page of the stripe:
 *   again: mov ebx, start          bb imm32
 *   loop:  mov [ebx], eax          89 03
 *          add ebx, 0x1000         81 c3 00 10 00 00
 *          cmp ebx, end            81 fb imm32
 *          jb loop                 72 rel8
 *          hlt                     f4
 *          inc eax                 40
 *          jmp again               eb rel8
 */
static void emit_writer(uint8_t *base, int i, uint32_t start, uint32_t end)
{
	uint8_t *p = base + RV_CODE_GPA(i);

	p[0] = 0xbb;
	put32(p + 1, start);
	p[5] = 0x89;
	p[6] = 0x03;
	p[7] = 0x81;
	p[8] = 0xc3;
	put32(p + 9, 0x1000);
	p[13] = 0x81;
	p[14] = 0xfb;
	put32(p + 15, end);
	p[19] = 0x72;
	p[20] = (uint8_t)(5 - 21); /* back to loop at +5 */
	p[21] = 0xf4;
	p[22] = 0x40;
	p[23] = 0xeb;
	p[24] = (uint8_t)(0 - 25); /* back to again at +0 */
}

int rv_create(struct ringvm *r, int nr_vcpus, uint32_t ring_entries,
	      uint32_t pages)
{
	struct kvm_enable_cap cap = {
		.args = { ring_entries * sizeof(struct kvm_dirty_gfn) }
	};
	struct kvm_userspace_memory_region reg;
	long psz = sysconf(_SC_PAGESIZE);
	int kvm, i;

	memset(r, 0, sizeof(*r));
	r->vm = -1;
	if (nr_vcpus < 1 || nr_vcpus > RV_MAX_VCPUS)
		return -EINVAL;
	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		return -errno;
	r->acq_rel = ioctl(kvm, KVM_CHECK_EXTENSION,
			   KVM_CAP_DIRTY_LOG_RING_ACQ_REL) > 0;
	r->run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	r->vm = ioctl(kvm, KVM_CREATE_VM, 0);
	close(kvm);
	if (r->vm < 0)
		return -errno;
	cap.cap = r->acq_rel ? KVM_CAP_DIRTY_LOG_RING_ACQ_REL :
			       KVM_CAP_DIRTY_LOG_RING;
	/* No ring: dirty logging falls back to per-slot bitmaps. */
	if (ring_entries && ioctl(r->vm, KVM_ENABLE_CAP, &cap))
		return -errno;
	r->nr_vcpus = nr_vcpus;
	r->ring_entries = ring_entries;
	r->pages_per_vcpu = pages;

	r->base = mmap(NULL, RV_BASE_SIZE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	r->data = mmap(NULL, (size_t)pages * nr_vcpus * RV_PAGE,
		       PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
		       0);
	if (r->base == MAP_FAILED || r->data == MAP_FAILED)
		return -ENOMEM;
	reg = (struct kvm_userspace_memory_region){
		.slot = 0,
		.memory_size = RV_BASE_SIZE,
		.userspace_addr = (uintptr_t)r->base,
	};
	if (ioctl(r->vm, KVM_SET_USER_MEMORY_REGION, &reg))
		return -errno;
	reg = (struct kvm_userspace_memory_region){
		.slot = RV_DATA_SLOT,
		.flags = KVM_MEM_LOG_DIRTY_PAGES,
		.guest_phys_addr = RV_DATA_GPA,
		.memory_size = (uint64_t)pages * nr_vcpus * RV_PAGE,
		.userspace_addr = (uintptr_t)r->data,
	};
	if (ioctl(r->vm, KVM_SET_USER_MEMORY_REGION, &reg))
		return -errno;

	for (i = 0; i < nr_vcpus; i++) {
		uint32_t start = RV_DATA_GPA + (uint64_t)i * pages * RV_PAGE;
		int err;

		emit_writer(r->base, i, start, start + pages * RV_PAGE);
		r->vcpu[i] = ioctl(r->vm, KVM_CREATE_VCPU, i);
		if (r->vcpu[i] < 0)
			return -errno;
		r->run[i] = mmap(NULL, r->run_size, PROT_READ | PROT_WRITE,
				 MAP_SHARED, r->vcpu[i], 0);
		if (ring_entries)
			r->ring[i] = mmap(
				NULL,
				ring_entries * sizeof(struct kvm_dirty_gfn),
				PROT_READ | PROT_WRITE, MAP_SHARED, r->vcpu[i],
				KVM_DIRTY_LOG_PAGE_OFFSET * psz);
		if (r->run[i] == MAP_FAILED || r->ring[i] == MAP_FAILED)
			return -errno;
		err = guest_flat32(r->vcpu[i], RV_CODE_GPA(i), 0x8000);
		if (err)
			return err;
	}
	return 0;
}

void rv_destroy(struct ringvm *r)
{
	int i;

	for (i = 0; i < r->nr_vcpus; i++) {
		if (r->ring[i] && r->ring[i] != MAP_FAILED)
			munmap(r->ring[i],
			       r->ring_entries * sizeof(struct kvm_dirty_gfn));
		if (r->run[i] && r->run[i] != MAP_FAILED)
			munmap(r->run[i], r->run_size);
		if (r->vcpu[i] > 0)
			close(r->vcpu[i]);
	}
	if (r->vm >= 0)
		close(r->vm);
	if (r->base && r->base != MAP_FAILED)
		munmap(r->base, RV_BASE_SIZE);
	if (r->data && r->data != MAP_FAILED)
		munmap(r->data,
		       (size_t)r->pages_per_vcpu * r->nr_vcpus * RV_PAGE);
	memset(r, 0, sizeof(*r));
	r->vm = -1;
}

int rv_run_pass(struct ringvm *r, int i)
{
	for (;;) {
		if (ioctl(r->vcpu[i], KVM_RUN, 0) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r->run[i]->exit_reason == KVM_EXIT_HLT)
			return 0;
		return r->run[i]->exit_reason;
	}
}

void rv_ring(struct ringvm *r, int i, struct kvmas_ring *kr)
{
	memset(kr, 0, sizeof(*kr));
	kr->size = sizeof(*kr);
	kr->gfns = r->ring[i];
	kr->entries = r->ring_entries;
	kr->vcpu_id = i;
	kr->fetch = r->fetch[i];
}

uint32_t rv_harvest(struct ringvm *r, int i)
{
	struct kvmas_ring kr;
	uint32_t n;

	rv_ring(r, i, &kr);
	n = kvmas_ring_harvest(&kr, NULL, NULL, 0);
	r->fetch[i] = kr.fetch;
	return n;
}

int rv_reset_all(struct ringvm *r)
{
	int ret = ioctl(r->vm, KVM_RESET_DIRTY_RINGS, 0);

	return ret < 0 ? -errno : ret;
}
