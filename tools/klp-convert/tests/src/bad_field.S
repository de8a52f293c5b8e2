/* SPDX-License-Identifier: GPL-2.0 */
/* A call whose rel32 already holds a value: the kernel refuses to patch it. */
	.weak	kvm_c
	.text
f:	.byte	0xe8
	.reloc	., R_X86_64_PLT32, kvm_c - 4
	.long	0x11223344
	ret
	.section .note.GNU-stack,"",@progbits
