/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The CPU state every test guest starts in: flat 32-bit protected mode,
 * no paging, interrupts off; code and data segments cover all 4 GiB.
 */
#ifndef KVMAS_GUEST_FLAT32_H
#define KVMAS_GUEST_FLAT32_H

#include <errno.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <linux/kvm.h>

/* x86 only: an arm64 guest starts as guest_a64.h says. */
#if defined(__x86_64__) || defined(__i386__)
static inline int guest_flat32(int vcpu, uint64_t rip, uint64_t rsp)
{
	struct kvm_segment code = {
		.base = 0,
		.limit = 0xffffffff,
		.selector = 8,
		.type = 0xb,
		.present = 1,
		.dpl = 0,
		.db = 1,
		.s = 1,
		.g = 1,
	};
	struct kvm_segment data = code;
	struct kvm_regs regs = { .rip = rip, .rsp = rsp, .rflags = 0x2 };
	struct kvm_sregs sregs;

	if (ioctl(vcpu, KVM_GET_SREGS, &sregs))
		return -errno;
	data.type = 0x3;
	data.selector = 16;
	sregs.cs = code;
	sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = data;
	sregs.cr0 |= 1; /* PE, no paging */
	if (ioctl(vcpu, KVM_SET_SREGS, &sregs) ||
	    ioctl(vcpu, KVM_SET_REGS, &regs))
		return -errno;
	return 0;
}
#endif

#endif /* KVMAS_GUEST_FLAT32_H */
