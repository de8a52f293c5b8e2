/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A real KVM guest for tests, benchmarks and the demo: on x86 flat 32-bit
 * protected mode without paging or interrupts, on arm64 EL1 with the MMU
 * off and vectors of its own (guest_a64.h); one hand-assembled loop per
 * vCPU. Each
 * loop calls a function that lives in a "target" memslot (executes from it,
 * reads and writes a counter there) and bumps a progress counter in the base
 * slot. The runner threads account for every exit, in particular the ones a
 * memslot hole causes: MMIO exits and emulation failures at target GPAs.
 */
#ifndef KVMAS_WORKLOAD_H
#define KVMAS_WORKLOAD_H

#include <pthread.h>
#include <stdint.h>
#include <linux/kvm.h>

#define WL_MAX_VCPUS 4

/* Guest-physical map. Base slot 0 holds the loops, stacks and counters. */
#define WL_BASE_GPA 0x00000000ULL
/* Bases of last_fatal_reason, above every KVM exit reason. */
#define WL_FATAL_ERRNO 1000
#define WL_FATAL_INTERNAL 2000

#define WL_BASE_SIZE 0x00010000ULL
#define WL_LOOP_GPA(i) (0x1000ULL + (i)*0x100)
#define WL_STACK_GPA(i) (0x8000ULL - (i)*0x800)
#define WL_PROG_GPA(i) (0x9000ULL + (i)*0x40) /* loop counter */
/* arm64: 0x9800-0xa800 holds guest_a64.h's exception records and vectors. */

/*
 * Target region: vCPU i calls a function at WL_FUNC_GPA(i), which updates a
 * counter at WL_DATA_GPA(i). The target slots may be split, merged, resized
 * or moved by the test, as long as these GPAs stay mapped.
 */
#define WL_TARGET_GPA 0x00100000ULL
#define WL_FUNC_GPA(i) (WL_TARGET_GPA + (i)*0x10000)
#define WL_DATA_GPA(i) (WL_TARGET_GPA + (i)*0x10000 + 0x8000)

/*
 * Probe region (only with WL_PROBE in call_mask): the target function also
 * loads a dword from WL_PROBE_GPA(i), in two 64 KiB slots the test may move
 * (swap places) or make read-only. Both backing pages hold the same value.
 */
#define WL_PROBE (1U << 8)
#define WL_PROBE_GPA_BASE 0x00200000ULL
#define WL_PROBE_GPA(i) (WL_PROBE_GPA_BASE + (i)*0x1000)
#define WL_PROBE_SIZE 0x10000ULL /* each of the two slots */
#define WL_PROBE_VALUE 0x5a5a5a5a

struct wl_counts {
	uint64_t runs; /* KVM_RUN calls returning to userspace */
	uint64_t hole_mmio; /* MMIO exits at target GPAs */
	uint64_t hole_emul; /* emulation failures (code fetch from a hole) */

	uint64_t other_mmio; /* MMIO exits elsewhere */
	uint64_t fatal; /* shutdown, fail entry, unexpected exits */
	/*
	 * What stopped the vCPU for good: WL_FATAL_ERRNO + errno of KVM_RUN,
	 * WL_FATAL_INTERNAL + KVM_EXIT_INTERNAL_ERROR suberror, or the exit
	 * reason (< WL_FATAL_ERRNO) of an exit the runner does not expect.
	 */
	uint64_t last_fatal_reason;
};

struct wl_vm {
	int vm;
	int nr_vcpus;
	int vcpu[WL_MAX_VCPUS];
	struct kvm_run *run[WL_MAX_VCPUS];
	size_t run_size;
	/* Host memory backing the base slot and the whole target window. */
	uint8_t *base;
	uint8_t *target;
	size_t target_size;
	/* vCPU i's loop calls into the target only if (call_mask >> i) & 1. */
	unsigned int call_mask;
	/*
	 * Stats fds are opened before the runners start: KVM_GET_STATS_FD is a
	 * vCPU ioctl and would wait for vcpu->mutex, held across KVM_RUN.
	 */
	int stats_fd[WL_MAX_VCPUS];
	pthread_t thread[WL_MAX_VCPUS];
	volatile int stop;
	volatile int paused[WL_MAX_VCPUS]; /* QEMU-style pause protocol */
	volatile int pause_req;
	struct wl_counts count[WL_MAX_VCPUS];
	uint64_t hole_lo, hole_hi; /* target GPA window for accounting */
	uint8_t *probe; /* two probe slots' memory, 2 x 64 KiB */
	uint64_t probe_bad; /* probe loads that did not see the value */
};

/*
 * Creates the VM, the base slot (slot 0) and vCPUs with their loops. The
 * target window (@target_size bytes of host memory) is filled with the
 * functions and data but NOT mapped: the caller installs target slots.
 * Returns 0 or -errno.
 */
int wl_create(struct wl_vm *w, int nr_vcpus, size_t target_size,
	      unsigned int call_mask);
/* Starts one runner thread per vCPU. */
int wl_start(struct wl_vm *w);
/* Stops and joins the runners. */
void wl_stop(struct wl_vm *w);
void wl_destroy(struct wl_vm *w);

/* Asks every runner to leave KVM_RUN and park; waits until all have. */
void wl_pause_all(struct wl_vm *w);
void wl_resume_all(struct wl_vm *w);

/* Guest progress of vCPU i (loop iterations / target-function calls). */
uint32_t wl_progress(struct wl_vm *w, int i);
uint32_t wl_target_counter(struct wl_vm *w, int i);
/* Probe loads by vCPU i that did not see WL_PROBE_VALUE (guest-counted). */
uint32_t wl_probe_bad(struct wl_vm *w, int i);

/*
 * Sum of hole exits over all vCPUs, and on arm64 of the exceptions the
 * guest took (each one an abort KVM injected at a hole).
 */
uint64_t wl_holes(struct wl_vm *w);
/*
 * arm64: exceptions vCPU i took, and the last one's ESR_EL1 and FAR_EL1
 * (0 and no syndrome on x86, where a hole is always an exit).
 */
uint64_t wl_guest_exceptions(struct wl_vm *w, int i, uint64_t *esr,
			     uint64_t *far);
uint64_t wl_fatal(struct wl_vm *w);

/* A vCPU statistic by name from KVM_GET_STATS_FD (sum for vCPU -1). */
int64_t wl_vcpu_stat(struct wl_vm *w, int i, const char *name);

/*
 * Resizes target slot 1 to @size with a one-op KVMAS_COMMIT_BATCH on the
 * attached session @dev (a REPLACE keeping gpa and hva). Returns 0 or -errno;
 * *@gps (may be NULL) receives the grace periods the commit took.
 */
int wl_batch_resize(struct wl_vm *w, int dev, uint64_t size, unsigned int *gps);
/* The same with KVMAS_BATCH_* @flags. */
int wl_batch_resize_flags(struct wl_vm *w, int dev, uint64_t size,
			  unsigned int flags, unsigned int *gps);

/* Microseconds on CLOCK_MONOTONIC. */
uint64_t wl_now_us(void);

#endif /* KVMAS_WORKLOAD_H */
