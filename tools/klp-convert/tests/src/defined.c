// SPDX-License-Identifier: GPL-2.0
/* A listed name that the module defines itself is left alone. */
extern void kvm_c(void) __attribute__((weak));

__attribute__((noinline)) int kvm_a(int x)
{
	return x * 3;
}

int f(int x)
{
	kvm_c();
	return kvm_a(x) + 1;
}
