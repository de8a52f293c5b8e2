// SPDX-License-Identifier: GPL-2.0
/*
 * The operator CLI (generic netlink: stats, sessions, events) and libkvmas
 * against the real module. The CLI binary is ./kvmas in the payload.
 */
#include <ctype.h>
#include <signal.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>

#include "batch_helpers.h"
#include "kvm_helpers.h"
#include "kvmas.h"
#include "ringvm.h"
#include "kselftest_harness.h"

/* Runs a shell command, returns its stdout (malloc'd) and exit status. */
static char *run(const char *cmd, int *status)
{
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);
	FILE *p = popen(cmd, "r");
	size_t n;

	if (!buf || !p) {
		free(buf);
		return NULL;
	}
	while ((n = fread(buf + len, 1, cap - len - 1, p)) > 0) {
		len += n;
		if (len + 1 >= cap) {
			cap *= 2;
			buf = realloc(buf, cap);
			if (!buf)
				return NULL;
		}
	}
	buf[len] = 0;
	*status = pclose(p);
	return buf;
}

/* "name value" lines as printed by `kvmas stats`. */
static long stat_value(const char *out, const char *name)
{
	const char *p = out;
	size_t n = strlen(name);

	while ((p = strstr(p, name))) {
		if ((p == out || p[-1] == '\n') && p[n] == ' ')
			return strtol(p + n, NULL, 10);
		p += n;
	}
	return -1;
}

static long stat_now(const char *name)
{
	int st;
	char *out = run("./kvmas stats", &st);
	long v = out && st == 0 ? stat_value(out, name) : -1;

	free(out);
	return v;
}

TEST(cli_caps_matches_device)
{
	int st, dev = kvmas_dev_open();
	char *out = run("./kvmas caps", &st);
	char want[64];

	ASSERT_NE(NULL, out);
	ASSERT_GE(dev, 0);
	EXPECT_EQ(0, st) TH_LOG("%s", out);
	snprintf(want, sizeof(want), "api_version            %d",
		 ioctl(dev, KVMAS_GET_API_VERSION, 0));
	EXPECT_NE(NULL, strstr(out, want)) TH_LOG("%s", out);
	EXPECT_NE(NULL, strstr(out, "netlink")) TH_LOG("%s", out);
	free(out);
	close(dev);
}

TEST(cli_stats_follow_sessions)
{
	long open0, total0, att0, ok0, fail0;
	int a, b, vm = kvm_vm_create();

	ASSERT_GE(vm, 0);
	open0 = stat_now("sessions_open");
	total0 = stat_now("sessions_total");
	att0 = stat_now("attached");
	ok0 = stat_now("attach_ok");
	fail0 = stat_now("attach_failed");
	ASSERT_GE(open0, 0);

	a = kvmas_dev_open();
	b = kvmas_dev_open();
	ASSERT_GE(a, 0);
	ASSERT_GE(b, 0);
	ASSERT_EQ(0, kvmas_attach(a, vm));
	EXPECT_EQ(-EINVAL, kvmas_attach(b, a));
	EXPECT_EQ(open0 + 2, stat_now("sessions_open"));
	EXPECT_EQ(total0 + 2, stat_now("sessions_total"));
	EXPECT_EQ(att0 + 1, stat_now("attached"));
	EXPECT_EQ(ok0 + 1, stat_now("attach_ok"));
	EXPECT_EQ(fail0 + 1, stat_now("attach_failed"));
	close(a);
	close(b);
	EXPECT_EQ(open0, stat_now("sessions_open"));
	EXPECT_EQ(att0, stat_now("attached"));
	close(vm);
}

/* Batches and ring resets are counted for operators. */
TEST(cli_stats_count_work)
{
	long b0 = stat_now("batches"), o0 = stat_now("batch_ops");
	long r0 = stat_now("ring_resets"), e0 = stat_now("ring_entries");
	struct kvmas_ring kr, *one = &kr;
	struct kvmas_batch *b = kvmas_batch_new();
	void *mem = guest_mem(0x20000);
	struct ringvm r;
	struct kvmas *kv;

	ASSERT_GE(b0, 0);
	ASSERT_GE(e0, 0);
	ASSERT_EQ(0, rv_create(&r, 1, RV_RING_ENTRIES, 10));
	ASSERT_EQ(0, kvmas_open(&kv));
	ASSERT_EQ(0, kvmas_attach_vm(kv, r.vm));
	ASSERT_NE(NULL, b);
	ASSERT_EQ(0, kvmas_batch_create(b, 0, 5, 0, 0x40000000, 0x10000, mem));
	ASSERT_EQ(0, kvmas_batch_create(b, 0, 6, 0, 0x40010000, 0x10000,
					(char *)mem + 0x10000));
	ASSERT_EQ(0, kvmas_batch_commit(kv, b, 0, NULL));
	rv_ring(&r, 0, &kr);
	ASSERT_EQ(0, rv_run_pass(&r, 0));
	ASSERT_EQ(10, kvmas_ring_harvest(&kr, NULL, NULL, 0));
	ASSERT_EQ(10, kvmas_ring_reset(kv, &one, 1, 0));
	EXPECT_EQ(b0 + 1, stat_now("batches"));
	EXPECT_EQ(o0 + 2, stat_now("batch_ops"));
	EXPECT_EQ(r0 + 1, stat_now("ring_resets"));
	EXPECT_EQ(e0 + 10, stat_now("ring_entries"));
	kvmas_batch_free(b);
	kvmas_close(kv);
	rv_destroy(&r);
}

TEST(cli_sessions_lists_holders)
{
	int st, dev = kvmas_dev_open(), idle = kvmas_dev_open();
	int vm = kvm_vm_create();
	char *out, line[128];

	ASSERT_GE(dev, 0);
	ASSERT_GE(idle, 0);
	ASSERT_GE(vm, 0);
	ASSERT_EQ(0, kvmas_attach(dev, vm));
	out = run("./kvmas sessions", &st);
	ASSERT_NE(NULL, out);
	EXPECT_EQ(0, st);
	/* KVM names the VM kvm-<pid of its creator>. */
	snprintf(line, sizeof(line), "%-8d yes      kvm-%d", getpid(),
		 getpid());
	EXPECT_NE(NULL, strstr(out, line))
	TH_LOG("want '%s' in:\n%s", line, out);
	snprintf(line, sizeof(line), "%-8d no", getpid());
	EXPECT_NE(NULL, strstr(out, line))
	TH_LOG("want '%s' in:\n%s", line, out);
	free(out);
	close(dev);
	close(idle);
	close(vm);
}

TEST(cli_monitor_sees_attach_and_detach)
{
	char path[] = "/tmp/kvmas-monitor-XXXXXX", buf[512] = "", want[64];
	int fd = mkstemp(path), dev, vm, status, n;
	pid_t pid;

	ASSERT_GE(fd, 0);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		dup2(fd, 1);
		execl("./kvmas", "kvmas", "monitor", "--count", "2", NULL);
		_exit(127);
	}
	/* The CLI prints nothing once subscribed: give it time to join. */
	usleep(500 * 1000);
	dev = kvmas_dev_open();
	vm = kvm_vm_create();
	ASSERT_GE(dev, 0);
	ASSERT_GE(vm, 0);
	ASSERT_EQ(0, kvmas_attach(dev, vm));
	close(dev);
	close(vm);
	for (n = 0; n < 50 && waitpid(pid, &status, WNOHANG) == 0; n++)
		usleep(100 * 1000);
	if (n == 50) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
	}
	ASSERT_TRUE(WIFEXITED(status)) TH_LOG("monitor did not see 2 events");
	EXPECT_EQ(0, WEXITSTATUS(status));
	n = pread(fd, buf, sizeof(buf) - 1, 0);
	ASSERT_GT(n, 0);
	snprintf(want, sizeof(want), "pid %d vm kvm-%d", getpid(), getpid());
	EXPECT_EQ(0, strncmp(buf, "attach session ", 15)) TH_LOG("%s", buf);
	EXPECT_NE(NULL, strstr(buf, "\ndetach session ")) TH_LOG("%s", buf);
	EXPECT_NE(NULL, strstr(buf, want)) TH_LOG("%s", buf);
	close(fd);
	unlink(path);
}

/*
 * A tiny JSON checker for `kvmas --json`: one value per call, RFC 8259
 * grammar (no duplicate-key or number-range checks). Returns the position
 * after the value or NULL.
 */
static const char *js_ws(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	return p;
}

static const char *js_value(const char *p, int depth);

static const char *js_string(const char *p)
{
	if (*p++ != '"')
		return NULL;
	for (; *p != '"'; p++) {
		if (!*p || (unsigned char)*p < 0x20)
			return NULL;
		if (*p == '\\') {
			p++;
			if (*p == 'u') {
				for (int i = 1; i <= 4; i++)
					if (!isxdigit((unsigned char)p[i]))
						return NULL;
				p += 4;
			} else if (!*p || !strchr("\"\\/bfnrt", *p)) {
				return NULL;
			}
		}
	}
	return p + 1;
}

static const char *js_number(const char *p)
{
	const char *d;

	if (*p == '-')
		p++;
	if (*p == '0')
		p++;
	else if (*p >= '1' && *p <= '9')
		while (isdigit((unsigned char)*p))
			p++;
	else
		return NULL;
	if (*p == '.') {
		d = ++p;
		while (isdigit((unsigned char)*p))
			p++;
		if (p == d)
			return NULL;
	}
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p == '+' || *p == '-')
			p++;
		d = p;
		while (isdigit((unsigned char)*p))
			p++;
		if (p == d)
			return NULL;
	}
	return p;
}

static const char *js_members(const char *p, char close, int depth)
{
	p = js_ws(p + 1);
	if (*p == close)
		return p + 1;
	for (;;) {
		if (close == '}') {
			p = js_string(js_ws(p));
			if (!p)
				return NULL;
			p = js_ws(p);
			if (*p++ != ':')
				return NULL;
		}
		p = js_value(p, depth + 1);
		if (!p)
			return NULL;
		p = js_ws(p);
		if (*p == close)
			return p + 1;
		if (*p++ != ',')
			return NULL;
	}
}

static const char *js_value(const char *p, int depth)
{
	p = js_ws(p);
	if (depth > 16)
		return NULL;
	switch (*p) {
	case '{':
		return js_members(p, '}', depth);
	case '[':
		return js_members(p, ']', depth);
	case '"':
		return js_string(p);
	case 't':
		return strncmp(p, "true", 4) ? NULL : p + 4;
	case 'f':
		return strncmp(p, "false", 5) ? NULL : p + 5;
	case 'n':
		return strncmp(p, "null", 4) ? NULL : p + 4;
	default:
		return js_number(p);
	}
}

/* @doc is exactly one JSON object or array (surrounding blanks allowed). */
static int json_valid(const char *doc, char first)
{
	const char *p = js_ws(doc);

	if (*p != first)
		return 0;
	p = js_value(p, 0);
	return p && !*js_ws(p);
}

/* The host re-checks these lines with python3 (tests/json-check.sh). */
static void json_publish(const char *what, const char *doc)
{
	printf("# kvmas-json %s ", what);
	for (; *doc; doc++)
		if (*doc != '\n')
			putchar(*doc);
	putchar('\n');
	fflush(stdout);
}

TEST(json_checker_rejects_bad_documents)
{
	static const char *const bad[] = {
		"{",	       "{\"a\" 1}",    "{\"a\": 01}",
		"[1,]",	       "{\"a\": tru}", "[\"\\x\"]",
		"{} {}",       "{\"a\": -}",   "[1.]",
		"{\"a\": 1,}", "[\"a\nb\"]",   "{a: 1}",
	};
	unsigned int i;

	EXPECT_TRUE(json_valid("{\"a\": [1, -2.5e3, true, null, \"\\u00e9\"]}",
			       '{'));
	EXPECT_TRUE(json_valid("[]\n", '['));
	for (i = 0; i < ARRAY_SIZE(bad); i++)
		EXPECT_FALSE(json_valid(bad[i], bad[i][0]))
	TH_LOG("bad[%u]", i);
}

TEST(cli_json_read_commands)
{
	static const char *const stat_keys[] = {
		"sessions_open", "sessions_total", "attached", "attach_ok",
		"attach_failed", "ioctl_errors",   "batches",  "batch_ops",
		"ring_resets",	 "ring_entries",
	};
	int st, dev = kvmas_dev_open(), vm = kvm_vm_create();
	char *out, want[96];
	unsigned int i;

	ASSERT_GE(dev, 0);
	ASSERT_GE(vm, 0);
	ASSERT_EQ(0, kvmas_attach(dev, vm));

	out = run("./kvmas caps --json", &st);
	ASSERT_NE(NULL, out);
	EXPECT_EQ(0, st);
	EXPECT_TRUE(json_valid(out, '{')) TH_LOG("%s", out);
	snprintf(want, sizeof(want), "\"api_version\": %d,",
		 ioctl(dev, KVMAS_GET_API_VERSION, 0));
	EXPECT_NE(NULL, strstr(out, want)) TH_LOG("%s", out);
	EXPECT_NE(NULL, strstr(out, "\"caps\": {\"")) TH_LOG("%s", out);
	EXPECT_NE(NULL, strstr(out, "\"netlink\": 1")) TH_LOG("%s", out);
	EXPECT_NE(NULL, strstr(out, "\"kvm_user_mem_slots\": "))
	TH_LOG("%s", out);
	json_publish("caps", out);
	free(out);

	out = run("./kvmas --json stats", &st);
	ASSERT_NE(NULL, out);
	EXPECT_EQ(0, st);
	EXPECT_TRUE(json_valid(out, '{')) TH_LOG("%s", out);
	for (i = 0; i < ARRAY_SIZE(stat_keys); i++) {
		snprintf(want, sizeof(want), "\"%s\": ", stat_keys[i]);
		EXPECT_NE(NULL, strstr(out, want))
		TH_LOG("%s in %s", want, out);
	}
	/* One document on one line: ends in the only newline. */
	EXPECT_EQ(strchr(out, '\n'), out + strlen(out) - 1) TH_LOG("%s", out);
	json_publish("stats", out);
	free(out);

	out = run("./kvmas sessions --json", &st);
	ASSERT_NE(NULL, out);
	EXPECT_EQ(0, st);
	EXPECT_TRUE(json_valid(out, '[')) TH_LOG("%s", out);
	snprintf(
		want, sizeof(want),
		"\"pid\": %d, \"attached\": true, \"vm\": \"kvm-%d\", \"vm_id\": ",
		getpid(), getpid());
	EXPECT_NE(NULL, strstr(out, want)) TH_LOG("%s in %s", want, out);
	json_publish("sessions", out);
	free(out);
	close(dev);
	close(vm);
}

TEST(cli_json_monitor_one_object_per_line)
{
	char path[] = "/tmp/kvmas-monitor-XXXXXX", buf[1024] = "", want[96];
	int fd = mkstemp(path), dev, vm, status, n;
	char *line, *save = NULL;
	pid_t pid;

	ASSERT_GE(fd, 0);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		dup2(fd, 1);
		execl("./kvmas", "kvmas", "monitor", "--json", "--count", "2",
		      NULL);
		_exit(127);
	}
	usleep(500 * 1000);
	dev = kvmas_dev_open();
	vm = kvm_vm_create();
	ASSERT_GE(dev, 0);
	ASSERT_GE(vm, 0);
	ASSERT_EQ(0, kvmas_attach(dev, vm));
	close(dev);
	close(vm);
	for (n = 0; n < 50 && waitpid(pid, &status, WNOHANG) == 0; n++)
		usleep(100 * 1000);
	if (n == 50) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
	}
	ASSERT_TRUE(WIFEXITED(status)) TH_LOG("monitor did not see 2 events");
	EXPECT_EQ(0, WEXITSTATUS(status));
	n = pread(fd, buf, sizeof(buf) - 1, 0);
	ASSERT_GT(n, 0);
	snprintf(want, sizeof(want), "\"pid\": %d, ", getpid());
	n = 0;
	for (line = strtok_r(buf, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save), n++) {
		EXPECT_TRUE(json_valid(line, '{')) TH_LOG("%s", line);
		EXPECT_NE(NULL, strstr(line, want)) TH_LOG("%s", line);
		EXPECT_NE(NULL, strstr(line, n ? "{\"event\": \"detach\", " :
						 "{\"event\": \"attach\", "))
		TH_LOG("%s", line);
		json_publish("monitor", line);
	}
	EXPECT_EQ(2, n);
	close(fd);
	unlink(path);
}

/* ---- per-VM counters, events, dumps (KVMAS_NL_CMD_GET_VMS) ------------- */

/* The ids of this process' open sessions, in open order (= id order). */
static int my_sessions(uint64_t *ids, int max)
{
	char *out, *line, *save = NULL;
	int st, n = 0;
	unsigned long long id;
	int pid;

	out = run("./kvmas sessions", &st);
	if (!out || st) {
		printf("# kvmas sessions: status %#x: %s\n", st,
		       out ? out : "");
		free(out);
		return -1;
	}
	for (line = strtok_r(out, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save))
		if (sscanf(line, "%llu %d", &id, &pid) == 2 &&
		    pid == getpid() && n < max)
			ids[n++] = id;
	free(out);
	return n;
}

/* `kvmas stats --vm ID` (text), or NULL if it failed. */
static char *vm_stats(const char *id)
{
	char cmd[128];
	char *out;
	int st;

	snprintf(cmd, sizeof(cmd), "./kvmas stats --vm %s", id);
	out = run(cmd, &st);
	if (out && st) {
		free(out);
		return NULL;
	}
	return out;
}

static char *vm_stats_of(uint64_t session)
{
	char id[24];

	snprintf(id, sizeof(id), "%llu", (unsigned long long)session);
	return vm_stats(id);
}

/* The histogram lines "  [lo, hi)   N" of `stats --vm`, added up. */
static long hist_total(const char *out)
{
	const char *p = out;
	long total = 0;

	while ((p = strstr(p, "\n  ["))) {
		const char *eol = strchr(p + 1, '\n');
		const char *v = p + 1;

		while (eol ? v < eol : *v) {
			if (*v == ')')
				total += strtol(v + 1, NULL, 10);
			v++;
		}
		p++;
	}
	return total;
}

static long read_param(const char *name)
{
	char path[128];

	snprintf(path, sizeof(path),
		 "/sys/module/kvm_atomic_slots/parameters/%s", name);
	return read_long_file(path);
}

/*
 * A known sequence of commits, dry runs and rejects on VM A, another on
 * VM B, and a second session on A: each VM's counters count exactly its
 * own, both of A's sessions name the same counters, and the latency
 * histogram adds up to the commits.
 */
TEST(cli_vm_stats_count_exactly)
{
	struct kvmas_batch_op ops[2], big[KVMAS_MAX_BATCH_OPS + 1];
	int a = kvmas_dev_open(), a2 = kvmas_dev_open();
	int b = kvmas_dev_open(), vm_a = kvm_vm_create();
	int vm_b = kvm_vm_create();
	void *mem = guest_mem(0x40000);
	struct batch_res r;
	unsigned int gps = 0;
	uint64_t ids[8];
	char *sa, *sa2, *sb;
	long fence, inval, none;

	ASSERT_GE(a, 0);
	ASSERT_GE(a2, 0);
	ASSERT_GE(b, 0);
	ASSERT_GE(vm_a, 0);
	ASSERT_GE(vm_b, 0);
	ASSERT_NE(NULL, mem);
	ASSERT_EQ(0, kvmas_attach(a, vm_a));
	ASSERT_EQ(0, kvmas_attach(b, vm_b));
	/* a2 is opened before b, attached after: ids are open order. */
	ASSERT_EQ(0, kvmas_attach(a2, vm_a));
	ASSERT_EQ(3, my_sessions(ids, 8));

	/* A: two commits (3 ops), one via each of its sessions. */
	ops[0] = op(KVMAS_OP_CREATE, 5, 0x40000000, 0x10000, mem, 0);
	ops[1] = op(KVMAS_OP_CREATE, 6, 0x40010000, 0x10000,
		    (char *)mem + 0x10000, 0);
	r = commit(a, ops, 2, 0);
	ASSERT_EQ(0, r.err);
	gps += r.gps;
	ops[0] = del(6);
	r = commit(a2, ops, 1, 0);
	ASSERT_EQ(0, r.err);
	gps += r.gps;
	/* A: a dry run that passes, one that fails; neither is a commit. */
	ops[0] = op(KVMAS_OP_CREATE, 7, 0x40020000, 0x10000,
		    (char *)mem + 0x20000, 0);
	EXPECT_EQ(0, commit(a, ops, 1, KVMAS_BATCH_VALIDATE_ONLY).err);
	ops[0] = op(KVMAS_OP_CREATE, 7, 0x40000000, 0x10000,
		    (char *)mem + 0x20000, 0);
	EXPECT_EQ(-EEXIST, commit(a, ops, 1, KVMAS_BATCH_VALIDATE_ONLY).err);
	/* A: five rejects, one per errno bucket. */
	EXPECT_EQ(-EEXIST, commit(a, ops, 1, 0).err);
	ops[0] = op(KVMAS_OP_CREATE, 7, 0x40020001, 0x10000,
		    (char *)mem + 0x20000, 0);
	EXPECT_EQ(-EINVAL, commit(a2, ops, 1, 0).err);
	ops[0] = op(KVMAS_OP_MOVE, 9, 0x40030000, 0x10000,
		    (char *)mem + 0x30000, 0);
	EXPECT_EQ(-ENOENT, commit(a, ops, 1, 0).err);
	memset(big, 0, sizeof(big));
	EXPECT_EQ(-EMSGSIZE, commit(a, big, KVMAS_MAX_BATCH_OPS + 1, 0).err);
	EXPECT_EQ(-EFAULT, commit(a, (void *)8, 1, 0).err);
	/* B: one commit, one reject. */
	ops[0] = op(KVMAS_OP_CREATE, 5, 0x40000000, 0x10000, mem, 0);
	EXPECT_EQ(0, commit(b, ops, 1, 0).err);
	ops[0] = del(9);
	EXPECT_EQ(-EINVAL, commit(b, ops, 1, 0).err);

	sa = vm_stats_of(ids[0]);
	sa2 = vm_stats_of(ids[1]);
	sb = vm_stats_of(ids[2]);
	ASSERT_NE(NULL, sa);
	ASSERT_NE(NULL, sa2);
	ASSERT_NE(NULL, sb);
	/* Both sessions of A: the same VM, the same counters. */
	EXPECT_EQ(stat_value(sa, "vm_id"), stat_value(sa2, "vm_id"));
	EXPECT_NE(stat_value(sa, "vm_id"), stat_value(sb, "vm_id"));
	EXPECT_EQ(2, stat_value(sa, "sessions")) TH_LOG("%s", sa);
	EXPECT_EQ(1, stat_value(sb, "sessions")) TH_LOG("%s", sb);
	EXPECT_EQ(2, stat_value(sa, "batches")) TH_LOG("%s", sa);
	EXPECT_EQ(3, stat_value(sa, "batch_ops"));
	EXPECT_EQ(gps, stat_value(sa, "grace_periods"));
	fence = stat_value(sa, "route_fence");
	inval = stat_value(sa, "route_invalidate");
	none = stat_value(sa, "route_none");
	EXPECT_EQ(2, fence + inval + none);
	EXPECT_EQ(1, stat_value(sa, "dry_runs"));
	EXPECT_EQ(1, stat_value(sa, "dry_runs_rejected"));
	EXPECT_EQ(1, stat_value(sa, "rejected_EINVAL")) TH_LOG("%s", sa);
	EXPECT_EQ(1, stat_value(sa, "rejected_EEXIST"));
	EXPECT_EQ(1, stat_value(sa, "rejected_ENOENT"));
	EXPECT_EQ(1, stat_value(sa, "rejected_EMSGSIZE"));
	EXPECT_EQ(1, stat_value(sa, "rejected_EFAULT"));
	EXPECT_EQ(0, stat_value(sa, "rejected_other"));
	EXPECT_EQ(5, stat_value(sa, "rejected_total"));
	EXPECT_EQ(0, stat_value(sa, "ring_calls"));
	EXPECT_EQ(2, hist_total(sa)) TH_LOG("%s", sa);
	EXPECT_LE(stat_value(sa, "latency_max_ns"),
		  stat_value(sa, "latency_sum_ns"));
	EXPECT_LT(0, stat_value(sa, "latency_max_ns"));
	/* B counted only its own. */
	EXPECT_EQ(1, stat_value(sb, "batches")) TH_LOG("%s", sb);
	EXPECT_EQ(1, stat_value(sb, "batch_ops"));
	EXPECT_EQ(1, stat_value(sb, "rejected_EINVAL"));
	EXPECT_EQ(1, stat_value(sb, "rejected_total"));
	EXPECT_EQ(0, stat_value(sb, "dry_runs"));
	EXPECT_EQ(1, hist_total(sb)) TH_LOG("%s", sb);
	free(sa);
	free(sa2);
	free(sb);

	/* A lives on in a2 after a closes; with both gone it is gone. */
	close(a);
	sa2 = vm_stats_of(ids[1]);
	ASSERT_NE(NULL, sa2);
	EXPECT_EQ(1, stat_value(sa2, "sessions"));
	EXPECT_EQ(2, stat_value(sa2, "batches"));
	free(sa2);
	close(a2);
	EXPECT_EQ(NULL, vm_stats_of(ids[1]));
	close(b);
	close(vm_a);
	close(vm_b);
}

/* What `stats --vm` says when its VM is not there: ENOENT and why. */
TEST(cli_vm_stats_unknown)
{
	char cmd[160], *out;
	int st, idle = kvmas_dev_open();
	uint64_t ids[2];

	ASSERT_GE(idle, 0);
	out = run("./kvmas stats --vm kvm-999999999 2>&1", &st);
	ASSERT_NE(NULL, out);
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 1) TH_LOG("%s", out);
	EXPECT_NE(
		NULL,
		strstr(out,
		       "kvmas: stats --vm kvm-999999999: No such file or directory"))
	TH_LOG("%s", out);
	EXPECT_NE(
		NULL,
		strstr(out,
		       "kernel says: no VM with a session attached has that name"))
	TH_LOG("%s", out);
	free(out);

	out = run("./kvmas stats --vm 18446744073709551615 2>&1", &st);
	ASSERT_NE(NULL, out);
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 1) TH_LOG("%s", out);
	EXPECT_NE(NULL, strstr(out, "kernel says: no open session has that id"))
	TH_LOG("%s", out);
	free(out);

	ASSERT_EQ(1, my_sessions(ids, 2));
	snprintf(cmd, sizeof(cmd), "./kvmas stats --vm %llu 2>&1",
		 (unsigned long long)ids[0]);
	out = run(cmd, &st);
	ASSERT_NE(NULL, out);
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 1) TH_LOG("%s", out);
	EXPECT_NE(NULL,
		  strstr(out,
			 "kernel says: that session is not attached to a VM"))
	TH_LOG("%s", out);
	free(out);

	out = run("./kvmas stats --vm vm:0 2>&1", &st);
	ASSERT_NE(NULL, out);
	EXPECT_NE(NULL, strstr(out, "kernel says: no VM has that id"))
	TH_LOG("%s", out);
	free(out);

	/* --json: nothing on stdout, the explanation on stderr. */
	out = run("./kvmas stats --vm kvm-999999999 --json 2>/dev/null", &st);
	ASSERT_NE(NULL, out);
	EXPECT_STREQ("", out);
	free(out);
	close(idle);
}

TEST(cli_vm_stats_json)
{
	int st, dev = kvmas_dev_open(), vm = kvm_vm_create();
	char cmd[96], *out, want[96];
	void *mem = guest_mem(0x10000);
	struct kvmas_batch_op o;
	uint64_t id;

	ASSERT_GE(dev, 0);
	ASSERT_GE(vm, 0);
	ASSERT_EQ(0, kvmas_attach(dev, vm));
	o = op(KVMAS_OP_CREATE, 3, 0x40000000, 0x10000, mem, 0);
	ASSERT_EQ(0, commit(dev, &o, 1, 0).err);
	ASSERT_EQ(1, my_sessions(&id, 1));

	snprintf(cmd, sizeof(cmd), "./kvmas --json stats --vm %llu",
		 (unsigned long long)id);
	out = run(cmd, &st);
	ASSERT_NE(NULL, out);
	EXPECT_EQ(0, st);
	EXPECT_TRUE(json_valid(out, '[')) TH_LOG("%s", out);
	snprintf(want, sizeof(want),
		 "{\"vm\": \"kvm-%d\", \"vm_id\": ", getpid());
	EXPECT_NE(NULL, strstr(out, want)) TH_LOG("%s", out);
	EXPECT_NE(NULL, strstr(out, "\"batches\": 1,")) TH_LOG("%s", out);
	EXPECT_NE(NULL, strstr(out, "\"rejected\": {\"EINVAL\": 0, "))
	TH_LOG("%s", out);
	EXPECT_NE(NULL, strstr(out, "\"ring_stops\": {\"boundary\": 0, "))
	TH_LOG("%s", out);
	EXPECT_NE(NULL,
		  strstr(out, "\"latency_us\": [{\"from\": 0, \"to\": 1, "))
	TH_LOG("%s", out);
	json_publish("vmstats", out);
	free(out);

	/* By KVM's name: the same VM (this process has only this one). */
	snprintf(cmd, sizeof(cmd), "./kvmas stats --vm kvm-%d --json",
		 getpid());
	out = run(cmd, &st);
	ASSERT_NE(NULL, out);
	EXPECT_EQ(0, st);
	EXPECT_NE(NULL, strstr(out, want)) TH_LOG("%s", out);
	free(out);

	out = run("./kvmas vms --json", &st);
	ASSERT_NE(NULL, out);
	EXPECT_EQ(0, st);
	EXPECT_TRUE(json_valid(out, '[')) TH_LOG("%s", out);
	EXPECT_NE(NULL, strstr(out, want)) TH_LOG("%s", out);
	json_publish("vms", out);
	free(out);

	out = run("./kvmas vms", &st);
	ASSERT_NE(NULL, out);
	EXPECT_EQ(0, st);
	snprintf(want, sizeof(want), " kvm-%d ", getpid());
	EXPECT_NE(NULL, strstr(out, want)) TH_LOG("%s", out);
	EXPECT_EQ(0, strncmp(out, "VM_ID", 5)) TH_LOG("%s", out);
	free(out);
	close(dev);
	close(vm);
}

/* `kvmas monitor --json` in the background, into a temp file. */
struct mon {
	char path[32];
	int fd;
	pid_t pid;
};

static int mon_start(struct mon *m)
{
	strcpy(m->path, "/tmp/kvmas-mon-XXXXXX");
	m->fd = mkstemp(m->path);
	if (m->fd < 0)
		return -1;
	m->pid = fork();
	if (m->pid < 0)
		return -1;
	if (m->pid == 0) {
		dup2(m->fd, 1);
		execl("./kvmas", "kvmas", "monitor", "--json", NULL);
		_exit(127);
	}
	return 0;
}

/* The monitor's output so far (malloc'd). */
static char *mon_read(struct mon *m)
{
	off_t len = lseek(m->fd, 0, SEEK_END);
	char *buf = malloc(len + 1);

	if (!buf)
		return NULL;
	if (pread(m->fd, buf, len, 0) != len)
		len = 0;
	buf[len] = 0;
	return buf;
}

/* Waits until the monitor printed @needle; 0 or -1 after 10 s. */
static int mon_wait(struct mon *m, const char *needle)
{
	int i;

	for (i = 0; i < 200; i++) {
		char *buf = mon_read(m);
		int hit = buf && strstr(buf, needle);

		free(buf);
		if (hit)
			return 0;
		usleep(50 * 1000);
	}
	return -1;
}

static void mon_stop(struct mon *m)
{
	int status;

	kill(m->pid, SIGTERM);
	waitpid(m->pid, &status, 0);
	close(m->fd);
	unlink(m->path);
}

static int count_lines(const char *buf, const char *a, const char *b);

/*
 * A session attached to @vm once the monitor is known to listen (it
 * printed the attach: a session attached before it joined is closed and
 * another one attached). The session's fd, or -1.
 */
static int mon_attach(struct mon *m, int vm)
{
	char mine[64], *buf;
	int i, dev, seen;

	snprintf(mine, sizeof(mine), "\"pid\": %d,", getpid());
	for (i = 0; i < 20; i++) {
		dev = kvmas_dev_open();
		if (dev < 0 || kvmas_attach(dev, vm))
			return -1;
		usleep(250 * 1000);
		buf = mon_read(m);
		seen = buf && count_lines(buf, "\"event\": \"attach\"", mine);
		free(buf);
		if (seen)
			return dev;
		close(dev);
	}
	return -1;
}

/* Lines of @buf containing both @a and @b. */
static int count_lines(const char *buf, const char *a, const char *b)
{
	const char *p = buf, *eol;
	int n = 0;

	for (; *p; p = eol + 1) {
		char line[1024];
		size_t len;

		eol = strchr(p, '\n');
		if (!eol)
			break;
		len = eol - p < (long)sizeof(line) - 1 ? (size_t)(eol - p) :
							 sizeof(line) - 1;
		memcpy(line, p, len);
		line[len] = 0;
		n += strstr(line, a) && strstr(line, b);
	}
	return n;
}

static uint64_t now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/*
 * A flood of rejected batches reaches listeners as at most the VM's burst
 * of events per interval; the rest is counted as suppressed. Without a
 * listener nothing is generated (nor counted).
 */
TEST(events_rejected_batches_rate_limited)
{
	long burst = read_param("events_burst");
	long interval = read_param("events_interval_ms");
	int dev = kvmas_dev_open(), vm = kvm_vm_create(), i, n, flood;
	char *buf, *stats, mine[64];
	struct kvmas_batch_op ops[2];
	void *mem = guest_mem(0x10000);
	uint64_t id, t0, elapsed;
	struct mon m;
	long limit;

	ASSERT_LT(0, burst);
	ASSERT_LT(0, interval);
	ASSERT_GE(dev, 0);
	ASSERT_GE(vm, 0);
	flood = 5 * burst + 20;

	/* No listener: rejects are counted, no event is made or suppressed. */
	ASSERT_EQ(0, kvmas_attach(dev, vm));
	ASSERT_EQ(1, my_sessions(&id, 1));
	ops[0] = op(KVMAS_OP_CREATE, 3, 0x40000000, 0x10000, mem, 0);
	ops[1] = del(9);
	for (i = 0; i < 3; i++)
		ASSERT_EQ(-EINVAL, commit(dev, ops, 2, 0).err);
	stats = vm_stats_of(id);
	ASSERT_NE(NULL, stats);
	EXPECT_EQ(3, stat_value(stats, "rejected_EINVAL"));
	EXPECT_EQ(0, stat_value(stats, "events_sent"));
	EXPECT_EQ(0, stat_value(stats, "events_suppressed"));
	free(stats);
	close(dev);
	close(vm);

	/* Subscribed (it saw our attach), then the flood on a fresh VM. */
	ASSERT_EQ(0, mon_start(&m));
	usleep(200 * 1000);
	vm = kvm_vm_create();
	ASSERT_GE(vm, 0);
	dev = mon_attach(&m, vm);
	ASSERT_LE(0, dev) TH_LOG("the monitor never saw an attach");
	snprintf(mine, sizeof(mine), "\"pid\": %d,", getpid());
	ASSERT_EQ(1, my_sessions(&id, 1));

	t0 = now_ms();
	for (i = 0; i < flood; i++)
		ASSERT_EQ(-EINVAL, commit(dev, ops, 2, 0).err);
	elapsed = now_ms() - t0;
	/* Events are multicast synchronously: the last one is out. */
	usleep(500 * 1000);
	buf = mon_read(&m);
	mon_stop(&m);
	ASSERT_NE(NULL, buf);
	n = count_lines(buf, "\"event\": \"batch_rejected\"", mine);
	limit = burst * (1 + (long)(elapsed / interval));
	TH_LOG("%d rejects in %llu ms: %d events (limit %ld)", flood,
	       (unsigned long long)elapsed, n, limit);
	EXPECT_LE(1, n) TH_LOG("%s", buf);
	EXPECT_GE(limit, n) TH_LOG("%s", buf);
	/* The first: the batch's errno, failing op and size. */
	EXPECT_NE(NULL,
		  strstr(buf, "\"event\": \"batch_rejected\", \"type\": 3, "))
	TH_LOG("%s", buf);
	EXPECT_NE(
		NULL,
		strstr(buf,
		       "\"errno\": 22, \"error\": \"EINVAL\", \"error_index\": 1, \"nr_ops\": 2, \"flags\": 0, \"suppressed\": 0}"))
	TH_LOG("%s", buf);
	{
		char *line = strstr(buf, "{\"event\": \"batch_rejected\"");
		char *eol = line ? strchr(line, '\n') : NULL;

		if (eol) {
			*eol = 0;
			EXPECT_TRUE(json_valid(line, '{')) TH_LOG("%s", line);
			json_publish("monitor", line);
		}
	}
	free(buf);

	stats = vm_stats_of(id);
	ASSERT_NE(NULL, stats);
	EXPECT_EQ(flood, stat_value(stats, "rejected_EINVAL"))
	TH_LOG("%s", stats);
	EXPECT_EQ(n, stat_value(stats, "events_sent")) TH_LOG("%s", stats);
	EXPECT_EQ(flood - n, stat_value(stats, "events_suppressed"))
	TH_LOG("%s", stats);
	free(stats);
	close(dev);
	close(vm);
}

static int reset_raw(int dev, struct kvmas_ring_vcpu *v, unsigned int n,
		     unsigned int flags, unsigned int max_entries)
{
	struct kvmas_reset_ring c = {
		.size = sizeof(c),
		.flags = flags,
		.nr_vcpus = n,
		.vcpu_size = sizeof(*v),
		.vcpus = (uintptr_t)v,
		.max_entries = max_entries,
	};

	return sys_ret(ioctl(dev, KVMAS_RESET_RING, &c));
}

/*
 * Ring resets counted by stop reason, entries and invalid entries; each
 * anomaly (a producer stop, invalid entries reset, a stop in front of an
 * invalid entry) announced by one event naming the first vCPU with one.
 */
TEST(events_ring_anomalies)
{
	struct kvmas_ring_vcpu v[2];
	struct kvmas_batch_op o;
	struct ringvm r;
	char *buf, *stats, mine[64];
	uint64_t id;
	uint64_t size = (uint64_t)10 * 2 * RV_PAGE;
	struct mon m;
	int dev;

	RV_NEED_RING();
	ASSERT_EQ(0, rv_create(&r, 2, RV_RING_ENTRIES, 10));
	ASSERT_EQ(0, mon_start(&m));
	usleep(200 * 1000);
	snprintf(mine, sizeof(mine), "\"pid\": %d,", getpid());
	dev = mon_attach(&m, r.vm);
	ASSERT_LE(0, dev) TH_LOG("the monitor never saw an attach");
	ASSERT_EQ(1, my_sessions(&id, 1));

	/* 1: both rings, 10 entries each; a bound of 10 for the call. */
	ASSERT_EQ(0, rv_run_pass(&r, 0));
	ASSERT_EQ(0, rv_run_pass(&r, 1));
	ASSERT_EQ(10, rv_harvest(&r, 0));
	ASSERT_EQ(10, rv_harvest(&r, 1));
	memset(v, 0, sizeof(v));
	v[0] = (struct kvmas_ring_vcpu){ .vcpu_id = 0, .boundary = r.fetch[0] };
	/* Garbage in the out fields of an entry the call will not walk. */
	v[1] = (struct kvmas_ring_vcpu){
		.vcpu_id = 1, .boundary = r.fetch[1], .reset = 77, .invalid = 55
	};
	ASSERT_EQ(0, reset_raw(dev, v, 2, 0, 10));
	EXPECT_EQ(10, v[0].reset);
	EXPECT_EQ(KVMAS_RING_STOP_BOUNDARY, v[0].stop_reason);
	EXPECT_EQ(KVMAS_RING_STOP_BOUND, v[1].stop_reason);
	EXPECT_EQ(0, v[1].reset);
	EXPECT_EQ(0, v[1].invalid);
	/* 2: the rest of vCPU 1. */
	v[0] = (struct kvmas_ring_vcpu){ .vcpu_id = 1, .boundary = r.fetch[1] };
	ASSERT_EQ(0, reset_raw(dev, v, 1, 0, 0));
	EXPECT_EQ(10, v[0].reset);
	/* 3: a boundary past what KVM pushed: PRODUCER (anomaly 1). */
	ASSERT_EQ(0, rv_run_pass(&r, 0));
	ASSERT_EQ(10, rv_harvest(&r, 0));
	v[0] = (struct kvmas_ring_vcpu){ .vcpu_id = 0,
					 .boundary = r.fetch[0] + 5 };
	ASSERT_EQ(0, reset_raw(dev, v, 1, 0, 0));
	EXPECT_EQ(KVMAS_RING_STOP_PRODUCER, v[0].stop_reason);
	EXPECT_EQ(10, v[0].reset);
	/* 4: entries whose slot is gone: reset as invalid (anomaly 2). */
	ASSERT_EQ(0, rv_run_pass(&r, 0));
	ASSERT_EQ(0, rv_run_pass(&r, 1));
	ASSERT_EQ(10, rv_harvest(&r, 0));
	ASSERT_EQ(10, rv_harvest(&r, 1));
	o = del(RV_DATA_SLOT);
	ASSERT_EQ(0, commit(dev, &o, 1, 0).err);
	v[0] = (struct kvmas_ring_vcpu){ .vcpu_id = 0, .boundary = r.fetch[0] };
	v[1] = (struct kvmas_ring_vcpu){ .vcpu_id = 1, .boundary = r.fetch[1] };
	ASSERT_EQ(0, reset_raw(dev, v, 2, 0, 0));
	EXPECT_EQ(10, v[0].invalid);
	EXPECT_EQ(10, v[1].invalid);
	/* 5: the slot back, a pass, gone again: STOP_INVALID stops (anomaly 3). */
	o = op(KVMAS_OP_CREATE, RV_DATA_SLOT, RV_DATA_GPA, size, r.data,
	       KVM_MEM_LOG_DIRTY_PAGES);
	ASSERT_EQ(0, commit(dev, &o, 1, 0).err);
	ASSERT_EQ(0, rv_run_pass(&r, 0));
	ASSERT_EQ(10, rv_harvest(&r, 0));
	o = del(RV_DATA_SLOT);
	ASSERT_EQ(0, commit(dev, &o, 1, 0).err);
	v[0] = (struct kvmas_ring_vcpu){ .vcpu_id = 0, .boundary = r.fetch[0] };
	ASSERT_EQ(0, reset_raw(dev, v, 1, KVMAS_RING_RESET_STOP_INVALID, 0));
	EXPECT_EQ(KVMAS_RING_STOP_INVALID, v[0].stop_reason);
	EXPECT_EQ(0, v[0].reset);

	stats = vm_stats_of(id);
	ASSERT_NE(NULL, stats);
	EXPECT_EQ(5, stat_value(stats, "ring_calls")) TH_LOG("%s", stats);
	EXPECT_EQ(50, stat_value(stats, "ring_entries"));
	EXPECT_EQ(20, stat_value(stats, "ring_invalid"));
	EXPECT_EQ(4, stat_value(stats, "ring_stop_boundary"));
	EXPECT_EQ(1, stat_value(stats, "ring_stop_bound"));
	EXPECT_EQ(1, stat_value(stats, "ring_stop_producer"));
	EXPECT_EQ(1, stat_value(stats, "ring_stop_invalid"));
	EXPECT_EQ(0, stat_value(stats, "ring_stop_not_collected"));
	EXPECT_EQ(3, stat_value(stats, "batches"));
	EXPECT_EQ(3, stat_value(stats, "events_sent"));
	free(stats);

	ASSERT_EQ(0, mon_wait(&m, "\"stop_reason\": \"invalid\""));
	buf = mon_read(&m);
	mon_stop(&m);
	ASSERT_NE(NULL, buf);
	EXPECT_EQ(3, count_lines(buf, "\"event\": \"ring_anomaly\"", mine))
	TH_LOG("%s", buf);
	EXPECT_EQ(
		1,
		count_lines(
			buf,
			"\"stop_reason\": \"producer\", \"vcpu\": 0, \"vcpus\": 1, \"invalid_entries\": 0,",
			mine))
	TH_LOG("%s", buf);
	EXPECT_EQ(
		1,
		count_lines(
			buf,
			"\"stop_reason\": \"boundary\", \"vcpu\": 0, \"vcpus\": 2, \"invalid_entries\": 20,",
			mine))
	TH_LOG("%s", buf);
	EXPECT_EQ(
		1,
		count_lines(
			buf,
			"\"stop_reason\": \"invalid\", \"vcpu\": 0, \"vcpus\": 1, \"invalid_entries\": 0,",
			mine))
	TH_LOG("%s", buf);
	free(buf);
	close(dev);
	rv_destroy(&r);
}

/* ---- a raw generic netlink client: dumps as the kernel sends them ------ */

struct nlc {
	int sock;
	uint16_t family;
	uint32_t seq;
};

/* A request: generic netlink header and at most one u64 attribute. */
static int nlc_send(struct nlc *c, uint16_t type, uint16_t flags, uint8_t cmd,
		    uint16_t attr, const void *val, size_t len)
{
	union {
		struct nlmsghdr h;
		char b[256];
	} m;
	struct genlmsghdr *g;
	struct nlattr *a;

	memset(&m, 0, sizeof(m));
	m.h.nlmsg_type = type;
	m.h.nlmsg_flags = NLM_F_REQUEST | flags;
	m.h.nlmsg_seq = ++c->seq;
	m.h.nlmsg_len = NLMSG_LENGTH(GENL_HDRLEN);
	g = NLMSG_DATA(&m.h);
	g->cmd = cmd;
	g->version = type == GENL_ID_CTRL ? 1 : KVMAS_GENL_VERSION;
	if (attr) {
		a = (struct nlattr *)((char *)&m + NLMSG_ALIGN(m.h.nlmsg_len));
		a->nla_type = attr;
		a->nla_len = NLA_HDRLEN + len;
		memcpy((char *)a + NLA_HDRLEN, val, len);
		m.h.nlmsg_len =
			NLMSG_ALIGN(m.h.nlmsg_len) + NLA_ALIGN(a->nla_len);
	}
	return send(c->sock, &m, m.h.nlmsg_len, 0) < 0 ? -errno : 0;
}

static const void *nlc_attr(const struct nlmsghdr *h, uint16_t type,
			    uint16_t *len)
{
	const char *p = (const char *)NLMSG_DATA(h) + GENL_HDRLEN;
	int l = h->nlmsg_len - NLMSG_LENGTH(GENL_HDRLEN);
	const struct nlattr *a;

	for (; l >= NLA_HDRLEN;
	     p += NLA_ALIGN(a->nla_len), l -= NLA_ALIGN(a->nla_len)) {
		a = (const struct nlattr *)p;
		if (a->nla_len < NLA_HDRLEN || a->nla_len > l)
			break;
		if ((a->nla_type & NLA_TYPE_MASK) == type) {
			if (len)
				*len = a->nla_len - NLA_HDRLEN;
			return p + NLA_HDRLEN;
		}
	}
	return NULL;
}

static uint64_t nlc_u64(const struct nlmsghdr *h, uint16_t type, int *have)
{
	const void *a = nlc_attr(h, type, NULL);
	uint64_t v = 0;

	if (a)
		memcpy(&v, a, sizeof(v));
	else
		*have = 0;
	return v;
}

/*
 * Receives the answer to the last request in @bufsz-byte reads (which is
 * also the kernel's part size for dumps), pausing @pause_us between reads;
 * @fn gets each message of the family. Returns 0 or -errno; *@intr counts
 * messages flagged NLM_F_DUMP_INTR (NLMSG_DONE included).
 */
static int nlc_recv(struct nlc *c, uint16_t type, size_t bufsz, int pause_us,
		    void (*fn)(const struct nlmsghdr *h, void *arg), void *arg,
		    int *intr)
{
	char *buf = malloc(bufsz);
	struct nlmsghdr *h;
	ssize_t l;
	int ret = -EIO;

	if (!buf)
		return -ENOMEM;
	for (;;) {
		/* MSG_TRUNC: the real length, to catch a part we cut short. */
		l = recv(c->sock, buf, bufsz, MSG_TRUNC);
		if (l < 0) {
			ret = -errno;
			break;
		}
		if ((size_t)l > bufsz) {
			ret = -EMSGSIZE;
			break;
		}
		for (h = (struct nlmsghdr *)buf; NLMSG_OK(h, l);
		     h = NLMSG_NEXT(h, l)) {
			if (h->nlmsg_seq != c->seq)
				continue;
			if (intr && (h->nlmsg_flags & NLM_F_DUMP_INTR))
				(*intr)++;
			if (h->nlmsg_type == NLMSG_ERROR) {
				ret = ((struct nlmsgerr *)NLMSG_DATA(h))->error;
				goto out;
			}
			if (h->nlmsg_type == NLMSG_DONE) {
				int e = 0;

				if (h->nlmsg_len >= NLMSG_LENGTH(sizeof(e)))
					memcpy(&e, NLMSG_DATA(h), sizeof(e));
				ret = e;
				goto out;
			}
			if (h->nlmsg_type == type)
				fn(h, arg);
		}
		if (pause_us)
			usleep(pause_us);
	}
out:
	free(buf);
	return ret;
}

static void nlc_family(const struct nlmsghdr *h, void *arg)
{
	const void *id = nlc_attr(h, CTRL_ATTR_FAMILY_ID, NULL);

	if (id)
		memcpy(arg, id, sizeof(uint16_t));
}

static int nlc_open(struct nlc *c)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	int r;

	memset(c, 0, sizeof(*c));
	c->sock = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC);
	if (c->sock < 0 || bind(c->sock, (struct sockaddr *)&sa, sizeof(sa)))
		return -errno;
	r = nlc_send(c, GENL_ID_CTRL, NLM_F_ACK, CTRL_CMD_GETFAMILY,
		     CTRL_ATTR_FAMILY_NAME, KVMAS_GENL_NAME,
		     sizeof(KVMAS_GENL_NAME));
	/*
	 * The kernel sizes a dump's parts by the largest read seen on the
	 * socket: every read here is 4 KiB, so dumps come in small parts.
	 */
	r = r	  ?:
		    nlc_recv(c, GENL_ID_CTRL, 4096, 0, nlc_family, &c->family,
			     NULL);
	return r ?: (c->family ? 0 : -ENOENT);
}

/* One dump's view: ids in the order received, and what was wrong. */
#define DUMP_MAX 4096
struct dump_view {
	int vms; /* GET_VMS, else GET_SESSIONS */
	unsigned int n;
	uint64_t id[DUMP_MAX];
	unsigned int torn; /* messages missing a mandatory attribute */
	unsigned int mine_bad; /* our entries with wrong contents */
	char name[32]; /* our VMs' name */
};

static void dump_entry(const struct nlmsghdr *h, void *arg)
{
	struct dump_view *d = arg;
	uint16_t len = 0;
	const char *name;
	int have = 1;
	uint64_t id;

	if (d->vms) {
		id = nlc_u64(h, KVMAS_NL_A_VM_ID, &have);
		name = nlc_attr(h, KVMAS_NL_A_SESSION_VM_STATS_ID, &len);
		if (!name || !nlc_attr(h, KVMAS_NL_A_VM_SESSIONS, NULL) ||
		    !nlc_attr(h, KVMAS_NL_A_VM_BATCHES, NULL) ||
		    !nlc_attr(h, KVMAS_NL_A_VM_REJECTED, NULL) ||
		    !nlc_attr(h, KVMAS_NL_A_VM_LATENCY, NULL) ||
		    !nlc_attr(h, KVMAS_NL_A_VM_RING_STOPS, NULL) ||
		    !nlc_attr(h, KVMAS_NL_A_VM_EVENTS_SUPPRESSED, NULL))
			have = 0;
		/* Ours: one session each, one commit each. */
		if (have && !strcmp(name, d->name) &&
		    (*(const uint32_t *)nlc_attr(h, KVMAS_NL_A_VM_SESSIONS,
						 NULL) != 1 ||
		     nlc_u64(h, KVMAS_NL_A_VM_BATCHES, &have) != 1))
			d->mine_bad++;
	} else {
		const void *pid = nlc_attr(h, KVMAS_NL_A_SESSION_PID, NULL);

		id = nlc_u64(h, KVMAS_NL_A_SESSION_ID, &have);
		if (!pid)
			have = 0;
	}
	if (!have)
		d->torn++;
	if (d->n < DUMP_MAX)
		d->id[d->n] = id;
	d->n++;
}

/* Attaches and detaches sessions and VMs in a loop until @deadline_ms. */
static void churn(uint64_t deadline_ms)
{
	while (now_ms() < deadline_ms) {
		int dev = kvmas_dev_open(), dev2 = kvmas_dev_open();
		int vm = kvm_vm_create();

		if (dev < 0 || dev2 < 0 || vm < 0)
			_exit(1);
		if (kvmas_attach(dev, vm))
			_exit(2);
		/* Every other round a second session on the same VM. */
		if ((now_ms() & 1) && kvmas_attach(dev2, vm))
			_exit(3);
		close(dev);
		close(dev2);
		close(vm);
	}
	_exit(0);
}

/*
 * Holds @n sessions opened before the test's own (so with lower ids, ahead
 * of them in every list), and closes them one by one once told to go:
 * removals in front of the entries a dump must not lose or repeat.
 */
static pid_t early_holder(int n, int *go)
{
	int ready[2], start[2], *fds, i;
	char c = 0;
	pid_t pid;

	if (pipe(ready) || pipe(start))
		return -1;
	pid = fork();
	if (pid)
		goto parent;
	fds = calloc(n, sizeof(*fds));
	for (i = 0; i < n; i++) {
		if (!fds || (fds[i] = kvmas_dev_open()) < 0)
			_exit(1);
		/* One in four with a VM of its own: VMs ahead of ours too. */
		if (!(i % 4) && kvmas_attach(fds[i], kvm_vm_create()))
			_exit(1);
	}
	if (write(ready[1], &c, 1) != 1 || read(start[0], &c, 1) != 1)
		_exit(2);
	for (i = 0; i < n; i++) {
		close(fds[i]);
		usleep(40 * 1000);
	}
	_exit(0);
parent:
	close(ready[1]);
	close(start[0]);
	*go = start[1];
	if (pid < 0 || read(ready[0], &c, 1) != 1)
		pid = -1;
	close(ready[0]);
	return pid;
}

#define STATIC_VMS 10
#define IDLE_SESSIONS 150
#define CHURNERS 2
#define EARLY_SESSIONS 60

/*
 * Dumps of sessions and of VMs, read in small parts with pauses while two
 * other processes attach and detach in a loop and a third closes sessions
 * and VMs listed ahead of ours: every dump lists its ids in increasing
 * order, never one twice, always the entries that lived through it, each
 * message whole; a dump that raced a change is flagged (NLM_F_DUMP_INTR).
 * The CLI's listings stay valid JSON meanwhile.
 */
TEST(dumps_consistent_while_vms_come_and_go)
{
	static struct dump_view d;
	int devs[STATIC_VMS], vms[STATIC_VMS], idle[IDLE_SESSIONS];
	uint64_t static_vm[STATIC_VMS], static_sess[STATIC_VMS + IDLE_SESSIONS];
	unsigned int nvm = 0, nsess = 0, i, j, k, dumps[2] = { 0 };
	unsigned int intr[2] = { 0 }, bad = 0, cli = 0;
	void *mem = guest_mem(0x10000);
	pid_t kids[CHURNERS], early;
	uint64_t deadline;
	struct nlc c;
	int status, go;

	ASSERT_NE(NULL, mem);
	early = early_holder(EARLY_SESSIONS, &go);
	ASSERT_LT(0, early);
	for (i = 0; i < STATIC_VMS; i++) {
		struct kvmas_batch_op o =
			op(KVMAS_OP_CREATE, 1, 0x40000000, 0x10000, mem, 0);

		devs[i] = kvmas_dev_open();
		vms[i] = kvm_vm_create();
		ASSERT_GE(devs[i], 0);
		ASSERT_GE(vms[i], 0);
		ASSERT_EQ(0, kvmas_attach(devs[i], vms[i]));
		ASSERT_EQ(0, commit(devs[i], &o, 1, 0).err);
	}
	for (i = 0; i < IDLE_SESSIONS; i++)
		ASSERT_LE(0, idle[i] = kvmas_dev_open());
	ASSERT_EQ(0, nlc_open(&c));

	/* Before the churn: our VMs and sessions, as the kernel lists them. */
	memset(&d, 0, sizeof(d));
	d.vms = 1;
	snprintf(d.name, sizeof(d.name), "kvm-%d", getpid());
	ASSERT_EQ(0, nlc_send(&c, c.family, NLM_F_DUMP, KVMAS_NL_CMD_GET_VMS,
			      KVMAS_NL_A_SESSION_VM_STATS_ID, d.name,
			      strlen(d.name) + 1));
	ASSERT_EQ(0, nlc_recv(&c, c.family, 4096, 0, dump_entry, &d, NULL));
	ASSERT_EQ(STATIC_VMS, d.n);
	memcpy(static_vm, d.id, sizeof(static_vm));
	nvm = d.n;
	{
		uint64_t ids[STATIC_VMS + IDLE_SESSIONS];
		int n = my_sessions(ids, STATIC_VMS + IDLE_SESSIONS);

		ASSERT_EQ(STATIC_VMS + IDLE_SESSIONS, n);
		memcpy(static_sess, ids, sizeof(ids));
		nsess = n;
	}

	deadline = now_ms() + 4000;
	ASSERT_EQ(1, write(go, "", 1));
	close(go);
	for (k = 0; k < CHURNERS; k++) {
		kids[k] = fork();
		ASSERT_GE(kids[k], 0);
		if (!kids[k])
			churn(deadline);
	}
	for (k = 0; now_ms() < deadline; k++) {
		int vms_dump = k & 1, r, in = 0;
		uint64_t *want = vms_dump ? static_vm : static_sess;
		unsigned int nwant = vms_dump ? nvm : nsess;

		memset(&d, 0, sizeof(d));
		d.vms = vms_dump;
		snprintf(d.name, sizeof(d.name), "kvm-%d", getpid());
		ASSERT_EQ(0, nlc_send(&c, c.family, NLM_F_DUMP,
				      vms_dump ? KVMAS_NL_CMD_GET_VMS :
						 KVMAS_NL_CMD_GET_SESSIONS,
				      0, NULL, 0));
		r = nlc_recv(&c, c.family, 4096, 2000, dump_entry, &d, &in);
		ASSERT_EQ(0, r) TH_LOG("dump %u: %s", k, strerror(-r));
		ASSERT_GT(DUMP_MAX, d.n);
		dumps[vms_dump]++;
		intr[vms_dump] += !!in;
		EXPECT_EQ(0, d.torn);
		EXPECT_EQ(0, d.mine_bad);
		for (i = 1; i < d.n; i++)
			if (d.id[i] <= d.id[i - 1]) {
				bad++;
				TH_LOG("dump %u: id %llu after %llu", k,
				       (unsigned long long)d.id[i],
				       (unsigned long long)d.id[i - 1]);
			}
		for (j = 0; j < nwant; j++) {
			for (i = 0; i < d.n && d.id[i] != want[j]; i++)
				;
			if (i == d.n) {
				bad++;
				TH_LOG("dump %u (%s): %llu missing", k,
				       vms_dump ? "vms" : "sessions",
				       (unsigned long long)want[j]);
			}
		}
		/* The CLI between raw dumps: one valid document each time. */
		if (k % 8 == 7) {
			char *out = run(vms_dump ? "./kvmas vms --json" :
						   "./kvmas sessions --json",
					&status);

			ASSERT_NE(NULL, out);
			EXPECT_EQ(0, status) TH_LOG("%s", out);
			EXPECT_TRUE(json_valid(out, '[')) TH_LOG("%s", out);
			free(out);
			cli++;
		}
	}
	for (k = 0; k < CHURNERS; k++) {
		ASSERT_EQ(kids[k], waitpid(kids[k], &status, 0));
		EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
		TH_LOG("churner %u: status %#x", k, status);
	}
	ASSERT_EQ(early, waitpid(early, &status, 0));
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
	TH_LOG("early holder: status %#x", status);
	EXPECT_EQ(0, bad);
	EXPECT_LT(0, dumps[0]);
	EXPECT_LT(0, dumps[1]);
	TH_LOG("%u session dumps (%u flagged interrupted), %u VM dumps (%u flagged), %u CLI listings",
	       dumps[0], intr[0], dumps[1], intr[1], cli);

	/* Quiet again: a dump is not flagged. */
	memset(&d, 0, sizeof(d));
	{
		int in = 0;

		ASSERT_EQ(0, nlc_send(&c, c.family, NLM_F_DUMP,
				      KVMAS_NL_CMD_GET_SESSIONS, 0, NULL, 0));
		ASSERT_EQ(0,
			  nlc_recv(&c, c.family, 4096, 0, dump_entry, &d, &in));
		EXPECT_EQ(0, in);
	}
	/* A filter that names nothing: ENOENT before the dump starts. */
	{
		uint64_t none = ~0ULL;

		ASSERT_EQ(0, nlc_send(&c, c.family, NLM_F_DUMP,
				      KVMAS_NL_CMD_GET_VMS, KVMAS_NL_A_VM_ID,
				      &none, sizeof(none)));
		EXPECT_EQ(-ENOENT, nlc_recv(&c, c.family, 4096, 0, dump_entry,
					    &d, NULL));
		/* An attribute GET_VMS does not take: refused (strict). */
		ASSERT_EQ(0,
			  nlc_send(&c, c.family, NLM_F_DUMP,
				   KVMAS_NL_CMD_GET_VMS, KVMAS_NL_A_VM_BATCHES,
				   &none, sizeof(none)));
		EXPECT_EQ(-EINVAL, nlc_recv(&c, c.family, 4096, 0, dump_entry,
					    &d, NULL));
	}
	close(c.sock);
	for (i = 0; i < IDLE_SESSIONS; i++)
		close(idle[i]);
	for (i = 0; i < STATIC_VMS; i++) {
		close(devs[i]);
		close(vms[i]);
	}
}

/* libkvmas against the real module: what a VMM would do. */
TEST(library_round_trip)
{
	struct kvmas *s;
	struct kvmas_vm_info info;
	struct kvmas_slot *slots = NULL;
	unsigned int nr = 0, i;
	__u64 gen[KVMAS_MAX_AS];
	int vm = kvm_vm_create();
	uint8_t *mem = guest_mem(64 << 20);

	ASSERT_GE(vm, 0);
	ASSERT_NE(NULL, mem);
	/* More slots than the library's first guess, to exercise its retry. */
	for (i = 0; i < 40; i++)
		ASSERT_EQ(0, kvm_set_slot(vm, 0, i, 0, (uint64_t)i << 20,
					  1 << 20, mem + ((size_t)i << 20)));
	ASSERT_EQ(0, kvmas_open(&s));
	EXPECT_EQ(-ENOTCONN, kvmas_get_vm_info(s, &info));
	EXPECT_NE(0,
		  strlen(kvmas_error_string(KVMAS_CMD_GET_VM_INFO, -ENOTCONN)));
	ASSERT_EQ(0, kvmas_attach_vm(s, vm));
	EXPECT_EQ(-EBUSY, kvmas_attach_vm(s, vm));
	ASSERT_EQ(0, kvmas_get_vm_info(s, &info));
	EXPECT_EQ(40, info.user_slots[0]);
	ASSERT_EQ(0, kvmas_get_layout(s, KVMAS_LAYOUT_ALL_AS, 0, &slots, &nr,
				      gen));
	ASSERT_EQ(40, nr);
	for (i = 0; i < nr; i++) {
		EXPECT_EQ(i, slots[i].slot);
		EXPECT_EQ((uint64_t)i << 20, slots[i].guest_phys_addr);
	}
	EXPECT_EQ(info.generation[0], gen[0]);
	kvmas_free(slots);
	kvmas_close(s);
	close(vm);
}

TEST_HARNESS_MAIN
