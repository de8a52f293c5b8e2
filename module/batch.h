/* SPDX-License-Identifier: GPL-2.0 */
/* KVMAS_COMMIT_BATCH (batch.c). */
#ifndef KVMAS_BATCH_H
#define KVMAS_BATCH_H

#include "kvmas_priv.h"

/* Takes the internals, then slots_lock, then slots_arch_lock (kvmas_priv.h). */
int kvmas_commit_batch(struct kvmas_session *s, struct kvmas_commit_batch *cmd);
/* The session's batch reaper: set up at open, drained at release. */
void kvmas_batch_session_init(struct kvmas_session *s);
void kvmas_batch_session_drain(struct kvmas_session *s);

#endif /* KVMAS_BATCH_H */
