/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Epochs on a two-vCPU dirty-ring VM (ringvm.h): each vCPU thread runs
 * EP_PASSES passes over its stripe per epoch; each vCPU's harvester thread
 * collects and resets its ring (KVMAS_RESET_RING, libkvmas) while the vCPU
 * runs, and after each epoch checks that every page of the stripe was
 * harvested (no lost dirty page) and nothing else was (no foreign entry).
 * Optionally a thread calls stock KVM_RESET_DIRTY_RINGS all along and one
 * commits batches on a scratch slot of the same VM. Used by ringreset_test
 * (a fixed number of epochs) and soak_test (until a deadline).
 */
#ifndef KVMAS_RING_EPOCHS_H
#define KVMAS_RING_EPOCHS_H

#include <pthread.h>
#include <stdint.h>

#include "kvmas.h"
#include "ringvm.h"

#define EP_PAGES 48
#define EP_PASSES 2

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
	uint64_t entries, resets, misses, foreign;
	int err;
	pthread_t vcpu_thread, harvest_thread;
};

struct epochs {
	struct ringvm r;
	struct kvmas *kv;
	int nr_epochs; /* stop after this many epochs ... */
	uint64_t deadline_us; /* ... or at this wl_now_us() time (0: none) */
	int with_others; /* the stock-reset and batch threads */
	volatile int stop;
	struct ep_lane lane[2];
	uint64_t stock_calls, stock_entries, batches;
	int stock_err, batch_err;
	pthread_t stock_thread, batch_thread;
};

/*
 * Creates the ring VM (RV_RING_ENTRIES, EP_PAGES per vCPU), attaches a
 * session and starts every thread. Returns 0 or -errno.
 */
int ep_start(struct epochs *x, int nr_epochs, uint64_t deadline_us,
	     int with_others);
/* Waits for the lanes to finish, stops the other threads. */
void ep_join(struct epochs *x);
/* Closes the session and the VM. */
void ep_destroy(struct epochs *x);

#endif /* KVMAS_RING_EPOCHS_H */
