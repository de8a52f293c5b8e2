// SPDX-License-Identifier: (GPL-2.0 WITH Linux-syscall-note) OR MIT
/*
 * Unit tests for libkvmas that run without the module.
 *
 * The library is linked statically, so the ioctl() defined below interposes
 * on the library's calls: with fake.on set it plays a small model of the
 * module (checking what the library sends), otherwise it forwards to the
 * real syscall, e.g. to see /dev/null answer ENOTTY.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kvmas.h"

/* ---- struct layout: documented offsets, no implicit padding ---- */

#define FSIZE(T, m) sizeof(((T *)0)->m)
#define AT(T, m, off) \
	_Static_assert(offsetof(T, m) == (off), #T "." #m " is not at " #off)
#define NOPAD(T, sum)                                            \
	_Static_assert(sizeof(T) == (sum) && sizeof(T) % 8 == 0, \
		       #T " has padding or is not 8-byte sized")

AT(struct kvmas_caps, size, 0);
AT(struct kvmas_caps, flags, 4);
AT(struct kvmas_caps, api_version, 8);
AT(struct kvmas_caps, nr_caps, 12);
AT(struct kvmas_caps, caps, 16);
AT(struct kvmas_caps, max_batch_ops, 24);
AT(struct kvmas_caps, max_address_spaces, 28);
AT(struct kvmas_caps, kvm_user_mem_slots, 32);
AT(struct kvmas_caps, __reserved, 36);
NOPAD(struct kvmas_caps, FSIZE(struct kvmas_caps, size) +
				 FSIZE(struct kvmas_caps, flags) +
				 FSIZE(struct kvmas_caps, api_version) +
				 FSIZE(struct kvmas_caps, nr_caps) +
				 FSIZE(struct kvmas_caps, caps) +
				 FSIZE(struct kvmas_caps, max_batch_ops) +
				 FSIZE(struct kvmas_caps, max_address_spaces) +
				 FSIZE(struct kvmas_caps, kvm_user_mem_slots) +
				 FSIZE(struct kvmas_caps, __reserved));
_Static_assert(sizeof(struct kvmas_caps) == 40, "kvmas_caps size");

AT(struct kvmas_attach_vm, size, 0);
AT(struct kvmas_attach_vm, flags, 4);
AT(struct kvmas_attach_vm, vm_fd, 8);
AT(struct kvmas_attach_vm, __reserved, 12);
NOPAD(struct kvmas_attach_vm,
      FSIZE(struct kvmas_attach_vm, size) +
	      FSIZE(struct kvmas_attach_vm, flags) +
	      FSIZE(struct kvmas_attach_vm, vm_fd) +
	      FSIZE(struct kvmas_attach_vm, __reserved));
_Static_assert(sizeof(struct kvmas_attach_vm) == 16, "kvmas_attach_vm size");

AT(struct kvmas_vm_info, size, 0);
AT(struct kvmas_vm_info, flags, 4);
AT(struct kvmas_vm_info, nr_address_spaces, 8);
AT(struct kvmas_vm_info, nr_vcpus, 12);
AT(struct kvmas_vm_info, max_vcpus, 16);
AT(struct kvmas_vm_info, max_user_slots, 20);
AT(struct kvmas_vm_info, dirty_ring_size, 24);
AT(struct kvmas_vm_info, vm_flags, 28);
AT(struct kvmas_vm_info, user_slots, 32);
AT(struct kvmas_vm_info, internal_slots, 40);
AT(struct kvmas_vm_info, dirty_log_slots, 48);
AT(struct kvmas_vm_info, generation, 56);
AT(struct kvmas_vm_info, guest_pages, 72);
NOPAD(struct kvmas_vm_info,
      FSIZE(struct kvmas_vm_info, size) + FSIZE(struct kvmas_vm_info, flags) +
	      FSIZE(struct kvmas_vm_info, nr_address_spaces) +
	      FSIZE(struct kvmas_vm_info, nr_vcpus) +
	      FSIZE(struct kvmas_vm_info, max_vcpus) +
	      FSIZE(struct kvmas_vm_info, max_user_slots) +
	      FSIZE(struct kvmas_vm_info, dirty_ring_size) +
	      FSIZE(struct kvmas_vm_info, vm_flags) +
	      FSIZE(struct kvmas_vm_info, user_slots) +
	      FSIZE(struct kvmas_vm_info, internal_slots) +
	      FSIZE(struct kvmas_vm_info, dirty_log_slots) +
	      FSIZE(struct kvmas_vm_info, generation) +
	      FSIZE(struct kvmas_vm_info, guest_pages));
_Static_assert(sizeof(struct kvmas_vm_info) == 88, "kvmas_vm_info size");

AT(struct kvmas_slot, slot, 0);
AT(struct kvmas_slot, flags, 4);
AT(struct kvmas_slot, guest_phys_addr, 8);
AT(struct kvmas_slot, memory_size, 16);
AT(struct kvmas_slot, userspace_addr, 24);
AT(struct kvmas_slot, as_id, 32);
AT(struct kvmas_slot, attrs, 36);
NOPAD(struct kvmas_slot, FSIZE(struct kvmas_slot, slot) +
				 FSIZE(struct kvmas_slot, flags) +
				 FSIZE(struct kvmas_slot, guest_phys_addr) +
				 FSIZE(struct kvmas_slot, memory_size) +
				 FSIZE(struct kvmas_slot, userspace_addr) +
				 FSIZE(struct kvmas_slot, as_id) +
				 FSIZE(struct kvmas_slot, attrs));
_Static_assert(sizeof(struct kvmas_slot) == 40, "kvmas_slot must be 40 bytes");

AT(struct kvmas_layout, size, 0);
AT(struct kvmas_layout, flags, 4);
AT(struct kvmas_layout, as_id, 8);
AT(struct kvmas_layout, entry_size, 12);
AT(struct kvmas_layout, nr_entries, 16);
AT(struct kvmas_layout, __reserved, 20);
AT(struct kvmas_layout, entries, 24);
AT(struct kvmas_layout, generation, 32);
NOPAD(struct kvmas_layout, FSIZE(struct kvmas_layout, size) +
				   FSIZE(struct kvmas_layout, flags) +
				   FSIZE(struct kvmas_layout, as_id) +
				   FSIZE(struct kvmas_layout, entry_size) +
				   FSIZE(struct kvmas_layout, nr_entries) +
				   FSIZE(struct kvmas_layout, __reserved) +
				   FSIZE(struct kvmas_layout, entries) +
				   FSIZE(struct kvmas_layout, generation));
_Static_assert(sizeof(struct kvmas_layout) == 48, "kvmas_layout size");

AT(struct kvmas_ring_vcpu, vcpu_id, 0);
AT(struct kvmas_ring_vcpu, boundary, 4);
AT(struct kvmas_ring_vcpu, reset, 8);
AT(struct kvmas_ring_vcpu, reset_index, 12);
AT(struct kvmas_ring_vcpu, stop_reason, 16);
AT(struct kvmas_ring_vcpu, invalid, 20);
_Static_assert(sizeof(struct kvmas_ring_vcpu) == 24, "kvmas_ring_vcpu size");
AT(struct kvmas_reset_ring, size, 0);
AT(struct kvmas_reset_ring, flags, 4);
AT(struct kvmas_reset_ring, nr_vcpus, 8);
AT(struct kvmas_reset_ring, vcpu_size, 12);
AT(struct kvmas_reset_ring, vcpus, 16);
AT(struct kvmas_reset_ring, max_entries, 24);
AT(struct kvmas_reset_ring, total_reset, 28);
AT(struct kvmas_reset_ring, error_index, 32);
AT(struct kvmas_reset_ring, tlb_flushes, 36);
AT(struct kvmas_reset_ring, __reserved32, 40);
AT(struct kvmas_reset_ring, __reserved, 44);
_Static_assert(sizeof(struct kvmas_reset_ring) == 48, "kvmas_reset_ring size");

/* ---- TAP ---- */

static int nr_pass, nr_fail;

static void ok(int cond, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void ok(int cond, const char *fmt, ...)
{
	va_list ap;

	if (cond)
		nr_pass++;
	else
		nr_fail++;
	printf("%sok %d - ", cond ? "" : "not ", nr_pass + nr_fail);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

/* ---- fake module ---- */

static struct {
	int on;
	int version;
	int attached;
	int vm_fd;
	unsigned int nr_slots; /* current layout size */
	unsigned int grow; /* slots added after each GET_LAYOUT */
	int doubling; /* layout doubles after each GET_LAYOUT */
	int tail_e2big; /* answer E2BIG without touching nr_entries */
	unsigned int layout_calls;
	int bad_input; /* the library sent something invalid */
	/* RESET_RING model: one ring, the kernel's view of it */
	struct kvm_dirty_gfn *ring;
	__u32 ring_entries, reset_index;
	unsigned int ring_calls;
	unsigned int signal_calls; /* this many calls stop on a "signal" first */
} fake;

static const int fake_cap_values[KVMAS_CAP_COUNT] = {
	[KVMAS_CAP_SESSION] = 1,	 [KVMAS_CAP_LAYOUT_ALL_AS] = 1,
	[KVMAS_CAP_MAX_BATCH_OPS] = 256, [KVMAS_CAP_MAX_ADDRESS_SPACES] = 2,
	[KVMAS_CAP_NETLINK] = 1,
};

static int fake_err(int err)
{
	errno = err;
	return -1;
}

static int fake_layout(struct kvmas_layout *l)
{
	struct kvmas_slot *e = (struct kvmas_slot *)(uintptr_t)l->entries;
	unsigned int i, nr = fake.nr_slots;

	fake.layout_calls++;
	fake.nr_slots += fake.grow;
	if (fake.doubling)
		fake.nr_slots *= 2;
	if (l->size != sizeof(*l) || l->__reserved ||
	    l->entry_size != sizeof(*e) || !e) {
		fake.bad_input = 1;
		return fake_err(EINVAL);
	}
	if (fake.tail_e2big)
		return fake_err(E2BIG);
	if (l->nr_entries < nr) {
		l->nr_entries = nr;
		return fake_err(E2BIG);
	}
	for (i = 0; i < nr; i++) {
		e[i].slot = i;
		e[i].guest_phys_addr = (__u64)i << 30;
		e[i].memory_size = 1ULL << 30;
		e[i].as_id = l->as_id;
	}
	l->nr_entries = nr;
	l->generation[0] = 42;
	l->generation[1] = (l->flags & KVMAS_LAYOUT_ALL_AS) ? 43 : 0;
	return 0;
}

/* The kernel's walk, for one ring (vCPU 7), minus the page re-protection. */
static int fake_reset_ring(struct kvmas_reset_ring *c)
{
	struct kvmas_ring_vcpu *v =
		(struct kvmas_ring_vcpu *)(uintptr_t)c->vcpus;
	__u32 n = 0;

	fake.ring_calls++;
	if (c->size != sizeof(*c) || c->vcpu_size != sizeof(*v) ||
	    c->nr_vcpus != 1 || c->__reserved || c->__reserved32 || c->flags) {
		fake.bad_input = 1;
		return fake_err(EINVAL);
	}
	if (v->vcpu_id != 7) {
		c->error_index = 0;
		return fake_err(ENOENT);
	}
	v->stop_reason = KVMAS_RING_STOP_BOUNDARY;
	if (fake.signal_calls) {
		fake.signal_calls--;
		v->stop_reason = KVMAS_RING_STOP_SIGNAL;
	}
	while (v->stop_reason == KVMAS_RING_STOP_BOUNDARY &&
	       fake.reset_index + n != v->boundary) {
		struct kvm_dirty_gfn *e = &fake.ring[(fake.reset_index + n) &
						     (fake.ring_entries - 1)];

		if (e->flags != KVM_DIRTY_GFN_F_RESET) {
			v->stop_reason = KVMAS_RING_STOP_NOT_COLLECTED;
			break;
		}
		e->flags = 0;
		n++;
	}
	fake.reset_index += n;
	v->reset = n;
	v->reset_index = fake.reset_index;
	c->total_reset = n;
	return 0;
}

static int fake_ioctl(unsigned long req, unsigned long arg)
{
	void *p = (void *)(uintptr_t)arg;

	switch (req) {
	case KVMAS_GET_API_VERSION:
		return arg ? fake_err(EINVAL) : fake.version;
	case KVMAS_CHECK_EXTENSION:
		return arg < KVMAS_CAP_COUNT ? fake_cap_values[arg] : 0;
	case KVMAS_GET_CAPS: {
		struct kvmas_caps *c = p;

		if (c->size != sizeof(*c) || c->flags || c->__reserved ||
		    c->caps || c->nr_caps) {
			fake.bad_input = 1;
			return fake_err(EINVAL);
		}
		c->api_version = KVMAS_API_VERSION;
		c->nr_caps = KVMAS_CAP_COUNT;
		c->caps = 0x313;
		c->max_batch_ops = 256;
		c->max_address_spaces = 2;
		c->kvm_user_mem_slots = 32764;
		return 0;
	}
	case KVMAS_ATTACH_VM: {
		struct kvmas_attach_vm *a = p;

		if (a->size != sizeof(*a) || a->flags || a->__reserved) {
			fake.bad_input = 1;
			return fake_err(EINVAL);
		}
		if (a->vm_fd < 0)
			return fake_err(EBADF);
		if (fake.attached)
			return fake_err(EBUSY);
		fake.attached = 1;
		fake.vm_fd = a->vm_fd;
		return 0;
	}
	case KVMAS_GET_VM_INFO: {
		struct kvmas_vm_info *v = p;

		if (v->size != sizeof(*v) || v->flags) {
			fake.bad_input = 1;
			return fake_err(EINVAL);
		}
		if (!fake.attached)
			return fake_err(ENOTCONN);
		v->nr_address_spaces = 2;
		v->max_user_slots = 32764;
		v->generation[1] = 7;
		return 0;
	}
	case KVMAS_GET_LAYOUT:
		if (!fake.attached)
			return fake_err(ENOTCONN);
		return fake_layout(p);
	case KVMAS_RESET_RING:
		return fake_reset_ring(p);
	}
	return fake_err(ENOTTY);
}

/* Interposes on libc's ioctl() for the statically linked library. */
int ioctl(int fd, unsigned long req, ...)
{
	unsigned long arg;
	va_list ap;

	va_start(ap, req);
	arg = va_arg(ap, unsigned long);
	va_end(ap);

	if (fake.on && _IOC_TYPE(req) == KVMAS_TYPE)
		return fake_ioctl(req, arg);
	return syscall(SYS_ioctl, fd, req, arg);
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	if (!d)
		return -1;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/* ---- tests ---- */

static void test_open(void)
{
	struct kvmas *kv = (struct kvmas *)&fake; /* must stay untouched */
	int ret, fds;

	setenv("KVMAS_DEVICE", "/nonexistent/kvm-atomic-slots", 1);
	ok(!strcmp(kvmas_device_path(), "/nonexistent/kvm-atomic-slots"),
	   "KVMAS_DEVICE overrides the device path");
	ret = kvmas_open(&kv);
	ok(ret == -ENOENT, "open of a missing device: -ENOENT (got %d)", ret);
	ok(kv == (struct kvmas *)&fake, "output untouched on failure");

	setenv("KVMAS_DEVICE", "", 1);
	ok(!strcmp(kvmas_device_path(), KVMAS_DEVICE_PATH),
	   "empty KVMAS_DEVICE means the default path");

	setenv("KVMAS_DEVICE", "/dev/null", 1);
	fds = count_fds();
	ret = kvmas_open(&kv);
	ok(ret == -ENOTTY, "open of /dev/null: -ENOTTY (got %d)", ret);

	fake.on = 1;
	fake.version = KVMAS_API_VERSION + 1;
	ret = kvmas_open(&kv);
	ok(ret == -EPROTO, "API version mismatch: -EPROTO (got %d)", ret);
	ok(count_fds() == fds, "no fd leaked by failed opens");

	fake.version = KVMAS_API_VERSION;
	ret = kvmas_open(&kv);
	ok(ret == 0, "open with matching API version (got %d)", ret);
	if (ret)
		return;
	ok(kvmas_fd(kv) >= 0 && (fcntl(kvmas_fd(kv), F_GETFD) & FD_CLOEXEC),
	   "session fd is open and close-on-exec");
	ok((fcntl(kvmas_fd(kv), F_GETFL) & O_ACCMODE) == O_RDWR,
	   "session fd is O_RDWR");
	ok(kvmas_api_version(kv) == KVMAS_API_VERSION, "api version cached");
	kvmas_close(kv);
	ok(count_fds() == fds, "kvmas_close closes the fd");
	kvmas_close(NULL);
	ok(1, "kvmas_close(NULL) is a no-op");
}

static void test_caps(struct kvmas *kv)
{
	struct kvmas_caps caps;
	unsigned int i;
	int ret, good = 1;

	for (i = 0; i < KVMAS_CAP_COUNT; i++)
		if (kvmas_check_extension(kv, i) != fake_cap_values[i])
			good = 0;
	ok(good, "check_extension returns each capability's value");
	ok(kvmas_check_extension(kv, 1000) == 0, "unknown capability is 0");

	memset(&caps, 0xff, sizeof(caps));
	ret = kvmas_get_caps(kv, &caps);
	ok(ret == 0 && !fake.bad_input, "get_caps sends a clean struct (%d)",
	   ret);
	ok(caps.size == sizeof(caps) && caps.nr_caps == KVMAS_CAP_COUNT &&
		   caps.kvm_user_mem_slots == 32764 && caps.__reserved == 0,
	   "get_caps output");

	good = 1;
	for (i = 0; i < KVMAS_CAP_COUNT; i++) {
		unsigned int j;

		if (!kvmas_cap_name(i) || !*kvmas_cap_name(i))
			good = 0;
		for (j = 0; j < i && good; j++)
			if (!strcmp(kvmas_cap_name(i), kvmas_cap_name(j)))
				good = 0;
	}
	ok(good && !kvmas_cap_name(KVMAS_CAP_COUNT),
	   "every capability has a unique name");
}

static void test_vm(struct kvmas *kv)
{
	struct kvmas_vm_info info;
	int ret;

	ret = kvmas_get_vm_info(kv, &info);
	ok(ret == -ENOTCONN, "vm_info before attach: -ENOTCONN (got %d)", ret);
	ret = kvmas_attach_vm(kv, -1);
	ok(ret == -EBADF, "attach of fd -1: -EBADF (got %d)", ret);
	ret = kvmas_attach_vm(kv, 7);
	ok(ret == 0 && fake.vm_fd == 7 && !fake.bad_input,
	   "attach passes vm_fd in a clean struct (got %d)", ret);
	ret = kvmas_attach_vm(kv, 7);
	ok(ret == -EBUSY, "second attach: -EBUSY (got %d)", ret);
	memset(&info, 0xff, sizeof(info));
	ret = kvmas_get_vm_info(kv, &info);
	ok(ret == 0 && !fake.bad_input && info.size == sizeof(info) &&
		   info.nr_address_spaces == 2 && info.generation[1] == 7 &&
		   info.nr_vcpus == 0,
	   "get_vm_info output (got %d)", ret);
}

static int check_entries(const struct kvmas_slot *s, unsigned int nr)
{
	unsigned int i;

	for (i = 0; i < nr; i++)
		if (s[i].slot != i || s[i].guest_phys_addr != (__u64)i << 30 ||
		    s[i].memory_size != 1ULL << 30)
			return 0;
	return 1;
}

static void test_layout(struct kvmas *kv)
{
	struct kvmas_slot *slots = NULL;
	__u64 gen[KVMAS_MAX_AS] = { 0, 0 };
	unsigned int nr = 12345;
	int ret;

	fake.nr_slots = 0;
	fake.layout_calls = 0;
	ret = kvmas_get_layout(kv, 0, 0, &slots, &nr, NULL);
	ok(ret == 0 && nr == 0 && slots && fake.layout_calls == 1,
	   "empty layout: one call, non-NULL buffer (got %d)", ret);
	kvmas_free(slots);

	fake.nr_slots = 5;
	fake.layout_calls = 0;
	ret = kvmas_get_layout(kv, KVMAS_LAYOUT_ALL_AS, 0, &slots, &nr, gen);
	ok(ret == 0 && nr == 5 && check_entries(slots, nr) && gen[0] == 42 &&
		   gen[1] == 43 && fake.layout_calls == 1,
	   "small layout in one call with generations (got %d)", ret);
	kvmas_free(slots);

	fake.nr_slots = 1000;
	fake.layout_calls = 0;
	ret = kvmas_get_layout(kv, 0, 1, &slots, &nr, NULL);
	ok(ret == 0 && nr == 1000 && check_entries(slots, nr) &&
		   slots[999].as_id == 1 && fake.layout_calls == 2,
	   "large layout: retried once at the reported size (got %d, %u calls)",
	   ret, fake.layout_calls);
	kvmas_free(slots);

	fake.nr_slots = 40;
	fake.grow = 20;
	fake.layout_calls = 0;
	ret = kvmas_get_layout(kv, 0, 0, &slots, &nr, NULL);
	ok(ret == 0 && nr == 100 && check_entries(slots, nr) &&
		   fake.layout_calls == 4,
	   "layout growing between calls is followed (got %d, %u calls)", ret,
	   fake.layout_calls);
	kvmas_free(slots);

	fake.nr_slots = 40;
	fake.grow = 0;
	fake.doubling = 1;
	fake.layout_calls = 0;
	slots = NULL;
	nr = 12345;
	ret = kvmas_get_layout(kv, 0, 0, &slots, &nr, NULL);
	ok(ret == -EAGAIN && fake.layout_calls == KVMAS_LAYOUT_MAX_TRIES &&
		   !slots && nr == 12345,
	   "runaway growth: -EAGAIN after %d calls, outputs untouched (got %d)",
	   KVMAS_LAYOUT_MAX_TRIES, ret);
	fake.doubling = 0;

	fake.nr_slots = 3;
	fake.tail_e2big = 1;
	fake.layout_calls = 0;
	ret = kvmas_get_layout(kv, 0, 0, &slots, &nr, NULL);
	ok(ret == -E2BIG && fake.layout_calls == 1,
	   "E2BIG not about capacity is returned, not retried (got %d)", ret);
	fake.tail_e2big = 0;

	fake.nr_slots = 0x7fffffff;
	ret = kvmas_get_layout(kv, 0, 0, &slots, &nr, NULL);
	ok(ret == -EPROTO, "absurd slot count: -EPROTO (got %d)", ret);

	ok(!fake.bad_input, "every GET_LAYOUT struct was clean");
}

struct errcase {
	unsigned int cmd;
	int err;
};

/* The errnos the uapi header and kvmas.h document, per command. */
static const struct errcase documented[] = {
	{ KVMAS_OP_OPEN, ENOENT },
	{ KVMAS_OP_OPEN, EACCES },
	{ KVMAS_OP_OPEN, ENOTTY },
	{ KVMAS_OP_OPEN, EPROTO },
	{ KVMAS_CMD_GET_API_VERSION, EINVAL },
	{ KVMAS_CMD_GET_CAPS, EINVAL },
	{ KVMAS_CMD_GET_CAPS, E2BIG },
	{ KVMAS_CMD_ATTACH_VM, EBADF },
	{ KVMAS_CMD_ATTACH_VM, EINVAL },
	{ KVMAS_CMD_ATTACH_VM, EPERM },
	{ KVMAS_CMD_ATTACH_VM, EIO },
	{ KVMAS_CMD_ATTACH_VM, EBUSY },
	{ KVMAS_CMD_ATTACH_VM, ENODEV },
	{ KVMAS_CMD_ATTACH_VM, E2BIG },
	{ KVMAS_CMD_GET_VM_INFO, ENOTCONN },
	{ KVMAS_CMD_GET_VM_INFO, EPERM },
	{ KVMAS_CMD_GET_VM_INFO, EIO },
	{ KVMAS_CMD_GET_VM_INFO, EINVAL },
	{ KVMAS_CMD_GET_VM_INFO, E2BIG },
	{ KVMAS_CMD_GET_LAYOUT, ENOTCONN },
	{ KVMAS_CMD_GET_LAYOUT, EPERM },
	{ KVMAS_CMD_GET_LAYOUT, EIO },
	{ KVMAS_CMD_GET_LAYOUT, EINVAL },
	{ KVMAS_CMD_GET_LAYOUT, E2BIG },
	{ KVMAS_CMD_GET_LAYOUT, EAGAIN },
	{ KVMAS_CMD_GET_LAYOUT, EPROTO },
	{ KVMAS_CMD_GET_LAYOUT, EFAULT },
	{ KVMAS_CMD_CHECK_EXTENSION, ENOTTY },
};

static void test_error_strings(void)
{
	unsigned int i;
	const char *s;

	for (i = 0; i < sizeof(documented) / sizeof(documented[0]); i++) {
		const struct errcase *c = &documented[i];

		s = kvmas_error_string(c->cmd, -c->err);
		ok(s && *s && strcmp(s, strerror(c->err)) &&
			   s == kvmas_error_string(c->cmd, c->err),
		   "cmd %#x %s: \"%s\"", c->cmd, strerrorname_np(c->err), s);
	}

	ok(!strcmp(kvmas_error_string(KVMAS_CMD_ATTACH_VM, EINVAL),
		   "fd is not a KVM VM fd") &&
		   !strcmp(kvmas_error_string(KVMAS_CMD_ATTACH_VM, EPERM),
			   "VM belongs to another process (mm)") &&
		   !strcmp(kvmas_error_string(KVMAS_CMD_ATTACH_VM, EBUSY),
			   "session already attached") &&
		   !strcmp(kvmas_error_string(KVMAS_CMD_GET_VM_INFO, ENOTCONN),
			   "session not attached to a VM"),
	   "attach/vm_info sentences as specified");
	ok(kvmas_error_string(KVMAS_ATTACH_VM, EBUSY) ==
		   kvmas_error_string(KVMAS_CMD_ATTACH_VM, EBUSY),
	   "ioctl request and command number give the same string");
	ok(strcmp(kvmas_error_string(KVMAS_CMD_ATTACH_VM, EINVAL),
		  kvmas_error_string(KVMAS_CMD_GET_CAPS, EINVAL)),
	   "EINVAL is explained per command");
	ok(!strcmp(kvmas_error_string(KVMAS_OP_OPEN, EPERM), strerror(EPERM)),
	   "VM-specific sentences do not leak into open errors");
	s = kvmas_error_string(KVMAS_CMD_GET_LAYOUT, EXDEV);
	ok(s && !strcmp(s, strerror(EXDEV)), "undocumented errno: strerror");
}

struct collected {
	unsigned int n;
	__u32 slot[64];
	__u64 off[64];
};

static void collect(void *opaque, __u32 slot, __u64 offset)
{
	struct collected *c = opaque;

	if (c->n < 64) {
		c->slot[c->n] = slot;
		c->off[c->n] = offset;
	}
	c->n++;
}

/* KVM's side of a push: fill, then publish DIRTY. */
static void push(struct kvm_dirty_gfn *ring, __u32 entries, __u32 *prod,
		 __u32 slot, __u64 off)
{
	struct kvm_dirty_gfn *e = &ring[(*prod)++ & (entries - 1)];

	e->slot = slot;
	e->offset = off;
	e->flags = KVM_DIRTY_GFN_F_DIRTY;
}

static void test_ring(struct kvmas *kv)
{
	struct kvm_dirty_gfn gfns[16];
	struct kvmas_ring r = {
		.size = sizeof(r), .gfns = gfns, .entries = 16, .vcpu_id = 7
	};
	struct kvmas_ring *rp = &r, old = r;
	struct kvmas_ring *oldp = &old;
	struct collected c = { 0 };
	__u32 prod = 0, i, h;
	long got;

	memset(gfns, 0, sizeof(gfns));
	fake.ring = gfns;
	fake.ring_entries = 16;

	for (i = 0; i < 5; i++)
		push(gfns, 16, &prod, 1 << 16 | 3, 100 + i);
	/*
	 * A ring whose caller did not say its size is refused and left alone:
	 * nothing harvested from a full ring, not reset, not cleared by a map
	 * (a valid fd-less map would clear it first, then fail with EBADF).
	 */
	old.size = KVMAS_RING_MIN_SIZE - 1;
	ok(kvmas_ring_harvest(&old, collect, &c, 0) == 0 && !c.n &&
		   gfns[0].flags == KVM_DIRTY_GFN_F_DIRTY &&
		   kvmas_ring_reset(kv, &oldp, 1, 0) == -EINVAL &&
		   kvmas_ring_map(&old, -1, 0, 4096) == -EINVAL &&
		   old.gfns == gfns && old.fetch == 0,
	   "a ring without its size is refused (EINVAL) and left alone");
	h = kvmas_ring_harvest(&r, collect, &c, 0);
	ok(h == 5 && c.n == 5 && r.fetch == 5 && c.slot[0] == (1 << 16 | 3) &&
		   c.off[0] == 100 && c.off[4] == 104,
	   "harvest collects the pushed entries in order (%u)", h);
	ok(gfns[0].flags == KVM_DIRTY_GFN_F_RESET &&
		   gfns[4].flags == KVM_DIRTY_GFN_F_RESET && !gfns[5].flags,
	   "harvest marks exactly the collected entries RESET");
	ok(kvmas_ring_harvest(&r, collect, &c, 0) == 0 && c.n == 5,
	   "harvest stops at the first entry not DIRTY");

	got = kvmas_ring_reset(kv, &rp, 1, 0);
	ok(got == 5 && r.reset_index == 5 && r.last_reset == 5 &&
		   r.stop_reason == KVMAS_RING_STOP_BOUNDARY && !gfns[0].flags,
	   "reset up to the fetch index (%ld, stop %s)", got,
	   kvmas_ring_stop_name(r.stop_reason));

	/* Wrap around the ring, with a capped harvest. */
	for (i = 0; i < 14; i++)
		push(gfns, 16, &prod, 1, i);
	c.n = 0;
	h = kvmas_ring_harvest(&r, collect, &c, 10);
	ok(h == 10 && r.fetch == 15, "harvest honours its maximum (%u)", h);
	h = kvmas_ring_harvest(&r, collect, &c, 0);
	ok(h == 4 && r.fetch == 19 && c.n == 14 && c.off[13] == 13,
	   "harvest continues across the wrap (%u)", h);

	fake.signal_calls = 2;
	got = kvmas_ring_reset(kv, &rp, 1, 0);
	ok(got == 14 && r.reset_index == 19 && fake.signal_calls == 0,
	   "reset retries after signal stops and completes (%ld)", got);
	ok(kvmas_ring_reset(kv, &rp, 1, KVMAS_RING_RESET_ALL_COLLECTED) ==
		   -EINVAL,
	   "ALL_COLLECTED is refused: the library resets to its fetch index");

	for (i = 0; i < 3; i++)
		push(gfns, 16, &prod, 1, 50 + i);
	c.n = 0;
	got = kvmas_ring_drain(kv, &r, collect, &c, 0);
	ok(got == 3 && c.n == 3 && r.reset_index == 22 && r.fetch == 22,
	   "drain (ring-full path) harvests and resets everything (%ld)", got);

	r.vcpu_id = 8;
	ok(kvmas_ring_reset(kv, &rp, 1, 0) == -ENOENT,
	   "unknown vCPU id: -ENOENT");
	ok(!strcmp(kvmas_ring_stop_name(KVMAS_RING_STOP_PRODUCER),
		   "producer") &&
		   !strcmp(kvmas_ring_stop_name(99), "unknown"),
	   "stop reason names");
	ok(!fake.bad_input, "every RESET_RING struct was clean");
}

int main(void)
{
	struct kvmas *kv;

	ok(1, "struct layouts match the documented offsets (static asserts)");
	test_open();
	test_error_strings();

	fake.on = 1;
	fake.version = KVMAS_API_VERSION;
	setenv("KVMAS_DEVICE", "/dev/null", 1);
	if (kvmas_open(&kv)) {
		ok(0, "open for the fake-module tests");
	} else {
		test_caps(kv);
		test_vm(kv);
		test_layout(kv);
		test_ring(kv);
		kvmas_close(kv);
	}

	printf("1..%d\n", nr_pass + nr_fail);
	printf("%d passed, %d failed\n", nr_pass, nr_fail);
	return nr_fail ? 1 : 0;
}
