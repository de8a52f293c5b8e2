/* SPDX-License-Identifier: GPL-2.0 */
/* Looks like a .ko: this_module, __versions, .modinfo. */
	.weak	kvm_c
	.text
	.globl	f
f:	call	kvm_c
	ret
	.section .gnu.linkonce.this_module,"aw",@progbits
	.balign	64
	.zero	128
	.section __versions,"a",@progbits
	.balign	32
	.quad	0x12345678
	.asciz	"module_layout"
	.balign	32
	.section .modinfo,"a",@progbits
	.asciz	"license=GPL"
#ifdef LIVEPATCH
	.asciz	"livepatch=Y"
	.asciz	"depends=irqbypass,kvm"
#endif
	.asciz	"vermagic=6.12.0 SMP mod_unload"
	.section .note.GNU-stack,"",@progbits
