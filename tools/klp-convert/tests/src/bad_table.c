// SPDX-License-Identifier: GPL-2.0
/* Address stored in a table: an indirect call target. */
extern void kvm_c(void) __attribute__((weak));

void (*const ops[])(void) = { 0, kvm_c };
