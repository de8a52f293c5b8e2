// SPDX-License-Identifier: GPL-2.0
/* Address passed as a callback. */
extern void kvm_c(void) __attribute__((weak));
extern void register_cb(void (*)(void));

void f(void)
{
	register_cb(kvm_c);
}
