// SPDX-License-Identifier: GPL-2.0
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ringvm.h"
#if defined(__aarch64__)
#include "guest_a64.h"
#else
#include "guest_flat32.h"
#endif

#define RV_BASE_SIZE 0x10000ULL
#define RV_CODE_GPA(i) (0x1000ULL + (i)*0x100)
/*
 * arm64 has no HLT exit (WFI blocks in KVM until an interrupt, and this
 * guest has none): a pass ends with a store to this unbacked address,
 * which exits to userspace as MMIO.
 */
#define RV_DONE_GPA 0x7ff00000ULL

#if !defined(__aarch64__)
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

static int rv_vcpu_setup(struct ringvm *r, int i, uint32_t start, uint32_t end)
{
	(void)start;
	(void)end;
	return guest_flat32(r->vcpu[i], RV_CODE_GPA(i), 0x8000);
}
#else /* __aarch64__ */
/*
 * The same writer in A64; w19 is the pass (0 after KVM_ARM_VCPU_INIT, and
 * out of the vector handler's reach), x24 = start, x25 = end,
 * x26 = RV_DONE_GPA:
 *   again: add  x1, x24, #0
 *   loop:  str  w19, [x1]
 *          add  x1, x1, #1, lsl #12
 *          cmp  x1, x25
 *          b.lo loop
 *          str  wzr, [x26]          (the pass is done: MMIO exit)
 *          add  w19, w19, #1
 *          b    again
 */
static void emit_writer(uint8_t *base, int i, uint32_t start, uint32_t end)
{
	uint64_t at = RV_CODE_GPA(i);
	uint32_t insn[] = {
		a64_add_x(1, 24, 0),
		a64_str_w(19, 1, 0),
		a64_add_x_lsl12(1, 1, 1),
		a64_cmp_x(1, 25),
		a64_b_cond(at + 16, at + 4, A64_COND_LO),
		a64_str_w(31, 26, 0),
		a64_add_w(19, 19, 1),
		a64_b(at + 28, at),
	};

	(void)start;
	(void)end;
	memcpy(base + at, insn, sizeof(insn));
}

static int rv_vcpu_setup(struct ringvm *r, int i, uint32_t start, uint32_t end)
{
	int err = a64_vcpu_init(r->vm, r->vcpu[i]);

	if (!err)
		err = a64_vcpu_start(r->vcpu[i], r->base, i, RV_CODE_GPA(i),
				     0x8000);
	if (!err)
		err = a64_set_reg(r->vcpu[i], A64_X(24), start);
	if (!err)
		err = a64_set_reg(r->vcpu[i], A64_X(25), end);
	if (!err)
		err = a64_set_reg(r->vcpu[i], A64_X(26), RV_DONE_GPA);
	return err;
}
#endif

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
#if defined(__aarch64__)
	a64_emit_vectors(r->base + A64_VECTORS_GPA);
#endif
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
				KVMAS_DIRTY_LOG_PAGE_OFFSET * psz);
		if (r->run[i] == MAP_FAILED || r->ring[i] == MAP_FAILED)
			return -errno;
		err = rv_vcpu_setup(r, i, start, start + pages * RV_PAGE);
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

int rv_have_ring(void)
{
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC), have;

	if (kvm < 0)
		return 0;
	have = ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_DIRTY_LOG_RING_ACQ_REL) >
		       0 ||
	       ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_DIRTY_LOG_RING) > 0;
	close(kvm);
	return have;
}

uint32_t rv_ring_max_entries(void)
{
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC), bytes;

	if (kvm < 0)
		return 0;
	bytes = ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_DIRTY_LOG_RING_ACQ_REL);
	if (bytes <= 0)
		bytes = ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_DIRTY_LOG_RING);
	close(kvm);
	return bytes > 0 ? (uint32_t)bytes / sizeof(struct kvm_dirty_gfn) : 0;
}

int rv_set_entry(struct ringvm *r, int i, uint64_t pc, uint64_t arg)
{
#if defined(__aarch64__)
	int err;

	a64_record(r->base, i)->restart_pc = pc;
	err = a64_set_reg(r->vcpu[i], A64_CORE_REG(regs.pc), pc);
	return err ? err : a64_set_reg(r->vcpu[i], A64_X(27), arg);
#else
	(void)arg;
	return guest_flat32(r->vcpu[i], pc, 0x8000);
#endif
}

int rv_set_pass_pages(struct ringvm *r, int i, uint32_t pages)
{
	uint32_t start =
		RV_DATA_GPA + (uint64_t)i * r->pages_per_vcpu * RV_PAGE;

	if (i < 0 || i >= r->nr_vcpus || !pages || pages > r->pages_per_vcpu)
		return -EINVAL;
#if defined(__aarch64__)
	/* x25 is the pass's end (emit_writer); the vCPU is stopped. */
	return a64_set_reg(r->vcpu[i], A64_X(25),
			   start + (uint64_t)pages * RV_PAGE);
#else
	/*
	 * The imm32 of "cmp ebx, end" (emit_writer); the vCPU is stopped in
	 * userspace, so its next fetch of the loop sees the new bound.
	 */
	put32(r->base + RV_CODE_GPA(i) + 15, start + pages * RV_PAGE);
	return 0;
#endif
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
#if defined(__aarch64__)
		if (r->run[i]->exit_reason == KVM_EXIT_MMIO &&
		    r->run[i]->mmio.phys_addr == RV_DONE_GPA &&
		    r->run[i]->mmio.is_write)
			return 0;
#endif
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
