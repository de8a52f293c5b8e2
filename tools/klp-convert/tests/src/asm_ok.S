/* SPDX-License-Identifier: GPL-2.0 */
/* call, jcc rel32 and jmp to an internal: all direct branches. */
	.weak	kvm_c
	.text
	.globl	asm_calls
asm_calls:
	call	kvm_c
	testl	%edi, %edi
	jne	kvm_c
	je	kvm_c
	jmp	kvm_c
	.section .note.GNU-stack,"",@progbits
