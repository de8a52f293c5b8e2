/* SPDX-License-Identifier: GPL-2.0 */
/* A pc-relative word that merely follows an 0xe8 byte: addend is not -4. */
	.weak	kvm_c
	.text
f:	.byte	0xe8
	.long	kvm_c - .
	ret
	.section .note.GNU-stack,"",@progbits
