// SPDX-License-Identifier: GPL-2.0
/*
 * kvmas: operator tool for the kvm_atomic_slots module.
 *
 * "caps" talks to /dev/kvm-atomic-slots through libkvmas; "stats", "vms",
 * "sessions" and "monitor" use the generic netlink family, which needs no
 * access to the device node.
 *
 * Exit status: 0 success, 1 failure, 2 usage error.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <linux/netlink.h>
#include <netlink/netlink.h>
#include <netlink/genl/ctrl.h>
#include <netlink/genl/genl.h>

#include "kvmas.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* --json: machine-readable output of the read commands (caps, stats, ...). */
static int json;

/* Where the read commands print: stdout, or a dump's buffer (genl_dump()). */
static FILE *out;

/* A bogus nr_caps from the module must not make us probe for ever. */
#define MAX_PROBED_CAPS 64

struct cmd {
	const char *name;
	const char *args;
	const char *help;
	int (*handler)(int argc, char **argv);
};

static int usage_error(const char *msg, const char *arg)
{
	if (arg)
		fprintf(stderr, "kvmas: %s '%s'\n", msg, arg);
	else
		fprintf(stderr, "kvmas: %s\n", msg);
	fprintf(stderr, "Try 'kvmas help'.\n");
	return 2;
}

/*
 * Takes --json out of a command's arguments (it may stand anywhere) and
 * returns the number of arguments left, compacted in place.
 */
static int take_json(int argc, char **argv)
{
	int i, n = 0;

	for (i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			json = 1;
		else
			argv[n++] = argv[i];
	}
	return n;
}

/* A JSON string: quotes, backslashes and control characters escaped. */
static void json_str(const char *s)
{
	fputc('"', out);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(out, "\\%c", c);
		else if (c < 0x20)
			fprintf(out, "\\u%04x", c);
		else
			fputc(c, out);
	}
	fputc('"', out);
}

/* ---------------------------------------------------------------------- */
/* caps: device ioctls                                                    */

static int cmd_caps(int argc, char **argv)
{
	unsigned int i, nr, bad = 0, printed = 0;
	struct kvmas_caps caps;
	struct kvmas *kv;
	int ret;

	argc = take_json(argc, argv);
	if (argc)
		return usage_error("unexpected argument", argv[0]);

	ret = kvmas_open(&kv);
	if (ret) {
		fprintf(stderr, "kvmas: cannot open %s: %s\n",
			kvmas_device_path(),
			kvmas_error_string(KVMAS_OP_OPEN, ret));
		return 1;
	}

	ret = kvmas_get_caps(kv, &caps);
	if (ret) {
		fprintf(stderr, "kvmas: GET_CAPS: %s\n",
			kvmas_error_string(KVMAS_CMD_GET_CAPS, ret));
		kvmas_close(kv);
		return 1;
	}

	if (json) {
		printf("{\"api_version\": %u, \"nr_caps\": %u, \"caps\": {",
		       caps.api_version, caps.nr_caps);
	} else {
		printf("%-22s %u\n", "api_version", caps.api_version);
		printf("%-22s %u\n", "nr_caps", caps.nr_caps);
	}

	/* Also probe caps newer than this tool: the module may know more. */
	nr = caps.nr_caps > KVMAS_CAP_COUNT ? caps.nr_caps : KVMAS_CAP_COUNT;
	if (nr > MAX_PROBED_CAPS)
		nr = MAX_PROBED_CAPS;

	for (i = 0; i < nr; i++) {
		const char *name = kvmas_cap_name(i);
		int val = kvmas_check_extension(kv, i);
		unsigned int bit = i < 64 ? (caps.caps >> i) & 1 : 0;

		if (val < 0) {
			fprintf(stderr, "kvmas: CHECK_EXTENSION(%u): %s\n", i,
				kvmas_error_string(KVMAS_CMD_CHECK_EXTENSION,
						   val));
			bad = 1;
			continue;
		}
		if (json) {
			char key[32];

			if (!name) {
				snprintf(key, sizeof(key), "cap_%u", i);
				name = key;
			}
			printf("%s", printed++ ? ", " : "");
			json_str(name);
			printf(": %d", val);
		} else if (name) {
			printf("%-22s %d\n", name, val);
		} else {
			printf("cap_%-18u %d\n", i, val);
		}

		/* Both views come from one module: a mismatch is its bug. */
		if ((val > 0) != bit ||
		    (i == KVMAS_CAP_MAX_BATCH_OPS &&
		     (unsigned int)val != caps.max_batch_ops) ||
		    (i == KVMAS_CAP_MAX_ADDRESS_SPACES &&
		     (unsigned int)val != caps.max_address_spaces)) {
			fprintf(stderr,
				"kvmas: capability %u: CHECK_EXTENSION and GET_CAPS disagree\n",
				i);
			bad = 1;
		}
	}
	if (json)
		printf("}, \"kvm_user_mem_slots\": %u}\n",
		       caps.kvm_user_mem_slots);
	else
		printf("%-22s %u\n", "kvm_user_mem_slots",
		       caps.kvm_user_mem_slots);

	kvmas_close(kv);
	return bad;
}

/* ---------------------------------------------------------------------- */
/* generic netlink plumbing                                               */

struct genl {
	struct nl_sock *sk;
	int family;
};

static struct nla_policy kvmas_policy[KVMAS_NL_A_MAX + 1] = {
	[KVMAS_NL_A_STAT_SESSIONS_OPEN] = { .type = NLA_U32 },
	[KVMAS_NL_A_STAT_SESSIONS_TOTAL] = { .type = NLA_U64 },
	[KVMAS_NL_A_STAT_ATTACHED] = { .type = NLA_U32 },
	[KVMAS_NL_A_STAT_ATTACH_OK] = { .type = NLA_U64 },
	[KVMAS_NL_A_STAT_ATTACH_FAILED] = { .type = NLA_U64 },
	[KVMAS_NL_A_STAT_IOCTL_ERRORS] = { .type = NLA_U64 },
	[KVMAS_NL_A_SESSION_ID] = { .type = NLA_U64 },
	[KVMAS_NL_A_SESSION_PID] = { .type = NLA_U32 },
	[KVMAS_NL_A_SESSION_VM_STATS_ID] = { .type = NLA_STRING },
	[KVMAS_NL_A_SESSION_ATTACHED] = { .type = NLA_FLAG },
	[KVMAS_NL_A_EVENT_TYPE] = { .type = NLA_U32 },
	[KVMAS_NL_A_STAT_BATCHES] = { .type = NLA_U64 },
	[KVMAS_NL_A_STAT_BATCH_OPS] = { .type = NLA_U64 },
	[KVMAS_NL_A_STAT_RING_RESETS] = { .type = NLA_U64 },
	[KVMAS_NL_A_STAT_RING_ENTRIES] = { .type = NLA_U64 },
	[KVMAS_NL_A_VM_ID] = { .type = NLA_U64 },
	[KVMAS_NL_A_VM_SESSIONS] = { .type = NLA_U32 },
	[KVMAS_NL_A_VM_BATCHES] = { .type = NLA_U64 },
	[KVMAS_NL_A_VM_BATCH_OPS] = { .type = NLA_U64 },
	[KVMAS_NL_A_VM_GRACE_PERIODS] = { .type = NLA_U64 },
	[KVMAS_NL_A_VM_ROUTE_FENCE] = { .type = NLA_U64 },
	[KVMAS_NL_A_VM_ROUTE_INVALIDATE] = { .type = NLA_U64 },
	[KVMAS_NL_A_VM_ROUTE_NONE] = { .type = NLA_U64 },
	[KVMAS_NL_A_VM_DIRTY_PAGES] = { .type = NLA_U64 },
	[KVMAS_NL_A_VM_DRY_RUNS] = { .type = NLA_U64 },
	[KVMAS_NL_A_VM_DRY_RUNS_REJECTED] = { .type = NLA_U64 },
	[KVMAS_NL_A_VM_REJECTED] = { .type = NLA_NESTED },
	[KVMAS_NL_A_VM_LATENCY] = { .type = NLA_NESTED },
	[KVMAS_NL_A_VM_LATENCY_SUM_NS] = { .type = NLA_U64 },
	[KVMAS_NL_A_VM_LATENCY_MAX_NS] = { .type = NLA_U64 },
	[KVMAS_NL_A_VM_RING_CALLS] = { .type = NLA_U64 },
	[KVMAS_NL_A_VM_RING_ENTRIES] = { .type = NLA_U64 },
	[KVMAS_NL_A_VM_RING_INVALID] = { .type = NLA_U64 },
	[KVMAS_NL_A_VM_RING_STOPS] = { .type = NLA_NESTED },
	[KVMAS_NL_A_VM_RING_TLB_FLUSHES] = { .type = NLA_U64 },
	[KVMAS_NL_A_VM_EVENTS_SENT] = { .type = NLA_U64 },
	[KVMAS_NL_A_VM_EVENTS_SUPPRESSED] = { .type = NLA_U64 },
	[KVMAS_NL_A_EVENT_ERRNO] = { .type = NLA_U32 },
	[KVMAS_NL_A_EVENT_ERROR_INDEX] = { .type = NLA_U32 },
	[KVMAS_NL_A_EVENT_NR_OPS] = { .type = NLA_U32 },
	[KVMAS_NL_A_EVENT_BATCH_FLAGS] = { .type = NLA_U32 },
	[KVMAS_NL_A_EVENT_VCPU_ID] = { .type = NLA_U32 },
	[KVMAS_NL_A_EVENT_STOP_REASON] = { .type = NLA_U32 },
	[KVMAS_NL_A_EVENT_RING_VCPUS] = { .type = NLA_U32 },
	[KVMAS_NL_A_EVENT_RING_INVALID] = { .type = NLA_U32 },
	[KVMAS_NL_A_EVENT_SUPPRESSED] = { .type = NLA_U64 },
};

static void genl_close(struct genl *g)
{
	nl_socket_free(g->sk);
	g->sk = NULL;
}

static int genl_open(struct genl *g)
{
	int one = 1, ret;

	g->sk = nl_socket_alloc();
	if (!g->sk) {
		fprintf(stderr, "kvmas: out of memory\n");
		return -1;
	}
	ret = genl_connect(g->sk);
	if (ret < 0) {
		fprintf(stderr,
			"kvmas: cannot open a generic netlink socket: %s\n",
			nl_geterror(ret));
		goto err;
	}
	/*
	 * Extended acks carry the module's explanation of a failure. Kernels
	 * without them just reject the option: nothing to do about it.
	 * Capped acks: we never need our own request echoed back.
	 */
	setsockopt(nl_socket_get_fd(g->sk), SOL_NETLINK, NETLINK_EXT_ACK, &one,
		   sizeof(one));
	setsockopt(nl_socket_get_fd(g->sk), SOL_NETLINK, NETLINK_CAP_ACK, &one,
		   sizeof(one));
	/* Dumps may exceed a page: peek so libnl can size its buffer. */
	nl_socket_enable_msg_peek(g->sk);

	g->family = genl_ctrl_resolve(g->sk, KVMAS_GENL_NAME);
	if (g->family == -NLE_OBJ_NOTFOUND) {
		fprintf(stderr,
			"kvmas: module not loaded (no generic netlink family %s)\n",
			KVMAS_GENL_NAME);
		goto err;
	}
	if (g->family < 0) {
		fprintf(stderr,
			"kvmas: cannot resolve generic netlink family %s: %s\n",
			KVMAS_GENL_NAME, nl_geterror(g->family));
		goto err;
	}
	return 0;

err:
	genl_close(g);
	return -1;
}

struct req_state {
	int done;
	int err; /* -errno reported by the kernel */
	int intr; /* a dump part carried NLM_F_DUMP_INTR */
	char extack[256]; /* NLMSGERR_ATTR_MSG, if any */
};

/*
 * Extended ack attributes follow the fixed part of an NLMSG_ERROR or
 * NLMSG_DONE message, at @off (already aligned by the kernel's nlmsg_put).
 */
static void grab_extack(struct nlmsghdr *nlh, size_t off, struct req_state *st)
{
	struct nlattr *tb[NLMSGERR_ATTR_MAX + 1];
	const struct nlattr *a;
	int len;

	off = NLMSG_ALIGN(off);
	if (!(nlh->nlmsg_flags & NLM_F_ACK_TLVS) || nlh->nlmsg_len <= off)
		return;
	if (nla_parse(tb, NLMSGERR_ATTR_MAX, (void *)((char *)nlh + off),
		      (int)(nlh->nlmsg_len - off), NULL))
		return;
	a = tb[NLMSGERR_ATTR_MSG];
	if (!a)
		return;
	len = (int)strnlen(nla_data(a), (size_t)nla_len(a));
	snprintf(st->extack, sizeof(st->extack), "%.*s", len,
		 (const char *)nla_data(a));
}

static int error_cb(struct sockaddr_nl *nla, struct nlmsgerr *e, void *arg)
{
	/* libnl hands us nlmsg_data() of the NLMSG_ERROR message. */
	struct nlmsghdr *nlh = (struct nlmsghdr *)e - 1;
	size_t off = NLMSG_HDRLEN + sizeof(*e);
	struct req_state *st = arg;

	(void)nla;
	if (!(nlh->nlmsg_flags & NLM_F_CAPPED) &&
	    e->msg.nlmsg_len > NLMSG_HDRLEN)
		off += e->msg.nlmsg_len - NLMSG_HDRLEN;
	grab_extack(nlh, off, st);
	st->err = e->error;
	st->done = 1;
	return NL_STOP;
}

static int ack_cb(struct nl_msg *msg, void *arg)
{
	struct req_state *st = arg;

	/* A successful request may still carry a warning. */
	grab_extack(nlmsg_hdr(msg), NLMSG_HDRLEN + sizeof(struct nlmsgerr), st);
	st->done = 1;
	return NL_STOP;
}

static int finish_cb(struct nl_msg *msg, void *arg)
{
	struct nlmsghdr *nlh = nlmsg_hdr(msg);
	struct req_state *st = arg;
	int err;

	/* A dump that failed midway says so in NLMSG_DONE's payload. */
	if (nlh->nlmsg_len >= NLMSG_HDRLEN + sizeof(int)) {
		memcpy(&err, nlmsg_data(nlh), sizeof(err));
		if (err < 0)
			st->err = err;
		grab_extack(nlh, NLMSG_HDRLEN + sizeof(int), st);
	}
	st->done = 1;
	return NL_STOP;
}

/*
 * The list changed between two parts of a dump (the module flags the parts
 * after the change, or NLMSG_DONE): noted, and the messages still used.
 */
static int dump_intr_cb(struct nl_msg *msg, void *arg)
{
	struct req_state *st = arg;

	(void)msg;
	st->intr = 1;
	return NL_OK;
}

/* Adds the request's attributes (a dump's filter); 0 or a libnl error. */
typedef int (*req_attrs_fn)(struct nl_msg *msg, void *arg);

/*
 * Sends @cmd and feeds every reply to @valid. Reports failures itself,
 * the kernel's explanation included. Returns 0 or -1; *@intr (if given)
 * says whether a dump was interrupted by a change.
 */
static int genl_request(struct genl *g, const char *what, uint8_t cmd,
			int flags, req_attrs_fn attrs, void *attrs_arg,
			nl_recvmsg_msg_cb_t valid, void *arg, int *intr)
{
	struct req_state st = { 0 };
	struct nl_msg *msg;
	struct nl_cb *cb;
	int ret = -1;

	msg = nlmsg_alloc();
	cb = nl_cb_alloc(NL_CB_DEFAULT);
	if (!msg || !cb ||
	    !genlmsg_put(msg, NL_AUTO_PORT, NL_AUTO_SEQ, g->family, 0, flags,
			 cmd, KVMAS_GENL_VERSION) ||
	    (attrs && attrs(msg, attrs_arg) < 0)) {
		fprintf(stderr, "kvmas: out of memory\n");
		goto out;
	}
	nl_cb_set(cb, NL_CB_VALID, NL_CB_CUSTOM, valid, arg);
	nl_cb_set(cb, NL_CB_ACK, NL_CB_CUSTOM, ack_cb, &st);
	nl_cb_set(cb, NL_CB_FINISH, NL_CB_CUSTOM, finish_cb, &st);
	nl_cb_set(cb, NL_CB_DUMP_INTR, NL_CB_CUSTOM, dump_intr_cb, &st);
	nl_cb_err(cb, NL_CB_CUSTOM, error_cb, &st);

	ret = nl_send_auto(g->sk, msg);
	if (ret < 0) {
		fprintf(stderr, "kvmas: %s: cannot send request: %s\n", what,
			nl_geterror(ret));
		ret = -1;
		goto out;
	}
	while (!st.done) {
		ret = nl_recvmsgs(g->sk, cb);
		if (ret < 0 && !st.done) {
			fprintf(stderr, "kvmas: %s: %s\n", what,
				nl_geterror(ret));
			ret = -1;
			goto out;
		}
	}
	if (st.err)
		fprintf(stderr, "kvmas: %s: %s\n", what, strerror(-st.err));
	if (st.extack[0])
		fprintf(stderr, "kernel says: %s\n", st.extack);
	if (intr)
		*intr = st.intr;
	ret = st.err ? -1 : 0;
out:
	nl_cb_put(cb);
	nlmsg_free(msg);
	return ret;
}

static int parse(struct nl_msg *msg, struct nlattr **tb)
{
	int ret = genlmsg_parse(nlmsg_hdr(msg), 0, tb, KVMAS_NL_A_MAX,
				kvmas_policy);

	if (ret < 0)
		fprintf(stderr,
			"kvmas: malformed message from the module: %s\n",
			nl_geterror(ret));
	return ret;
}

/*
 * A dump whose output is kept until it is complete: printed only if the
 * request succeeded (a failure prints nothing on standard output), and
 * taken again if the module says the list changed while it was sent, so
 * that what is printed is one consistent listing when it can be had.
 */
struct dump {
	const char *what;
	uint8_t cmd;
	req_attrs_fn attrs;
	void *attrs_arg;
	void (*begin)(struct dump *d); /* header, "[" */
	nl_recvmsg_msg_cb_t valid; /* gets the struct dump */
	void (*end)(struct dump *d); /* "]" */
	unsigned long nr; /* messages so far (0 again on each try) */
};

#define DUMP_TRIES 5

static int genl_dump(struct genl *g, struct dump *d)
{
	int ret = -1, intr = 1, try;
	FILE *saved = out;
	char *buf = NULL;
	size_t len = 0;

	for (try = 0; try < DUMP_TRIES && intr; try++) {
		free(buf);
		buf = NULL;
		out = open_memstream(&buf, &len);
		if (!out) {
			out = saved;
			fprintf(stderr, "kvmas: out of memory\n");
			return -1;
		}
		d->nr = 0;
		if (d->begin)
			d->begin(d);
		ret = genl_request(g, d->what, d->cmd, NLM_F_DUMP, d->attrs,
				   d->attrs_arg, d->valid, d, &intr);
		if (!ret && d->end)
			d->end(d);
		fclose(out);
		out = saved;
		if (ret)
			break;
	}
	if (!ret) {
		fwrite(buf, 1, len, out);
		fflush(out);
		if (intr)
			fprintf(stderr,
				"kvmas: warning: %s: the list kept changing during %d dumps; this one may be inconsistent\n",
				d->what, DUMP_TRIES);
	}
	free(buf);
	return ret;
}

/* ---------------------------------------------------------------------- */
/* stats, sessions, vms, monitor                                          */

static const struct {
	int attr;
	const char *name;
} stat_names[] = {
	{ KVMAS_NL_A_STAT_SESSIONS_OPEN, "sessions_open" },
	{ KVMAS_NL_A_STAT_SESSIONS_TOTAL, "sessions_total" },
	{ KVMAS_NL_A_STAT_ATTACHED, "attached" },
	{ KVMAS_NL_A_STAT_ATTACH_OK, "attach_ok" },
	{ KVMAS_NL_A_STAT_ATTACH_FAILED, "attach_failed" },
	{ KVMAS_NL_A_STAT_IOCTL_ERRORS, "ioctl_errors" },
	{ KVMAS_NL_A_STAT_BATCHES, "batches" },
	{ KVMAS_NL_A_STAT_BATCH_OPS, "batch_ops" },
	{ KVMAS_NL_A_STAT_RING_RESETS, "ring_resets" },
	{ KVMAS_NL_A_STAT_RING_ENTRIES, "ring_entries" },
};

/* Attributes a newer or older module leaves out print as "-". */
static const char *fmt_u64(char *buf, size_t len, uint64_t v, int have)
{
	if (!have)
		return "-";
	snprintf(buf, len, "%" PRIu64, v);
	return buf;
}

/* A counter whose width the policy fixed. */
static uint64_t get_uint(int attr, const struct nlattr *a)
{
	return kvmas_policy[attr].type == NLA_U32 ? nla_get_u32(a) :
						    nla_get_u64(a);
}

static int stats_cb(struct nl_msg *msg, void *arg)
{
	struct nlattr *tb[KVMAS_NL_A_MAX + 1];
	const char *sep = "";
	size_t i;

	(void)arg;
	if (parse(msg, tb) < 0)
		return NL_SKIP;
	if (json)
		fputc('{', out);
	for (i = 0; i < ARRAY_SIZE(stat_names); i++) {
		const struct nlattr *a = tb[stat_names[i].attr];
		uint64_t v;

		if (!a)
			continue;
		v = get_uint(stat_names[i].attr, a);
		if (json) {
			fprintf(out, "%s\"%s\": %" PRIu64, sep,
				stat_names[i].name, v);
			sep = ", ";
		} else {
			fprintf(out, "%-16s %" PRIu64 "\n", stat_names[i].name,
				v);
		}
	}
	if (json)
		fprintf(out, "}\n");
	return NL_OK;
}

/* What --vm names: KVM's name, a session id or (vm:N) the module's VM id. */
struct vm_filter {
	int attr;
	uint64_t id;
	const char *name;
};

static int parse_vm_filter(const char *s, struct vm_filter *f)
{
	char *end;

	memset(f, 0, sizeof(*f));
	if (!*s)
		return -1;
	if (*s >= '0' && *s <= '9') {
		errno = 0;
		f->id = strtoull(s, &end, 10);
		f->attr = KVMAS_NL_A_SESSION_ID;
		return errno || *end ? -1 : 0;
	}
	if (!strncmp(s, "vm:", 3) && s[3] >= '0' && s[3] <= '9') {
		errno = 0;
		f->id = strtoull(s + 3, &end, 10);
		f->attr = KVMAS_NL_A_VM_ID;
		return errno || *end ? -1 : 0;
	}
	f->attr = KVMAS_NL_A_SESSION_VM_STATS_ID;
	f->name = s;
	return 0;
}

static int vm_filter_attrs(struct nl_msg *msg, void *arg)
{
	const struct vm_filter *f = arg;

	if (f->attr == KVMAS_NL_A_SESSION_VM_STATS_ID)
		return nla_put_string(msg, f->attr, f->name);
	return nla_put_u64(msg, f->attr, f->id);
}

/* Per-VM scalar counters, in the order printed. */
static const struct {
	int attr;
	const char *name;
} vm_stat_names[] = {
	{ KVMAS_NL_A_VM_SESSIONS, "sessions" },
	{ KVMAS_NL_A_VM_BATCHES, "batches" },
	{ KVMAS_NL_A_VM_BATCH_OPS, "batch_ops" },
	{ KVMAS_NL_A_VM_GRACE_PERIODS, "grace_periods" },
	{ KVMAS_NL_A_VM_ROUTE_FENCE, "route_fence" },
	{ KVMAS_NL_A_VM_ROUTE_INVALIDATE, "route_invalidate" },
	{ KVMAS_NL_A_VM_ROUTE_NONE, "route_none" },
	{ KVMAS_NL_A_VM_DIRTY_PAGES, "dirty_pages" },
	{ KVMAS_NL_A_VM_DRY_RUNS, "dry_runs" },
	{ KVMAS_NL_A_VM_DRY_RUNS_REJECTED, "dry_runs_rejected" },
	{ KVMAS_NL_A_VM_LATENCY_SUM_NS, "latency_sum_ns" },
	{ KVMAS_NL_A_VM_LATENCY_MAX_NS, "latency_max_ns" },
	{ KVMAS_NL_A_VM_RING_CALLS, "ring_calls" },
	{ KVMAS_NL_A_VM_RING_ENTRIES, "ring_entries" },
	{ KVMAS_NL_A_VM_RING_INVALID, "ring_invalid" },
	{ KVMAS_NL_A_VM_RING_TLB_FLUSHES, "ring_tlb_flushes" },
	{ KVMAS_NL_A_VM_EVENTS_SENT, "events_sent" },
	{ KVMAS_NL_A_VM_EVENTS_SUPPRESSED, "events_suppressed" },
};

static const char *const reject_names[KVMAS_NL_REJECT_MAX + 1] = {
	[KVMAS_NL_REJECT_EINVAL] = "EINVAL",
	[KVMAS_NL_REJECT_EEXIST] = "EEXIST",
	[KVMAS_NL_REJECT_ENOENT] = "ENOENT",
	[KVMAS_NL_REJECT_ENOMEM] = "ENOMEM",
	[KVMAS_NL_REJECT_EFAULT] = "EFAULT",
	[KVMAS_NL_REJECT_EOPNOTSUPP] = "EOPNOTSUPP",
	[KVMAS_NL_REJECT_EMSGSIZE] = "EMSGSIZE",
	[KVMAS_NL_REJECT_EINTR] = "EINTR",
	[KVMAS_NL_REJECT_OTHER] = "other",
};

static const char *const stop_names[] = {
	[KVMAS_RING_STOP_BOUNDARY] = "boundary",
	[KVMAS_RING_STOP_NOT_COLLECTED] = "not_collected",
	[KVMAS_RING_STOP_INVALID] = "invalid",
	[KVMAS_RING_STOP_PRODUCER] = "producer",
	[KVMAS_RING_STOP_BOUND] = "bound",
	[KVMAS_RING_STOP_SIGNAL] = "signal",
	[KVMAS_RING_STOP_NO_RING] = "no_ring",
};

/* A name from @names, or "@prefix<N>" for a value newer than the tool. */
static const char *enum_name(const char *const *names, size_t n, unsigned int v,
			     const char *prefix, char *buf, size_t len)
{
	if (v < n && names[v])
		return names[v];
	snprintf(buf, len, "%s%u", prefix, v);
	return buf;
}

/* A nest of u64 counters keyed by type (REJECTED, RING_STOPS). */
static void print_counter_nest(const struct nlattr *nest, const char *prefix,
			       const char *const *names, size_t n,
			       const char *json_key, const char **sep)
{
	const char *jsep = "";
	struct nlattr *a;
	char buf[32];
	uint64_t total = 0;
	int rem;

	if (!nest)
		return;
	if (json)
		fprintf(out, "%s\"%s\": {", *sep, json_key);
	nla_for_each_nested(a, nest, rem) {
		const char *name;

		if (nla_len(a) < (int)sizeof(uint64_t))
			continue;
		name = enum_name(names, n, nla_type(a), "type", buf,
				 sizeof(buf));
		total += nla_get_u64(a);
		if (json) {
			fprintf(out, "%s\"%s\": %" PRIu64, jsep, name,
				nla_get_u64(a));
			jsep = ", ";
		} else {
			char key[64];

			snprintf(key, sizeof(key), "%s_%s", prefix, name);
			fprintf(out, "%-24s %" PRIu64 "\n", key,
				nla_get_u64(a));
		}
	}
	if (json) {
		fputc('}', out);
		*sep = ", ";
	} else if (!strcmp(prefix, "rejected")) {
		fprintf(out, "%-24s %" PRIu64 "\n", "rejected_total", total);
	}
}

/* Bucket b (1-based): [0, 1) us for b = 1, else [2^(b-2), 2^(b-1)). */
static void bucket_range(unsigned int b, uint64_t *lo, uint64_t *hi)
{
	*lo = b <= 1 ? 0 : 1ULL << (b - 2);
	*hi = 1ULL << (b - 1);
}

static void print_latency(const struct nlattr *nest, const char **sep)
{
	const char *jsep = "";
	struct nlattr *a;
	uint64_t lo, hi, total = 0;
	unsigned int b, last = 0;
	int rem, printed = 0;

	if (!nest)
		return;
	nla_for_each_nested(a, nest, rem)
		if ((unsigned int)nla_type(a) > last)
			last = nla_type(a);
	if (json)
		fprintf(out, "%s\"latency_us\": [", *sep);
	else
		fprintf(out, "%-24s %s\n", "latency_us", "commits");
	nla_for_each_nested(a, nest, rem) {
		uint64_t v;

		b = nla_type(a);
		if (!b || b > 64 || nla_len(a) < (int)sizeof(uint64_t))
			continue;
		v = nla_get_u64(a);
		total += v;
		bucket_range(b, &lo, &hi);
		if (json) {
			fprintf(out, "%s{\"from\": %" PRIu64 ", \"to\": ", jsep,
				lo);
			if (b == last)
				fprintf(out, "null");
			else
				fprintf(out, "%" PRIu64, hi);
			fprintf(out, ", \"commits\": %" PRIu64 "}", v);
			jsep = ", ";
		} else if (v) {
			char range[48];

			if (b == last)
				snprintf(range, sizeof(range),
					 "  [%" PRIu64 ", inf)", lo);
			else
				snprintf(range, sizeof(range),
					 "  [%" PRIu64 ", %" PRIu64 ")", lo,
					 hi);
			fprintf(out, "%-24s %" PRIu64 "\n", range, v);
			printed = 1;
		}
	}
	if (json) {
		fputc(']', out);
		*sep = ", ";
	} else if (!printed) {
		fprintf(out, "  (no commits)\n");
	}
	(void)total;
}

/* One VM's counters: "name value" lines, or one JSON object. */
static int vm_cb(struct nl_msg *msg, void *arg)
{
	struct nlattr *tb[KVMAS_NL_A_MAX + 1];
	struct dump *d = arg;
	const char *sep = "";
	const char *name;
	size_t i;

	if (parse(msg, tb) < 0)
		return NL_SKIP;
	name = tb[KVMAS_NL_A_SESSION_VM_STATS_ID] ?
		       nla_get_string(tb[KVMAS_NL_A_SESSION_VM_STATS_ID]) :
		       NULL;
	if (json) {
		fprintf(out, "%s{\"vm\": ", d->nr ? ",\n  " : "\n  ");
		if (name)
			json_str(name);
		else
			fprintf(out, "null");
		sep = ", ";
		if (tb[KVMAS_NL_A_VM_ID])
			fprintf(out, ", \"vm_id\": %" PRIu64,
				nla_get_u64(tb[KVMAS_NL_A_VM_ID]));
	} else {
		if (d->nr)
			fputc('\n', out);
		fprintf(out, "%-24s %s\n", "vm", name ? name : "-");
		if (tb[KVMAS_NL_A_VM_ID])
			fprintf(out, "%-24s %" PRIu64 "\n", "vm_id",
				nla_get_u64(tb[KVMAS_NL_A_VM_ID]));
	}
	d->nr++;
	for (i = 0; i < ARRAY_SIZE(vm_stat_names); i++) {
		const struct nlattr *a = tb[vm_stat_names[i].attr];
		uint64_t v;

		if (!a)
			continue;
		v = get_uint(vm_stat_names[i].attr, a);
		if (json)
			fprintf(out, "%s\"%s\": %" PRIu64, sep,
				vm_stat_names[i].name, v);
		else
			fprintf(out, "%-24s %" PRIu64 "\n",
				vm_stat_names[i].name, v);
	}
	print_counter_nest(tb[KVMAS_NL_A_VM_REJECTED], "rejected", reject_names,
			   ARRAY_SIZE(reject_names), "rejected", &sep);
	print_counter_nest(tb[KVMAS_NL_A_VM_RING_STOPS], "ring_stop",
			   stop_names, ARRAY_SIZE(stop_names), "ring_stops",
			   &sep);
	print_latency(tb[KVMAS_NL_A_VM_LATENCY], &sep);
	if (json)
		fputc('}', out);
	return NL_OK;
}

static void json_array_begin(struct dump *d)
{
	(void)d;
	if (json)
		fputc('[', out);
}

static void json_array_end(struct dump *d)
{
	if (json)
		fprintf(out, "%s]\n", d->nr ? "\n" : "");
}

static int cmd_stats(int argc, char **argv)
{
	struct vm_filter f;
	const char *vm = NULL;
	char what[96];
	struct genl g;
	int ret, i;

	argc = take_json(argc, argv);
	for (i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--vm")) {
			if (i + 1 >= argc)
				return usage_error("--vm needs an argument",
						   NULL);
			vm = argv[++i];
			if (parse_vm_filter(vm, &f))
				return usage_error("bad VM", vm);
		} else {
			return usage_error("unexpected argument", argv[i]);
		}
	}
	if (genl_open(&g))
		return 1;
	if (vm) {
		struct dump d = {
			.what = what,
			.cmd = KVMAS_NL_CMD_GET_VMS,
			.attrs = vm_filter_attrs,
			.attrs_arg = &f,
			.begin = json_array_begin,
			.valid = vm_cb,
			.end = json_array_end,
		};

		snprintf(what, sizeof(what), "stats --vm %s", vm);
		ret = genl_dump(&g, &d);
	} else {
		ret = genl_request(&g, "GET_STATS", KVMAS_NL_CMD_GET_STATS, 0,
				   NULL, NULL, stats_cb, NULL, NULL);
	}
	genl_close(&g);
	return ret ? 1 : 0;
}

/* `kvmas vms`: one line per VM, or the full objects with --json. */
static int vms_line_cb(struct nl_msg *msg, void *arg)
{
	struct nlattr *tb[KVMAS_NL_A_MAX + 1];
	uint64_t rejected = 0;
	struct nlattr *a;
	char c[6][24];
	int rem, i;
	static const int cols[] = {
		KVMAS_NL_A_VM_ID,	    KVMAS_NL_A_VM_SESSIONS,
		KVMAS_NL_A_VM_BATCHES,	    KVMAS_NL_A_VM_RING_CALLS,
		KVMAS_NL_A_VM_RING_ENTRIES,
	};

	if (json)
		return vm_cb(msg, arg);
	if (parse(msg, tb) < 0)
		return NL_SKIP;
	for (i = 0; i < (int)ARRAY_SIZE(cols); i++) {
		if (tb[cols[i]])
			snprintf(c[i], sizeof(c[i]), "%" PRIu64,
				 get_uint(cols[i], tb[cols[i]]));
		else
			strcpy(c[i], "-");
	}
	strcpy(c[5], "-");
	if (tb[KVMAS_NL_A_VM_REJECTED]) {
		nla_for_each_nested(a, tb[KVMAS_NL_A_VM_REJECTED], rem)
			if (nla_len(a) >= (int)sizeof(uint64_t))
				rejected += nla_get_u64(a);
		snprintf(c[5], sizeof(c[5]), "%" PRIu64, rejected);
	}
	fprintf(out, "%-8s %-16s %-8s %-10s %-10s %-10s %s\n", c[0],
		tb[KVMAS_NL_A_SESSION_VM_STATS_ID] ?
			nla_get_string(tb[KVMAS_NL_A_SESSION_VM_STATS_ID]) :
			"-",
		c[1], c[2], c[5], c[3], c[4]);
	((struct dump *)arg)->nr++;
	return NL_OK;
}

static void vms_begin(struct dump *d)
{
	if (json)
		json_array_begin(d);
	else
		fprintf(out, "%-8s %-16s %-8s %-10s %-10s %-10s %s\n", "VM_ID",
			"VM", "SESSIONS", "BATCHES", "REJECTED", "RING_CALLS",
			"RING_ENTRIES");
}

static int cmd_vms(int argc, char **argv)
{
	struct dump d = {
		.what = "GET_VMS",
		.cmd = KVMAS_NL_CMD_GET_VMS,
		.begin = vms_begin,
		.valid = vms_line_cb,
		.end = json_array_end,
	};
	struct genl g;
	int ret;

	argc = take_json(argc, argv);
	if (argc)
		return usage_error("unexpected argument", argv[0]);
	if (genl_open(&g))
		return 1;
	ret = genl_dump(&g, &d);
	genl_close(&g);
	return ret ? 1 : 0;
}

struct session {
	int has_id, has_pid, has_vm_id;
	uint64_t id, vm_id;
	uint32_t pid;
	int attached, has_vm;
	const char *vm;
};

static void get_session(struct nlattr **tb, struct session *s)
{
	memset(s, 0, sizeof(*s));
	if (tb[KVMAS_NL_A_SESSION_ID]) {
		s->has_id = 1;
		s->id = nla_get_u64(tb[KVMAS_NL_A_SESSION_ID]);
	}
	if (tb[KVMAS_NL_A_SESSION_PID]) {
		s->has_pid = 1;
		s->pid = nla_get_u32(tb[KVMAS_NL_A_SESSION_PID]);
	}
	if (tb[KVMAS_NL_A_VM_ID]) {
		s->has_vm_id = 1;
		s->vm_id = nla_get_u64(tb[KVMAS_NL_A_VM_ID]);
	}
	s->attached = nla_get_flag(tb[KVMAS_NL_A_SESSION_ATTACHED]);
	s->has_vm = !!tb[KVMAS_NL_A_SESSION_VM_STATS_ID];
	s->vm = tb[KVMAS_NL_A_SESSION_VM_STATS_ID] ?
			nla_get_string(tb[KVMAS_NL_A_SESSION_VM_STATS_ID]) :
			"-";
}

/* The fields of a session as JSON members; absent ones are null. */
static void json_session(const struct session *s)
{
	if (s->has_id)
		fprintf(out, "\"id\": %" PRIu64, s->id);
	else
		fprintf(out, "\"id\": null");
	if (s->has_pid)
		fprintf(out, ", \"pid\": %" PRIu32, s->pid);
	else
		fprintf(out, ", \"pid\": null");
	fprintf(out,
		", \"attached\": %s, \"vm\": ", s->attached ? "true" : "false");
	if (s->has_vm)
		json_str(s->vm);
	else
		fprintf(out, "null");
	if (s->has_vm_id)
		fprintf(out, ", \"vm_id\": %" PRIu64, s->vm_id);
	else
		fprintf(out, ", \"vm_id\": null");
}

static int sessions_cb(struct nl_msg *msg, void *arg)
{
	struct nlattr *tb[KVMAS_NL_A_MAX + 1];
	char id[24], pid[24], vm_id[24];
	struct dump *d = arg;
	struct session s;

	if (parse(msg, tb) < 0)
		return NL_SKIP;
	get_session(tb, &s);
	if (json) {
		fprintf(out, "%s{", d->nr++ ? ",\n  " : "\n  ");
		json_session(&s);
		fputc('}', out);
		return NL_OK;
	}
	d->nr++;
	fprintf(out, "%-12s %-8s %-8s %-16s %s\n",
		fmt_u64(id, sizeof(id), s.id, s.has_id),
		fmt_u64(pid, sizeof(pid), s.pid, s.has_pid),
		s.attached ? "yes" : "no", s.vm,
		fmt_u64(vm_id, sizeof(vm_id), s.vm_id, s.has_vm_id));
	return NL_OK;
}

static void sessions_begin(struct dump *d)
{
	if (json)
		json_array_begin(d);
	else
		fprintf(out, "%-12s %-8s %-8s %-16s %s\n", "ID", "PID",
			"ATTACHED", "VM", "VM_ID");
}

static int cmd_sessions(int argc, char **argv)
{
	struct dump d = {
		.what = "GET_SESSIONS",
		.cmd = KVMAS_NL_CMD_GET_SESSIONS,
		.begin = sessions_begin,
		.valid = sessions_cb,
		.end = json_array_end,
	};
	struct genl g;
	int ret;

	argc = take_json(argc, argv);
	if (argc)
		return usage_error("unexpected argument", argv[0]);
	if (genl_open(&g))
		return 1;
	ret = genl_dump(&g, &d);
	genl_close(&g);
	return ret ? 1 : 0;
}

static int no_seq_check(struct nl_msg *msg, void *arg)
{
	(void)msg;
	(void)arg;
	return NL_OK;
}

struct monitor {
	unsigned long seen;
	unsigned long count; /* 0: for ever */
};

static const char *const event_names[] = {
	[KVMAS_NL_EVENT_ATTACH] = "attach",
	[KVMAS_NL_EVENT_DETACH] = "detach",
	[KVMAS_NL_EVENT_BATCH_REJECTED] = "batch_rejected",
	[KVMAS_NL_EVENT_RING_ANOMALY] = "ring_anomaly",
};

/* An event's detail attributes (rejected batches, ring anomalies). */
static const struct {
	int attr;
	const char *name;
} event_details[] = {
	{ KVMAS_NL_A_EVENT_ERROR_INDEX, "error_index" },
	{ KVMAS_NL_A_EVENT_NR_OPS, "nr_ops" },
	{ KVMAS_NL_A_EVENT_BATCH_FLAGS, "flags" },
	{ KVMAS_NL_A_EVENT_VCPU_ID, "vcpu" },
	{ KVMAS_NL_A_EVENT_RING_VCPUS, "vcpus" },
	{ KVMAS_NL_A_EVENT_RING_INVALID, "invalid_entries" },
	{ KVMAS_NL_A_EVENT_SUPPRESSED, "suppressed" },
};

/* The symbolic name of an errno a command of the module returns, or NULL. */
static const char *errno_name(int e)
{
	static const struct {
		int e;
		const char *name;
	} names[] = {
		{ EPERM, "EPERM" },	  { ENOENT, "ENOENT" },
		{ EINTR, "EINTR" },	  { EIO, "EIO" },
		{ ENXIO, "ENXIO" },	  { E2BIG, "E2BIG" },
		{ EBADF, "EBADF" },	  { ENOMEM, "ENOMEM" },
		{ EFAULT, "EFAULT" },	  { EBUSY, "EBUSY" },
		{ EEXIST, "EEXIST" },	  { ENODEV, "ENODEV" },
		{ EINVAL, "EINVAL" },	  { ENOTTY, "ENOTTY" },
		{ EMSGSIZE, "EMSGSIZE" }, { EOPNOTSUPP, "EOPNOTSUPP" },
		{ ENOTCONN, "ENOTCONN" },
	};
	size_t i;

	for (i = 0; i < ARRAY_SIZE(names); i++)
		if (names[i].e == e)
			return names[i].name;
	return NULL;
}

static void print_event_details(struct nlattr **tb)
{
	char buf[32];
	size_t i;

	if (tb[KVMAS_NL_A_EVENT_ERRNO]) {
		uint32_t e = nla_get_u32(tb[KVMAS_NL_A_EVENT_ERRNO]);
		const char *name = errno_name((int)e);

		if (json) {
			fprintf(out,
				", \"errno\": %" PRIu32 ", \"error\": ", e);
			if (name)
				json_str(name);
			else
				fprintf(out, "null");
		} else {
			fprintf(out, " errno %s (%s)", name ? name : "?",
				strerror((int)e));
		}
	}
	if (tb[KVMAS_NL_A_EVENT_STOP_REASON]) {
		uint32_t r = nla_get_u32(tb[KVMAS_NL_A_EVENT_STOP_REASON]);
		const char *name = enum_name(stop_names, ARRAY_SIZE(stop_names),
					     r, "stop", buf, sizeof(buf));

		if (json) {
			fprintf(out, ", \"stop_reason\": ");
			json_str(name);
		} else {
			fprintf(out, " stop %s", name);
		}
	}
	for (i = 0; i < ARRAY_SIZE(event_details); i++) {
		const struct nlattr *a = tb[event_details[i].attr];
		int64_t v;

		if (!a)
			continue;
		if (event_details[i].attr == KVMAS_NL_A_EVENT_ERROR_INDEX)
			v = (int32_t)nla_get_u32(a);
		else
			v = (int64_t)get_uint(event_details[i].attr, a);
		if (json)
			fprintf(out, ", \"%s\": %" PRId64,
				event_details[i].name, v);
		else if (event_details[i].attr == KVMAS_NL_A_EVENT_BATCH_FLAGS)
			fprintf(out, " %s 0x%" PRIx64, event_details[i].name,
				(uint64_t)v);
		else
			fprintf(out, " %s %" PRId64, event_details[i].name, v);
	}
}

static int event_cb(struct nl_msg *msg, void *arg)
{
	struct genlmsghdr *gnlh = genlmsg_hdr(nlmsg_hdr(msg));
	struct nlattr *tb[KVMAS_NL_A_MAX + 1];
	char id[24], pid[24], ev[24];
	struct monitor *m = arg;
	const char *name;
	struct session s;
	uint32_t type;

	if (gnlh->cmd != KVMAS_NL_CMD_EVENT || parse(msg, tb) < 0)
		return NL_SKIP;
	get_session(tb, &s);
	type = tb[KVMAS_NL_A_EVENT_TYPE] ?
		       nla_get_u32(tb[KVMAS_NL_A_EVENT_TYPE]) :
		       0;
	name = enum_name(event_names, ARRAY_SIZE(event_names), type, "event",
			 ev, sizeof(ev));

	if (json) {
		/* One object per line: a stream of JSON documents. */
		fprintf(out, "{\"event\": ");
		json_str(name);
		fprintf(out, ", \"type\": %" PRIu32 ", ", type);
		json_session(&s);
		print_event_details(tb);
		fprintf(out, "}\n");
	} else {
		fprintf(out, "%s session %s pid %s vm %s", name,
			fmt_u64(id, sizeof(id), s.id, s.has_id),
			fmt_u64(pid, sizeof(pid), s.pid, s.has_pid), s.vm);
		print_event_details(tb);
		fputc('\n', out);
	}

	if (m->count && ++m->seen >= m->count)
		return NL_STOP;
	return NL_OK;
}

static int parse_count(const char *s, unsigned long *out)
{
	char *end;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	*out = strtoul(s, &end, 10);
	return errno || *end || !*out ? -1 : 0;
}

static int cmd_monitor(int argc, char **argv)
{
	struct monitor m = { 0, 0 };
	struct nl_cb *cb;
	struct genl g;
	int grp, ret, i;

	argc = take_json(argc, argv);
	for (i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--count") && i + 1 < argc) {
			if (parse_count(argv[++i], &m.count))
				return usage_error("bad count", argv[i]);
		} else {
			return usage_error("unexpected argument", argv[i]);
		}
	}

	if (genl_open(&g))
		return 1;
	grp = genl_ctrl_resolve_grp(g.sk, KVMAS_GENL_NAME,
				    KVMAS_GENL_MCGRP_EVENTS);
	if (grp < 0) {
		fprintf(stderr,
			"kvmas: no multicast group '%s' in family %s: %s\n",
			KVMAS_GENL_MCGRP_EVENTS, KVMAS_GENL_NAME,
			nl_geterror(grp));
		genl_close(&g);
		return 1;
	}
	ret = nl_socket_add_membership(g.sk, grp);
	if (ret < 0) {
		fprintf(stderr, "kvmas: cannot join multicast group '%s': %s\n",
			KVMAS_GENL_MCGRP_EVENTS, nl_geterror(ret));
		genl_close(&g);
		return 1;
	}
	cb = nl_cb_alloc(NL_CB_DEFAULT);
	if (!cb) {
		fprintf(stderr, "kvmas: out of memory\n");
		genl_close(&g);
		return 1;
	}
	/*
	 * Multicast messages carry no sequence number of ours; the check is a
	 * property of the callback set nl_recvmsgs() is given, not the socket.
	 */
	nl_cb_set(cb, NL_CB_SEQ_CHECK, NL_CB_CUSTOM, no_seq_check, NULL);
	nl_cb_set(cb, NL_CB_VALID, NL_CB_CUSTOM, event_cb, &m);

	ret = 0;
	while (!m.count || m.seen < m.count) {
		ret = nl_recvmsgs(g.sk, cb);
		if (ret == -NLE_NOMEM) {
			/* ENOBUFS: the socket overran, events were lost. */
			fprintf(stderr, "kvmas: warning: events lost (%s)\n",
				nl_geterror(ret));
			ret = 0;
			continue;
		}
		if (ret < 0) {
			fprintf(stderr, "kvmas: monitor: %s\n",
				nl_geterror(ret));
			break;
		}
	}
	nl_cb_put(cb);
	genl_close(&g);
	return ret < 0 ? 1 : 0;
}
/* ---------------------------------------------------------------------- */

static int cmd_help(int argc, char **argv);

#define KVMAS_MODNAME "kvm_atomic_slots"
#define KVMAS_KLP_DIR "/sys/kernel/livepatch/" KVMAS_MODNAME

/*
 * The unload sequence of a livepatch module: disable the patch, wait for its
 * transition to finish and the patch to be freed, then remove the module.
 */
static int cmd_unload(int argc, char **argv)
{
	struct timespec t = { .tv_nsec = 50 * 1000 * 1000 };
	int fd, i;

	if (argc)
		return usage_error("unexpected argument", argv[0]);
	if (access(KVMAS_KLP_DIR, F_OK) == 0) {
		fd = open(KVMAS_KLP_DIR "/enabled", O_WRONLY);
		if (fd < 0 || write(fd, "0", 1) != 1) {
			fprintf(stderr,
				"kvmas: cannot disable the livepatch: %s\n",
				strerror(errno));
			if (fd >= 0)
				close(fd);
			return 1;
		}
		close(fd);
		/* A task running a patched function delays the transition. */
		for (i = 0; i < 1200 && access(KVMAS_KLP_DIR, F_OK) == 0; i++)
			nanosleep(&t, NULL);
		if (access(KVMAS_KLP_DIR, F_OK) == 0) {
			fprintf(stderr,
				"kvmas: livepatch transition still running after 60 s "
				"(see %s/transition)\n",
				KVMAS_KLP_DIR);
			return 1;
		}
	}
	if (syscall(SYS_delete_module, KVMAS_MODNAME, O_NONBLOCK)) {
		fprintf(stderr, "kvmas: cannot remove %s: %s%s\n",
			KVMAS_MODNAME, strerror(errno),
			errno == EWOULDBLOCK ?
				" (sessions still open: close the VMMs using it)" :
				"");
		return 1;
	}
	return 0;
}

static const struct cmd cmds[] = {
	{ "caps", "[--json]", "API version and capabilities (device ioctls)",
	  cmd_caps },
	{ "stats", "[--vm ID] [--json]",
	  "module counters, or one VM's (generic netlink)", cmd_stats },
	{ "sessions", "[--json]", "open sessions: id, pid, attached, vm",
	  cmd_sessions },
	{ "vms", "[--json]", "VMs with a session attached, their counters",
	  cmd_vms },
	{ "monitor", "[--count N] [--json]",
	  "print events (attach, detach, rejected batches, ring anomalies)",
	  cmd_monitor },
	{ "unload", "", "disable the livepatch, wait, remove the module",
	  cmd_unload },
	{ "help", "", "this text", cmd_help },
};

static int cmd_help(int argc, char **argv)
{
	size_t i;

	(void)argc;
	(void)argv;
	printf("Usage: kvmas [--json] <command> [arguments]\n\n"
	       "Operator tool for the kvm_atomic_slots module.\n\n"
	       "Commands:\n");
	for (i = 0; i < ARRAY_SIZE(cmds); i++) {
		char left[48];

		snprintf(left, sizeof(left), "%s%s%s", cmds[i].name,
			 cmds[i].args[0] ? " " : "", cmds[i].args);
		printf("  %-28s %s\n", left, cmds[i].help);
	}
	printf("\n--vm ID names a VM by KVM's name (kvm-<pid>, every VM its thread created),\n"
	       "by the id of a session attached to it, or as vm:N by the module's VM id.\n"
	       "\n--json prints one JSON document (monitor: one per event and line).\n"
	       "\nEnvironment:\n"
	       "  KVMAS_DEVICE                 device node for 'caps' (default %s)\n",
	       KVMAS_DEVICE_PATH);
	return 0;
}

int main(int argc, char **argv)
{
	size_t i;

	/* Lines must reach a pipe as they happen (monitor, tests). */
	setvbuf(stdout, NULL, _IOLBF, 0);
	out = stdout;

	/* --json may also come before the command. */
	while (argc >= 2 && !strcmp(argv[1], "--json")) {
		json = 1;
		argc--;
		argv++;
	}
	if (argc < 2)
		return usage_error("missing command", NULL);
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))
		return cmd_help(0, NULL);

	for (i = 0; i < ARRAY_SIZE(cmds); i++)
		if (!strcmp(argv[1], cmds[i].name))
			return cmds[i].handler(argc - 2, argv + 2);

	return usage_error("unknown command", argv[1]);
}
