// SPDX-License-Identifier: GPL-2.0
/*
 * libkvmtrace.so: an LD_PRELOAD tracer of a VMM's KVM ioctls, for runs of
 * the unmodified QEMU 7.2 in tests/qemu72. Logs to $KVMTRACE_FILE (stderr
 * if unset), one line per ioctl:
 *   <usec since start> tid=<tid> fd=<fd> <what> [args] = <ret>
 * KVM_SET_USER_MEMORY_REGION with all its fields (slot as as_id/id);
 * KVM_RUN only on a thread's first KVM_RUN after another ioctl of that
 * thread (every exit would drown the log); every other ioctl by number.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int (*real_ioctl)(int, unsigned long, ...);
static FILE *out;
static struct timespec t0;
static __thread int in_run;

static void __attribute__((constructor)) kvmtrace_init(void)
{
	const char *path = getenv("KVMTRACE_FILE");

	real_ioctl = dlsym(RTLD_NEXT, "ioctl");
	out = path ? fopen(path, "w") : NULL;
	if (!out)
		out = stderr;
	setvbuf(out, NULL, _IOLBF, 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
}

static long usec(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0.tv_sec) * 1000000L +
	       (t.tv_nsec - t0.tv_nsec) / 1000;
}

int ioctl(int fd, unsigned long req, ...)
{
	va_list ap;
	void *arg;
	int ret, err;
	long tid = syscall(SYS_gettid);

	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);

	if (req == KVM_RUN) {
		if (!in_run)
			fprintf(out, "%ld tid=%ld fd=%d KVM_RUN\n", usec(), tid,
				fd);
		in_run = 1;
		return real_ioctl(fd, req, arg);
	}
	in_run = 0;
	ret = real_ioctl(fd, req, arg);
	err = errno;
	if (req == KVM_SET_USER_MEMORY_REGION) {
		const struct kvm_userspace_memory_region *r = arg;

		fprintf(out,
			"%ld tid=%ld fd=%d SET_USER_MEMORY_REGION %s as=%u id=%u flags=0x%x gpa=0x%llx size=0x%llx ua=0x%llx = %d\n",
			usec(), tid, fd, r->memory_size ? "CREATE" : "DELETE",
			r->slot >> 16, r->slot & 0xffff, r->flags,
			(unsigned long long)r->guest_phys_addr,
			(unsigned long long)r->memory_size,
			(unsigned long long)r->userspace_addr, ret);
	} else {
		fprintf(out, "%ld tid=%ld fd=%d ioctl 0x%lx = %d\n", usec(),
			tid, fd, req, ret);
	}
	errno = err;
	return ret;
}
