// SPDX-License-Identifier: GPL-2.0
/* A call from init code, which the module loader frees after init. */
extern void kvm_c(void) __attribute__((weak));

__attribute__((section(".init.text"), noinline)) int init_fn(void)
{
	kvm_c();
	return 0;
}
