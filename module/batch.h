/* SPDX-License-Identifier: GPL-2.0 */
/* KVMAS_COMMIT_BATCH (batch.c). */
#ifndef KVMAS_BATCH_H
#define KVMAS_BATCH_H

#include "kvmas_priv.h"

/* Takes the internals, then slots_lock, then slots_arch_lock (kvmas_priv.h). */
int kvmas_commit_batch(struct kvmas_session *s, struct kvmas_commit_batch *cmd);

#endif /* KVMAS_BATCH_H */
