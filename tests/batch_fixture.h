/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The fixture of the KVMAS_COMMIT_BATCH suites (batch_*_test.c): a session
 * attached to an empty VM and 64 MiB of guest memory to map, and what the
 * suites include. A kernel without batch commits skips every test.
 */
#ifndef KVMAS_BATCH_FIXTURE_H
#define KVMAS_BATCH_FIXTURE_H

#include <pthread.h>
#include <sched.h>

#include "batch_helpers.h"
#if defined(__aarch64__)
#include "guest_a64.h"
#else
#include "guest_flat32.h"
#endif
#include "kvm_helpers.h"
#include "kvmas.h"
#include "ringvm.h"
#include "workload.h"
#include "kselftest_harness.h"

/* Guest memory of the fixture: room for every layout the suites build. */
#define B_GUEST_MEM (64 * MiB)

FIXTURE(b)
{
	int dev;
	int vm;
	uint8_t *m;
};

FIXTURE_SETUP(b)
{
	self->dev = kvmas_dev_open();
	self->vm = kvm_vm_create();
	self->m = guest_mem(B_GUEST_MEM);
	ASSERT_GE(self->dev, 0);
	ASSERT_GE(self->vm, 0);
	ASSERT_NE(NULL, self->m);
	ASSERT_EQ(0, kvmas_attach(self->dev, self->vm));
	if (kvmas_cap(KVMAS_CAP_BATCH_COMMIT) <= 0)
		SKIP(return, "no batch commits on this kernel");
}

FIXTURE_TEARDOWN(b)
{
	close(self->dev);
	close(self->vm);
}

#endif /* KVMAS_BATCH_FIXTURE_H */
