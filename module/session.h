/* SPDX-License-Identifier: GPL-2.0 */
/* Sessions and their VM (session.c); see kvmas_priv.h for locks and lifetimes. */
#ifndef KVMAS_SESSION_H
#define KVMAS_SESSION_H

#include <linux/list.h>
#include <linux/mutex.h>

#include "kvmas_priv.h"

/* Every open session; protected by kvmas_sessions_lock. */
extern struct list_head kvmas_sessions;
extern struct mutex kvmas_sessions_lock;

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
/* The VM gate of every VM command: the attached VM or NULL with *err set. */
struct kvm *kvmas_session_vm(struct kvmas_session *s, int *err);

#endif /* KVMAS_SESSION_H */
