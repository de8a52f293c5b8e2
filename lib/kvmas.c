// SPDX-License-Identifier: (GPL-2.0 WITH Linux-syscall-note) OR MIT
/*
 * libkvmas: userspace shim for /dev/kvm-atomic-slots. See kvmas.h.
 */
#define _GNU_SOURCE /* secure_getenv */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "kvmas.h"

struct kvmas {
	int fd;
	int api_version;
};

/* Returns the ioctl's non-negative result or -errno. */
static int kvmas_ioctl(int fd, unsigned long req, unsigned long arg)
{
	int ret;

	do {
		ret = ioctl(fd, req, arg);
	} while (ret < 0 && errno == EINTR);

	return ret < 0 ? -errno : ret;
}

static int kvmas_ioctl_ptr(int fd, unsigned long req, void *arg)
{
	return kvmas_ioctl(fd, req, (unsigned long)(uintptr_t)arg);
}

KVMAS_API const char *kvmas_device_path(void)
{
	/* secure_getenv: a set-uid helper must not open a path we chose. */
	const char *path = secure_getenv("KVMAS_DEVICE");

	return path && *path ? path : KVMAS_DEVICE_PATH;
}

KVMAS_API int kvmas_open(struct kvmas **out)
{
	struct kvmas *kv;
	int fd, ret;

	kv = calloc(1, sizeof(*kv));
	if (!kv)
		return -ENOMEM;

	fd = open(kvmas_device_path(), O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		goto err_free;
	}

	ret = kvmas_ioctl(fd, KVMAS_GET_API_VERSION, 0);
	if (ret < 0)
		goto err_close;
	if (ret != KVMAS_API_VERSION) {
		ret = -EPROTO;
		goto err_close;
	}

	kv->fd = fd;
	kv->api_version = KVMAS_API_VERSION;
	*out = kv;
	return 0;

err_close:
	close(fd);
err_free:
	free(kv);
	return ret;
}

KVMAS_API void kvmas_close(struct kvmas *kv)
{
	if (!kv)
		return;
	close(kv->fd);
	free(kv);
}

KVMAS_API int kvmas_fd(const struct kvmas *kv)
{
	return kv->fd;
}

KVMAS_API int kvmas_api_version(const struct kvmas *kv)
{
	return kv->api_version;
}

KVMAS_API int kvmas_check_extension(struct kvmas *kv, unsigned int cap)
{
	return kvmas_ioctl(kv->fd, KVMAS_CHECK_EXTENSION, cap);
}

static const char *const kvmas_cap_names[] = {
	[KVMAS_CAP_SESSION] = "session",
	[KVMAS_CAP_LAYOUT_ALL_AS] = "layout_all_as",
	[KVMAS_CAP_BATCH_COMMIT] = "batch_commit",
	[KVMAS_CAP_RING_RESET] = "ring_reset",
	[KVMAS_CAP_ROUTE_LIVEPATCH] = "route_livepatch",
	[KVMAS_CAP_ROUTE_KALLSYMS] = "route_kallsyms",
	[KVMAS_CAP_HARDENED_RING_RESET] = "hardened_ring_reset",
	[KVMAS_CAP_MAX_BATCH_OPS] = "max_batch_ops",
	[KVMAS_CAP_MAX_ADDRESS_SPACES] = "max_address_spaces",
	[KVMAS_CAP_NETLINK] = "netlink",
	[KVMAS_CAP_ROUTE_INVALIDATE] = "route_invalidate",
	[KVMAS_CAP_ZAP_RANGE] = "zap_range",
};

/* A new capability in the uapi header must get a name here. */
_Static_assert(sizeof(kvmas_cap_names) / sizeof(kvmas_cap_names[0]) ==
		       KVMAS_CAP_COUNT,
	       "kvmas_cap_names out of date");

KVMAS_API const char *kvmas_cap_name(unsigned int cap)
{
	return cap < KVMAS_CAP_COUNT ? kvmas_cap_names[cap] : NULL;
}

KVMAS_API int kvmas_get_caps(struct kvmas *kv, struct kvmas_caps *caps)
{
	memset(caps, 0, sizeof(*caps));
	caps->size = sizeof(*caps);
	return kvmas_ioctl_ptr(kv->fd, KVMAS_GET_CAPS, caps);
}

KVMAS_API int kvmas_attach_vm(struct kvmas *kv, int vm_fd)
{
	struct kvmas_attach_vm attach;

	memset(&attach, 0, sizeof(attach));
	attach.size = sizeof(attach);
	attach.vm_fd = vm_fd;
	return kvmas_ioctl_ptr(kv->fd, KVMAS_ATTACH_VM, &attach);
}

KVMAS_API int kvmas_get_vm_info(struct kvmas *kv, struct kvmas_vm_info *info)
{
	memset(info, 0, sizeof(*info));
	info->size = sizeof(*info);
	return kvmas_ioctl_ptr(kv->fd, KVMAS_GET_VM_INFO, info);
}

/*
 * First guess: a typical VM has well under 16 slots per address space, so
 * the common case is a single ioctl.
 */
#define KVMAS_LAYOUT_FIRST_GUESS 32U

/*
 * KVM slot ids are 16 bits per address space: a count far above that is a
 * module bug, not a reason to allocate gigabytes.
 */
#define KVMAS_LAYOUT_SANE_MAX (KVMAS_MAX_AS * 65536U)

KVMAS_API int kvmas_get_layout(struct kvmas *kv, unsigned int flags,
			       unsigned int as_id, struct kvmas_slot **slots,
			       unsigned int *nr, __u64 generation[KVMAS_MAX_AS])
{
	unsigned int cap = KVMAS_LAYOUT_FIRST_GUESS;
	struct kvmas_layout layout;
	struct kvmas_slot *buf;
	unsigned int want;
	int tries, ret;

	for (tries = 0; tries < KVMAS_LAYOUT_MAX_TRIES; tries++) {
		buf = calloc(cap, sizeof(*buf));
		if (!buf)
			return -ENOMEM;

		memset(&layout, 0, sizeof(layout));
		layout.size = sizeof(layout);
		layout.flags = flags;
		layout.as_id = as_id;
		layout.entry_size = sizeof(*buf);
		layout.nr_entries = cap;
		layout.entries = (__u64)(uintptr_t)buf;

		ret = kvmas_ioctl_ptr(kv->fd, KVMAS_GET_LAYOUT, &layout);
		if (!ret) {
			if (layout.nr_entries > cap) {
				free(buf);
				return -EPROTO;
			}
			*slots = buf;
			*nr = layout.nr_entries;
			if (generation)
				memcpy(generation, layout.generation,
				       sizeof(layout.generation));
			return 0;
		}
		free(buf);

		/*
		 * E2BIG also means "struct tail unknown to the module"; only
		 * a count above our capacity is the buffer-too-small case.
		 */
		if (ret != -E2BIG || layout.nr_entries <= cap)
			return ret;
		if (layout.nr_entries > KVMAS_LAYOUT_SANE_MAX)
			return -EPROTO;

		/* Headroom for slots added before the next attempt. */
		want = layout.nr_entries + layout.nr_entries / 4U + 4U;
		if (want > KVMAS_LAYOUT_SANE_MAX)
			want = KVMAS_LAYOUT_SANE_MAX;
		cap = want;
	}

	return -EAGAIN;
}

KVMAS_API void kvmas_free(void *p)
{
	free(p);
}

#define KVMAS_ANY_CMD UINT_MAX

struct kvmas_errmsg {
	unsigned int cmd;
	int err;
	const char *msg;
};

/* Specific entries first: the first match wins. */
static const struct kvmas_errmsg kvmas_errmsgs[] = {
	{ KVMAS_CMD_COMMIT_BATCH, EINVAL,
	  "invalid op (kind, flags, alignment, slot id, address space, reserved field, "
	  "a field the op does not use, deleting an id not in use, "
	  "or a second op on the same slot)" },
	{ KVMAS_CMD_COMMIT_BATCH, EEXIST,
	  "overlaps another slot in the final layout, or creates an existing slot id" },
	{ KVMAS_CMD_COMMIT_BATCH, ENOENT,
	  "no slot with that id to move, re-flag or replace" },
	{ KVMAS_CMD_COMMIT_BATCH, EOPNOTSUPP,
	  "batch commits unavailable on this kernel, or a guest_memfd slot" },
	{ KVMAS_CMD_COMMIT_BATCH, EMSGSIZE, "too many ops in one batch" },
	{ KVMAS_CMD_COMMIT_BATCH, EFAULT,
	  "command struct, ops or dirty-bitmap buffer not accessible (nothing was changed)" },
	{ KVMAS_CMD_COMMIT_BATCH, ENOMEM,
	  "out of memory preparing a slot (nothing was changed)" },
	{ KVMAS_CMD_RESET_RING, ENXIO, "the VM has no dirty ring enabled" },
	{ KVMAS_CMD_RESET_RING, ENOENT, "no vCPU with that id" },
	{ KVMAS_CMD_RESET_RING, EOPNOTSUPP,
	  "per-vCPU ring reset unavailable on this kernel" },
	{ KVMAS_CMD_RESET_RING, EMSGSIZE, "too many vCPUs in one call" },
	{ KVMAS_CMD_RESET_RING, EINVAL,
	  "invalid flags, reserved field or entry size, or no vCPU named" },
	{ KVMAS_CMD_RESET_RING, EFAULT, "vCPU array not accessible" },
	{ KVMAS_OP_OPEN, ENOENT,
	  "device node not found (is the kvm_atomic_slots module loaded?)" },
	{ KVMAS_OP_OPEN, EACCES,
	  "permission denied on the device node (check its group/udev rule)" },
	{ KVMAS_OP_OPEN, ENXIO,
	  "device node has no driver behind it (module unloaded?)" },
	{ KVMAS_OP_OPEN, ENODEV,
	  "device node has no driver behind it (module unloaded?)" },
	{ KVMAS_OP_OPEN, ENOTTY,
	  "device does not speak the kvm-atomic-slots protocol" },
	{ KVMAS_OP_OPEN, EPROTO,
	  "module API version differs from the one libkvmas was built for" },

	{ KVMAS_CMD_GET_API_VERSION, EINVAL,
	  "GET_API_VERSION takes no argument (must be 0)" },

	{ KVMAS_CMD_GET_CAPS, EINVAL,
	  "bad struct size, non-zero flags or reserved field" },
	{ KVMAS_CMD_GET_CAPS, E2BIG,
	  "struct kvmas_caps sets fields this module does not know" },

	{ KVMAS_CMD_ATTACH_VM, EBADF, "vm_fd is not an open file descriptor" },
	{ KVMAS_CMD_ATTACH_VM, EINVAL, "fd is not a KVM VM fd" },
	{ KVMAS_CMD_ATTACH_VM, EPERM, "VM belongs to another process (mm)" },
	{ KVMAS_CMD_ATTACH_VM, EIO,
	  "VM is dead (KVM flagged an internal bug)" },
	{ KVMAS_CMD_ATTACH_VM, EBUSY, "session already attached" },
	{ KVMAS_CMD_ATTACH_VM, ENODEV,
	  "the KVM module providing the VM is going away" },
	{ KVMAS_CMD_ATTACH_VM, E2BIG,
	  "struct kvmas_attach_vm sets fields this module does not know" },

	{ KVMAS_CMD_GET_VM_INFO, EINVAL,
	  "bad struct size, non-zero flags or reserved field" },
	{ KVMAS_CMD_GET_VM_INFO, E2BIG,
	  "struct kvmas_vm_info sets fields this module does not know" },

	{ KVMAS_CMD_GET_LAYOUT, EINVAL,
	  "bad flags, address space id, entry size or reserved field" },
	{ KVMAS_CMD_GET_LAYOUT, E2BIG,
	  "entries buffer too small for the layout" },
	{ KVMAS_CMD_GET_LAYOUT, EFAULT, "entries buffer is not writable" },
	{ KVMAS_CMD_GET_LAYOUT, EAGAIN,
	  "layout kept growing while being read; try again" },
	{ KVMAS_CMD_GET_LAYOUT, EPROTO,
	  "module reported an impossible number of entries (module bug)" },

	/* What every VM command or every struct command can answer. */
	{ KVMAS_ANY_CMD, ENOTCONN, "session not attached to a VM" },
	{ KVMAS_ANY_CMD, EPERM, "VM belongs to another process (mm)" },
	{ KVMAS_ANY_CMD, EIO, "VM is dead (KVM flagged an internal bug)" },
	{ KVMAS_ANY_CMD, ENOTTY, "command not supported by this module" },
	{ KVMAS_ANY_CMD, EINVAL,
	  "bad struct size, unknown flags or non-zero reserved field" },
	{ KVMAS_ANY_CMD, E2BIG,
	  "struct sets fields this module does not know" },
	{ KVMAS_ANY_CMD, EFAULT, "bad user pointer" },
	{ KVMAS_ANY_CMD, ENOMEM, "out of memory" },
};

KVMAS_API const char *kvmas_error_string(unsigned int cmd, int err)
{
	size_t i;

	if (err < 0)
		err = -err;
	/* Accept the ioctl request as well as the bare command number. */
	if (_IOC_TYPE(cmd) == KVMAS_TYPE)
		cmd = _IOC_NR(cmd);

	for (i = 0; i < sizeof(kvmas_errmsgs) / sizeof(kvmas_errmsgs[0]); i++) {
		const struct kvmas_errmsg *m = &kvmas_errmsgs[i];

		if (m->err != err)
			continue;
		if (m->cmd == cmd ||
		    (m->cmd == KVMAS_ANY_CMD && cmd != KVMAS_OP_OPEN))
			return m->msg;
	}
	return strerror(err);
}

/* ---------------------------------------------------------------- batches */

struct kvmas_batch {
	struct kvmas_batch_op *ops;
	unsigned int nr, cap;
};

KVMAS_API struct kvmas_batch *kvmas_batch_new(void)
{
	return calloc(1, sizeof(struct kvmas_batch));
}

KVMAS_API void kvmas_batch_free(struct kvmas_batch *b)
{
	if (b)
		free(b->ops);
	free(b);
}

KVMAS_API void kvmas_batch_reset(struct kvmas_batch *b)
{
	b->nr = 0;
}

KVMAS_API unsigned int kvmas_batch_len(const struct kvmas_batch *b)
{
	return b->nr;
}

static int kvmas_batch_add(struct kvmas_batch *b,
			   const struct kvmas_batch_op *op)
{
	if (b->nr >= KVMAS_MAX_BATCH_OPS)
		return -EMSGSIZE;
	if (b->nr == b->cap) {
		unsigned int cap = b->cap ? 2 * b->cap : 16;
		void *ops = realloc(b->ops, cap * sizeof(*b->ops));

		if (!ops)
			return -ENOMEM;
		b->ops = ops;
		b->cap = cap;
	}
	b->ops[b->nr++] = *op;
	return 0;
}

KVMAS_API int kvmas_batch_create(struct kvmas_batch *b, unsigned int as_id,
				 unsigned int slot, unsigned int flags,
				 __u64 gpa, __u64 size, void *hva)
{
	struct kvmas_batch_op op = {
		.op = KVMAS_OP_CREATE,
		.slot = slot,
		.as_id = as_id,
		.flags = flags,
		.guest_phys_addr = gpa,
		.memory_size = size,
		.userspace_addr = (__u64)(uintptr_t)hva,
	};

	return kvmas_batch_add(b, &op);
}

KVMAS_API int kvmas_batch_delete(struct kvmas_batch *b, unsigned int as_id,
				 unsigned int slot, void *dirty_bitmap)
{
	struct kvmas_batch_op op = {
		.op = KVMAS_OP_DELETE,
		.slot = slot,
		.as_id = as_id,
		.dirty_bitmap = (__u64)(uintptr_t)dirty_bitmap,
	};

	return kvmas_batch_add(b, &op);
}

KVMAS_API int kvmas_batch_move(struct kvmas_batch *b, unsigned int as_id,
			       unsigned int slot, unsigned int flags,
			       __u64 new_gpa, __u64 size, void *hva)
{
	struct kvmas_batch_op op = {
		.op = KVMAS_OP_MOVE,
		.slot = slot,
		.as_id = as_id,
		.flags = flags,
		.guest_phys_addr = new_gpa,
		.memory_size = size,
		.userspace_addr = (__u64)(uintptr_t)hva,
	};

	return kvmas_batch_add(b, &op);
}

KVMAS_API int kvmas_batch_set_flags(struct kvmas_batch *b, unsigned int as_id,
				    unsigned int slot, unsigned int flags)
{
	struct kvmas_batch_op op = {
		.op = KVMAS_OP_SET_FLAGS,
		.slot = slot,
		.as_id = as_id,
		.flags = flags,
	};

	return kvmas_batch_add(b, &op);
}

KVMAS_API int kvmas_batch_replace(struct kvmas_batch *b, unsigned int as_id,
				  unsigned int slot, unsigned int flags,
				  __u64 gpa, __u64 size, void *hva,
				  void *dirty_bitmap)
{
	struct kvmas_batch_op op = {
		.op = KVMAS_OP_REPLACE,
		.slot = slot,
		.as_id = as_id,
		.flags = flags,
		.guest_phys_addr = gpa,
		.memory_size = size,
		.userspace_addr = (__u64)(uintptr_t)hva,
		.dirty_bitmap = (__u64)(uintptr_t)dirty_bitmap,
	};

	return kvmas_batch_add(b, &op);
}

KVMAS_API int kvmas_batch_commit(struct kvmas *kv, const struct kvmas_batch *b,
				 unsigned int flags,
				 struct kvmas_batch_result *res)
{
	struct kvmas_commit_batch c = {
		.size = sizeof(c),
		.flags = flags,
		.nr_ops = b->nr,
		.op_size = sizeof(struct kvmas_batch_op),
		.ops = (__u64)(uintptr_t)b->ops,
	};
	int ret = kvmas_ioctl_ptr(kv->fd, KVMAS_COMMIT_BATCH, &c);

	if (res) {
		res->error_index = c.error_index;
		res->grace_periods = c.grace_periods;
		res->dirty_pages = c.dirty_pages;
	}
	return ret;
}

static const char *const kvmas_op_names[] = {
	[KVMAS_OP_CREATE] = "create",	[KVMAS_OP_DELETE] = "delete",
	[KVMAS_OP_MOVE] = "move",	[KVMAS_OP_SET_FLAGS] = "set-flags",
	[KVMAS_OP_REPLACE] = "replace",
};

KVMAS_API int kvmas_batch_describe_error(const struct kvmas_batch *b, int err,
					 const struct kvmas_batch_result *res,
					 char *buf, size_t len)
{
	const char *why = kvmas_error_string(KVMAS_CMD_COMMIT_BATCH, err);
	const struct kvmas_batch_op *op;
	const char *name;

	if (!res || res->error_index < 0 ||
	    (unsigned int)res->error_index >= b->nr)
		return snprintf(buf, len, "batch of %u ops: %s", b->nr, why);
	op = &b->ops[res->error_index];
	name = op->op < sizeof(kvmas_op_names) / sizeof(kvmas_op_names[0]) &&
			       kvmas_op_names[op->op] ?
		       kvmas_op_names[op->op] :
		       "unknown-op";
	return snprintf(
		buf, len,
		"op %d (%s slot %u as %u gpa 0x%llx size 0x%llx flags 0x%x): %s",
		res->error_index, name, op->slot, op->as_id,
		(unsigned long long)op->guest_phys_addr,
		(unsigned long long)op->memory_size, op->flags, why);
}
