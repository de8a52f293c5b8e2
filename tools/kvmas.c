// SPDX-License-Identifier: GPL-2.0
/*
 * kvmas: operator tool for the kvm_atomic_slots module.
 *
 * "caps" talks to /dev/kvm-atomic-slots through libkvmas; "stats",
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
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
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
 * Sends @cmd and feeds every reply to @valid. Reports failures itself,
 * the kernel's explanation included. Returns 0 or -1.
 */
static int genl_request(struct genl *g, const char *what, uint8_t cmd,
			int flags, nl_recvmsg_msg_cb_t valid, void *arg)
{
	struct req_state st = { 0 };
	struct nl_msg *msg;
	struct nl_cb *cb;
	int ret = -1;

	msg = nlmsg_alloc();
	cb = nl_cb_alloc(NL_CB_DEFAULT);
	if (!msg || !cb ||
	    !genlmsg_put(msg, NL_AUTO_PORT, NL_AUTO_SEQ, g->family, 0, flags,
			 cmd, KVMAS_GENL_VERSION)) {
		fprintf(stderr, "kvmas: out of memory\n");
		goto out;
	}
	nl_cb_set(cb, NL_CB_VALID, NL_CB_CUSTOM, valid, arg);
	nl_cb_set(cb, NL_CB_ACK, NL_CB_CUSTOM, ack_cb, &st);
	nl_cb_set(cb, NL_CB_FINISH, NL_CB_CUSTOM, finish_cb, &st);
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

/* ---------------------------------------------------------------------- */
/* stats, sessions, monitor                                               */

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

static int stats_cb(struct nl_msg *msg, void *arg)
{
	struct nlattr *tb[KVMAS_NL_A_MAX + 1];
	const char *sep = "";
	size_t i;

	(void)arg;
	if (parse(msg, tb) < 0)
		return NL_SKIP;
	if (json)
		putchar('{');
	for (i = 0; i < ARRAY_SIZE(stat_names); i++) {
		const struct nlattr *a = tb[stat_names[i].attr];
		uint64_t v;

		if (!a)
			continue;
		/* The policy fixed each counter's width. */
		if (kvmas_policy[stat_names[i].attr].type == NLA_U32)
			v = nla_get_u32(a);
		else
			v = nla_get_u64(a);
		if (json) {
			printf("%s\"%s\": %" PRIu64, sep, stat_names[i].name,
			       v);
			sep = ", ";
		} else {
			printf("%-16s %" PRIu64 "\n", stat_names[i].name, v);
		}
	}
	if (json)
		printf("}\n");
	return NL_OK;
}

static int cmd_stats(int argc, char **argv)
{
	struct genl g;
	int ret;

	argc = take_json(argc, argv);
	if (argc)
		return usage_error("unexpected argument", argv[0]);
	if (genl_open(&g))
		return 1;
	ret = genl_request(&g, "GET_STATS", KVMAS_NL_CMD_GET_STATS, 0, stats_cb,
			   NULL);
	genl_close(&g);
	return ret ? 1 : 0;
}

struct session {
	int has_id, has_pid;
	uint64_t id;
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
	s->attached = nla_get_flag(tb[KVMAS_NL_A_SESSION_ATTACHED]);
	s->has_vm = !!tb[KVMAS_NL_A_SESSION_VM_STATS_ID];
	s->vm = tb[KVMAS_NL_A_SESSION_VM_STATS_ID] ?
			nla_get_string(tb[KVMAS_NL_A_SESSION_VM_STATS_ID]) :
			"-";
}

/* Attributes a newer or older module leaves out print as "-". */
static const char *fmt_u64(char *buf, size_t len, uint64_t v, int have)
{
	if (!have)
		return "-";
	snprintf(buf, len, "%" PRIu64, v);
	return buf;
}

/* The fields of a session as JSON members; absent ones are null. */
static void json_session(const struct session *s)
{
	if (s->has_id)
		printf("\"id\": %" PRIu64, s->id);
	else
		printf("\"id\": null");
	if (s->has_pid)
		printf(", \"pid\": %" PRIu32, s->pid);
	else
		printf(", \"pid\": null");
	printf(", \"attached\": %s, \"vm\": ", s->attached ? "true" : "false");
	if (s->has_vm)
		json_str(s->vm);
	else
		printf("null");
}

static int sessions_cb(struct nl_msg *msg, void *arg)
{
	struct nlattr *tb[KVMAS_NL_A_MAX + 1];
	char id[24], pid[24];
	unsigned long *nr = arg;
	struct session s;

	if (parse(msg, tb) < 0)
		return NL_SKIP;
	get_session(tb, &s);
	if (json) {
		printf("%s{", (*nr)++ ? ",\n  " : "\n  ");
		json_session(&s);
		putchar('}');
		return NL_OK;
	}
	printf("%-12s %-8s %-8s %s\n", fmt_u64(id, sizeof(id), s.id, s.has_id),
	       fmt_u64(pid, sizeof(pid), s.pid, s.has_pid),
	       s.attached ? "yes" : "no", s.vm);
	return NL_OK;
}

static int cmd_sessions(int argc, char **argv)
{
	unsigned long nr = 0;
	struct genl g;
	int ret;

	argc = take_json(argc, argv);
	if (argc)
		return usage_error("unexpected argument", argv[0]);
	if (genl_open(&g))
		return 1;
	/* JSON: one array, opened once the dump is known to start. */
	if (json)
		putchar('[');
	else
		printf("%-12s %-8s %-8s %s\n", "ID", "PID", "ATTACHED", "VM");
	ret = genl_request(&g, "GET_SESSIONS", KVMAS_NL_CMD_GET_SESSIONS,
			   NLM_F_DUMP, sessions_cb, &nr);
	if (json)
		printf("%s]\n", nr ? "\n" : "");
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

	if (type == KVMAS_NL_EVENT_ATTACH) {
		name = "attach";
	} else if (type == KVMAS_NL_EVENT_DETACH) {
		name = "detach";
	} else {
		snprintf(ev, sizeof(ev), "event%" PRIu32, type);
		name = ev;
	}
	if (json) {
		/* One object per line: a stream of JSON documents. */
		printf("{\"event\": ");
		json_str(name);
		printf(", \"type\": %" PRIu32 ", ", type);
		json_session(&s);
		printf("}\n");
	} else {
		printf("%s session %s pid %s vm %s\n", name,
		       fmt_u64(id, sizeof(id), s.id, s.has_id),
		       fmt_u64(pid, sizeof(pid), s.pid, s.has_pid), s.vm);
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
	{ "stats", "[--json]", "module counters (generic netlink)", cmd_stats },
	{ "sessions", "[--json]", "open sessions: id, pid, attached, vm",
	  cmd_sessions },
	{ "monitor", "[--count N] [--json]",
	  "print attach/detach events; stop after N", cmd_monitor },
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
	printf("\n--json prints one JSON document (monitor: one per event and line).\n"
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
