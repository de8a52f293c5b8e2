/* SPDX-License-Identifier: GPL-2.0 */
/* A call into the middle of the function. */
	.weak	kvm_c
	.text
f:	call	kvm_c+16
	ret
	.section .note.GNU-stack,"",@progbits
