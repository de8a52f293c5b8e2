/* SPDX-License-Identifier: GPL-2.0 */
/* A call inside alternative replacement code, copied at load time. */
	.weak	kvm_c
	.text
f:	ret
	.section .altinstr_replacement,"ax",@progbits
	call	kvm_c
	.section .note.GNU-stack,"",@progbits
