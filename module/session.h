/* SPDX-License-Identifier: GPL-2.0 */
/* Sessions and their VM (session.c); see kvmas_priv.h for locks and lifetimes. */
#ifndef KVMAS_SESSION_H
#define KVMAS_SESSION_H

#include <linux/list.h>
#include <linux/mutex.h>

#include "kvmas_priv.h"

/*
 * Every open session, in id order; protected by kvmas_sessions_lock, as is
 * kvmas_sessions_gen, which changes with the list (never 0).
 */
extern struct list_head kvmas_sessions;
extern struct mutex kvmas_sessions_lock;
extern unsigned int kvmas_sessions_gen;
/* Every VM with a session attached, in id order; likewise. */
extern struct list_head kvmas_vms;
extern struct mutex kvmas_vms_lock;
extern unsigned int kvmas_vms_gen;
/* Module parameters of the per-VM event rate limit. */
extern unsigned int kvmas_events_burst;
extern unsigned int kvmas_events_interval_ms;
/* Bounds the burst so that ten times it is still an int (ratelimit_state). */
#define KVMAS_EVENTS_BURST_MAX (1U << 20)

int kvmas_session_cache_init(void);
void kvmas_session_cache_exit(void);
struct kvmas_session *kvmas_session_new(void);
/* Release: no lock held, no ioctl in flight; may destroy the VM. */
void kvmas_session_free(struct kvmas_session *s);
bool kvmas_session_attached(struct kvmas_session *s);
int kvmas_attach_vm(struct kvmas_session *s, struct kvmas_attach_vm *cmd);
int kvmas_get_vm_info(struct kvmas_session *s, struct kvmas_vm_info *cmd);
int kvmas_get_layout(struct kvmas_session *s, struct kvmas_layout *cmd);
void kvmas_session_vm_name(struct kvmas_session *s, char *buf, size_t len);
/* The counters of the attached VM, or NULL; alive while the session is. */
struct kvmas_vm *kvmas_session_vm_stats(struct kvmas_session *s);
/* Release: drops the session's reference on its VM's counters. */
void kvmas_vm_put(struct kvmas_vm *vm);
/* The VM gate of every VM command: the attached VM or NULL with *err set. */
struct kvm *kvmas_session_vm(struct kvmas_session *s, int *err);

#endif /* KVMAS_SESSION_H */
