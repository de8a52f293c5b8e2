// SPDX-License-Identifier: GPL-2.0
/* Only direct calls and tail calls to the internals: must convert. */
extern int kvm_a(int) __attribute__((weak));
extern void kvm_b(void *) __attribute__((weak));
extern void kvm_c(void) __attribute__((weak));
extern void amd_d(int) __attribute__((weak));
extern int exported_fn(int); /* an ordinary (exported) symbol */

int counter;

int user_call(int x)
{
	return kvm_a(x) + exported_fn(x) + counter;
}

void user_tail(void *p)
{
	kvm_b(p); /* tail call: jmp */
}

__attribute__((cold, noinline)) void user_cold(int x)
{
	kvm_c(); /* .text.unlikely */
	amd_d(x);
	kvm_c();
}
