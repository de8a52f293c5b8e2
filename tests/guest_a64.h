/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The AArch64 counterpart of guest_flat32.h: a vCPU starts at EL1h with
 * its MMU off (data accesses are Device memory, instruction fetches are
 * Normal: fine for aligned LDR/STR), every exception masked, and with an
 * exception vector table of our own so that an abort KVM injects (a fetch
 * from a memslot hole is a prefetch abort on arm64) is counted by the
 * guest instead of looping on an absent handler. The encoders are the few
 * A64 instructions the test guests use.
 */
#ifndef KVMAS_GUEST_A64_H
#define KVMAS_GUEST_A64_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/kvm.h>

#define A64_CORE_REG(x)                                        \
	(KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE | \
	 (offsetof(struct kvm_regs, x) / sizeof(__u32)))
#define A64_X(n) A64_CORE_REG(regs.regs[n])

/* System registers: op0 op1 CRn CRm op2, as in the ARM ARM. */
#define A64_TPIDR_EL1 3, 0, 13, 0, 4
#define A64_ESR_EL1 3, 0, 5, 2, 0
#define A64_FAR_EL1 3, 0, 6, 0, 0
#define A64_ELR_EL1 3, 0, 4, 0, 1
#define A64_VBAR_EL1 3, 0, 12, 0, 0

static inline uint32_t a64_sysreg_bits(int op0, int op1, int crn, int crm,
				       int op2)
{
	return (uint32_t)((op0 - 2) << 19 | op1 << 16 | crn << 12 | crm << 8 |
			  op2 << 5);
}
#define a64_mrs(rt, reg) (0xd5300000u | a64_sysreg_bits(reg) | (rt))
#define a64_msr(reg, rt) (0xd5100000u | a64_sysreg_bits(reg) | (rt))
#define A64_ERET 0xd69f03e0u
#define A64_RET 0xd65f03c0u
/* Unsigned-offset loads and stores; the offset must be aligned. */
#define a64_ldr_x(rt, rn, off) \
	(0xf9400000u | ((off) / 8) << 10 | (rn) << 5 | (rt))
#define a64_str_x(rt, rn, off) \
	(0xf9000000u | ((off) / 8) << 10 | (rn) << 5 | (rt))
#define a64_ldr_w(rt, rn, off) \
	(0xb9400000u | ((off) / 4) << 10 | (rn) << 5 | (rt))
#define a64_str_w(rt, rn, off) \
	(0xb9000000u | ((off) / 4) << 10 | (rn) << 5 | (rt))
/* ADD (immediate); register 31 is SP here, so add(31, n, 0) is mov sp, xn. */
#define a64_add_x(rd, rn, imm) (0x91000000u | (imm) << 10 | (rn) << 5 | (rd))
#define a64_add_w(rd, rn, imm) (0x11000000u | (imm) << 10 | (rn) << 5 | (rd))
/* ADD (immediate, shifted by 12): add xd, xn, #imm << 12. */
#define a64_add_x_lsl12(rd, rn, imm) \
	(0x91400000u | (imm) << 10 | (rn) << 5 | (rd))
/* subs w2, w2, #1: the one countdown the guests use. */
#define A64_SUBS_W2_1 0x71000442u
#define a64_cmp_w(rn, rm) (0x6b00001fu | (rm) << 16 | (rn) << 5)
#define a64_cmp_x(rn, rm) (0xeb00001fu | (rm) << 16 | (rn) << 5)
/* Branches, @from and @to in bytes (guest addresses). */
static inline uint32_t a64_branch_words(uint64_t from, uint64_t to)
{
	/* Two's complement: the callers mask it to the field's width. */
	return (uint32_t)((to - from) >> 2);
}
#define a64_b(from, to) (0x14000000u | (a64_branch_words(from, to) & 0x3ffffff))
#define a64_bl(from, to) \
	(0x94000000u | (a64_branch_words(from, to) & 0x3ffffff))
#define A64_COND_EQ 0
#define A64_COND_NE 1
#define A64_COND_LO 3
#define a64_b_cond(from, to, cond) \
	(0x54000000u | (a64_branch_words(from, to) & 0x7ffff) << 5 | (cond))
#define a64_b_eq(from, to) a64_b_cond(from, to, A64_COND_EQ)

/*
 * The guest's exception record, one per vCPU (TPIDR_EL1 points at it):
 * how many exceptions it took, the last one's syndrome and fault address,
 * and where its handler restarts the vCPU.
 */
struct a64_exc_record {
	uint64_t count;
	uint64_t esr;
	uint64_t far;
	uint64_t restart_pc;
	uint64_t restart_sp;
};

#define A64_VECTORS_SIZE 0x800 /* 16 entries of 0x80; VBAR is 2 KiB aligned */

/*
 * Where the test guests (workload.c, ringvm.c) keep the vector table and
 * one exception record per vCPU, in the base slot both map at GPA 0.
 */
#define A64_VECTORS_GPA 0xa000ULL
#define A64_EXC_GPA(i) (0x9800ULL + (i)*0x40)

/* vCPU @i's record, @base being the host view of GPA 0. */
static inline struct a64_exc_record *a64_record(uint8_t *base, int i)
{
	return (struct a64_exc_record *)(base + A64_EXC_GPA(i));
}

/*
 * Fills a vector table at @vbar (host pointer): every entry records the
 * exception in the record TPIDR_EL1 points at, then ERETs to the record's
 * restart point with a fresh stack. Clobbers x0 and x1 only, so a guest
 * loop that keeps its constants in x19 and above survives it.
 */
static inline void a64_emit_vectors(uint8_t *vbar)
{
	const uint32_t handler[] = {
		a64_mrs(0, A64_TPIDR_EL1),
		a64_ldr_x(1, 0, 0),
		a64_add_x(1, 1, 1),
		a64_str_x(1, 0, 0),
		a64_mrs(1, A64_ESR_EL1),
		a64_str_x(1, 0, 8),
		a64_mrs(1, A64_FAR_EL1),
		a64_str_x(1, 0, 16),
		a64_ldr_x(1, 0, 24),
		a64_msr(A64_ELR_EL1, 1),
		a64_ldr_x(1, 0, 32),
		a64_add_x(31, 1, 0),
		A64_ERET,
	};
	int e;

	for (e = 0; e < 16; e++)
		memcpy(vbar + e * 0x80, handler, sizeof(handler));
}

static inline int a64_set_reg(int vcpu, uint64_t id, uint64_t val)
{
	struct kvm_one_reg r = { .id = id, .addr = (uintptr_t)&val };

	return ioctl(vcpu, KVM_SET_ONE_REG, &r) ? -errno : 0;
}

static inline uint64_t a64_sysreg_id(int op0, int op1, int crn, int crm,
				     int op2)
{
	return KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM64_SYSREG |
	       (uint64_t)op0 << KVM_REG_ARM64_SYSREG_OP0_SHIFT |
	       (uint64_t)op1 << KVM_REG_ARM64_SYSREG_OP1_SHIFT |
	       (uint64_t)crn << KVM_REG_ARM64_SYSREG_CRN_SHIFT |
	       (uint64_t)crm << KVM_REG_ARM64_SYSREG_CRM_SHIFT |
	       (uint64_t)op2 << KVM_REG_ARM64_SYSREG_OP2_SHIFT;
}

/* KVM_ARM_VCPU_INIT with the host's preferred target (once per vCPU). */
static inline int a64_vcpu_init(int vm, int vcpu)
{
	struct kvm_vcpu_init init;

	memset(&init, 0, sizeof(init));
	if (ioctl(vm, KVM_ARM_PREFERRED_TARGET, &init) ||
	    ioctl(vcpu, KVM_ARM_VCPU_INIT, &init))
		return -errno;
	return 0;
}

/* EL1h, DAIF masked: the state KVM_ARM_VCPU_INIT leaves, made explicit. */
#define A64_PSTATE_EL1H_MASKED 0x3c5

/*
 * Points vCPU @i (fd @vcpu) at @pc with stack @sp, also where its handler
 * restarts it, with the vectors at A64_VECTORS_GPA and its record at
 * A64_EXC_GPA(@i); @base is the host view of GPA 0.
 */
static inline int a64_vcpu_start(int vcpu, uint8_t *base, int i, uint64_t pc,
				 uint64_t sp)
{
	struct a64_exc_record *rec = a64_record(base, i);
	int r;

	rec->restart_pc = pc;
	rec->restart_sp = sp;
	r = a64_set_reg(vcpu, A64_CORE_REG(regs.pstate),
			A64_PSTATE_EL1H_MASKED);
	if (!r)
		r = a64_set_reg(vcpu, A64_CORE_REG(regs.pc), pc);
	if (!r)
		r = a64_set_reg(vcpu, A64_CORE_REG(sp_el1), sp);
	if (!r)
		r = a64_set_reg(vcpu, a64_sysreg_id(A64_VBAR_EL1),
				A64_VECTORS_GPA);
	if (!r)
		r = a64_set_reg(vcpu, a64_sysreg_id(A64_TPIDR_EL1),
				A64_EXC_GPA(i));
	return r;
}

#endif /* KVMAS_GUEST_A64_H */
