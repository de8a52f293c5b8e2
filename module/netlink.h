/* SPDX-License-Identifier: GPL-2.0 */
/* Generic netlink family: stats, session dumps, events (netlink.c). */
#ifndef KVMAS_NETLINK_H
#define KVMAS_NETLINK_H

#include "kvmas_priv.h"

int kvmas_netlink_init(void);
void kvmas_netlink_exit(void);
/* Sleeps (GFP_KERNEL); called with no lock held. */
void kvmas_netlink_event(struct kvmas_session *s, enum kvmas_nl_event type);

#endif /* KVMAS_NETLINK_H */
