/* SPDX-License-Identifier: GPL-2.0 */
/* Per-vCPU dirty-ring reset and the ring walk it shares with stock (ring.c). */
#ifndef KVMAS_RING_H
#define KVMAS_RING_H

#include "kvmas_priv.h"

struct kvm;
struct kvm_dirty_ring;

void kvmas_ring_init(void);
/*
 * KVMAS_RESET_RING: takes the internals, then per ring its stripe lock
 * (or slots_lock without the hardened stock reset), then kvm->srcu.
 */
int kvmas_reset_ring(struct kvmas_session *s, struct kvmas_reset_ring *cmd);
/*
 * The body of the livepatched kvm_dirty_ring_reset() (livepatch.c). Caller
 * (KVM) holds slots_lock; takes the ring's stripe lock.
 */
int kvmas_ring_reset_stock(struct kvm *kvm, struct kvm_dirty_ring *ring);

#endif /* KVMAS_RING_H */
