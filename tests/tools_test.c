// SPDX-License-Identifier: GPL-2.0
/*
 * The operator CLI (generic netlink: stats, sessions, events) and libkvmas
 * against the real module. The CLI binary is ./kvmas in the payload.
 */
#include <ctype.h>
#include <signal.h>
#include <sys/wait.h>

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
	snprintf(want, sizeof(want),
		 "\"pid\": %d, \"attached\": true, \"vm\": \"kvm-%d\"}",
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
