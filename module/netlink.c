// SPDX-License-Identifier: GPL-2.0
/*
 * Generic netlink family for operators: module counters, a session dump, a
 * per-VM dump of counters, and an events multicast group. Read-only; VMMs
 * never need it. The per-VM accounting of the commands lives here too,
 * next to the events it raises (uapi: "Per-VM counters").
 */
#include <linux/kvm_host.h>
#include <linux/ktime.h>
#include <linux/math64.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/ratelimit.h>
#include <net/genetlink.h>

#include "netlink.h"
#include "session.h"

static struct genl_family kvmas_family;

/* Module-wide event limit: ten VMs' worth (uapi). */
static struct ratelimit_state kvmas_events_rs;

static int kvmas_nl_put_stats(struct sk_buff *skb)
{
	struct kvmas_stats *st = &kvmas_stats;

	if (nla_put_u32(skb, KVMAS_NL_A_STAT_SESSIONS_OPEN,
			atomic_read(&st->sessions_open)) ||
	    nla_put_u64_64bit(skb, KVMAS_NL_A_STAT_SESSIONS_TOTAL,
			      atomic64_read(&st->sessions_total),
			      KVMAS_NL_A_PAD) ||
	    nla_put_u32(skb, KVMAS_NL_A_STAT_ATTACHED,
			atomic_read(&st->attached)) ||
	    nla_put_u64_64bit(skb, KVMAS_NL_A_STAT_ATTACH_OK,
			      atomic64_read(&st->attach_ok), KVMAS_NL_A_PAD) ||
	    nla_put_u64_64bit(skb, KVMAS_NL_A_STAT_ATTACH_FAILED,
			      atomic64_read(&st->attach_failed),
			      KVMAS_NL_A_PAD) ||
	    nla_put_u64_64bit(skb, KVMAS_NL_A_STAT_IOCTL_ERRORS,
			      atomic64_read(&st->ioctl_errors),
			      KVMAS_NL_A_PAD) ||
	    nla_put_u64_64bit(skb, KVMAS_NL_A_STAT_BATCHES,
			      atomic64_read(&st->batches_committed),
			      KVMAS_NL_A_PAD) ||
	    nla_put_u64_64bit(skb, KVMAS_NL_A_STAT_BATCH_OPS,
			      atomic64_read(&st->batch_ops_committed),
			      KVMAS_NL_A_PAD) ||
	    nla_put_u64_64bit(skb, KVMAS_NL_A_STAT_RING_RESETS,
			      atomic64_read(&st->ring_reset_calls),
			      KVMAS_NL_A_PAD) ||
	    nla_put_u64_64bit(skb, KVMAS_NL_A_STAT_RING_ENTRIES,
			      atomic64_read(&st->ring_entries_reset),
			      KVMAS_NL_A_PAD))
		return -EMSGSIZE;
	return 0;
}

static int kvmas_nl_get_stats(struct sk_buff *skb, struct genl_info *info)
{
	struct sk_buff *msg;
	void *hdr;

	msg = genlmsg_new(NLMSG_GOODSIZE, GFP_KERNEL);
	if (!msg)
		return -ENOMEM;
	hdr = genlmsg_put_reply(msg, info, &kvmas_family, 0,
				KVMAS_NL_CMD_GET_STATS);
	if (!hdr || kvmas_nl_put_stats(msg)) {
		nlmsg_free(msg);
		NL_SET_ERR_MSG(info->extack, "stats do not fit in one message");
		return -EMSGSIZE;
	}
	genlmsg_end(msg, hdr);
	return genlmsg_reply(msg, info);
}

/* The session's attributes; the session is alive (caller's duty). */
static int kvmas_nl_put_session(struct sk_buff *skb, struct kvmas_session *s)
{
	struct kvmas_vm *vm = kvmas_session_vm_stats(s);
	char name[KVM_STATS_NAME_SIZE];

	kvmas_session_vm_name(s, name, sizeof(name));
	if (nla_put_u64_64bit(skb, KVMAS_NL_A_SESSION_ID, s->id,
			      KVMAS_NL_A_PAD) ||
	    nla_put_u32(skb, KVMAS_NL_A_SESSION_PID, s->tgid))
		return -EMSGSIZE;
	if (name[0] &&
	    (nla_put_string(skb, KVMAS_NL_A_SESSION_VM_STATS_ID, name) ||
	     nla_put_flag(skb, KVMAS_NL_A_SESSION_ATTACHED)))
		return -EMSGSIZE;
	if (vm &&
	    nla_put_u64_64bit(skb, KVMAS_NL_A_VM_ID, vm->id, KVMAS_NL_A_PAD))
		return -EMSGSIZE;
	return 0;
}

/*
 * Where a dump resumes, and its filter (GET_VMS). Ids grow in list order,
 * so resuming after the last id sent never repeats an entry and never
 * skips one that is still there, whatever changed between the parts; the
 * list's generation in cb->seq flags the parts after a change
 * (NLM_F_DUMP_INTR, by genl_dump_check_consistent()).
 */
enum kvmas_dump_filter {
	KVMAS_DUMP_ALL,
	KVMAS_DUMP_NAME, /* VMs KVM names @name */
	KVMAS_DUMP_SESSION, /* the VM of session @id (resolved to _VM) */
	KVMAS_DUMP_VM, /* VM @id */
	KVMAS_DUMP_NOTHING, /* a name no VM can have */
	KVMAS_DUMP_CONFLICT, /* more than one filter */
};

struct kvmas_dump_ctx {
	u64 last_id;
	u64 id;
	u8 filter;
	bool started;
	char name[30];
};
static_assert(sizeof(struct kvmas_dump_ctx) <=
	      sizeof_field(struct netlink_callback, ctx));

static struct kvmas_dump_ctx *kvmas_dump_ctx(struct netlink_callback *cb)
{
	return (struct kvmas_dump_ctx *)cb->ctx;
}

static int kvmas_nl_dump_sessions(struct sk_buff *skb,
				  struct netlink_callback *cb)
{
	struct kvmas_dump_ctx *ctx = kvmas_dump_ctx(cb);
	struct kvmas_session *s;
	void *hdr;

	mutex_lock(&kvmas_sessions_lock);
	cb->seq = kvmas_sessions_gen;
	list_for_each_entry(s, &kvmas_sessions, node) {
		if (s->id <= ctx->last_id)
			continue;
		hdr = genlmsg_put(skb, NETLINK_CB(cb->skb).portid,
				  cb->nlh->nlmsg_seq, &kvmas_family,
				  NLM_F_MULTI, KVMAS_NL_CMD_GET_SESSIONS);
		if (!hdr)
			break;
		genl_dump_check_consistent(cb, hdr);
		if (kvmas_nl_put_session(skb, s)) {
			genlmsg_cancel(skb, hdr);
			break;
		}
		genlmsg_end(skb, hdr);
		ctx->last_id = s->id;
	}
	mutex_unlock(&kvmas_sessions_lock);
	return skb->len;
}

/* ---- per-VM counters ---------------------------------------------------- */

static const struct {
	u16 attr;
	u16 off;
} kvmas_vm_counters[] = {
#define KVMAS_VM_COUNTER(a, f)                                        \
	{                                                             \
		KVMAS_NL_A_VM_##a, offsetof(struct kvmas_vm_stats, f) \
	}
	KVMAS_VM_COUNTER(BATCHES, batches),
	KVMAS_VM_COUNTER(BATCH_OPS, batch_ops),
	KVMAS_VM_COUNTER(GRACE_PERIODS, grace_periods),
	KVMAS_VM_COUNTER(ROUTE_FENCE, route_fence),
	KVMAS_VM_COUNTER(ROUTE_INVALIDATE, route_invalidate),
	KVMAS_VM_COUNTER(ROUTE_NONE, route_none),
	KVMAS_VM_COUNTER(DIRTY_PAGES, dirty_pages),
	KVMAS_VM_COUNTER(DRY_RUNS, dry_runs),
	KVMAS_VM_COUNTER(DRY_RUNS_REJECTED, dry_runs_rejected),
	KVMAS_VM_COUNTER(LATENCY_SUM_NS, latency_sum_ns),
	KVMAS_VM_COUNTER(LATENCY_MAX_NS, latency_max_ns),
	KVMAS_VM_COUNTER(RING_CALLS, ring_calls),
	KVMAS_VM_COUNTER(RING_ENTRIES, ring_entries),
	KVMAS_VM_COUNTER(RING_INVALID, ring_invalid),
	KVMAS_VM_COUNTER(RING_TLB_FLUSHES, ring_tlb_flushes),
	KVMAS_VM_COUNTER(EVENTS_SENT, events_sent),
	KVMAS_VM_COUNTER(EVENTS_SUPPRESSED, events_suppressed),
#undef KVMAS_VM_COUNTER
};

/* @n counters as a nest whose attribute types are 1..@n. */
static int kvmas_nl_put_array(struct sk_buff *skb, int attr,
			      const atomic64_t *c, unsigned int n)
{
	struct nlattr *nest = nla_nest_start(skb, attr);
	unsigned int i;

	if (!nest)
		return -EMSGSIZE;
	for (i = 0; i < n; i++) {
		if (nla_put_u64_64bit(skb, i + 1, atomic64_read(&c[i]),
				      KVMAS_NL_A_PAD)) {
			nla_nest_cancel(skb, nest);
			return -EMSGSIZE;
		}
	}
	nla_nest_end(skb, nest);
	return 0;
}

/* Caller holds kvmas_vms_lock (@vm listed, nr_sessions stable). */
static int kvmas_nl_put_vm(struct sk_buff *skb, struct kvmas_vm *vm)
{
	const struct kvmas_vm_stats *st = &vm->st;
	unsigned int i;

	lockdep_assert_held(&kvmas_vms_lock);
	if (nla_put_u64_64bit(skb, KVMAS_NL_A_VM_ID, vm->id, KVMAS_NL_A_PAD) ||
	    nla_put_string(skb, KVMAS_NL_A_SESSION_VM_STATS_ID, vm->name) ||
	    nla_put_u32(skb, KVMAS_NL_A_VM_SESSIONS, vm->nr_sessions))
		return -EMSGSIZE;
	for (i = 0; i < ARRAY_SIZE(kvmas_vm_counters); i++) {
		const atomic64_t *c =
			(const void *)st + kvmas_vm_counters[i].off;

		if (nla_put_u64_64bit(skb, kvmas_vm_counters[i].attr,
				      atomic64_read(c), KVMAS_NL_A_PAD))
			return -EMSGSIZE;
	}
	if (kvmas_nl_put_array(skb, KVMAS_NL_A_VM_REJECTED, st->rejected,
			       ARRAY_SIZE(st->rejected)) ||
	    kvmas_nl_put_array(skb, KVMAS_NL_A_VM_LATENCY, st->latency,
			       ARRAY_SIZE(st->latency)) ||
	    kvmas_nl_put_array(skb, KVMAS_NL_A_VM_RING_STOPS, st->ring_stops,
			       ARRAY_SIZE(st->ring_stops)))
		return -EMSGSIZE;
	return 0;
}

static bool kvmas_vm_matches(const struct kvmas_vm *vm,
			     const struct kvmas_dump_ctx *ctx)
{
	switch (ctx->filter) {
	case KVMAS_DUMP_ALL:
		return true;
	case KVMAS_DUMP_NAME:
		return !strcmp(vm->name, ctx->name);
	case KVMAS_DUMP_VM:
		return vm->id == ctx->id;
	default:
		return false;
	}
}

/* Whether a VM matching the dump's filter exists now. */
static bool kvmas_vm_filter_hits(const struct kvmas_dump_ctx *ctx)
{
	struct kvmas_vm *vm;
	bool hit = false;

	mutex_lock(&kvmas_vms_lock);
	list_for_each_entry(vm, &kvmas_vms, node) {
		if (kvmas_vm_matches(vm, ctx)) {
			hit = true;
			break;
		}
	}
	mutex_unlock(&kvmas_vms_lock);
	return hit;
}

/* The VM id of session @id, or an error with its explanation. */
static int kvmas_session_to_vm(u64 id, u64 *vm_id,
			       struct netlink_ext_ack *extack)
{
	struct kvmas_session *s;
	struct kvmas_vm *vm = NULL;
	bool found = false;

	mutex_lock(&kvmas_sessions_lock);
	list_for_each_entry(s, &kvmas_sessions, node) {
		if (s->id == id) {
			found = true;
			/* A listed session keeps its VM's counters alive. */
			vm = kvmas_session_vm_stats(s);
			if (vm)
				*vm_id = vm->id;
			break;
		}
	}
	mutex_unlock(&kvmas_sessions_lock);
	if (vm)
		return 0;
	if (found)
		NL_SET_ERR_MSG(extack, "that session is not attached to a VM");
	else
		NL_SET_ERR_MSG(extack, "no open session has that id");
	return -ENOENT;
}

static const struct nla_policy kvmas_nl_vms_policy[KVMAS_NL_A_MAX + 1] = {
	[KVMAS_NL_A_SESSION_ID] = { .type = NLA_U64 },
	[KVMAS_NL_A_SESSION_VM_STATS_ID] = { .type = NLA_NUL_STRING,
					     .len = KVM_STATS_NAME_SIZE - 1 },
	[KVMAS_NL_A_VM_ID] = { .type = NLA_U64 },
};

/*
 * GET_VMS: the filter is read here, and judged by the dump's first part
 * (kvmas_nl_vms_resolve()): 6.1 passes no extended ack to a dump's start
 * callback, only to the dump itself, whose error ends in NLMSG_DONE.
 */
static int kvmas_nl_vms_start(struct netlink_callback *cb)
{
	struct kvmas_dump_ctx *ctx = kvmas_dump_ctx(cb);
	struct nlattr *tb[KVMAS_NL_A_MAX + 1];
	struct nlattr *name;
	int ret;

	ret = nlmsg_parse(cb->nlh, GENL_HDRLEN, tb, KVMAS_NL_A_MAX,
			  kvmas_nl_vms_policy, cb->extack);
	if (ret)
		return ret;
	name = tb[KVMAS_NL_A_SESSION_VM_STATS_ID];
	if (!!tb[KVMAS_NL_A_SESSION_ID] + !!tb[KVMAS_NL_A_VM_ID] + !!name > 1) {
		ctx->filter = KVMAS_DUMP_CONFLICT;
	} else if (tb[KVMAS_NL_A_SESSION_ID]) {
		ctx->filter = KVMAS_DUMP_SESSION;
		ctx->id = nla_get_u64(tb[KVMAS_NL_A_SESSION_ID]);
	} else if (tb[KVMAS_NL_A_VM_ID]) {
		ctx->filter = KVMAS_DUMP_VM;
		ctx->id = nla_get_u64(tb[KVMAS_NL_A_VM_ID]);
	} else if (name) {
		/* KVM's names are "kvm-<pid>": a longer one names nothing. */
		ctx->filter = nla_strscpy(ctx->name, name, sizeof(ctx->name)) >
					      0 ?
				      KVMAS_DUMP_NAME :
				      KVMAS_DUMP_NOTHING;
	}
	return 0;
}

/* The first part of a filtered dump: 0, or the error that ends the dump. */
static int kvmas_nl_vms_resolve(struct netlink_callback *cb,
				struct kvmas_dump_ctx *ctx)
{
	switch (ctx->filter) {
	case KVMAS_DUMP_ALL:
		return 0;
	case KVMAS_DUMP_CONFLICT:
		NL_SET_ERR_MSG(
			cb->extack,
			"name at most one of a VM name, a session id and a VM id");
		return -EINVAL;
	case KVMAS_DUMP_SESSION:
		if (kvmas_session_to_vm(ctx->id, &ctx->id, cb->extack))
			return -ENOENT;
		ctx->filter = KVMAS_DUMP_VM;
		break;
	}
	if (kvmas_vm_filter_hits(ctx))
		return 0;
	if (ctx->filter == KVMAS_DUMP_VM)
		NL_SET_ERR_MSG(cb->extack, "no VM has that id");
	else
		NL_SET_ERR_MSG(
			cb->extack,
			"no VM with a session attached has that name (KVM's stats id, kvm-<pid>)");
	return -ENOENT;
}

static int kvmas_nl_dump_vms(struct sk_buff *skb, struct netlink_callback *cb)
{
	struct kvmas_dump_ctx *ctx = kvmas_dump_ctx(cb);
	struct kvmas_vm *vm;
	void *hdr;
	int ret;

	if (!ctx->started) {
		ctx->started = true;
		ret = kvmas_nl_vms_resolve(cb, ctx);
		if (ret)
			return ret;
	}
	mutex_lock(&kvmas_vms_lock);
	cb->seq = kvmas_vms_gen;
	list_for_each_entry(vm, &kvmas_vms, node) {
		if (vm->id <= ctx->last_id || !kvmas_vm_matches(vm, ctx))
			continue;
		hdr = genlmsg_put(skb, NETLINK_CB(cb->skb).portid,
				  cb->nlh->nlmsg_seq, &kvmas_family,
				  NLM_F_MULTI, KVMAS_NL_CMD_GET_VMS);
		if (!hdr)
			break;
		genl_dump_check_consistent(cb, hdr);
		if (kvmas_nl_put_vm(skb, vm)) {
			genlmsg_cancel(skb, hdr);
			break;
		}
		genlmsg_end(skb, hdr);
		ctx->last_id = vm->id;
	}
	mutex_unlock(&kvmas_vms_lock);
	return skb->len;
}

/* ---- events ------------------------------------------------------------- */

static struct sk_buff *kvmas_event_new(struct kvmas_session *s,
				       enum kvmas_nl_event type, void **hdr)
{
	struct sk_buff *msg;

	might_sleep();
	if (!genl_has_listeners(&kvmas_family, &init_net, 0))
		return NULL;
	msg = genlmsg_new(NLMSG_GOODSIZE, GFP_KERNEL);
	if (!msg)
		return NULL;
	*hdr = genlmsg_put(msg, 0, 0, &kvmas_family, 0, KVMAS_NL_CMD_EVENT);
	if (!*hdr || nla_put_u32(msg, KVMAS_NL_A_EVENT_TYPE, type) ||
	    kvmas_nl_put_session(msg, s)) {
		nlmsg_free(msg);
		return NULL;
	}
	return msg;
}

static void kvmas_event_send(struct sk_buff *msg, void *hdr)
{
	genlmsg_end(msg, hdr);
	genlmsg_multicast(&kvmas_family, msg, 0, 0, GFP_KERNEL);
}

void kvmas_netlink_event(struct kvmas_session *s, enum kvmas_nl_event type)
{
	struct sk_buff *msg;
	void *hdr;

	msg = kvmas_event_new(s, type, &hdr);
	if (msg)
		kvmas_event_send(msg, hdr);
}

/*
 * A rate-limited event of @s's VM (@vm): NULL if nobody listens, if the
 * VM's or the module's limit is reached (counted), or without memory.
 */
static struct sk_buff *kvmas_vm_event_new(struct kvmas_session *s,
					  struct kvmas_vm *vm,
					  enum kvmas_nl_event type, void **hdr)
{
	struct sk_buff *msg;

	if (!genl_has_listeners(&kvmas_family, &init_net, 0))
		return NULL;
	if (!__ratelimit(&vm->events_rs) || !__ratelimit(&kvmas_events_rs)) {
		atomic64_inc(&vm->st.events_suppressed);
		return NULL;
	}
	msg = kvmas_event_new(s, type, hdr);
	if (msg && nla_put_u64_64bit(msg, KVMAS_NL_A_EVENT_SUPPRESSED,
				     atomic64_read(&vm->st.events_suppressed),
				     KVMAS_NL_A_PAD)) {
		nlmsg_free(msg);
		return NULL;
	}
	return msg;
}

static void kvmas_vm_event_send(struct kvmas_vm *vm, struct sk_buff *msg,
				void *hdr)
{
	kvmas_event_send(msg, hdr);
	atomic64_inc(&vm->st.events_sent);
}

/* ---- accounting --------------------------------------------------------- */

static unsigned int kvmas_reject_bucket(int err)
{
	switch (err) {
	case -EINVAL:
		return KVMAS_NL_REJECT_EINVAL;
	case -EEXIST:
		return KVMAS_NL_REJECT_EEXIST;
	case -ENOENT:
		return KVMAS_NL_REJECT_ENOENT;
	case -ENOMEM:
		return KVMAS_NL_REJECT_ENOMEM;
	case -EFAULT:
		return KVMAS_NL_REJECT_EFAULT;
	case -EOPNOTSUPP:
		return KVMAS_NL_REJECT_EOPNOTSUPP;
	case -EMSGSIZE:
		return KVMAS_NL_REJECT_EMSGSIZE;
	case -EINTR:
		return KVMAS_NL_REJECT_EINTR;
	default:
		return KVMAS_NL_REJECT_OTHER;
	}
}

/* Bucket 1: under 1 us; b >= 2: [2^(b-2), 2^(b-1)) us; the last unbounded. */
static unsigned int kvmas_latency_bucket(u64 ns)
{
	u64 us = div_u64(ns, NSEC_PER_USEC);

	return min_t(unsigned int, us ? fls64(us) + 1 : 1,
		     KVMAS_NL_LATENCY_BUCKETS);
}

static void kvmas_batch_rejected(struct kvmas_session *s, struct kvmas_vm *vm,
				 const struct kvmas_commit_batch *cmd, int r)
{
	struct sk_buff *msg;
	void *hdr;

	atomic64_inc(&vm->st.rejected[kvmas_reject_bucket(r) - 1]);
	msg = kvmas_vm_event_new(s, vm, KVMAS_NL_EVENT_BATCH_REJECTED, &hdr);
	if (!msg)
		return;
	if (nla_put_u64_64bit(msg, KVMAS_NL_A_VM_ID, vm->id, KVMAS_NL_A_PAD) ||
	    nla_put_u32(msg, KVMAS_NL_A_EVENT_ERRNO, -r) ||
	    nla_put_s32(msg, KVMAS_NL_A_EVENT_ERROR_INDEX, cmd->error_index) ||
	    nla_put_u32(msg, KVMAS_NL_A_EVENT_NR_OPS, cmd->nr_ops) ||
	    nla_put_u32(msg, KVMAS_NL_A_EVENT_BATCH_FLAGS, cmd->flags)) {
		nlmsg_free(msg);
		return;
	}
	kvmas_vm_event_send(vm, msg, hdr);
}

void kvmas_account_batch(struct kvmas_session *s,
			 const struct kvmas_commit_batch *cmd, int r, u64 t0)
{
	struct kvmas_vm *vm = kvmas_session_vm_stats(s);
	u64 ns = ktime_get_ns() - t0, max;
	struct kvmas_vm_stats *st;

	if (!vm)
		return;
	st = &vm->st;
	if (cmd->flags & KVMAS_BATCH_VALIDATE_ONLY) {
		atomic64_inc(r ? &st->dry_runs_rejected : &st->dry_runs);
		return;
	}
	if (r) {
		kvmas_batch_rejected(s, vm, cmd, r);
		return;
	}
	atomic64_inc(&st->latency[kvmas_latency_bucket(ns) - 1]);
	atomic64_add(ns, &st->latency_sum_ns);
	max = atomic64_read(&st->latency_max_ns);
	while (ns > max && !atomic64_try_cmpxchg(&st->latency_max_ns, &max, ns))
		;
	atomic64_add(cmd->nr_ops, &st->batch_ops);
	atomic64_add(cmd->grace_periods, &st->grace_periods);
	atomic64_add(cmd->dirty_pages, &st->dirty_pages);
	if (cmd->route == KVMAS_ROUTE_FENCE)
		atomic64_inc(&st->route_fence);
	else if (cmd->route == KVMAS_ROUTE_INVALIDATE)
		atomic64_inc(&st->route_invalidate);
	else
		atomic64_inc(&st->route_none);
	atomic64_inc(&st->batches);
}

static bool kvmas_ring_anomaly(const struct kvmas_ring_vcpu *v)
{
	return v->stop_reason == KVMAS_RING_STOP_PRODUCER ||
	       v->stop_reason == KVMAS_RING_STOP_INVALID || v->invalid;
}

void kvmas_account_ring(struct kvmas_session *s,
			const struct kvmas_reset_ring *cmd,
			const struct kvmas_ring_vcpu *v, int r)
{
	struct kvmas_vm *vm = kvmas_session_vm_stats(s);
	u32 stops[ARRAY_SIZE(vm->st.ring_stops)] = {};
	u32 i, why, first = 0, anomalies = 0;
	struct kvmas_vm_stats *st;
	struct sk_buff *msg;
	u64 invalid = 0;
	void *hdr;

	if (!vm || (r && r != -ENXIO))
		return;
	st = &vm->st;
	for (i = 0; i < cmd->nr_vcpus; i++) {
		why = v[i].stop_reason;
		if (why && why <= ARRAY_SIZE(stops))
			stops[why - 1]++;
		invalid += v[i].invalid;
		if (kvmas_ring_anomaly(&v[i]) && !anomalies++)
			first = i;
	}
	for (i = 0; i < ARRAY_SIZE(stops); i++)
		if (stops[i])
			atomic64_add(stops[i], &st->ring_stops[i]);
	if (r)
		return;
	atomic64_add(cmd->total_reset, &st->ring_entries);
	atomic64_add(invalid, &st->ring_invalid);
	atomic64_add(cmd->tlb_flushes, &st->ring_tlb_flushes);
	atomic64_inc(&st->ring_calls);
	if (!anomalies)
		return;

	msg = kvmas_vm_event_new(s, vm, KVMAS_NL_EVENT_RING_ANOMALY, &hdr);
	if (!msg)
		return;
	if (nla_put_u64_64bit(msg, KVMAS_NL_A_VM_ID, vm->id, KVMAS_NL_A_PAD) ||
	    nla_put_u32(msg, KVMAS_NL_A_EVENT_VCPU_ID, v[first].vcpu_id) ||
	    nla_put_u32(msg, KVMAS_NL_A_EVENT_STOP_REASON,
			v[first].stop_reason) ||
	    nla_put_u32(msg, KVMAS_NL_A_EVENT_RING_VCPUS, anomalies) ||
	    nla_put_u32(msg, KVMAS_NL_A_EVENT_RING_INVALID,
			min_t(u64, invalid, U32_MAX))) {
		nlmsg_free(msg);
		return;
	}
	kvmas_vm_event_send(vm, msg, hdr);
}

/* ---- the family --------------------------------------------------------- */

static const struct genl_small_ops kvmas_nl_ops[] = {
	{
		.cmd = KVMAS_NL_CMD_GET_STATS,
		.doit = kvmas_nl_get_stats,
	},
	{
		.cmd = KVMAS_NL_CMD_GET_SESSIONS,
		.dumpit = kvmas_nl_dump_sessions,
	},
};

/* Commands with a policy or a start callback need the full op struct. */
static const struct genl_ops kvmas_nl_full_ops[] = {
	{
		.cmd = KVMAS_NL_CMD_GET_VMS,
		.start = kvmas_nl_vms_start,
		.dumpit = kvmas_nl_dump_vms,
		.policy = kvmas_nl_vms_policy,
		.maxattr = KVMAS_NL_A_MAX,
	},
};

static const struct genl_multicast_group kvmas_nl_mcgrps[] = {
	{ .name = KVMAS_GENL_MCGRP_EVENTS },
};

static struct genl_family kvmas_family __ro_after_init = {
	.name = KVMAS_GENL_NAME,
	.version = KVMAS_GENL_VERSION,
	.module = THIS_MODULE,
	.ops = kvmas_nl_full_ops,
	.n_ops = ARRAY_SIZE(kvmas_nl_full_ops),
	.small_ops = kvmas_nl_ops,
	.n_small_ops = ARRAY_SIZE(kvmas_nl_ops),
	/* Strict from the first op: no policy means attributes are refused. */
	.resv_start_op = KVMAS_NL_CMD_GET_STATS,
	.mcgrps = kvmas_nl_mcgrps,
	.n_mcgrps = ARRAY_SIZE(kvmas_nl_mcgrps),
};

int __init kvmas_netlink_init(void)
{
	ratelimit_state_init(
		&kvmas_events_rs, msecs_to_jiffies(kvmas_events_interval_ms),
		10 * min(kvmas_events_burst, KVMAS_EVENTS_BURST_MAX));
	ratelimit_set_flags(&kvmas_events_rs, RATELIMIT_MSG_ON_RELEASE);
	return genl_register_family(&kvmas_family);
}

void kvmas_netlink_exit(void)
{
	genl_unregister_family(&kvmas_family);
}
