// SPDX-License-Identifier: GPL-2.0
/*
 * Sessions and their VM: attaching to a KVM VM fd, describing it, and
 * snapshotting its memslot layout.
 */
#include <linux/file.h>
#include <linux/kvm_host.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/ratelimit.h>
#include <linux/rbtree.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/srcu.h>
#include <linux/uaccess.h>

#include "session.h"

struct kvmas_stats kvmas_stats;
LIST_HEAD(kvmas_sessions);
DEFINE_MUTEX(kvmas_sessions_lock);
unsigned int kvmas_sessions_gen = 1;
LIST_HEAD(kvmas_vms);
DEFINE_MUTEX(kvmas_vms_lock);
unsigned int kvmas_vms_gen = 1;

unsigned int kvmas_events_burst = 10;
module_param_named(events_burst, kvmas_events_burst, uint, 0444);
MODULE_PARM_DESC(
	events_burst,
	"rejected-batch and ring-anomaly events per VM and interval (0: none)");
unsigned int kvmas_events_interval_ms = 5000;
module_param_named(events_interval_ms, kvmas_events_interval_ms, uint, 0444);
MODULE_PARM_DESC(
	events_interval_ms,
	"the event rate limit's interval in milliseconds (0: no limit)");

/* A dedicated cache makes session leaks visible in /proc/slabinfo. */
static struct kmem_cache *kvmas_session_cache;
/* Under kvmas_sessions_lock / kvmas_vms_lock: ids grow in list order. */
static u64 kvmas_next_session_id;
static u64 kvmas_next_vm_id;

/* kvmas_priv.h cannot include KVM's header for the size of its names. */
static_assert(KVMAS_VM_NAME_SIZE == KVM_STATS_NAME_SIZE);

/* A dump's consistency mark changed with its list; never 0 (unchecked). */
static void kvmas_gen_bump(unsigned int *gen)
{
	if (!++*gen)
		*gen = 1;
}

int kvmas_session_cache_init(void)
{
	kvmas_session_cache = KMEM_CACHE(kvmas_session, 0);
	return kvmas_session_cache ? 0 : -ENOMEM;
}

void kvmas_session_cache_exit(void)
{
	kmem_cache_destroy(kvmas_session_cache);
}

struct kvmas_session *kvmas_session_new(void)
{
	struct kvmas_session *s;

	s = kmem_cache_zalloc(kvmas_session_cache, GFP_KERNEL_ACCOUNT);
	if (!s)
		return NULL;
	mutex_init(&s->attach_lock);
	s->tgid = task_tgid_nr(current);

	/* The id under the lock: the list stays sorted (netlink dumps). */
	mutex_lock(&kvmas_sessions_lock);
	s->id = ++kvmas_next_session_id;
	list_add_tail(&s->node, &kvmas_sessions);
	kvmas_gen_bump(&kvmas_sessions_gen);
	mutex_unlock(&kvmas_sessions_lock);

	atomic_inc(&kvmas_stats.sessions_open);
	atomic64_inc(&kvmas_stats.sessions_total);
	return s;
}

bool kvmas_session_attached(struct kvmas_session *s)
{
	/* Pairs with smp_store_release() in kvmas_attach_vm(). */
	return smp_load_acquire(&s->kvm);
}

void kvmas_session_free(struct kvmas_session *s)
{
	might_sleep();
	mutex_lock(&kvmas_sessions_lock);
	list_del(&s->node);
	kvmas_gen_bump(&kvmas_sessions_gen);
	mutex_unlock(&kvmas_sessions_lock);

	/*
	 * Release runs once no ioctl can be in flight, with no lock held:
	 * kvm_put_kvm() may destroy the VM right here, which sleeps and calls
	 * into the vendor module, hence the module reference is dropped after.
	 * The VM's counters go first: no later VM at this address may find
	 * them (kvmas_vm_get()).
	 */
	if (s->kvm) {
		kvmas_vm_put(s->vm);
		kvm_put_kvm(s->kvm);
		module_put(s->kvm_owner);
		atomic_dec(&kvmas_stats.attached);
	}
	atomic_dec(&kvmas_stats.sessions_open);
	kvfree(s->ring_seen);
	mutex_destroy(&s->attach_lock);
	kmem_cache_free(kvmas_session_cache, s);
}

/*
 * The VM gate every VM command passes, mirroring kvm_vm_ioctl(): only the
 * VM's own process may act on it, and never on a VM KVM declared dead.
 */
struct kvm *kvmas_session_vm(struct kvmas_session *s, int *err)
{
	/* Pairs with smp_store_release() in kvmas_attach_vm(). */
	struct kvm *kvm = smp_load_acquire(&s->kvm);

	if (!kvm) {
		*err = -ENOTCONN;
		return NULL;
	}
	if (kvm->mm != current->mm) {
		*err = -EPERM;
		return NULL;
	}
	/*
	 * Unordered racy read, exactly like KVM's own check: vm_dead only ever
	 * goes false -> true (kvm_vm_dead()), so a stale false lets one more
	 * harmless read-only command through.
	 */
	if (READ_ONCE(kvm->vm_dead)) {
		*err = -EIO;
		return NULL;
	}
	return kvm;
}

/*
 * The counters of @kvm: the existing object if a session is attached to it
 * already, else @fresh, filled in and listed. Caller holds attach_lock and
 * a reference on @kvm; @fresh is freed if not used.
 */
static struct kvmas_vm *kvmas_vm_get(struct kvm *kvm, struct kvmas_vm *fresh)
{
	struct kvmas_vm *vm;

	mutex_lock(&kvmas_vms_lock);
	list_for_each_entry(vm, &kvmas_vms, node) {
		if (vm->kvm == kvm) {
			vm->nr_sessions++;
			mutex_unlock(&kvmas_vms_lock);
			kfree(fresh);
			return vm;
		}
	}
	vm = fresh;
	vm->kvm = kvm;
	vm->nr_sessions = 1;
	strscpy(vm->name, kvm->stats_id, sizeof(vm->name));
	ratelimit_state_init(&vm->events_rs,
			     msecs_to_jiffies(kvmas_events_interval_ms),
			     min(kvmas_events_burst, KVMAS_EVENTS_BURST_MAX));
	/* Suppressed events are counted, not logged. */
	ratelimit_set_flags(&vm->events_rs, RATELIMIT_MSG_ON_RELEASE);
	vm->id = ++kvmas_next_vm_id;
	list_add_tail(&vm->node, &kvmas_vms);
	kvmas_gen_bump(&kvmas_vms_gen);
	mutex_unlock(&kvmas_vms_lock);
	return vm;
}

/* Drops one attached session's reference; the last one frees the counters. */
void kvmas_vm_put(struct kvmas_vm *vm)
{
	bool last;

	mutex_lock(&kvmas_vms_lock);
	last = !--vm->nr_sessions;
	if (last) {
		list_del(&vm->node);
		kvmas_gen_bump(&kvmas_vms_gen);
	}
	mutex_unlock(&kvmas_vms_lock);
	if (last)
		kfree(vm);
}

static int kvmas_attach_check(struct file *f, struct kvm **kvmp)
{
	struct kvm *kvm;

	/* The only test KVM exports for "this is a VM fd" (not /dev/kvm, vCPU). */
	if (!file_is_kvm(f))
		return -EINVAL;
	kvm = f->private_data;
	if (kvm->mm != current->mm)
		return -EPERM;
	/* Racy like KVM's own gate; see kvmas_session_vm(). */
	if (READ_ONCE(kvm->vm_dead))
		return -EIO;
	*kvmp = kvm;
	return 0;
}

int kvmas_attach_vm(struct kvmas_session *s, struct kvmas_attach_vm *cmd)
{
	struct kvmas_vm *fresh = NULL;
	struct module *owner;
	struct kvm *kvm = NULL;
	struct file *f;
	int ret;

	if (cmd->flags || cmd->__reserved)
		return -EINVAL;

	might_sleep();
	f = fget(cmd->vm_fd);
	if (!f) {
		ret = -EBADF;
		goto out_stat;
	}
	/* Counters for the VM, in case it has none yet (kvmas_vm_get()). */
	fresh = kzalloc(sizeof(*fresh), GFP_KERNEL_ACCOUNT);
	if (!fresh) {
		ret = -ENOMEM;
		goto out_fput;
	}
	ret = kvmas_attach_check(f, &kvm);
	if (ret)
		goto out_fput;

	mutex_lock(&s->attach_lock);
	if (s->kvm) {
		ret = -EBUSY;
		goto out_unlock;
	}
	/*
	 * The VM file pins the vendor module (kvm_amd/kvm_intel) only while
	 * it is open; our reference on the VM may outlive it, and destroying
	 * the VM calls into that module.
	 */
	owner = f->f_op->owner;
	if (!try_module_get(owner)) {
		ret = -ENODEV;
		goto out_unlock;
	}
	lockdep_assert_held(&s->attach_lock);
	/* Safe: the open VM file holds a reference, so users_count > 0. */
	kvm_get_kvm(kvm);
	s->kvm_owner = owner;
	/* Published by the release below, like everything set before it. */
	s->vm = kvmas_vm_get(kvm, fresh);
	fresh = NULL;
	/* Pairs with smp_load_acquire() in kvmas_session_vm(). */
	smp_store_release(&s->kvm, kvm);
	atomic_inc(&kvmas_stats.attached);
	ret = 0;
out_unlock:
	mutex_unlock(&s->attach_lock);
out_fput:
	kfree(fresh);
	fput(f);
out_stat:
	if (ret) {
		atomic64_inc(&kvmas_stats.attach_failed);
		pr_info_ratelimited("pid %d: attach refused (%d)\n",
				    task_tgid_nr(current), ret);
	} else {
		atomic64_inc(&kvmas_stats.attach_ok);
	}
	return ret;
}

struct kvmas_vm *kvmas_session_vm_stats(struct kvmas_session *s)
{
	/* Pairs with smp_store_release() in kvmas_attach_vm(). */
	return smp_load_acquire(&s->kvm) ? s->vm : NULL;
}

void kvmas_session_vm_name(struct kvmas_session *s, char *buf, size_t len)
{
	/* Pairs with smp_store_release() in kvmas_attach_vm(). */
	struct kvm *kvm = smp_load_acquire(&s->kvm);

	strscpy(buf, kvm ? kvm->stats_id : "", len);
}

static bool kvmas_slot_is_internal(const struct kvm_memory_slot *slot)
{
	return slot->id >= KVM_USER_MEM_SLOTS;
}

int kvmas_get_vm_info(struct kvmas_session *s, struct kvmas_vm_info *cmd)
{
	struct kvm_memory_slot *slot;
	struct kvm_memslots *slots;
	struct kvm *kvm;
	int as, bkt, idx, ret;

	if (cmd->flags)
		return -EINVAL;
	kvm = kvmas_session_vm(s, &ret);
	if (!kvm)
		return ret;

	*cmd = (struct kvmas_vm_info){ .size = cmd->size };
	cmd->nr_address_spaces = kvmas_nr_as(kvm);
	cmd->nr_vcpus = atomic_read(&kvm->online_vcpus);
	cmd->max_vcpus = kvm->max_vcpus;
	cmd->max_user_slots = KVM_USER_MEM_SLOTS;
	/*
	 * Written once under kvm->lock while enabling the capability; no
	 * ordering needed for a report, only an untorn value.
	 */
	cmd->dirty_ring_size = READ_ONCE(kvm->dirty_ring_size);
	if (cmd->dirty_ring_size)
		cmd->vm_flags |= KVMAS_VM_DIRTY_RING;
	if (kvmas_ring_with_bitmap(kvm))
		cmd->vm_flags |= KVMAS_VM_DIRTY_RING_WITH_BITMAP;
	/* Same one-way flag as vm_dead; a report, no ordering needed. */
	if (READ_ONCE(kvm->vm_bugged))
		cmd->vm_flags |= KVMAS_VM_BUGGED;

	/* kvm->srcu: the memslot pointers, as a vCPU would read them. */
	idx = srcu_read_lock(&kvm->srcu);
	for (as = 0; as < cmd->nr_address_spaces && as < KVMAS_MAX_AS; as++) {
		slots = __kvm_memslots(kvm, as);
		cmd->generation[as] = slots->generation;
		kvm_for_each_memslot(slot, bkt, slots) {
			if (kvmas_slot_is_internal(slot))
				cmd->internal_slots[as]++;
			else
				cmd->user_slots[as]++;
			if (slot->flags & KVM_MEM_LOG_DIRTY_PAGES)
				cmd->dirty_log_slots[as]++;
			cmd->guest_pages[as] += slot->npages;
		}
	}
	srcu_read_unlock(&kvm->srcu, idx);
	return 0;
}

static void kvmas_fill_slot(struct kvmas_slot *out,
			    const struct kvm_memory_slot *slot)
{
	out->slot = slot->id;
	out->flags = slot->flags;
	out->guest_phys_addr = (u64)slot->base_gfn << PAGE_SHIFT;
	out->memory_size = (u64)slot->npages << PAGE_SHIFT;
	out->userspace_addr = slot->userspace_addr;
	out->as_id = slot->as_id;
	out->attrs = 0;
	if (kvmas_slot_is_internal(slot))
		out->attrs |= KVMAS_SLOT_INTERNAL;
	if (slot->dirty_bitmap)
		out->attrs |= KVMAS_SLOT_DIRTY_BITMAP;
	if (kvmas_slot_is_gmem(slot))
		out->attrs |= KVMAS_SLOT_GUEST_MEMFD;
}

/* The first version of struct kvmas_slot; never smaller than this. */
#define KVMAS_SLOT_MIN_SIZE offsetofend(struct kvmas_slot, attrs)
/* Bounds a caller's buffer: more than this many slots cannot exist. */
#define KVMAS_LAYOUT_MAX_ENTRIES (KVM_MEM_SLOTS_NUM * KVMAS_MAX_AS)

int kvmas_get_layout(struct kvmas_session *s, struct kvmas_layout *cmd)
{
	u32 known = KVMAS_LAYOUT_ALL_AS | KVMAS_LAYOUT_INTERNAL;
	struct kvmas_slot *buf = NULL, __user * uent;
	u32 cap, count = 0, i, first_as, last_as;
	struct kvm_memory_slot *slot;
	struct kvm_memslots *slots;
	struct rb_node *node;
	struct kvm *kvm;
	int as, idx, ret;

	if ((cmd->flags & ~known) || cmd->__reserved)
		return -EINVAL;
	if (cmd->entry_size < KVMAS_SLOT_MIN_SIZE)
		return -EINVAL;
	kvm = kvmas_session_vm(s, &ret);
	if (!kvm)
		return ret;

	if (cmd->flags & KVMAS_LAYOUT_ALL_AS) {
		if (cmd->as_id)
			return -EINVAL;
		first_as = 0;
		last_as = kvmas_nr_as(kvm) - 1;
	} else {
		if (cmd->as_id >= kvmas_nr_as(kvm))
			return -EINVAL;
		first_as = last_as = cmd->as_id;
	}

	/*
	 * Fill a kernel buffer inside one SRCU section (a state vCPUs could
	 * see), copy to the user after it: no user fault under SRCU.
	 */
	cap = min_t(u32, cmd->nr_entries, KVMAS_LAYOUT_MAX_ENTRIES);
	if (cap) {
		buf = kvcalloc(cap, sizeof(*buf), GFP_KERNEL_ACCOUNT);
		if (!buf)
			return -ENOMEM;
	}

	memset(cmd->generation, 0, sizeof(cmd->generation));
	/*
	 * slots_lock: never between the two swaps of a batch (whose first one
	 * publishes INVALID stand-ins) nor between the address spaces of
	 * anything; SRCU for the memslot pointers themselves.
	 */
	ret = mutex_lock_killable(&kvm->slots_lock);
	if (ret) {
		kvfree(buf);
		return ret;
	}
	idx = srcu_read_lock(&kvm->srcu);
	for (as = first_as; as <= last_as; as++) {
		slots = __kvm_memslots(kvm, as);
		cmd->generation[as] = slots->generation;
		/* gfn_tree order gives the documented gpa sort for free. */
		for (node = rb_first(&slots->gfn_tree); node;
		     node = rb_next(node)) {
			slot = container_of(node, struct kvm_memory_slot,
					    gfn_node[slots->node_idx]);
			if (kvmas_slot_is_internal(slot) &&
			    !(cmd->flags & KVMAS_LAYOUT_INTERNAL))
				continue;
			if (count < cap)
				kvmas_fill_slot(&buf[count], slot);
			count++;
		}
	}
	srcu_read_unlock(&kvm->srcu, idx);
	mutex_unlock(&kvm->slots_lock);

	ret = 0;
	if (count > cmd->nr_entries) {
		ret = -E2BIG;
	} else {
		uent = u64_to_user_ptr(cmd->entries);
		for (i = 0; i < count; i++) {
			void __user *dst = (void __user *)uent +
					   (size_t)i * cmd->entry_size;

			if (copy_to_user(dst, &buf[i],
					 min_t(u32, cmd->entry_size,
					       sizeof(*buf))) ||
			    (cmd->entry_size > sizeof(*buf) &&
			     clear_user(dst + sizeof(*buf),
					cmd->entry_size - sizeof(*buf)))) {
				ret = -EFAULT;
				break;
			}
		}
	}
	cmd->nr_entries = count;
	kvfree(buf);
	return ret;
}
