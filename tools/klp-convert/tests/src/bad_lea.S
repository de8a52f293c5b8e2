/* SPDX-License-Identifier: GPL-2.0 */
/* PC32 relocation, but on a lea: address taken. */
	.weak	kvm_c
	.text
f:	leaq	kvm_c(%rip), %rax
	ret
	.section .note.GNU-stack,"",@progbits
