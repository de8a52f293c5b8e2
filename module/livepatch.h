/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The module's livepatch (livepatch.c, x86_64 with CONFIG_LIVEPATCH): the
 * klp object whose relocations resolve the internals, and the hardened
 * stock KVM_RESET_DIRTY_RINGS it installs.
 */
#ifndef KVMAS_LIVEPATCH_H
#define KVMAS_LIVEPATCH_H

#include "internals.h"

#ifdef KVMAS_ROUTE_LIVEPATCH
/*
 * Enables the patch (module init, last step that can fail). Once enabled
 * it can only be disabled through sysfs: there is no disable call here.
 */
int kvmas_livepatch_enable(void);
#else
/* Kallsyms route: nothing to patch, internals resolved by internals.c. */
static inline int kvmas_livepatch_enable(void)
{
	return 0;
}
#endif

#endif /* KVMAS_LIVEPATCH_H */
