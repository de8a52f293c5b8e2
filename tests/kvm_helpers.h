/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Minimal KVM and kvm-atomic-slots plumbing for the test programs. Every
 * helper returns -errno on failure so tests can assert on the exact error.
 */
#ifndef KVMAS_TEST_HELPERS_H
#define KVMAS_TEST_HELPERS_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/kvm.h>
#include <linux/kvm_atomic_slots.h>

static inline int sys_ret(long r)
{
	return r < 0 ? -errno : (int)r;
}

static inline int kvmas_dev_open(void)
{
	return sys_ret(open(KVMAS_DEVICE_PATH, O_RDWR | O_CLOEXEC));
}

static inline int kvm_dev_open(void)
{
	return sys_ret(open("/dev/kvm", O_RDWR | O_CLOEXEC));
}

static inline int kvm_vm_create(void)
{
	int kvm = kvm_dev_open(), vm;

	if (kvm < 0)
		return kvm;
	vm = sys_ret(ioctl(kvm, KVM_CREATE_VM, 0));
	close(kvm);
	return vm;
}

static inline int kvm_vcpu_create(int vm, unsigned long id)
{
	return sys_ret(ioctl(vm, KVM_CREATE_VCPU, id));
}

#ifndef KVM_X86_QUIRK_SLOT_ZAP_ALL
#define KVM_X86_QUIRK_SLOT_ZAP_ALL (1 << 7)
#endif

/*
 * x86 KVM (6.12) zaps every mapping of the VM when a slot is removed unless
 * the VMM disables KVM_X86_QUIRK_SLOT_ZAP_ALL; then only the slot's range
 * goes (in KVM's stock path and in batch commits alike, which call KVM's
 * own hook). Returns 1 if disabled, 0 if this kernel has no such quirk.
 */
static inline int kvm_disable_slot_zap_all(int vm)
{
	struct kvm_enable_cap cap = { .cap = KVM_CAP_DISABLE_QUIRKS2,
				      .args = { KVM_X86_QUIRK_SLOT_ZAP_ALL } };
	int q = ioctl(vm, KVM_CHECK_EXTENSION, KVM_CAP_DISABLE_QUIRKS2);

	if (q <= 0 || !(q & KVM_X86_QUIRK_SLOT_ZAP_ALL))
		return 0;
	return ioctl(vm, KVM_ENABLE_CAP, &cap) ? 0 : 1;
}

/* Slot ids carry the address space in bits 16+ (KVM's own encoding). */
static inline int kvm_set_slot(int vm, unsigned int as_id, unsigned int slot,
			       unsigned int flags, uint64_t gpa, uint64_t size,
			       void *hva)
{
	struct kvm_userspace_memory_region r = {
		.slot = slot | (as_id << 16),
		.flags = flags,
		.guest_phys_addr = gpa,
		.memory_size = size,
		.userspace_addr = (uintptr_t)hva,
	};

	return sys_ret(ioctl(vm, KVM_SET_USER_MEMORY_REGION, &r));
}

static inline int kvmas_attach(int dev, int vm_fd)
{
	struct kvmas_attach_vm a = { .size = sizeof(a), .vm_fd = vm_fd };

	return sys_ret(ioctl(dev, KVMAS_ATTACH_VM, &a));
}

static inline int kvmas_vm_info(int dev, struct kvmas_vm_info *info)
{
	memset(info, 0, sizeof(*info));
	info->size = sizeof(*info);
	return sys_ret(ioctl(dev, KVMAS_GET_VM_INFO, info));
}

static inline int kvmas_layout(int dev, unsigned int flags, unsigned int as_id,
			       struct kvmas_slot *ents, unsigned int cap,
			       unsigned int *nr, uint64_t *gen)
{
	struct kvmas_layout l = {
		.size = sizeof(l),
		.flags = flags,
		.as_id = as_id,
		.entry_size = sizeof(struct kvmas_slot),
		.nr_entries = cap,
		.entries = (uintptr_t)ents,
	};
	int r = sys_ret(ioctl(dev, KVMAS_GET_LAYOUT, &l));

	if (nr)
		*nr = l.nr_entries;
	if (gen)
		memcpy(gen, l.generation, sizeof(l.generation));
	return r;
}

static inline void *guest_mem(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

/* KVM names a VM's debugfs directory "<pid>-<vm fd>" and removes it on destroy. */
static inline int kvm_debugfs_vm_exists(pid_t pid, int vm_fd)
{
	char path[64];
	struct stat st;

	snprintf(path, sizeof(path), "/sys/kernel/debug/kvm/%d-%d", pid, vm_fd);
	return stat(path, &st) == 0;
}

/* VMs alive system-wide, as KVM's debugfs sees them. */
static inline int kvm_debugfs_nr_vms(void)
{
	DIR *d = opendir("/sys/kernel/debug/kvm");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -errno;
	while ((e = readdir(d)))
		if (strchr(e->d_name, '-'))
			n++;
	closedir(d);
	return n;
}

static inline long read_long_file(const char *path)
{
	char buf[64] = "";
	long v = -1;
	FILE *f = fopen(path, "r");

	if (!f)
		return -errno;
	if (fgets(buf, sizeof(buf), f))
		v = strtol(buf, NULL, 10);
	fclose(f);
	return v;
}

/*
 * Active objects and objects per slab of a cache in /proc/slabinfo (the
 * harness boots with slab_nomerge so our cache has its own line).
 */
static inline int slab_active(const char *cache, long *active, long *per_slab)
{
	char line[512], name[64];
	long act, num, objsize, objperslab;
	FILE *f;
	int fd;

	/*
	 * kmem_cache_shrink() first: it also empties KASAN's quarantine of
	 * this cache, where freed objects otherwise stay counted as active
	 * (the debug kernel); elsewhere it only releases empty slabs.
	 */
	snprintf(line, sizeof(line), "/sys/kernel/slab/%s/shrink", cache);
	fd = open(line, O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		/* Best effort: the count is read all the same. */
		ssize_t w = write(fd, "1", 1);

		(void)w;
		close(fd);
	}
	f = fopen("/proc/slabinfo", "r");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%63s %ld %ld %ld %ld", name, &act, &num,
			   &objsize, &objperslab) == 5 &&
		    !strcmp(name, cache)) {
			fclose(f);
			*active = act;
			*per_slab = objperslab;
			return 0;
		}
	}
	fclose(f);
	return -ENOENT;
}

/* SCM_RIGHTS: hand an fd to the other end of a unix socket. */
static inline int send_fd(int sock, int fd)
{
	char c = 'f';
	struct iovec iov = { .iov_base = &c, .iov_len = 1 };
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} u = {};
	struct msghdr m = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = u.buf,
		.msg_controllen = sizeof(u.buf),
	};
	struct cmsghdr *c0 = CMSG_FIRSTHDR(&m);

	c0->cmsg_level = SOL_SOCKET;
	c0->cmsg_type = SCM_RIGHTS;
	c0->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c0), &fd, sizeof(int));
	return sys_ret(sendmsg(sock, &m, 0));
}

static inline int recv_fd(int sock)
{
	char c;
	struct iovec iov = { .iov_base = &c, .iov_len = 1 };
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} u = {};
	struct msghdr m = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = u.buf,
		.msg_controllen = sizeof(u.buf),
	};
	struct cmsghdr *c0;
	int fd;

	if (recvmsg(sock, &m, 0) < 1)
		return -errno;
	c0 = CMSG_FIRSTHDR(&m);
	if (!c0 || c0->cmsg_type != SCM_RIGHTS)
		return -EPROTO;
	memcpy(&fd, CMSG_DATA(c0), sizeof(int));
	return fd;
}

/* Module and livepatch control, for the suites that unload the module. */
#include <sys/syscall.h>
#include <time.h>

#define MODNAME "kvm_atomic_slots"
#define KLP_DIR "/sys/kernel/livepatch/" MODNAME

static inline int mod_unload(void)
{
	return sys_ret(syscall(SYS_delete_module, MODNAME, O_NONBLOCK));
}

static inline int mod_load(void)
{
	const char *path = getenv("KVMAS_KO");
	int fd, r;

	if (!path)
		return -ENOENT;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = sys_ret(syscall(SYS_finit_module, fd, "", 0));
	close(fd);
	return r;
}

static inline int dev_exists(void)
{
	return access(KVMAS_DEVICE_PATH, F_OK) == 0;
}

static inline int patch_present(void)
{
	return access(KLP_DIR, F_OK) == 0;
}

/*
 * The documented unload step: disable the patch, wait for the transition
 * and for the patch to be freed (its sysfs directory goes away). Returns
 * the milliseconds it took, or -errno.
 */
static inline long patch_disable(void)
{
	struct timespec t0, t1;
	int fd, i;

	if (!patch_present())
		return 0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	fd = open(KLP_DIR "/enabled", O_WRONLY);
	if (fd < 0)
		return -errno;
	if (write(fd, "0", 1) != 1) {
		close(fd);
		return -errno;
	}
	close(fd);
	for (i = 0; i < 600 && patch_present(); i++)
		usleep(50 * 1000);
	if (patch_present())
		return -ETIMEDOUT;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (t1.tv_sec - t0.tv_sec) * 1000 +
	       (t1.tv_nsec - t0.tv_nsec) / 1000000;
}

/* Waits (up to 30 s) for a livepatch transition in progress to finish. */
static inline void patch_wait_settled(void)
{
	int i;

	for (i = 0; i < 300; i++) {
		long t = read_long_file(KLP_DIR "/transition");

		if (t != 1)
			return;
		usleep(100 * 1000);
	}
}

/*
 * Takes a CPU offline (0) or online (1). Multi-threaded TCG was seen to run
 * a stale int3 left by a kernel text patch on another vCPU, so the race
 * suite patches text (livepatch disable, module reload) with one CPU up.
 */
static inline int cpu_set_online(int cpu, int on)
{
	char path[64];
	int fd, r = 0;

	snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu%d/online",
		 cpu);
	fd = open(path, O_WRONLY);
	if (fd < 0)
		return -errno;
	if (write(fd, on ? "1" : "0", 1) != 1)
		r = -errno;
	close(fd);
	return r;
}

static inline int kvmas_cap(int cap)
{
	int dev = kvmas_dev_open(), v;

	if (dev < 0)
		return dev;
	v = ioctl(dev, KVMAS_CHECK_EXTENSION, cap);
	close(dev);
	return v;
}

#endif /* KVMAS_TEST_HELPERS_H */
