// SPDX-License-Identifier: (GPL-2.0 WITH Linux-syscall-note) OR MIT
/*
 * libkvmas-preload.so: transparent atomic memslot updates for unmodified
 * VMMs (LD_PRELOAD=libkvmas-preload.so). See docs/preload.md for the rules.
 *
 * A KVM_SET_USER_MEMORY_REGION(2) DELETE is held back (validated first, so
 * the 0 returned now is what KVM would have returned) and committed together
 * with the CREATEs that re-cover its range, as one KVMAS_COMMIT_BATCH on
 * /dev/kvm-atomic-slots. Anything that could observe the held state flushes
 * it first. Every other fd and ioctl passes straight through: the hot path
 * (KVM_RUN, any non-KVM fd) is one byte load from an fd table and, for vCPU
 * fds, one load of a global count; no lock.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <linux/kvm.h>
#include <linux/kvm_atomic_slots.h>

#define PL_API __attribute__((visibility("default")))

/* Not in older headers (6.1's linux-libc-dev). */
struct pl_region2 {
	__u32 slot;
	__u32 flags;
	__u64 guest_phys_addr;
	__u64 memory_size;
	__u64 userspace_addr;
	__u64 guest_memfd_offset;
	__u32 guest_memfd;
	__u32 pad1;
	__u64 pad2[14];
};

#define PL_SET_REGION _IOW(KVMIO, 0x46, struct kvm_userspace_memory_region)
#define PL_SET_REGION2 _IOW(KVMIO, 0x49, struct pl_region2)
#define PL_CREATE_VM _IO(KVMIO, 0x01)
#define PL_CREATE_VCPU _IO(KVMIO, 0x41)

#define PL_PAGE 4096ULL
/* x86_64 4-level TASK_SIZE_MAX; beyond it we let KVM judge (pass through). */
#define PL_USER_MAX 0x00007ffffffff000ULL
#define PL_PLAIN_FLAGS (KVM_MEM_LOG_DIRTY_PAGES | KVM_MEM_READONLY)

#define PL_MAXFD 65536
#define PL_MAXVM 64
#define PL_MAXHELD 64
#define PL_DEFAULT_HOLD_MS 50
#define PL_MAX_HOLD_MS 1000
/* A group's deadline rolls with each op it takes, up to this many holds. */
#define PL_HOLD_CAP 4

/* FD_SYSTEM: /dev/kvm itself (seen creating a VM): passed through. */
enum { FD_NONE = 0, FD_VM, FD_VCPU, FD_SESSION, FD_SYSTEM };

enum pl_reason {
	R_COMPLETE,
	R_CONFLICT, /* a memslot op that cannot join the held group */
	R_VM_IOCTL,
	R_VCPU_IOCTL,
	R_MM,
	R_CLOSE,
	R_FORK,
	R_EXEC,
	R_TIMER,
	R_EXIT,
	R_NR
};

static const char *const reason_names[R_NR] = {
	"complete", "conflict", "vm_ioctl", "vcpu_ioctl", "mm",
	"close",    "fork",	"exec",	    "timer",	  "exit",
};

enum pl_counter {
	C_HELD_DELETES,
	C_HELD_CREATES,
	C_BATCHES,
	C_BATCH_OPS,
	C_BATCH_FAILED,
	C_REPLAYED_OPS,
	C_REPLAY_ERRORS,
	C_PASSED,
	C_VALIDATE_REFUSED,
	C_FALLBACKS,
	C_VMS,
	C_VCPU_WAITS,
	C_ZAP_RANGE,
	C_NR
};

static const char *const counter_names[C_NR] = {
	"held",
	"held_creates",
	"batched",
	"ops_batched",
	"batch_failed",
	"replayed_ops",
	"replay_errors",
	"passed_through",
	"validate_refused",
	"fallbacks",
	"vms",
	"vcpu_waits",
	"zap_range_batches",
};

static _Atomic unsigned long counters[C_NR];
static _Atomic unsigned long flushes[R_NR];

static void count(enum pl_counter c, unsigned long n)
{
	atomic_fetch_add_explicit(&counters[c], n, memory_order_relaxed);
}

struct held_op {
	__u32 id; /* slot id without the as bits */
	__u32 flags;
	__u64 gpa, size, hva;
	int is_delete;
};

enum { SESS_UNTRIED = 0, SESS_OK, SESS_FALLBACK };

struct pl_vm {
	pthread_mutex_t lock;
	int in_use;
	int fd;
	int sess; /* /dev/kvm-atomic-slots session fd, or -1 */
	int sess_state;
	int region2; /* KVM has KVM_SET_USER_MEMORY_REGION2 (6.8+) */
	unsigned long type; /* KVM_CREATE_VM type; ~0 if not seen */
	int as_id; /* address space of the held group */
	unsigned int nheld;
	struct held_op held[PL_MAXHELD];
	_Atomic uint64_t deadline_ns; /* 0: nothing held */
	uint64_t first_ns; /* when the group's first op was held */
	pid_t holder; /* thread that held the group's latest op */
	pthread_cond_t flushed; /* broadcast when the group is flushed */
};

static _Atomic uint8_t fdkind[PL_MAXFD];
static _Atomic uint8_t fdvm[PL_MAXFD];
static struct pl_vm vms[PL_MAXVM];
static pthread_mutex_t vms_lock = PTHREAD_MUTEX_INITIALIZER;
/* VMs with a held group: the only thing the fast paths read. */
static _Atomic int nheld_vms;

static pthread_mutex_t timer_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t timer_cond = PTHREAD_COND_INITIALIZER;
static int timer_started;
static uint64_t hold_ns = PL_DEFAULT_HOLD_MS * 1000000ULL;
static int verbose;
static pid_t owner_pid;
static char fallback_reason[128];

static int (*real_ioctl)(int, unsigned long, ...);
static int (*real_close)(int);
static int (*real_munmap)(void *, size_t);
static void *(*real_mremap)(void *, size_t, size_t, int, ...);
static int (*real_madvise)(void *, size_t, int);
static int (*real_mprotect)(void *, size_t, int);
static int (*real_execve)(const char *, char *const[], char *const[]);
static int (*real_execv)(const char *, char *const[]);
static int (*real_execvp)(const char *, char *const[]);
static int (*real_execvpe)(const char *, char *const[], char *const[]);
static int (*real_fexecve)(int, char *const[], char *const[]);
static int (*real_dup2)(int, int);
static int (*real_dup3)(int, int, int);

static void resolve(void)
{
	real_ioctl = dlsym(RTLD_NEXT, "ioctl");
	real_close = dlsym(RTLD_NEXT, "close");
	real_munmap = dlsym(RTLD_NEXT, "munmap");
	real_mremap = dlsym(RTLD_NEXT, "mremap");
	real_madvise = dlsym(RTLD_NEXT, "madvise");
	real_mprotect = dlsym(RTLD_NEXT, "mprotect");
	real_execve = dlsym(RTLD_NEXT, "execve");
	real_execv = dlsym(RTLD_NEXT, "execv");
	real_execvp = dlsym(RTLD_NEXT, "execvp");
	real_execvpe = dlsym(RTLD_NEXT, "execvpe");
	real_fexecve = dlsym(RTLD_NEXT, "fexecve");
	real_dup2 = dlsym(RTLD_NEXT, "dup2");
	real_dup3 = dlsym(RTLD_NEXT, "dup3");
}

/* Before our constructor ran (another library's constructor): raw syscall. */
static long sys_ioctl(int fd, unsigned long req, void *arg)
{
	if (real_ioctl)
		return real_ioctl(fd, req, arg);
	return syscall(SYS_ioctl, fd, req, arg);
}

static void logmsg(const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	int n;

	if (!verbose)
		return;
	n = snprintf(buf, sizeof(buf), "kvmas-preload[%d]: ", (int)getpid());
	va_start(ap, fmt);
	vsnprintf(buf + n, sizeof(buf) - n, fmt, ap);
	va_end(ap);
	if (write(2, buf, strlen(buf)) < 0)
		return;
}

static void note_fallback(const char *why, int err)
{
	count(C_FALLBACKS, 1);
	if (!fallback_reason[0])
		snprintf(fallback_reason, sizeof(fallback_reason), "%s:%s", why,
			 strerror(err));
	logmsg("pass-through for this VM: %s: %s\n", why, strerror(err));
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static int kind_of(int fd)
{
	if ((unsigned int)fd >= PL_MAXFD)
		return FD_NONE;
	return atomic_load_explicit(&fdkind[fd], memory_order_relaxed);
}

static void set_kind(int fd, int kind, int vm)
{
	if ((unsigned int)fd >= PL_MAXFD)
		return;
	atomic_store_explicit(&fdvm[fd], vm, memory_order_relaxed);
	atomic_store_explicit(&fdkind[fd], kind, memory_order_release);
}

static int fd_is_kvm_vm(int fd)
{
	char path[64], link[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return 0;
	link[n] = 0;
	return !strcmp(link, "anon_inode:kvm-vm");
}

static int vm_register(int fd, unsigned long type)
{
	int i, idx = -1;

	if ((unsigned int)fd >= PL_MAXFD)
		return -1;
	pthread_mutex_lock(&vms_lock);
	for (i = 0; i < PL_MAXVM; i++) {
		if (!vms[i].in_use) {
			idx = i;
			break;
		}
	}
	if (idx >= 0) {
		struct pl_vm *vm = &vms[idx];

		pthread_mutex_lock(&vm->lock);
		vm->in_use = 1;
		vm->fd = fd;
		vm->sess = -1;
		vm->sess_state = SESS_UNTRIED;
		vm->type = type;
		vm->nheld = 0;
		/* KVM_CAP_USER_MEMORY2: 6.8+ has KVM_SET_USER_MEMORY_REGION2 */
		vm->region2 =
			sys_ioctl(fd, KVM_CHECK_EXTENSION, (void *)231UL) > 0;
		atomic_store(&vm->deadline_ns, 0);
		pthread_mutex_unlock(&vm->lock);
		set_kind(fd, FD_VM, idx);
		count(C_VMS, 1);
	}
	pthread_mutex_unlock(&vms_lock);
	return idx;
}

static int sess_ioctl(struct pl_vm *vm, unsigned long req, void *arg)
{
	long r;

	do {
		r = sys_ioctl(vm->sess, req, arg);
	} while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : (int)r;
}

/* Opens and attaches a session on first need. Called with vm->lock held. */
static int vm_session(struct pl_vm *vm)
{
	struct kvmas_attach_vm at;
	const char *dev;
	int fd, r;

	if (vm->sess_state != SESS_UNTRIED)
		return vm->sess_state == SESS_OK;
	vm->sess_state = SESS_FALLBACK;
	if (vm->type != 0 && vm->type != ~0UL) {
		note_fallback("VM type not the default", EOPNOTSUPP);
		return 0;
	}
	/* Same override as libkvmas (tests point it elsewhere). */
	dev = secure_getenv("KVMAS_DEVICE");
	if (!dev || !*dev)
		dev = KVMAS_DEVICE_PATH;
	fd = open(dev, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		note_fallback("open the module's device", errno);
		return 0;
	}
	vm->sess = fd;
	r = sess_ioctl(vm, KVMAS_GET_API_VERSION, 0);
	if (r != KVMAS_API_VERSION) {
		note_fallback("API version", r < 0 ? -r : EPROTO);
		goto fail;
	}
	r = sess_ioctl(vm, KVMAS_CHECK_EXTENSION,
		       (void *)(uintptr_t)KVMAS_CAP_BATCH_COMMIT);
	if (r <= 0) {
		note_fallback("no KVMAS_CAP_BATCH_COMMIT",
			      r < 0 ? -r : ENOTSUP);
		goto fail;
	}
	memset(&at, 0, sizeof(at));
	at.size = sizeof(at);
	at.vm_fd = vm->fd;
	r = sess_ioctl(vm, KVMAS_ATTACH_VM, &at);
	if (r < 0) {
		note_fallback("attach", -r);
		goto fail;
	}
	set_kind(fd, FD_SESSION, vm - vms);
	vm->sess_state = SESS_OK;
	return 1;
fail:
	real_close(fd);
	vm->sess = -1;
	return 0;
}

/* The held group as batch ops (+ @extra, if given). Returns the count. */
static unsigned int build_ops(const struct pl_vm *vm,
			      const struct held_op *extra,
			      struct kvmas_batch_op *ops)
{
	const struct held_op *all[PL_MAXHELD + 1];
	unsigned int n = 0, i, j, nr = vm->nheld;
	char used[PL_MAXHELD + 1] = { 0 };

	for (i = 0; i < vm->nheld; i++)
		all[i] = &vm->held[i];
	if (extra)
		all[nr++] = extra;
	for (i = 0; i < nr; i++) {
		const struct held_op *d = all[i];
		struct kvmas_batch_op *op;

		if (!d->is_delete)
			continue;
		op = &ops[n++];
		memset(op, 0, sizeof(*op));
		op->op = KVMAS_OP_DELETE;
		op->slot = d->id;
		op->as_id = vm->as_id;
		for (j = 0; j < nr; j++) {
			const struct held_op *c = all[j];

			if (c->is_delete || c->id != d->id)
				continue;
			op->op = KVMAS_OP_REPLACE;
			op->flags = c->flags;
			op->guest_phys_addr = c->gpa;
			op->memory_size = c->size;
			op->userspace_addr = c->hva;
			used[j] = 1;
		}
	}
	for (i = 0; i < nr; i++) {
		const struct held_op *c = all[i];
		struct kvmas_batch_op *op;

		if (c->is_delete || used[i])
			continue;
		op = &ops[n++];
		memset(op, 0, sizeof(*op));
		op->op = KVMAS_OP_CREATE;
		op->slot = c->id;
		op->as_id = vm->as_id;
		op->flags = c->flags;
		op->guest_phys_addr = c->gpa;
		op->memory_size = c->size;
		op->userspace_addr = c->hva;
	}
	return n;
}

/*
 * KVMAS_PRELOAD_ZAP_RANGE=1: the operator's decision, for a VMM that cannot
 * take it, to have batches unmap only the removed ranges where x86 KVM
 * zaps every mapping of the VM (KVMAS_BATCH_ZAP_RANGE; the uapi header has
 * the history). Dropped for good if the module refuses the flag.
 */
static _Atomic unsigned int zap_flags;

static int commit_ops(struct pl_vm *vm, struct kvmas_batch_op *ops,
		      unsigned int n, unsigned int flags, int *err_index)
{
	struct kvmas_commit_batch c;
	int r;

	memset(&c, 0, sizeof(c));
	c.size = sizeof(c);
	c.flags = flags | atomic_load(&zap_flags);
	c.nr_ops = n;
	c.op_size = sizeof(*ops);
	c.ops = (__u64)(uintptr_t)ops;
	r = sess_ioctl(vm, KVMAS_COMMIT_BATCH, &c);
	if (r == -EOPNOTSUPP && (c.flags & KVMAS_BATCH_ZAP_RANGE)) {
		logmsg("module refuses KVMAS_BATCH_ZAP_RANGE: KVM's zapping\n");
		atomic_store(&zap_flags, 0);
		c.flags = flags;
		c.error_index = -1;
		r = sess_ioctl(vm, KVMAS_COMMIT_BATCH, &c);
	}
	if (!r && (c.flags & KVMAS_BATCH_ZAP_RANGE) &&
	    !(flags & KVMAS_BATCH_VALIDATE_ONLY))
		count(C_ZAP_RANGE, 1);
	if (err_index)
		*err_index = c.error_index;
	return r;
}

static int region_ioctl(struct pl_vm *vm, const struct held_op *h, int del)
{
	struct kvm_userspace_memory_region m = {
		.slot = (__u32)vm->as_id << 16 | h->id,
		.flags = h->flags,
		.guest_phys_addr = h->gpa,
		.memory_size = del ? 0 : h->size,
		.userspace_addr = h->hva,
	};
	long r;

	do {
		r = sys_ioctl(vm->fd, PL_SET_REGION, &m);
	} while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : 0;
}

static void timer_kick(void);

/* Commits the held group. vm->lock held; errno preserved. */
static void vm_flush(struct pl_vm *vm, enum pl_reason why)
{
	struct kvmas_batch_op ops[PL_MAXHELD];
	unsigned int n, i;
	int saved = errno, r, idx = -1;

	if (!vm->nheld)
		return;
	n = build_ops(vm, NULL, ops);
	r = commit_ops(vm, ops, n, 0, &idx);
	if (!r) {
		count(C_BATCHES, 1);
		count(C_BATCH_OPS, n);
	} else {
		/*
		 * Validated when held, so only ENOMEM (or a layout changed
		 * behind our back) gets here: replay KVM's own sequence.
		 */
		count(C_BATCH_FAILED, 1);
		logmsg("batch of %u ops failed (%s, op %d): replaying stock\n",
		       n, strerror(-r), idx);
		for (i = 0; i < vm->nheld; i++) {
			if (!vm->held[i].is_delete)
				continue;
			count(C_REPLAYED_OPS, 1);
			if (region_ioctl(vm, &vm->held[i], 1))
				count(C_REPLAY_ERRORS, 1);
		}
		for (i = 0; i < vm->nheld; i++) {
			if (vm->held[i].is_delete)
				continue;
			count(C_REPLAYED_OPS, 1);
			if (region_ioctl(vm, &vm->held[i], 0))
				count(C_REPLAY_ERRORS, 1);
		}
	}
	atomic_fetch_add_explicit(&flushes[why], 1, memory_order_relaxed);
	vm->nheld = 0;
	atomic_store(&vm->deadline_ns, 0);
	atomic_fetch_sub(&nheld_vms, 1);
	pthread_cond_broadcast(&vm->flushed);
	errno = saved;
}

static void flush_all(enum pl_reason why)
{
	int i;

	if (!atomic_load(&nheld_vms))
		return;
	for (i = 0; i < PL_MAXVM; i++) {
		pthread_mutex_lock(&vms[i].lock);
		if (vms[i].in_use)
			vm_flush(&vms[i], why);
		pthread_mutex_unlock(&vms[i].lock);
	}
}

/* Flushes every VM whose held ops name HVAs in [addr, addr + len). */
static void flush_range(const void *addr, size_t len)
{
	uint64_t a = (uintptr_t)addr, e = a + len;
	unsigned int j;
	int i;

	if (!atomic_load(&nheld_vms))
		return;
	for (i = 0; i < PL_MAXVM; i++) {
		struct pl_vm *vm = &vms[i];

		pthread_mutex_lock(&vm->lock);
		for (j = 0; vm->in_use && j < vm->nheld; j++) {
			const struct held_op *h = &vm->held[j];
			uint64_t size = h->size;

			/* A DELETE's range is the slot's (kept in size). */
			if (h->hva < e && a < h->hva + size) {
				vm_flush(vm, R_MM);
				break;
			}
		}
		pthread_mutex_unlock(&vm->lock);
	}
}

static void *timer_main(void *unused)
{
	(void)unused;
	pthread_mutex_lock(&timer_lock);
	for (;;) {
		uint64_t now, next = 0;
		int i;

		while (!atomic_load(&nheld_vms))
			pthread_cond_wait(&timer_cond, &timer_lock);
		pthread_mutex_unlock(&timer_lock);
		now = now_ns();
		for (i = 0; i < PL_MAXVM; i++) {
			uint64_t d = atomic_load(&vms[i].deadline_ns);

			if (!d)
				continue;
			if (d <= now) {
				pthread_mutex_lock(&vms[i].lock);
				d = atomic_load(&vms[i].deadline_ns);
				if (d && d <= now_ns())
					vm_flush(&vms[i], R_TIMER);
				pthread_mutex_unlock(&vms[i].lock);
			} else if (!next || d < next) {
				next = d;
			}
		}
		pthread_mutex_lock(&timer_lock);
		if (next) {
			struct timespec ts;
			uint64_t wait = next - now;

			clock_gettime(CLOCK_MONOTONIC, &ts);
			ts.tv_sec += wait / 1000000000ULL;
			ts.tv_nsec += wait % 1000000000ULL;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&timer_cond, &timer_lock, &ts);
		} else if (atomic_load(&nheld_vms)) {
			/* A group between its count and its deadline. */
			struct timespec ts;

			clock_gettime(CLOCK_MONOTONIC, &ts);
			ts.tv_nsec += 1000000;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&timer_cond, &timer_lock, &ts);
		}
	}
	return NULL;
}

/* A group was just held: make sure the timer thread runs and sees it. */
static void timer_kick(void)
{
	pthread_mutex_lock(&timer_lock);
	if (!timer_started) {
		pthread_condattr_t ca;
		pthread_attr_t attr;
		pthread_t t;
		sigset_t all, old;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_destroy(&timer_cond);
		pthread_cond_init(&timer_cond, &ca);
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		/* The VMM's signals are not ours to take. */
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		if (!pthread_create(&t, &attr, timer_main, NULL))
			timer_started = 1;
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		pthread_attr_destroy(&attr);
	}
	pthread_cond_signal(&timer_cond);
	pthread_mutex_unlock(&timer_lock);
}

/*
 * Range coverage: every held DELETE's [gpa, gpa + size) is covered by the
 * union of the held CREATEs.
 */
static int group_complete(const struct pl_vm *vm)
{
	unsigned int i, j;

	for (i = 0; i < vm->nheld; i++) {
		const struct held_op *d = &vm->held[i];
		uint64_t pos = d->gpa, end = d->gpa + d->size;
		int progress = 1;

		if (!d->is_delete)
			continue;
		while (pos < end && progress) {
			progress = 0;
			for (j = 0; j < vm->nheld; j++) {
				const struct held_op *c = &vm->held[j];

				if (c->is_delete)
					continue;
				if (c->gpa <= pos && pos < c->gpa + c->size) {
					pos = c->gpa + c->size;
					progress = 1;
				}
			}
		}
		if (pos < end)
			return 0;
	}
	return 1;
}

static int overlaps_held_delete(const struct pl_vm *vm, uint64_t gpa,
				uint64_t size)
{
	unsigned int i;

	for (i = 0; i < vm->nheld; i++) {
		const struct held_op *d = &vm->held[i];

		if (d->is_delete && gpa < d->gpa + d->size &&
		    d->gpa < gpa + size)
			return 1;
	}
	return 0;
}

static const struct held_op *held_find(const struct pl_vm *vm, __u32 id,
				       int is_delete)
{
	unsigned int i;

	for (i = 0; i < vm->nheld; i++)
		if (vm->held[i].id == id && vm->held[i].is_delete == is_delete)
			return &vm->held[i];
	return NULL;
}

/*
 * Tries to hold one memslot update. Returns 1 if it was held (the caller
 * returns 0 to the VMM), 0 if it must go to KVM (after what is held was
 * flushed). vm->lock held.
 */
static int try_hold(struct pl_vm *vm, const struct pl_region2 *m, int v2)
{
	struct kvmas_batch_op ops[PL_MAXHELD + 1];
	struct held_op h;
	unsigned int as_id = m->slot >> 16, id = m->slot & 0xffff, n;
	int del = !m->memory_size;

	/*
	 * Only plain requests are held; anything KVM might refuse for a
	 * reason other than the layout goes to KVM, which gives its errno.
	 */
	if (m->flags & ~PL_PLAIN_FLAGS || m->guest_phys_addr & (PL_PAGE - 1) ||
	    m->memory_size & (PL_PAGE - 1) ||
	    m->userspace_addr & (PL_PAGE - 1) ||
	    m->userspace_addr > PL_USER_MAX ||
	    m->memory_size > PL_USER_MAX - m->userspace_addr ||
	    m->guest_phys_addr + m->memory_size < m->guest_phys_addr ||
	    as_id >= KVMAS_MAX_AS)
		return 0;
	/*
	 * REGION2: KVM reads guest_memfd and its offset only with
	 * KVM_MEM_GUEST_MEMFD (not plain, never held) and ignores the pads
	 * (6.12 __kvm_set_memory_region); kvm_util passes guest_memfd = -1.
	 */
	if (v2 && !vm->region2)
		return 0; /* 6.1: KVM answers ENOTTY */
	if (vm->nheld &&
	    (as_id != (unsigned int)vm->as_id || vm->nheld >= PL_MAXHELD))
		return 0;
	if (del) {
		/* A second DELETE of a held id, or of a held CREATE: to KVM. */
		if (held_find(vm, id, 1) || held_find(vm, id, 0))
			return 0;
		if (!vm_session(vm))
			return 0;
	} else {
		/* A lone update (nothing held) is KVM's in one ioctl. */
		if (!vm->nheld || held_find(vm, id, 0))
			return 0;
		if (!overlaps_held_delete(vm, m->guest_phys_addr,
					  m->memory_size))
			return 0;
	}
	memset(&h, 0, sizeof(h));
	h.id = id;
	h.flags = m->flags;
	h.gpa = m->guest_phys_addr;
	h.size = m->memory_size;
	h.hva = m->userspace_addr;
	h.is_delete = del;
	if (!vm->nheld)
		vm->as_id = as_id;
	/*
	 * Validation against the layout stock KVM would have by now (every
	 * held DELETE applied): the module checks the final layout at least
	 * as strictly as KVM_SET_USER_MEMORY_REGION, so "valid" here means
	 * stock KVM returns 0. Refused: KVM decides (after the flush).
	 */
	n = build_ops(vm, &h, ops);
	if (commit_ops(vm, ops, n, KVMAS_BATCH_VALIDATE_ONLY, NULL)) {
		count(C_VALIDATE_REFUSED, 1);
		return 0;
	}
	if (del) {
		/* Keep the slot's range: the layout says what it is. */
		struct kvmas_layout lay;
		struct kvmas_slot *s = NULL;
		unsigned int cap = 64, i;
		int r;

		for (;;) {
			free(s);
			s = calloc(cap, sizeof(*s));
			if (!s)
				return 0;
			memset(&lay, 0, sizeof(lay));
			lay.size = sizeof(lay);
			lay.as_id = as_id;
			lay.entry_size = sizeof(*s);
			lay.nr_entries = cap;
			lay.entries = (__u64)(uintptr_t)s;
			r = sess_ioctl(vm, KVMAS_GET_LAYOUT, &lay);
			if (r != -E2BIG)
				break;
			cap = lay.nr_entries + 16;
		}
		for (i = 0; !r && i < lay.nr_entries; i++) {
			if (s[i].slot == id) {
				h.gpa = s[i].guest_phys_addr;
				h.size = s[i].memory_size;
				h.hva = s[i].userspace_addr;
				h.flags = s[i].flags;
				break;
			}
		}
		free(s);
		if (r || i == lay.nr_entries)
			return 0;
		count(C_HELD_DELETES, 1);
	} else {
		count(C_HELD_CREATES, 1);
	}
	vm->held[vm->nheld++] = h;
	/*
	 * The deadline is the group's last op + the hold time (capped): a
	 * VMM's DELETEs and CREATEs of one change come back to back, but
	 * under load the whole group can take longer than one hold (seen:
	 * 25 ms for QEMU 7.2's PAM groups in a loaded TCG guest).
	 */
	{
		uint64_t now = now_ns(), d = now + hold_ns;

		if (vm->nheld == 1)
			vm->first_ns = now;
		vm->holder = gettid();
		if (d > vm->first_ns + PL_HOLD_CAP * hold_ns)
			d = vm->first_ns + PL_HOLD_CAP * hold_ns;
		atomic_store(&vm->deadline_ns, d);
	}
	if (vm->nheld == 1) {
		atomic_fetch_add(&nheld_vms, 1);
		timer_kick();
	}
	if (!del && group_complete(vm))
		vm_flush(vm, R_COMPLETE);
	return 1;
}

/* Reads the caller's struct without faulting (EFAULT is KVM's to report). */
static int read_user(const void *src, void *dst, size_t len)
{
	struct iovec l = { dst, len }, r = { (void *)src, len };

	return process_vm_readv(getpid(), &l, 1, &r, 1, 0) == (ssize_t)len;
}

static int memslot_ioctl(struct pl_vm *vm, unsigned long req, void *arg)
{
	struct pl_region2 m;
	int v2 = req == PL_SET_REGION2, saved = errno, held = 0;
	long r;

	memset(&m, 0, sizeof(m));
	pthread_mutex_lock(&vm->lock);
	if (vm->in_use &&
	    read_user(arg, &m,
		      v2 ? sizeof(m) :
			   sizeof(struct kvm_userspace_memory_region))) {
		held = try_hold(vm, &m, v2);
		if (!held && vm->nheld) {
			/* Cannot join the held group: it goes first. */
			vm_flush(vm, R_CONFLICT);
			held = try_hold(vm, &m, v2);
		}
	}
	if (held) {
		pthread_mutex_unlock(&vm->lock);
		errno = saved;
		return 0;
	}
	vm_flush(vm, R_CONFLICT);
	count(C_PASSED, 1);
	errno = saved;
	r = sys_ioctl(vm->fd, req, arg);
	pthread_mutex_unlock(&vm->lock);
	return r;
}

/*
 * A vCPU ioctl while a group is held: the call is concurrent with the VMM
 * thread that is still issuing the group's updates, so it may as well be
 * ordered after them. It waits (at most until the hold deadline) for the
 * group to be committed, then flushes whatever is still held: the vCPU never
 * runs against a layout older than what the VMM was told.
 */
static void vcpu_wait(struct pl_vm *vm)
{
	int saved = errno;

	pthread_mutex_lock(&vm->lock);
	while (vm->nheld) {
		uint64_t d = atomic_load(&vm->deadline_ns);
		struct timespec ts;

		/*
		 * The thread issuing the group is not concurrent with itself:
		 * its own vCPU ioctl comes after its updates, flush now.
		 */
		if (!d || now_ns() >= d || vm->holder == gettid()) {
			vm_flush(vm, R_VCPU_IOCTL);
			break;
		}
		ts.tv_sec = d / 1000000000ULL;
		ts.tv_nsec = d % 1000000000ULL;
		count(C_VCPU_WAITS, 1);
		pthread_cond_timedwait(&vm->flushed, &vm->lock, &ts);
	}
	pthread_mutex_unlock(&vm->lock);
	errno = saved;
}

static int slow_ioctl(int fd, int kind, unsigned long req, void *arg)
{
	struct pl_vm *vm = NULL;
	long r;

	if (kind == FD_NONE &&
	    (req == PL_SET_REGION || req == PL_SET_REGION2) &&
	    fd_is_kvm_vm(fd)) {
		/* A VM fd we did not see created (dup, SCM_RIGHTS...). */
		if (vm_register(fd, ~0UL) >= 0)
			kind = FD_VM;
	}
	if (kind == FD_VM || kind == FD_VCPU)
		vm = &vms[atomic_load_explicit(&fdvm[fd], memory_order_relaxed)];
	if (kind == FD_VM && (req == PL_SET_REGION || req == PL_SET_REGION2))
		return memslot_ioctl(vm, req, arg);

	if (vm && kind == FD_VCPU) {
		vcpu_wait(vm);
	} else if (vm) {
		pthread_mutex_lock(&vm->lock);
		vm_flush(vm, R_VM_IOCTL);
		pthread_mutex_unlock(&vm->lock);
	} else if (kind == FD_NONE && _IOC_TYPE(req) == KVMIO) {
		/* A KVM fd we do not know (a dup'ed vCPU fd?): be safe. */
		flush_all(R_VCPU_IOCTL);
	}
	r = sys_ioctl(fd, req, arg);
	if (r >= 0 && req == PL_CREATE_VM &&
	    (kind == FD_NONE || kind == FD_SYSTEM) && fd_is_kvm_vm(r)) {
		int saved = errno;

		if (vm_register(r, (unsigned long)arg) >= 0)
			set_kind(fd, FD_SYSTEM, 0);
		errno = saved;
	} else if (r >= 0 && req == PL_CREATE_VCPU && kind == FD_VM) {
		set_kind(r, FD_VCPU, vm - vms);
	}
	return r;
}

PL_API int ioctl(int fd, unsigned long req, ...)
{
	va_list ap;
	void *arg;
	int kind;

	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);

	kind = kind_of(fd);
	/* The hot path: no lock, two loads. */
	if (kind == FD_SESSION || (kind == FD_SYSTEM && req != PL_CREATE_VM) ||
	    (kind == FD_VCPU &&
	     !atomic_load_explicit(&nheld_vms, memory_order_relaxed)))
		return sys_ioctl(fd, req, arg);
	if (kind == FD_VM && req != PL_SET_REGION && req != PL_SET_REGION2 &&
	    req != PL_CREATE_VCPU &&
	    !atomic_load_explicit(&nheld_vms, memory_order_relaxed))
		return sys_ioctl(fd, req, arg);
	if (kind == FD_NONE && req != PL_CREATE_VM && req != PL_SET_REGION &&
	    req != PL_SET_REGION2 &&
	    (_IOC_TYPE(req) != KVMIO ||
	     !atomic_load_explicit(&nheld_vms, memory_order_relaxed)))
		return sys_ioctl(fd, req, arg);
	return slow_ioctl(fd, kind, req, arg);
}

/* Forgets @fd; a VM or session fd flushes its VM first. */
static void forget_fd(int fd)
{
	int kind = kind_of(fd);
	struct pl_vm *vm;

	if (kind == FD_NONE)
		return;
	vm = &vms[atomic_load_explicit(&fdvm[fd], memory_order_relaxed)];
	set_kind(fd, FD_NONE, 0);
	if (kind == FD_VCPU || kind == FD_SYSTEM)
		return;
	pthread_mutex_lock(&vm->lock);
	vm_flush(vm, R_CLOSE);
	if (kind == FD_VM && vm->in_use && vm->fd == fd) {
		if (vm->sess >= 0) {
			set_kind(vm->sess, FD_NONE, 0);
			real_close(vm->sess);
		}
		vm->sess = -1;
		vm->in_use = 0;
	} else if (kind == FD_SESSION && vm->sess == fd) {
		/* The VMM closed our fd (a close-all loop): pass-through now. */
		vm->sess = -1;
		vm->sess_state = SESS_FALLBACK;
		note_fallback("session fd closed by the program", EBADF);
	}
	pthread_mutex_unlock(&vm->lock);
}

PL_API int close(int fd)
{
	if (kind_of(fd) != FD_NONE)
		forget_fd(fd);
	return real_close(fd);
}

PL_API int dup2(int oldfd, int newfd)
{
	if (oldfd != newfd && kind_of(newfd) != FD_NONE)
		forget_fd(newfd);
	return real_dup2(oldfd, newfd);
}

PL_API int dup3(int oldfd, int newfd, int flags)
{
	if (oldfd != newfd && kind_of(newfd) != FD_NONE)
		forget_fd(newfd);
	return real_dup3(oldfd, newfd, flags);
}

PL_API int munmap(void *addr, size_t len)
{
	if (atomic_load_explicit(&nheld_vms, memory_order_relaxed))
		flush_range(addr, len);
	return real_munmap(addr, len);
}

PL_API void *mremap(void *old, size_t old_len, size_t new_len, int flags, ...)
{
	void *new_addr = NULL;
	va_list ap;

	va_start(ap, flags);
	if (flags & MREMAP_FIXED)
		new_addr = va_arg(ap, void *);
	va_end(ap);
	if (atomic_load_explicit(&nheld_vms, memory_order_relaxed)) {
		flush_range(old, old_len);
		if (new_addr)
			flush_range(new_addr, new_len);
	}
	return real_mremap(old, old_len, new_len, flags, new_addr);
}

PL_API int madvise(void *addr, size_t len, int advice)
{
	if ((advice == MADV_DONTNEED || advice == MADV_REMOVE ||
	     advice == MADV_FREE) &&
	    atomic_load_explicit(&nheld_vms, memory_order_relaxed))
		flush_range(addr, len);
	return real_madvise(addr, len, advice);
}

PL_API int mprotect(void *addr, size_t len, int prot)
{
	if (atomic_load_explicit(&nheld_vms, memory_order_relaxed))
		flush_range(addr, len);
	return real_mprotect(addr, len, prot);
}

PL_API int execve(const char *path, char *const argv[], char *const envp[])
{
	flush_all(R_EXEC);
	return real_execve(path, argv, envp);
}

PL_API int execv(const char *path, char *const argv[])
{
	flush_all(R_EXEC);
	return real_execv(path, argv);
}

PL_API int execvp(const char *file, char *const argv[])
{
	flush_all(R_EXEC);
	return real_execvp(file, argv);
}

PL_API int execvpe(const char *file, char *const argv[], char *const envp[])
{
	flush_all(R_EXEC);
	return real_execvpe(file, argv, envp);
}

PL_API int fexecve(int fd, char *const argv[], char *const envp[])
{
	flush_all(R_EXEC);
	return real_fexecve(fd, argv, envp);
}

static void atfork_prepare(void)
{
	int i;

	flush_all(R_FORK);
	for (i = 0; i < PL_MAXVM; i++)
		pthread_mutex_lock(&vms[i].lock);
	pthread_mutex_lock(&timer_lock);
}

static void atfork_parent(void)
{
	int i;

	pthread_mutex_unlock(&timer_lock);
	for (i = PL_MAXVM - 1; i >= 0; i--)
		pthread_mutex_unlock(&vms[i].lock);
}

static void atfork_child(void)
{
	int i;

	/* No timer thread here; KVM refuses a child's VM ioctls anyway. */
	timer_started = 0;
	pthread_mutex_unlock(&timer_lock);
	for (i = PL_MAXVM - 1; i >= 0; i--) {
		if (vms[i].in_use)
			vms[i].sess_state = SESS_FALLBACK;
		pthread_mutex_unlock(&vms[i].lock);
	}
}

static void write_counters(void)
{
	const char *path = getenv("KVMAS_PRELOAD_LOG");
	char buf[2048];
	size_t n = 0;
	int fd, i;

	char other[512];

	if (!path || !*path)
		return;
	if (getpid() != owner_pid) {
		/* A forked child that exits normally: its own file. */
		snprintf(other, sizeof(other), "%s.%d", path, (int)getpid());
		path = other;
	}
	for (i = 0; i < C_NR; i++)
		n += snprintf(buf + n, sizeof(buf) - n, "%s=%lu\n",
			      counter_names[i], atomic_load(&counters[i]));
	for (i = 0; i < R_NR; i++)
		n += snprintf(buf + n, sizeof(buf) - n, "flush_%s=%lu\n",
			      reason_names[i], atomic_load(&flushes[i]));
	n += snprintf(buf + n, sizeof(buf) - n, "hold_ms=%llu\n",
		      (unsigned long long)(hold_ns / 1000000ULL));
	n += snprintf(buf + n, sizeof(buf) - n, "fallback_reason=%s\n",
		      fallback_reason[0] ? fallback_reason : "none");
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	if (write(fd, buf, n) < 0)
		logmsg("cannot write %s\n", path);
	real_close(fd);
}

__attribute__((constructor)) static void preload_init(void)
{
	const char *s;
	int i;

	resolve();
	owner_pid = getpid();
	for (i = 0; i < PL_MAXVM; i++) {
		pthread_condattr_t ca;

		pthread_mutex_init(&vms[i].lock, NULL);
		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&vms[i].flushed, &ca);
		pthread_condattr_destroy(&ca);
	}
	s = getenv("KVMAS_PRELOAD_VERBOSE");
	verbose = s && *s && strcmp(s, "0");
	s = getenv("KVMAS_PRELOAD_ZAP_RANGE");
	if (s && *s && strcmp(s, "0"))
		atomic_store(&zap_flags, KVMAS_BATCH_ZAP_RANGE);
	s = getenv("KVMAS_PRELOAD_HOLD_MS");
	if (s && *s) {
		unsigned long ms = strtoul(s, NULL, 0);

		if (ms < 1)
			ms = 1;
		if (ms > PL_MAX_HOLD_MS)
			ms = PL_MAX_HOLD_MS;
		hold_ns = ms * 1000000ULL;
	}
	pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

__attribute__((destructor)) static void preload_fini(void)
{
	flush_all(R_EXIT);
	write_counters();
}
