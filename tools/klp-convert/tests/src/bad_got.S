/* SPDX-License-Identifier: GPL-2.0 */
/* Indirect call through the GOT. */
	.weak	kvm_c
	.text
f:	call	*kvm_c@GOTPCREL(%rip)
	ret
	.section .note.GNU-stack,"",@progbits
