// SPDX-License-Identifier: GPL-2.0
/* The classic weak-symbol NULL test takes the address too. */
extern int kvm_a(int) __attribute__((weak));

int f(int x)
{
	if (kvm_a)
		return kvm_a(x);
	return -1;
}
