/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Epochs on a dirty-ring VM (ringvm.h) of 2-4 vCPUs: each vCPU thread runs
 * EP_PASSES passes over its stripe per epoch; each vCPU's harvester thread
 * collects and resets its ring (KVMAS_RESET_RING through libkvmas, or with
 * EP_STOCK_RESETS stock KVM_RESET_DIRTY_RINGS: the control) while the vCPU
 * runs, and after each epoch checks that every page of the stripe was
 * harvested (no lost dirty page), nothing else was (no foreign entry) and
 * every page holds the value of the epoch's last pass (no wrong value).
 * With EP_STOCK_THREAD a thread calls stock KVM_RESET_DIRTY_RINGS all
 * along; with EP_SLOT_THREAD one commits batches (or with EP_STOCK_SLOTS
 * stock ioctls) on a scratch slot of the same VM. Used by
 * ringreset_test (a fixed number of epochs), soak_test (until a deadline)
 * and ring4_test (4 vCPUs, module against stock).
 */
#ifndef KVMAS_RING_EPOCHS_H
#define KVMAS_RING_EPOCHS_H

#include <pthread.h>
#include <stdint.h>

#include "kvmas.h"
#include "ringvm.h"

#define EP_PAGES 48
#define EP_PASSES 2

/* ep_start() flags */
#define EP_STOCK_THREAD (1U << 0) /* stock KVM_RESET_DIRTY_RINGS all along */
#define EP_STOCK_RESETS (1U << 1) /* harvesters reset with the stock ioctl */
#define EP_PARTIAL (1U << 2) /* harvest (and so reset) in random chunks */
/* EP_SLOT_THREAD's scratch slot changes with stock ioctls, not batches */
#define EP_STOCK_SLOTS (1U << 3)
/* A scratch slot of the ring VM created, moved and deleted all along. */
#define EP_SLOT_THREAD (1U << 4)
#define EP_OTHERS (EP_STOCK_THREAD | EP_SLOT_THREAD)

struct epochs;

struct ep_lane {
	struct epochs *x;
	int i;
	struct kvmas_ring kr;
	uint8_t seen[EP_PAGES];
	/* Harvester -> vCPU thread: the epoch it may run (release/acquire). */
	int go;
	/* Harvester -> vCPU thread: the last epoch there is (before go). */
	int last;
	/* vCPU thread -> harvester: the last epoch it finished. */
	int done;
	int epochs; /* epochs checked */
	uint64_t entries, resets, misses, foreign, wrong;
	uint32_t rng;
	/* Why the lane stopped early: -errno or a KVM exit reason (8: SHUTDOWN). */
	int err;
	pthread_t vcpu_thread, harvest_thread;
};

struct epochs {
	struct ringvm r;
	struct kvmas *kv;
	int nr_epochs; /* stop after this many epochs ... */
	uint64_t deadline_us; /* ... or at this wl_now_us() time (0: none) */
	unsigned int flags; /* EP_* */
	int nr_lanes;
	volatile int stop;
	struct ep_lane lane[RV_MAX_VCPUS];
	uint64_t stock_calls, stock_entries, batches;
	int stock_err, batch_err;
	pthread_t stock_thread, batch_thread;
};

/*
 * Creates the ring VM of @nr_lanes vCPUs (RV_RING_ENTRIES, EP_PAGES per
 * vCPU), attaches a session (not when nothing goes through the module:
 * EP_STOCK_RESETS, and no batches) and starts every thread. Returns 0
 * or -errno.
 */
int ep_start(struct epochs *x, int nr_lanes, int nr_epochs,
	     uint64_t deadline_us, unsigned int flags);
/* Waits for the lanes to finish, stops the other threads. */
void ep_join(struct epochs *x);
/* Closes the session and the VM. */
void ep_destroy(struct epochs *x);

#endif /* KVMAS_RING_EPOCHS_H */
