/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Generic netlink family: stats, session and VM dumps, events, and the
 * per-VM accounting of the commands that feeds them (netlink.c).
 */
#ifndef KVMAS_NETLINK_H
#define KVMAS_NETLINK_H

#include "kvmas_priv.h"

int kvmas_netlink_init(void);
void kvmas_netlink_exit(void);
/* Sleeps (GFP_KERNEL); called with no lock held. */
void kvmas_netlink_event(struct kvmas_session *s, enum kvmas_nl_event type);
/*
 * Counts a KVMAS_COMMIT_BATCH that returned @r (its struct as returned)
 * for the session's VM, @t0 its ktime_get_ns() at entry; a rejected batch
 * is announced (rate-limited). No lock held; may sleep.
 */
void kvmas_account_batch(struct kvmas_session *s,
			 const struct kvmas_commit_batch *cmd, int r, u64 t0);
/*
 * Counts a KVMAS_RESET_RING that returned @r, @v its @nr_vcpus entries as
 * they go back to the caller (read only for r == 0 or -ENXIO); a ring
 * anomaly is announced (rate-limited). May sleep; at most lock 1 held.
 */
void kvmas_account_ring(struct kvmas_session *s,
			const struct kvmas_reset_ring *cmd,
			const struct kvmas_ring_vcpu *v, int r);

#endif /* KVMAS_NETLINK_H */
