// SPDX-License-Identifier: GPL-2.0
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "workload.h"
#if defined(__aarch64__)
#include "guest_a64.h"
#else
#include "guest_flat32.h"
#endif
#include <linux/kvm_atomic_slots.h>

static int xioctl(int fd, unsigned long req, void *arg)
{
	return ioctl(fd, req, arg) < 0 ? -errno : 0;
}

#if !defined(__aarch64__)
static void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

/*
 * vCPU loop at WL_LOOP_GPA(i):
 *   again: call WL_FUNC_GPA(i)      e8 rel32   (only if it calls the target)
 *          inc dword [WL_PROG_GPA]  ff 05 abs32
 *          jmp again                e9 rel32
 */
static void emit_loop(uint8_t *base, int i, int calls)
{
	uint32_t at = WL_LOOP_GPA(i), pc = at;
	uint8_t *p = base + at;

	if (calls) {
		p[0] = 0xe8;
		put32(p + 1, (uint32_t)(WL_FUNC_GPA(i) - (pc + 5)));
		p += 5;
		pc += 5;
	}
	p[0] = 0xff;
	p[1] = 0x05;
	put32(p + 2, (uint32_t)WL_PROG_GPA(i));
	p += 6;
	pc += 6;
	p[0] = 0xe9;
	put32(p + 1, at - (pc + 5));
}

/*
 * Target function at WL_FUNC_GPA(i): read, increment and write back the
 * counter at WL_DATA_GPA(i), i.e. fetch, load and store in the target.
 *   mov eax, [abs32]  a1 abs32
 *   inc eax           40
 *   mov [abs32], eax  a3 abs32
 *   ret               c3
 */
static void emit_func(uint8_t *target, int i, int probe)
{
	uint8_t *p = target + (WL_FUNC_GPA(i) - WL_TARGET_GPA);

	p[0] = 0xa1;
	put32(p + 1, (uint32_t)WL_DATA_GPA(i));
	p[5] = 0x40;
	p[6] = 0xa3;
	put32(p + 7, (uint32_t)WL_DATA_GPA(i));
	p += 11;
	if (probe) {
		/*
		 * mov ecx, [probe]      8b 0d abs32
		 * cmp ecx, VALUE        81 f9 imm32
		 * je  ok                74 06
		 * inc dword [bad]       ff 05 abs32   (counted in guest memory)
		 * ok:
		 */
		p[0] = 0x8b;
		p[1] = 0x0d;
		put32(p + 2, (uint32_t)WL_PROBE_GPA(i));
		p[6] = 0x81;
		p[7] = 0xf9;
		put32(p + 8, WL_PROBE_VALUE);
		p[12] = 0x74;
		p[13] = 0x06;
		p[14] = 0xff;
		p[15] = 0x05;
		put32(p + 16, (uint32_t)(WL_PROG_GPA(i) + 4));
		p += 20;
	}
	p[0] = 0xc3;
}

static int wl_vcpu_setup(struct wl_vm *w, int i)
{
	return guest_flat32(w->vcpu[i], WL_LOOP_GPA(i), WL_STACK_GPA(i));
}
#else /* __aarch64__ */
/*
 * The same guest in A64. Constants live in registers the vector handler
 * does not touch: x20 = WL_PROG_GPA(i), x21 = WL_DATA_GPA(i),
 * x22 = WL_PROBE_GPA(i), w23 = WL_PROBE_VALUE.
 *   again: bl   WL_FUNC_GPA(i)      (only if it calls the target)
 *          ldr  w1, [x20]
 *          add  w1, w1, #1
 *          str  w1, [x20]
 *          b    again
 */
static void put_insns(uint8_t *p, const uint32_t *insn, int n)
{
	memcpy(p, insn, n * sizeof(*insn));
}

static void emit_loop(uint8_t *base, int i, int calls)
{
	uint64_t at = WL_LOOP_GPA(i), pc = at;
	uint32_t insn[5];
	int n = 0;

	if (calls) {
		insn[n++] = a64_bl(pc, WL_FUNC_GPA(i));
		pc += 4;
	}
	insn[n++] = a64_ldr_w(1, 20, 0);
	insn[n++] = a64_add_w(1, 1, 1);
	insn[n++] = a64_str_w(1, 20, 0);
	pc += 12;
	insn[n++] = a64_b(pc, at);
	put_insns(base + at, insn, n);
}

/*
 * Target function: fetch, load and store in the target window.
 *   ldr w0, [x21]; add w0, w0, #1; str w0, [x21]
 * with WL_PROBE:
 *   ldr w2, [x22]; cmp w2, w23; b.eq ok
 *   ldr w1, [x20, #4]; add w1, w1, #1; str w1, [x20, #4]   (bad probes)
 * ok: ret
 */
static void emit_func(uint8_t *target, int i, int probe)
{
	uint64_t at = WL_FUNC_GPA(i);
	uint32_t insn[11];
	int n = 0;

	insn[n++] = a64_ldr_w(0, 21, 0);
	insn[n++] = a64_add_w(0, 0, 1);
	insn[n++] = a64_str_w(0, 21, 0);
	if (probe) {
		insn[n++] = a64_ldr_w(2, 22, 0);
		insn[n++] = a64_cmp_w(2, 23);
		insn[n] = a64_b_eq(at + 4 * n, at + 4 * (n + 4));
		n++;
		insn[n++] = a64_ldr_w(1, 20, 4);
		insn[n++] = a64_add_w(1, 1, 1);
		insn[n++] = a64_str_w(1, 20, 4);
	}
	insn[n++] = A64_RET;
	put_insns(target + (at - WL_TARGET_GPA), insn, n);
}

/* Also what the handler restarts: the loop's top with a fresh stack. */
static int wl_vcpu_setup(struct wl_vm *w, int i)
{
	int r = a64_vcpu_start(w->vcpu[i], w->base, i, WL_LOOP_GPA(i),
			       WL_STACK_GPA(i));

	if (!r)
		r = a64_set_reg(w->vcpu[i], A64_X(20), WL_PROG_GPA(i));
	if (!r)
		r = a64_set_reg(w->vcpu[i], A64_X(21), WL_DATA_GPA(i));
	if (!r)
		r = a64_set_reg(w->vcpu[i], A64_X(22), WL_PROBE_GPA(i));
	if (!r)
		r = a64_set_reg(w->vcpu[i], A64_X(23), WL_PROBE_VALUE);
	return r;
}
#endif

int wl_create(struct wl_vm *w, int nr_vcpus, size_t target_size,
	      unsigned int call_mask)
{
	struct kvm_userspace_memory_region base;
	int kvm, i, r;

	memset(w, 0, sizeof(*w));
	w->vm = -1;
	if (nr_vcpus < 1 || nr_vcpus > WL_MAX_VCPUS ||
	    target_size < (size_t)nr_vcpus * 0x10000)
		return -EINVAL;
	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		return -errno;
	w->vm = ioctl(kvm, KVM_CREATE_VM, 0);
	w->run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	close(kvm);
	if (w->vm < 0)
		return -errno;

	w->nr_vcpus = nr_vcpus;
	w->call_mask = call_mask;
	w->target_size = target_size;
	w->hole_lo = WL_TARGET_GPA;
	w->hole_hi = WL_TARGET_GPA + target_size;
	w->base = mmap(NULL, WL_BASE_SIZE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	w->target = mmap(NULL, target_size, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (w->base == MAP_FAILED || w->target == MAP_FAILED)
		return -ENOMEM;

#if defined(__aarch64__)
	a64_emit_vectors(w->base + A64_VECTORS_GPA);
#endif
	for (i = 0; i < nr_vcpus; i++) {
		emit_loop(w->base, i, (call_mask >> i) & 1);
		emit_func(w->target, i, !!(call_mask & WL_PROBE));
	}
	if (call_mask & WL_PROBE) {
		uint32_t k, v = WL_PROBE_VALUE;

		w->probe = mmap(NULL, 2 * WL_PROBE_SIZE, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (w->probe == MAP_FAILED)
			return -ENOMEM;
		/* Same value everywhere: whichever slot sits there, it reads true. */
		for (k = 0; k < 2 * WL_PROBE_SIZE; k += 4)
			memcpy(w->probe + k, &v, 4);
	}
	base = (struct kvm_userspace_memory_region){
		.slot = 0,
		.guest_phys_addr = WL_BASE_GPA,
		.memory_size = WL_BASE_SIZE,
		.userspace_addr = (uintptr_t)w->base,
	};
	r = xioctl(w->vm, KVM_SET_USER_MEMORY_REGION, &base);
	if (r)
		return r;

	for (i = 0; i < nr_vcpus; i++) {
		w->vcpu[i] = ioctl(w->vm, KVM_CREATE_VCPU, i);
		if (w->vcpu[i] < 0)
			return -errno;
		w->run[i] = mmap(NULL, w->run_size, PROT_READ | PROT_WRITE,
				 MAP_SHARED, w->vcpu[i], 0);
		if (w->run[i] == MAP_FAILED)
			return -errno;
#if defined(__aarch64__)
		r = a64_vcpu_init(w->vm, w->vcpu[i]);
		if (r)
			return r;
#endif
		r = wl_vcpu_setup(w, i);
		if (r)
			return r;
		w->stats_fd[i] = ioctl(w->vcpu[i], KVM_GET_STATS_FD, NULL);
		if (w->stats_fd[i] < 0)
			return -errno;
	}
	return 0;
}

/* Back to the loop's first instruction, nothing pending. */
static int reset_vcpu(struct wl_vm *w, int i)
{
#if defined(__aarch64__)
	/* Never called: a fetch from a hole is an abort the guest handles. */
	return wl_vcpu_setup(w, i);
#else
	struct kvm_vcpu_events ev;
	int r = xioctl(w->vcpu[i], KVM_GET_VCPU_EVENTS, &ev);

	if (r)
		return r;
	memset(&ev.exception, 0, sizeof(ev.exception));
	memset(&ev.interrupt, 0, sizeof(ev.interrupt));
	ev.nmi.injected = ev.nmi.pending = 0;
	ev.flags = 0;
	r = xioctl(w->vcpu[i], KVM_SET_VCPU_EVENTS, &ev);
	return r ? r : wl_vcpu_setup(w, i);
#endif
}

struct runner_arg {
	struct wl_vm *w;
	int i;
};

static void on_kick(int sig)
{
	(void)sig;
}

static int in_hole_window(struct wl_vm *w, uint64_t gpa)
{
	return (gpa >= w->hole_lo && gpa < w->hole_hi) ||
	       (w->probe && gpa >= WL_PROBE_GPA_BASE &&
		gpa < WL_PROBE_GPA_BASE + 2 * WL_PROBE_SIZE);
}

/* A parked vCPU's poll period: short next to a pause, long next to a spin. */
#define WL_PARK_POLL_US 50

static void *runner(void *p)
{
	struct runner_arg *a = p;
	struct wl_vm *w = a->w;
	int i = a->i;
	struct kvm_run *run = w->run[i];
	struct wl_counts *c = &w->count[i];

	free(a);
	while (!w->stop) {
		if (w->pause_req) {
			/* Parked outside KVM_RUN, like QEMU's pause_all_vcpus(). */
			__atomic_store_n(&w->paused[i], 1, __ATOMIC_RELEASE);
			while (w->pause_req && !w->stop)
				usleep(WL_PARK_POLL_US);
			__atomic_store_n(&w->paused[i], 0, __ATOMIC_RELEASE);
			continue;
		}
		if (ioctl(w->vcpu[i], KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			c->fatal++;
			c->last_fatal_reason = WL_FATAL_ERRNO + errno;
			break;
		}
		c->runs++;
		switch (run->exit_reason) {
		case KVM_EXIT_MMIO:
			if (in_hole_window(w, run->mmio.phys_addr))
				c->hole_mmio++;
			else
				c->other_mmio++;
			/* A read from a hole returns garbage to the guest. */
			if (!run->mmio.is_write)
				memset(run->mmio.data, 0,
				       sizeof(run->mmio.data));
			break;
		case KVM_EXIT_INTERNAL_ERROR:
			/*
			 * Emulation failure: KVM could not fetch the instruction
			 * (no memslot). QEMU stops the VM here, and resuming as
			 * is ends in a triple fault; we count the hole and put
			 * the vCPU back at the top of its loop.
			 */
			if (run->internal.suberror ==
				    KVM_INTERNAL_ERROR_EMULATION &&
			    !reset_vcpu(w, i)) {
				c->hole_emul++;
			} else {
				c->fatal++;
				c->last_fatal_reason = WL_FATAL_INTERNAL +
						       run->internal.suberror;
				w->stop = 1;
			}
			break;
		case KVM_EXIT_INTR:
			break;
		default:
			c->fatal++;
			c->last_fatal_reason = run->exit_reason;
			w->stop = 1;
			break;
		}
	}
	return NULL;
}

int wl_start(struct wl_vm *w)
{
	struct sigaction sa = { .sa_handler = on_kick };
	int i;

	/* SIGUSR1 only interrupts KVM_RUN; no SA_RESTART. */
	sigaction(SIGUSR1, &sa, NULL);
	w->stop = 0;
	for (i = 0; i < w->nr_vcpus; i++) {
		struct runner_arg *a = malloc(sizeof(*a));

		if (!a)
			return -ENOMEM;
		a->w = w;
		a->i = i;
		if (pthread_create(&w->thread[i], NULL, runner, a)) {
			free(a);
			return -EAGAIN;
		}
	}
	return 0;
}

static void kick_all(struct wl_vm *w)
{
	int i;

	for (i = 0; i < w->nr_vcpus; i++)
		pthread_kill(w->thread[i], SIGUSR1);
}

void wl_stop(struct wl_vm *w)
{
	int i;

	w->stop = 1;
	for (i = 0; i < w->nr_vcpus; i++) {
		/* Kick until the runner notices: a kick may land outside KVM_RUN. */
		while (pthread_tryjoin_np(w->thread[i], NULL) == EBUSY) {
			pthread_kill(w->thread[i], SIGUSR1);
			usleep(200);
		}
	}
}

void wl_pause_all(struct wl_vm *w)
{
	int i, all;

	w->pause_req = 1;
	do {
		kick_all(w);
		all = 1;
		for (i = 0; i < w->nr_vcpus; i++)
			all &= __atomic_load_n(&w->paused[i], __ATOMIC_ACQUIRE);
	} while (!all && !w->stop);
}

void wl_resume_all(struct wl_vm *w)
{
	w->pause_req = 0;
}

void wl_destroy(struct wl_vm *w)
{
	int i;

	for (i = 0; i < w->nr_vcpus; i++) {
		if (w->run[i] && w->run[i] != MAP_FAILED)
			munmap(w->run[i], w->run_size);
		if (w->stats_fd[i] > 0)
			close(w->stats_fd[i]);
		if (w->vcpu[i] > 0)
			close(w->vcpu[i]);
	}
	if (w->vm >= 0)
		close(w->vm);
	if (w->base && w->base != MAP_FAILED)
		munmap(w->base, WL_BASE_SIZE);
	if (w->target && w->target != MAP_FAILED)
		munmap(w->target, w->target_size);
	if (w->probe && w->probe != MAP_FAILED)
		munmap(w->probe, 2 * WL_PROBE_SIZE);
	memset(w, 0, sizeof(*w));
	w->vm = -1;
}

uint32_t wl_progress(struct wl_vm *w, int i)
{
	uint32_t v;

	memcpy(&v, w->base + WL_PROG_GPA(i), 4);
	return v;
}

uint32_t wl_probe_bad(struct wl_vm *w, int i)
{
	uint32_t v;

	memcpy(&v, w->base + WL_PROG_GPA(i) + 4, 4);
	return v;
}

uint32_t wl_target_counter(struct wl_vm *w, int i)
{
	uint32_t v;

	memcpy(&v, w->target + (WL_DATA_GPA(i) - WL_TARGET_GPA), 4);
	return v;
}

uint64_t wl_holes(struct wl_vm *w)
{
	uint64_t n = 0;
	int i;

	for (i = 0; i < w->nr_vcpus; i++)
		n += w->count[i].hole_mmio + w->count[i].hole_emul +
		     wl_guest_exceptions(w, i, NULL, NULL);
	return n;
}

uint64_t wl_guest_exceptions(struct wl_vm *w, int i, uint64_t *esr,
			     uint64_t *far)
{
#if defined(__aarch64__)
	const struct a64_exc_record *rec = a64_record(w->base, i);

	if (esr)
		*esr = __atomic_load_n(&rec->esr, __ATOMIC_RELAXED);
	if (far)
		*far = __atomic_load_n(&rec->far, __ATOMIC_RELAXED);
	return __atomic_load_n(&rec->count, __ATOMIC_RELAXED);
#else
	if (esr)
		*esr = 0;
	if (far)
		*far = 0;
	return 0;
#endif
}

uint64_t wl_fatal(struct wl_vm *w)
{
	uint64_t n = 0;
	int i;

	for (i = 0; i < w->nr_vcpus; i++)
		n += w->count[i].fatal;
	return n;
}

static int64_t stat_one(int fd, const char *name)
{
	struct kvm_stats_header h;
	struct kvm_stats_desc *d;
	int64_t ret = -ENOENT;
	size_t dsz;
	char *descs;
	uint32_t k;

	if (pread(fd, &h, sizeof(h), 0) != sizeof(h))
		return -EIO;
	dsz = sizeof(*d) + h.name_size;
	descs = malloc(dsz * h.num_desc);
	if (!descs || pread(fd, descs, dsz * h.num_desc, h.desc_offset) !=
			      (ssize_t)(dsz * h.num_desc)) {
		free(descs);
		return -EIO;
	}
	for (k = 0; k < h.num_desc; k++) {
		uint64_t v;

		d = (struct kvm_stats_desc *)(descs + k * dsz);
		if (strcmp(d->name, name))
			continue;
		if (pread(fd, &v, sizeof(v), h.data_offset + d->offset) ==
		    sizeof(v))
			ret = (int64_t)v;
		break;
	}
	free(descs);
	return ret;
}

int64_t wl_vcpu_stat(struct wl_vm *w, int i, const char *name)
{
	int64_t sum = 0, v;
	int k;

	if (i >= 0)
		return stat_one(w->stats_fd[i], name);
	for (k = 0; k < w->nr_vcpus; k++) {
		v = stat_one(w->stats_fd[k], name);
		if (v < 0)
			return v;
		sum += v;
	}
	return sum;
}

int wl_batch_resize(struct wl_vm *w, int dev, uint64_t size, unsigned int *gps)
{
	return wl_batch_resize_flags(w, dev, size, 0, gps);
}

int wl_batch_resize_flags(struct wl_vm *w, int dev, uint64_t size,
			  unsigned int flags, unsigned int *gps)
{
	struct kvmas_batch_op op = {
		.op = KVMAS_OP_REPLACE,
		.slot = 1,
		.guest_phys_addr = WL_TARGET_GPA,
		.memory_size = size,
		.userspace_addr = (uintptr_t)w->target,
	};
	struct kvmas_commit_batch c = {
		.size = sizeof(c),
		.flags = flags,
		.nr_ops = 1,
		.op_size = sizeof(op),
		.ops = (uintptr_t)&op,
	};
	int r = xioctl(dev, KVMAS_COMMIT_BATCH, &c);

	if (gps)
		*gps = c.grace_periods;
	return r;
}

uint64_t wl_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}
