// SPDX-License-Identifier: GPL-2.0
/* kvm_x is weak undefined but missing from the list. */
extern int kvm_a(int) __attribute__((weak));
extern int kvm_x(int) __attribute__((weak));

int f(int x)
{
	return kvm_a(x) + kvm_x(x);
}
