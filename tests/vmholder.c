// SPDX-License-Identifier: GPL-2.0
/*
 * Keeps one KVM VM with one vCPU (no in-kernel irqchip) alive for a whole
 * boot. Creating the first and destroying the last such VM flips static
 * keys (preempt notifiers in __schedule, KVM's no-APIC vCPU key), i.e.
 * live-patches hot kernel text; multi-threaded TCG was seen to execute a
 * stale int3 from such a patch on another vCPU. Holding one VM keeps those
 * keys still while the race suite creates and destroys VMs.
 */
#include <signal.h>
#include <unistd.h>

#include "kvm_helpers.h"

int main(void)
{
	int vm = kvm_vm_create();

	if (vm < 0 || kvm_vcpu_create(vm, 0) < 0)
		return 1;
	for (;;)
		pause();
}
