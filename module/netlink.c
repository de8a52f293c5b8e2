// SPDX-License-Identifier: GPL-2.0
/*
 * Generic netlink family for operators: counters, a session dump and an
 * events multicast group. Read-only; VMMs never need it.
 */
#include <linux/kvm_host.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <net/genetlink.h>

#include "netlink.h"
#include "session.h"

static struct genl_family kvmas_family;

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

static int kvmas_nl_put_session(struct sk_buff *skb, struct kvmas_session *s)
{
	char vm[KVM_STATS_NAME_SIZE];

	kvmas_session_vm_name(s, vm, sizeof(vm));
	if (nla_put_u64_64bit(skb, KVMAS_NL_A_SESSION_ID, s->id,
			      KVMAS_NL_A_PAD) ||
	    nla_put_u32(skb, KVMAS_NL_A_SESSION_PID, s->tgid))
		return -EMSGSIZE;
	if (vm[0] && (nla_put_string(skb, KVMAS_NL_A_SESSION_VM_STATS_ID, vm) ||
		      nla_put_flag(skb, KVMAS_NL_A_SESSION_ATTACHED)))
		return -EMSGSIZE;
	return 0;
}

/* cb->args[0]: sessions already sent; the list may change between parts. */
static int kvmas_nl_dump_sessions(struct sk_buff *skb,
				  struct netlink_callback *cb)
{
	struct kvmas_session *s;
	long idx = 0, skip = cb->args[0];
	void *hdr;

	mutex_lock(&kvmas_sessions_lock);
	list_for_each_entry(s, &kvmas_sessions, node) {
		if (idx++ < skip)
			continue;
		hdr = genlmsg_put(skb, NETLINK_CB(cb->skb).portid,
				  cb->nlh->nlmsg_seq, &kvmas_family,
				  NLM_F_MULTI, KVMAS_NL_CMD_GET_SESSIONS);
		if (!hdr)
			break;
		if (kvmas_nl_put_session(skb, s)) {
			genlmsg_cancel(skb, hdr);
			break;
		}
		genlmsg_end(skb, hdr);
		cb->args[0] = idx;
	}
	mutex_unlock(&kvmas_sessions_lock);
	return skb->len;
}

void kvmas_netlink_event(struct kvmas_session *s, enum kvmas_nl_event type)
{
	struct sk_buff *msg;
	void *hdr;

	might_sleep();
	if (!genl_has_listeners(&kvmas_family, &init_net, 0))
		return;
	msg = genlmsg_new(NLMSG_GOODSIZE, GFP_KERNEL);
	if (!msg)
		return;
	hdr = genlmsg_put(msg, 0, 0, &kvmas_family, 0, KVMAS_NL_CMD_EVENT);
	if (!hdr || nla_put_u32(msg, KVMAS_NL_A_EVENT_TYPE, type) ||
	    kvmas_nl_put_session(msg, s)) {
		nlmsg_free(msg);
		return;
	}
	genlmsg_end(msg, hdr);
	genlmsg_multicast(&kvmas_family, msg, 0, 0, GFP_KERNEL);
}

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

static const struct genl_multicast_group kvmas_nl_mcgrps[] = {
	{ .name = KVMAS_GENL_MCGRP_EVENTS },
};

static struct genl_family kvmas_family __ro_after_init = {
	.name = KVMAS_GENL_NAME,
	.version = KVMAS_GENL_VERSION,
	.module = THIS_MODULE,
	.small_ops = kvmas_nl_ops,
	.n_small_ops = ARRAY_SIZE(kvmas_nl_ops),
	/* Strict from the first op: no policy means attributes are refused. */
	.resv_start_op = KVMAS_NL_CMD_GET_STATS,
	.mcgrps = kvmas_nl_mcgrps,
	.n_mcgrps = ARRAY_SIZE(kvmas_nl_mcgrps),
};

int __init kvmas_netlink_init(void)
{
	return genl_register_family(&kvmas_family);
}

void kvmas_netlink_exit(void)
{
	genl_unregister_family(&kvmas_family);
}
