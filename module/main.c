// SPDX-License-Identifier: GPL-2.0
/*
 * kvm_atomic_slots: /dev/kvm-atomic-slots, the ioctl dispatcher, module
 * life cycle. The protocol is specified in uapi/linux/kvm_atomic_slots.h.
 */
#include <linux/fs.h>
#include <linux/ktime.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/kvm_host.h>

#include "batch.h"
#include "internals.h"
#include "livepatch.h"
#include "netlink.h"
#include "ring.h"
#include "session.h"

/*
 * Size-first dispatch in the iommufd style: the table says how large each
 * command struct is today and how large it was in its first version.
 */
union kvmas_cmd_buffer {
	struct kvmas_caps caps;
	struct kvmas_attach_vm attach;
	struct kvmas_vm_info info;
	struct kvmas_layout layout;
	struct kvmas_commit_batch batch;
	struct kvmas_reset_ring ring;
};

struct kvmas_ioctl_op {
	unsigned int size;
	unsigned int min_size;
	/* The struct has no out field: nothing is copied back. */
	bool no_response;
	/* Copy the struct back even on -E2BIG (it carries the needed size). */
	bool respond_on_e2big;
	/* Copy the struct back on any error (it names the failing op). */
	bool respond_on_error;
	/*
	 * A success changes state: it is reported as one even if the copy
	 * back fails (another thread unmapped the struct after it was proved
	 * writable), because an error must mean that nothing changed.
	 */
	bool changes_state;
};

static int kvmas_cap_value(unsigned int cap)
{
	switch (cap) {
	case KVMAS_CAP_SESSION:
	case KVMAS_CAP_LAYOUT_ALL_AS:
	case KVMAS_CAP_NETLINK:
		return 1;
	case KVMAS_CAP_MAX_ADDRESS_SPACES:
		return kvmas_kvm_max_as();
	/* A route counts only while it gives us something usable. */
	case KVMAS_CAP_ROUTE_LIVEPATCH:
		return kvmas_route_livepatch() && kvmas_internals_features();
	case KVMAS_CAP_ROUTE_KALLSYMS:
		return kvmas_route_kallsyms() && kvmas_internals_features();
	case KVMAS_CAP_HARDENED_RING_RESET:
		return kvmas_hardened_reset_active();
	case KVMAS_CAP_BATCH_COMMIT:
		return !!(kvmas_internals_features() & KVMAS_FEAT_BATCH_COMMIT);
	case KVMAS_CAP_ROUTE_INVALIDATE:
		return kvmas_arch_invalidate_route_ok() &&
		       (kvmas_internals_features() & KVMAS_FEAT_BATCH_COMMIT);
	case KVMAS_CAP_ZAP_RANGE:
		return (kvmas_internals_features() &
			(KVMAS_FEAT_BATCH_COMMIT | KVMAS_FEAT_ZAP_RANGE)) ==
		       (KVMAS_FEAT_BATCH_COMMIT | KVMAS_FEAT_ZAP_RANGE);
	case KVMAS_CAP_MAX_BATCH_OPS:
		return KVMAS_MAX_BATCH_OPS;
	case KVMAS_CAP_RING_RESET:
		if (!(kvmas_internals_features() & KVMAS_FEAT_RING_RESET))
			return 0;
		return kvmas_hardened_reset_active() ?
			       KVMAS_RING_RESET_PARALLEL :
			       KVMAS_RING_RESET_SERIAL;
	default:
		return 0;
	}
}

static int kvmas_get_caps(struct kvmas_session *s, struct kvmas_caps *cmd)
{
	unsigned int cap;

	if (cmd->flags || cmd->__reserved)
		return -EINVAL;

	cmd->api_version = KVMAS_API_VERSION;
	cmd->nr_caps = KVMAS_CAP_COUNT;
	cmd->caps = 0;
	for (cap = 0; cap < KVMAS_CAP_COUNT; cap++)
		if (kvmas_cap_value(cap) > 0)
			cmd->caps |= BIT_ULL(cap);
	cmd->max_batch_ops = kvmas_cap_value(KVMAS_CAP_MAX_BATCH_OPS);
	cmd->max_address_spaces = kvmas_cap_value(KVMAS_CAP_MAX_ADDRESS_SPACES);
	cmd->kvm_user_mem_slots = KVM_USER_MEM_SLOTS;
	return 0;
}

#define KVMAS_OP(_nr, _struct, _last, ...)                        \
	[_nr] = { .size = sizeof(struct _struct),                 \
		  .min_size = offsetofend(struct _struct, _last), \
		  __VA_ARGS__ }

static const struct kvmas_ioctl_op kvmas_ops[] = {
	KVMAS_OP(KVMAS_CMD_GET_CAPS, kvmas_caps, __reserved),
	/* Changes state, but has no out field to fail on. */
	KVMAS_OP(KVMAS_CMD_ATTACH_VM, kvmas_attach_vm, __reserved,
		 .no_response = true),
	KVMAS_OP(KVMAS_CMD_GET_VM_INFO, kvmas_vm_info, guest_pages),
	KVMAS_OP(KVMAS_CMD_GET_LAYOUT, kvmas_layout, generation,
		 .respond_on_e2big = true),
	KVMAS_OP(KVMAS_CMD_COMMIT_BATCH, kvmas_commit_batch, __reserved,
		 .respond_on_error = true, .changes_state = true),
	KVMAS_OP(KVMAS_CMD_RESET_RING, kvmas_reset_ring, __reserved,
		 .respond_on_error = true, .changes_state = true),
};

/*
 * A switch, not a table of function pointers: the module makes no indirect
 * call at all, which the static check in `make check` verifies on x86_64.
 */
static int kvmas_execute(struct kvmas_session *s, unsigned int nr,
			 union kvmas_cmd_buffer *buf)
{
	u64 t0;
	int ret;

	/* Every command may sleep; none is entered with a lock held. */
	might_sleep();
	switch (nr) {
	case KVMAS_CMD_GET_CAPS:
		return kvmas_get_caps(s, &buf->caps);
	case KVMAS_CMD_ATTACH_VM:
		ret = kvmas_attach_vm(s, &buf->attach);
		if (!ret)
			kvmas_netlink_event(s, KVMAS_NL_EVENT_ATTACH);
		return ret;
	case KVMAS_CMD_GET_VM_INFO:
		return kvmas_get_vm_info(s, &buf->info);
	case KVMAS_CMD_GET_LAYOUT:
		return kvmas_get_layout(s, &buf->layout);
	case KVMAS_CMD_COMMIT_BATCH:
		/*
		 * Counted here, from what the command returns (its struct
		 * carries every figure), so batch.c keeps only the commit.
		 */
		t0 = ktime_get_ns();
		ret = kvmas_commit_batch(s, &buf->batch);
		kvmas_account_batch(s, &buf->batch, ret, t0);
		return ret;
	case KVMAS_CMD_RESET_RING:
		return kvmas_reset_ring(s, &buf->ring);
	}
	return -ENOTTY;
}

static long kvmas_struct_ioctl(struct kvmas_session *s, unsigned int nr,
			       void __user *uarg)
{
	const struct kvmas_ioctl_op *op;
	union kvmas_cmd_buffer buf;
	u32 usize, len;
	int ret;

	if (nr >= ARRAY_SIZE(kvmas_ops) || !kvmas_ops[nr].size)
		return -ENOTTY;
	op = &kvmas_ops[nr];

	if (get_user(usize, (u32 __user *)uarg))
		return -EFAULT;
	if (usize < op->min_size)
		return -EINVAL;
	/* Zero-fills a short tail, refuses a non-zero unknown tail (E2BIG). */
	ret = copy_struct_from_user(&buf, op->size, uarg, usize);
	if (ret)
		return ret;
	/* The caller's size stays as it was: only known fields go back. */
	len = min_t(u32, usize, op->size);
	/*
	 * Every struct that goes back is proved writable first: a command
	 * must not fail on its own struct after it changed state or wrote
	 * other buffers (GET_LAYOUT's entries). Proved by writing back the
	 * bytes just read, which the response overwrites anyway: a fault
	 * probe (get_user_pages) cost more than a one-op commit's own work.
	 */
	if (!op->no_response && copy_to_user(uarg, &buf, len))
		return -EFAULT;

	ret = kvmas_execute(s, nr, &buf);
	if (op->no_response ||
	    (ret && !(ret == -E2BIG && op->respond_on_e2big) &&
	     !op->respond_on_error))
		return ret;

	if (copy_to_user(uarg, &buf, len)) {
		if (!ret && op->changes_state) {
			pr_warn_ratelimited(
				"pid %d: command %u done, its result lost: struct unmapped during the call\n",
				task_tgid_nr(current), nr);
			return 0;
		}
		return -EFAULT;
	}
	return ret;
}

static long kvmas_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct kvmas_session *s = file->private_data;
	long ret;

	if (_IOC_TYPE(cmd) != KVMAS_TYPE || _IOC_DIR(cmd) != _IOC_NONE ||
	    _IOC_SIZE(cmd))
		return -ENOTTY;

	switch (_IOC_NR(cmd)) {
	case KVMAS_CMD_GET_API_VERSION:
		ret = arg ? -EINVAL : KVMAS_API_VERSION;
		break;
	case KVMAS_CMD_CHECK_EXTENSION:
		ret = kvmas_cap_value(arg < KVMAS_CAP_COUNT ? arg : UINT_MAX);
		break;
	default:
		ret = kvmas_struct_ioctl(s, _IOC_NR(cmd), (void __user *)arg);
		break;
	}
	if (ret < 0)
		atomic64_inc(&kvmas_stats.ioctl_errors);
	return ret;
}

static int kvmas_open(struct inode *inode, struct file *file)
{
	struct kvmas_session *s = kvmas_session_new();

	if (!s)
		return -ENOMEM;
	kvmas_batch_session_init(s);
	file->private_data = s;
	return nonseekable_open(inode, file);
}

static int kvmas_release(struct inode *inode, struct file *file)
{
	struct kvmas_session *s = file->private_data;

	/* No ioctl is in flight: the attach state is final. */
	if (kvmas_session_attached(s))
		kvmas_netlink_event(s, KVMAS_NL_EVENT_DETACH);
	/* The reaper frees into the VM: done before the VM reference goes. */
	kvmas_batch_session_drain(s);
	kvmas_session_free(s);
	return 0;
}

static const struct file_operations kvmas_fops = {
	.owner = THIS_MODULE,
	.open = kvmas_open,
	.release = kvmas_release,
	.unlocked_ioctl = kvmas_ioctl,
	/* Every struct is 64-bit clean (pointers travel as __u64). */
	.compat_ioctl = compat_ptr_ioctl,
	.llseek = noop_llseek,
};

static struct miscdevice kvmas_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = KVMAS_DEVICE_NAME,
	.fops = &kvmas_fops,
};

static bool kvmas_misc_registered;

static int __init kvmas_init(void)
{
	int ret;

	ret = kvmas_session_cache_init();
	if (ret)
		return ret;
	ret = kvmas_netlink_init();
	if (ret)
		goto err_cache;
	/* Before the livepatch: the patched stock reset takes the ring locks. */
	kvmas_ring_init();
	/*
	 * An enabled livepatch cannot be taken back from here (only through
	 * sysfs), so it comes after every step that can be unwound; until it
	 * is enabled no internal is callable (kvmas_internals_get() fails).
	 */
	ret = kvmas_internals_init();
	if (ret)
		goto err_netlink;
	ret = kvmas_livepatch_enable();
	if (ret)
		goto err_internals;

	/* Last: the device node appears only once everything behind it works. */
	ret = misc_register(&kvmas_misc);
	if (ret) {
		if (!kvmas_route_livepatch())
			goto err_internals;
		/* Stay loaded but inert: the patch pins us until disabled. */
		pr_err("cannot register %s (%d); disable the livepatch and unload\n",
		       KVMAS_DEVICE_PATH, ret);
		return 0;
	}
	kvmas_misc_registered = true;
	pr_info("version " KVMAS_VERSION
		" (api %d) loaded, %d address space(s)\n",
		KVMAS_API_VERSION, kvmas_kvm_max_as());
	return 0;

err_internals:
	kvmas_internals_exit();
err_netlink:
	kvmas_netlink_exit();
err_cache:
	kvmas_session_cache_exit();
	return ret;
}

static void __exit kvmas_exit(void)
{
	/* No session can exist here: each open file pins THIS_MODULE. */
	if (kvmas_misc_registered)
		misc_deregister(&kvmas_misc);
	kvmas_internals_exit();
	kvmas_netlink_exit();
	kvmas_session_cache_exit();
}

module_init(kvmas_init);
module_exit(kvmas_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("kvm-atomic-slots developers");
MODULE_DESCRIPTION(
	"Atomic batched KVM memslot updates and ordered dirty-ring reset");
MODULE_VERSION(KVMAS_VERSION);
