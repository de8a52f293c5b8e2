/* SPDX-License-Identifier: GPL-2.0 */
/*
 * pamguest: entry points of the bare-metal guest that QEMU 7.2 runs inside
 * the test VM (tests/qemu72/README). Multiboot (v1) ELF, linked at 1 MiB;
 * QEMU's multiboot option ROM enters _start in 32-bit protected mode with
 * paging off. The BSP toggles PAM registers, the AP executes code in the
 * remapped windows (pamguest.c).
 */

#define MB_MAGIC 0x1badb002
#define MB_FLAGS 0x00000000

	.section .multiboot, "a"
	.align 4
	.long MB_MAGIC
	.long MB_FLAGS
	.long -(MB_MAGIC + MB_FLAGS)

	.text
	.code32
	.globl _start
_start:
	cli
	lgdt gdtr
	ljmp $0x08, $1f
1:	movl $0x10, %eax
	movw %ax, %ds
	movw %ax, %es
	movw %ax, %ss
	movw %ax, %fs
	movw %ax, %gs
	movl $bsp_stack_top, %esp
	pushl %ebx			/* multiboot info */
	call bsp_main
2:	cli
	hlt
	jmp 2b

/* 32-bit entry of the AP, reached from the real-mode trampoline below. */
	.globl ap_entry32
ap_entry32:
	movl $0x10, %eax
	movw %ax, %ds
	movw %ax, %es
	movw %ax, %ss
	movw %ax, %fs
	movw %ax, %gs
	movl $ap_stack_top, %esp
	call ap_main
3:	cli
	hlt
	jmp 3b

/*
 * AP trampoline: copied to a page below 1 MiB whose number is the SIPI
 * vector, so it starts with CS = page << 8, IP = 0. Only relative
 * references inside it; the GDT and ap_entry32 are at their linked
 * (1 MiB+) addresses, reachable once protected mode is on.
 */
	.code16
	.globl ap_tramp, ap_tramp_end
ap_tramp:
	cli
	movw %cs, %ax
	movw %ax, %ds
	lgdtl (ap_tramp_gdtr - ap_tramp)
	movl %cr0, %eax
	orl $1, %eax
	movl %eax, %cr0
	ljmpl $0x08, $ap_entry32
	.align 4
ap_tramp_gdtr:
	.word gdt_end - gdt - 1
	.long gdt
ap_tramp_end:
	.code32

/*
 * The code the AP runs in the remapped windows: copied to several
 * addresses, so position independent. In: %eax seed. Out: %eax = a
 * checksum over the 1 KiB table that follows the code (read through the
 * same window) mixed with the seed. Clobbers %ecx, %edx.
 */
	.globl blob, blob_end
	.align 16
blob:
	pushl %esi
	call 1f
1:	popl %esi
	addl $(blob_table - 1b), %esi
	movl $256, %ecx
2:	movl (%esi), %edx
	roll $5, %eax
	xorl %edx, %eax
	addl $0x9e3779b9, %eax
	addl $4, %esi
	decl %ecx
	jnz 2b
	popl %esi
	ret
	.align 16
blob_table:
	.rept 256
	.long (. - blob_table) * 0x01000193 + 0x811c9dc5
	.endr
blob_end:

	.section .rodata
	.align 8
gdt:
	.quad 0
	.quad 0x00cf9a000000ffff	/* 0x08: flat 32-bit code */
	.quad 0x00cf92000000ffff	/* 0x10: flat data */
gdt_end:
gdtr:
	.word gdt_end - gdt - 1
	.long gdt

	.bss
	.align 16
	.space 16384
bsp_stack_top:
	.space 16384
ap_stack_top:
	.section .note.GNU-stack, "", @progbits
