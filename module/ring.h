/* SPDX-License-Identifier: GPL-2.0 */
#ifndef KVMAS_RING_H
#define KVMAS_RING_H

struct kvm;
struct kvm_dirty_ring;

void kvmas_ring_init(void);
/* The body of the livepatched kvm_dirty_ring_reset() (see internals.c). */
int kvmas_ring_reset_stock(struct kvm *kvm, struct kvm_dirty_ring *ring);

#endif /* KVMAS_RING_H */
