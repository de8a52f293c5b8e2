// SPDX-License-Identifier: GPL-2.0
/* A listed symbol declared without weak is converted too. */
extern int kvm_g(int);

int f(int x)
{
	return kvm_g(x) + 1;
}
