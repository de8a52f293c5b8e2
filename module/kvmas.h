/* SPDX-License-Identifier: GPL-2.0 */
#ifndef KVMAS_H
#define KVMAS_H

#include <linux/atomic.h>
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/types.h>
#include <linux/kvm_atomic_slots.h>

struct kvm;
struct module;

/*
 * One open file of /dev/kvm-atomic-slots. @kvm is set once by ATTACH_VM and
 * never changes until release, when no ioctl can still be running; readers
 * load it with acquire semantics (see kvmas_session_vm()).
 */
struct kvmas_session {
	struct mutex attach_lock; /* serialises ATTACH_VM on this session */
	struct kvm *kvm;
	struct module *kvm_owner; /* module providing the VM's fops */
	u64 id;
	pid_t tgid;
	struct list_head node; /* on kvmas_sessions, for netlink dumps */
	/* Per vCPU index: ring reset index at our last flush (ring.c). */
	u64 *ring_seen;
};

struct kvmas_stats {
	atomic_t sessions_open;
	atomic64_t sessions_total;
	atomic_t attached;
	atomic64_t attach_ok;
	atomic64_t attach_failed;
	atomic64_t ioctl_errors;
	atomic64_t batches_committed;
	atomic64_t batch_ops_committed;
	atomic64_t ring_reset_calls;
	atomic64_t ring_entries_reset;
};

extern struct kvmas_stats kvmas_stats;
extern struct list_head kvmas_sessions;
extern struct mutex kvmas_sessions_lock;

/* session.c */
int kvmas_session_cache_init(void);
void kvmas_session_cache_exit(void);
struct kvmas_session *kvmas_session_new(void);
void kvmas_session_free(struct kvmas_session *s);
int kvmas_attach_vm(struct kvmas_session *s, struct kvmas_attach_vm *cmd);
int kvmas_get_vm_info(struct kvmas_session *s, struct kvmas_vm_info *cmd);
int kvmas_get_layout(struct kvmas_session *s, struct kvmas_layout *cmd);
void kvmas_session_vm_name(struct kvmas_session *s, char *buf, size_t len);
struct kvm *kvmas_session_vm(struct kvmas_session *s, int *err);

/* batch.c */
int kvmas_commit_batch(struct kvmas_session *s, struct kvmas_commit_batch *cmd);

/* ring.c */
int kvmas_reset_ring(struct kvmas_session *s, struct kvmas_reset_ring *cmd);

/* netlink.c */
int kvmas_netlink_init(void);
void kvmas_netlink_exit(void);
void kvmas_netlink_event(struct kvmas_session *s, enum kvmas_nl_event type);

#endif /* KVMAS_H */
