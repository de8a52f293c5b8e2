// SPDX-License-Identifier: GPL-2.0
/*
 * An unmodified "VMM" for the preload tests (tests/preload_test.c runs it
 * with and without LD_PRELOAD=libkvmas-preload.so). Dynamically linked, plain
 * KVM ioctls only; it knows nothing of the shim. Modes:
 *   resize N   2 running vCPUs, vCPU0 executing in slot 1; N DELETE+CREATE
 *              changes (grow, split, merge, shrink); prints hole counts
 *   errno      bad and borderline inputs, one "name rc errno" line each
 *   timer      one DELETE with no ioctl after it while vCPU0 runs in the
 *              slot; prints how long until the vCPU saw it gone
 *   smm        QEMU 7.2's PAM pattern in address spaces 0 and 1: DELETE a
 *              RAM slot, re-create it as RAM + a read-only slot with
 *              another HVA + RAM; prints the final layouts
 *   bench N    N KVM_RUN-free vCPU ioctls (KVM_GET_REGS): cost per call
 *   hooks      a DELETE followed by munmap of its memory, by fork, by a
 *              vCPU ioctl from another thread, by close of the VM fd
 *   dirty      vCPU0 writes in a dirty-logged slot; DELETE + CREATE of
 *              the same range; prints the dirty pages KVM_GET_DIRTY_LOG
 *              then reports for the new slot
 */
#include <pthread.h>
#include <sys/wait.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kvm_helpers.h"
#include "workload.h"

#define KiB 1024ULL

static int slot(struct wl_vm *w, unsigned int as, unsigned int id,
		unsigned int flags, uint64_t gpa, uint64_t size, void *hva)
{
	return kvm_set_slot(w->vm, as, id, flags, gpa, size, hva);
}

static int do_resize(int iters)
{
	uint64_t half = 128 * KiB, full = 256 * KiB, gpa = WL_TARGET_GPA;
	int64_t mmio0, mmio1;
	struct wl_vm w;
	uint8_t *t;
	int i, r = 0;

	r = wl_create(&w, 2, full, 0x1);
	if (!r)
		r = slot(&w, 0, 1, 0, gpa, half, w.target);
	if (r || wl_start(&w)) {
		printf("setup failed: %s\n", strerror(-r));
		return 1;
	}
	t = w.target;
	usleep(100 * 1000);
	mmio0 = wl_vcpu_stat(&w, -1, "pf_mmio_spte_created");
	for (i = 0; i < iters && !r; i++) {
		switch (i % 4) {
		case 0: /* grow slot 1 from 128 to 256 KiB */
			r = slot(&w, 0, 1, 0, gpa, 0, t);
			r = r ?: slot(&w, 0, 1, 0, gpa, full, t);
			break;
		case 1: /* split it in two */
			r = slot(&w, 0, 1, 0, gpa, 0, t);
			r = r ?: slot(&w, 0, 1, 0, gpa, half, t);
			r = r ?: slot(&w, 0, 2, 0, gpa + half, half, t + half);
			break;
		case 2: /* merge the two */
			r = slot(&w, 0, 1, 0, gpa, 0, t);
			r = r ?: slot(&w, 0, 2, 0, gpa + half, 0, t + half);
			r = r ?: slot(&w, 0, 1, 0, gpa, full, t);
			break;
		case 3: /* shrink back to 128 KiB */
			r = slot(&w, 0, 1, 0, gpa, 0, t);
			r = r ?: slot(&w, 0, 1, 0, gpa, half, t);
			break;
		}
		if (i % 16 == 15)
			usleep(1000);
	}
	usleep(100 * 1000);
	wl_stop(&w);
	mmio1 = wl_vcpu_stat(&w, -1, "pf_mmio_spte_created");
	printf("iters=%d rc=%d holes=%llu hole_mmio=%llu hole_emul=%llu "
	       "mmio_stat=%lld fatal=%llu calls=%u\n",
	       i, r, (unsigned long long)wl_holes(&w),
	       (unsigned long long)(w.count[0].hole_mmio +
				    w.count[1].hole_mmio),
	       (unsigned long long)(w.count[0].hole_emul +
				    w.count[1].hole_emul),
	       (long long)(mmio1 - mmio0), (unsigned long long)wl_fatal(&w),
	       wl_target_counter(&w, 0));
	wl_destroy(&w);
	return r ? 1 : 0;
}

static void show(const char *name, long rc)
{
	printf("%s rc=%ld errno=%s\n", name, rc,
	       rc < 0 ? strerror(errno) : "-");
	errno = 0;
}

static long region(int fd, unsigned int s, unsigned int flags, uint64_t gpa,
		   uint64_t size, void *hva)
{
	struct kvm_userspace_memory_region m = {
		.slot = s,
		.flags = flags,
		.guest_phys_addr = gpa,
		.memory_size = size,
		.userspace_addr = (uintptr_t)hva,
	};

	return ioctl(fd, KVM_SET_USER_MEMORY_REGION, &m);
}

/* KVM_SET_USER_MEMORY_REGION2 (6.8+; 6.1 answers ENOTTY) */
struct region2 {
	__u32 slot, flags;
	__u64 gpa, size, hva, gmem_offset;
	__u32 gmem, pad1;
	__u64 pad2[14];
};
#define SET_REGION2 _IOW(KVMIO, 0x49, struct region2)

static long region2(int fd, unsigned int s, unsigned int flags, uint64_t gpa,
		    uint64_t size, void *hva, __u32 gmem)
{
	struct region2 m = {
		.slot = s,
		.flags = flags,
		.gpa = gpa,
		.size = size,
		.hva = (uintptr_t)hva,
		.gmem = gmem,
		.pad1 = 7,
	};

	return ioctl(fd, SET_REGION2, &m);
}

static int do_errno(void)
{
	uint64_t gpa = WL_TARGET_GPA, sz = 128 * KiB;
	struct kvm_dirty_log log = { .slot = 1 };
	unsigned long bitmap[8];
	struct wl_vm w;
	int p[2], nul, r;
	uint8_t *t;

	r = wl_create(&w, 1, 256 * KiB, 0);
	if (r) {
		printf("setup failed: %s\n", strerror(-r));
		return 1;
	}
	t = w.target;
	log.dirty_bitmap = bitmap;
	show("create-1", region(w.vm, 1, 0, gpa, sz, t));
	show("unknown-vm-ioctl", ioctl(w.vm, _IO(KVMIO, 0xfe), 0));
	show("delete-missing", region(w.vm, 7, 0, 0, 0, NULL));
	show("delete-as1-missing", region(w.vm, 1 << 16 | 1, 0, 0, 0, NULL));
	show("delete-as2", region(w.vm, 2 << 16 | 1, 0, 0, 0, NULL));
	show("delete-bad-flags", region(w.vm, 1, 1 << 7, gpa, 0, t));
	show("delete-bad-gpa", region(w.vm, 1, 0, gpa + 1, 0, t));
	show("delete-bad-hva", region(w.vm, 1, 0, gpa, 0, t + 1));
	show("delete-huge-id", region(w.vm, 40000, 0, gpa, 0, t));
	show("region-efault",
	     ioctl(w.vm, KVM_SET_USER_MEMORY_REGION, (void *)16));
	show("create-overlap", region(w.vm, 3, 0, gpa, sz, t));
	show("create-unaligned", region(w.vm, 3, 0, gpa + sz + 1, sz, t));
	show("create-bad-flags", region(w.vm, 3, 1 << 9, gpa + sz, sz, t));
	/* Held DELETE, then inputs that stock KVM judges after the delete. */
	show("delete-1", region(w.vm, 1, 0, gpa, 0, t));
	show("delete-1-again", region(w.vm, 1, 0, gpa, 0, t));
	show("create-1", region(w.vm, 1, 0, gpa, sz, t));
	show("delete-1", region(w.vm, 1, 0, gpa, 0, t));
	show("recreate-overlapping-base", region(w.vm, 1, 0, 0, sz, t));
	show("recreate-bad-flags", region(w.vm, 1, 1 << 9, gpa, sz, t));
	show("create-1", region(w.vm, 1, KVM_MEM_LOG_DIRTY_PAGES, gpa, sz, t));
	show("delete-1", region(w.vm, 1, 0, gpa, 0, t));
	show("dirty-log-of-deleted", ioctl(w.vm, KVM_GET_DIRTY_LOG, &log));
	show("create-1", region(w.vm, 1, 0, gpa, sz, t));
	show("delete-1", region(w.vm, 1, 0, gpa, 0, t));
	show("create-2-partial", region(w.vm, 2, 0, gpa, sz / 2, t));
	show("create-2-again", region(w.vm, 2, 0, gpa, sz / 2, t));
	show("move-2", region(w.vm, 2, 0, gpa + sz, sz / 2, t));
	show("delete-2", region(w.vm, 2, 0, gpa, 0, t));
	show("delete-2-again", region(w.vm, 2, 0, gpa, 0, t));
	show("create-1-ro", region(w.vm, 1, KVM_MEM_READONLY, gpa, sz, t));
	show("delete-1", region(w.vm, 1, 0, gpa, 0, t));
	show("create-1-other-as-overlap",
	     region(w.vm, 1 << 16 | 1, 0, gpa, sz, t));
	show("create-1", region(w.vm, 1, 0, gpa, sz, t));
	/* The same through REGION2, guest_memfd = -1 as kvm_util passes it. */
	show("v2-delete-missing", region2(w.vm, 7, 0, 0, 0, NULL, -1));
	show("v2-delete-1", region2(w.vm, 1, 0, gpa, 0, t, -1));
	show("v2-delete-1-again", region2(w.vm, 1, 0, gpa, 0, t, -1));
	show("v2-create-1-half", region2(w.vm, 1, 0, gpa, sz / 2, t, -1));
	show("v2-create-2-half",
	     region2(w.vm, 2, 0, gpa + sz / 2, sz / 2, t + sz / 2, -1));
	show("v2-create-1-again", region(w.vm, 1, 0, gpa, sz, t));
	show("v2-delete-2", region2(w.vm, 2, 0, 0, 0, NULL, 0));
	show("v2-create-2-bad-gmem-flag",
	     region2(w.vm, 2, 1 << 2, gpa + sz / 2, sz / 2, t, 3));
	show("v2-delete-2-again", region2(w.vm, 2, 0, 0, 0, NULL, 0));
	if (pipe(p))
		return 1;
	show("pipe-region", region(p[0], 1, 0, gpa, sz, t));
	show("pipe-unknown-kvm-ioctl", ioctl(p[0], _IO(KVMIO, 0x03), 0));
	nul = open("/dev/null", O_RDWR);
	show("null-tcgets", ioctl(nul, TCGETS, bitmap));
	show("badfd", ioctl(12345, KVM_RUN, 0));
	show("vcpu-unknown", ioctl(w.vcpu[0], _IO(KVMIO, 0xfd), 0));
	show("close-pipe", close(p[0]));
	show("close-pipe-again", close(p[0]));
	/* Final layout as the VM itself reports it: dirty-log probes. */
	for (r = 0; r < 4; r++) {
		char name[32];

		log.slot = r;
		snprintf(name, sizeof(name), "final-dirty-log-%d", r);
		show(name, ioctl(w.vm, KVM_GET_DIRTY_LOG, &log));
	}
	wl_destroy(&w);
	return 0;
}

/* A grow through REGION2 with guest_memfd = -1, as 6.12's kvm_util does. */
static int do_v2(void)
{
	uint64_t gpa = WL_TARGET_GPA;
	struct wl_vm w;
	long r;

	if (wl_create(&w, 1, 256 * KiB, 0))
		return 1;
	r = region2(w.vm, 1, 0, gpa, 128 * KiB, w.target, -1);
	show("v2-create", r);
	show("v2-delete", region2(w.vm, 1, 0, gpa, 0, w.target, -1));
	show("v2-grow", region2(w.vm, 1, 0, gpa, 256 * KiB, w.target, -1));
	wl_destroy(&w);
	return 0;
}

static int do_timer(void)
{
	uint64_t t0, t1 = 0;
	struct wl_vm w;
	int r;

	r = wl_create(&w, 1, 256 * KiB, 0x1);
	if (!r)
		r = slot(&w, 0, 1, 0, WL_TARGET_GPA, 256 * KiB, w.target);
	if (r || wl_start(&w)) {
		printf("setup failed: %s\n", strerror(-r));
		return 1;
	}
	usleep(100 * 1000);
	t0 = wl_now_us();
	r = slot(&w, 0, 1, 0, WL_TARGET_GPA, 0, w.target);
	/* No ioctl from here: only the vCPU's own exits. */
	while (wl_now_us() - t0 < 3000000) {
		if (wl_holes(&w) || wl_fatal(&w)) {
			t1 = wl_now_us();
			break;
		}
		usleep(200);
	}
	wl_stop(&w);
	printf("rc=%d seen=%d latency_ms=%.1f\n", r, t1 != 0,
	       t1 ? (t1 - t0) / 1000.0 : -1.0);
	wl_destroy(&w);
	return 0;
}

static int do_smm(void)
{
	uint64_t ram = 1024 * KiB;
	struct kvm_dirty_log log;
	unsigned long bm[64];
	uint8_t *mem, *rom;
	struct wl_vm w;
	int as, r = 0;

	r = wl_create(&w, 1, 256 * KiB, 0);
	mem = guest_mem(ram);
	rom = guest_mem(256 * KiB);
	if (r || !mem || !rom)
		return 1;
	for (as = 0; as < 2 && !r; as++)
		r = slot(&w, as, 1, KVM_MEM_LOG_DIRTY_PAGES, 0x100000, ram,
			 mem);
	/* What QEMU 7.2 does on a PAM write: per address space. */
	for (as = 0; as < 2 && !r; as++) {
		r = slot(&w, as, 1, KVM_MEM_LOG_DIRTY_PAGES, 0x100000, 0, mem);
		r = r	  ?:
			    slot(&w, as, 1, KVM_MEM_LOG_DIRTY_PAGES, 0x100000,
				 0x40000, mem);
		r = r	  ?:
			    slot(&w, as, 2, KVM_MEM_READONLY, 0x140000, 0x40000,
				 rom);
		r = r	  ?:
			    slot(&w, as, 3, KVM_MEM_LOG_DIRTY_PAGES, 0x180000,
				 0x80000, mem + 0x80000);
	}
	printf("rc=%d\n", r);
	/* The layout, probed through the VM: dirty logs of each slot. */
	for (as = 0; as < 2; as++) {
		int id;

		for (id = 1; id <= 3; id++) {
			memset(&log, 0, sizeof(log));
			log.slot = as << 16 | id;
			log.dirty_bitmap = bm;
			r = ioctl(w.vm, KVM_GET_DIRTY_LOG, &log);
			printf("as%d slot%d dirty_log rc=%d %s\n", as, id, r,
			       r ? strerror(errno) : "");
		}
	}
	wl_destroy(&w);
	return 0;
}

static int do_bench(int iters)
{
	struct kvm_regs regs;
	uint64_t t0;
	struct wl_vm w;
	int i, r;

	r = wl_create(&w, 1, 64 * KiB, 0);
	if (r)
		return 1;
	t0 = wl_now_us();
	for (i = 0; i < iters; i++)
		if (ioctl(w.vcpu[0], KVM_GET_REGS, &regs))
			return 1;
	printf("ns_per_call=%.0f\n", (wl_now_us() - t0) * 1000.0 / iters);
	wl_destroy(&w);
	return 0;
}

struct regs_arg {
	int fd;
	uint64_t us;
	int rc;
};

static void *get_regs(void *p)
{
	struct regs_arg *a = p;
	struct kvm_regs regs;
	uint64_t t0 = wl_now_us();

	a->rc = ioctl(a->fd, KVM_GET_REGS, &regs);
	a->us = wl_now_us() - t0;
	return NULL;
}

static int do_hooks(void)
{
	uint64_t gpa = WL_TARGET_GPA, sz = 128 * KiB;
	struct regs_arg ra = { 0 };
	uint8_t *extra;
	struct wl_vm w;
	pthread_t t;
	int r, st;
	pid_t pid;

	r = wl_create(&w, 1, 256 * KiB, 0);
	extra = guest_mem(64 * KiB);
	if (r || !extra)
		return 1;
	/* munmap of a held DELETE's memory */
	r = slot(&w, 0, 5, 0, 0x400000, 64 * KiB, extra);
	r = r ?: slot(&w, 0, 5, 0, 0x400000, 0, extra);
	printf("mm rc=%d munmap=%d\n", r, munmap(extra, 64 * KiB));
	/* fork */
	r = slot(&w, 0, 1, 0, gpa, sz, w.target);
	r = r ?: slot(&w, 0, 1, 0, gpa, 0, w.target);
	pid = fork();
	if (!pid)
		_exit(0);
	waitpid(pid, &st, 0);
	printf("fork rc=%d child=%d\n", r, WEXITSTATUS(st));
	/* a vCPU ioctl from another thread waits for the deadline */
	r = slot(&w, 0, 1, 0, gpa, sz, w.target);
	r = r ?: slot(&w, 0, 1, 0, gpa, 0, w.target);
	ra.fd = w.vcpu[0];
	pthread_create(&t, NULL, get_regs, &ra);
	pthread_join(t, NULL);
	printf("vcpu rc=%d get_regs=%d waited_ms=%llu\n", r, ra.rc,
	       (unsigned long long)ra.us / 1000);
	/* ... but not when it comes from the thread that held the DELETE */
	r = slot(&w, 0, 1, 0, gpa, sz, w.target);
	r = r ?: slot(&w, 0, 1, 0, gpa, 0, w.target);
	get_regs(&ra);
	printf("selfvcpu rc=%d get_regs=%d self_waited_ms=%llu\n", r, ra.rc,
	       (unsigned long long)ra.us / 1000);
	/* close of the VM fd */
	r = slot(&w, 0, 1, 0, gpa, sz, w.target);
	r = r ?: slot(&w, 0, 1, 0, gpa, 0, w.target);
	printf("close rc=%d close=%d\n", r, close(w.vm));
	return 0;
}

static int do_dirty(void)
{
	uint64_t gpa = WL_TARGET_GPA, sz = 256 * KiB;
	unsigned long bm[sz / 4096 / 64 + 1];
	struct kvm_dirty_log log = { .slot = 1, .dirty_bitmap = bm };
	unsigned int k, n = 0;
	struct wl_vm w;
	int r;

	r = wl_create(&w, 1, sz, 0x1);
	r = r ?: slot(&w, 0, 1, KVM_MEM_LOG_DIRTY_PAGES, gpa, sz, w.target);
	if (r || wl_start(&w))
		return 1;
	usleep(100 * 1000);
	wl_stop(&w);
	/* The VMM re-creates the slot; the guest wrote pages before that. */
	r = slot(&w, 0, 1, KVM_MEM_LOG_DIRTY_PAGES, gpa, 0, w.target);
	r = r ?: slot(&w, 0, 1, KVM_MEM_LOG_DIRTY_PAGES, gpa, sz, w.target);
	memset(bm, 0, sizeof(bm));
	r = r ?: ioctl(w.vm, KVM_GET_DIRTY_LOG, &log);
	for (k = 0; k < sz / 4096; k++)
		n += !!(bm[k / 64] & (1UL << (k % 64)));
	printf("rc=%d calls=%u dirty_pages=%u\n", r, wl_target_counter(&w, 0),
	       n);
	wl_destroy(&w);
	return 0;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";
	int n = argc > 2 ? atoi(argv[2]) : 200;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!strcmp(mode, "resize"))
		return do_resize(n);
	if (!strcmp(mode, "errno"))
		return do_errno();
	if (!strcmp(mode, "timer"))
		return do_timer();
	if (!strcmp(mode, "smm"))
		return do_smm();
	if (!strcmp(mode, "bench"))
		return do_bench(n);
	if (!strcmp(mode, "v2"))
		return do_v2();
	if (!strcmp(mode, "hooks"))
		return do_hooks();
	if (!strcmp(mode, "dirty"))
		return do_dirty();
	fprintf(stderr,
		"usage: %s resize|errno|timer|smm|bench|hooks|dirty [N]\n",
		argv[0]);
	return 2;
}
