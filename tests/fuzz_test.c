// SPDX-License-Identifier: GPL-2.0
/*
 * Seeded, structure-aware ioctl fuzzer for /dev/kvm-atomic-slots, run in
 * the guest while two vCPUs execute and write guest memory with the dirty
 * ring on (each vCPU thread harvests and resets its own ring between
 * passes, through the module).
 *
 * Every command of the device, with: sizes 0, short, exact, long with a
 * zero and with a non-zero tail, huge; random flags and reserved fields;
 * pointers NULL, unmapped, read-only, kernel addresses, guard pages, and
 * structs straddling into a guard page; batches of valid-looking ops drawn
 * from a model of the layout and of garbage ops, up to and beyond the op
 * limit; ring-reset arrays with real and bogus vCPU ids, boundaries, flags
 * and bounds; unknown commands and wrongly encoded ioctl numbers.
 *
 * A model tracks the slots the fuzzer owns (ids FZ_FIRST.., gpas from
 * FZ_GPA, both address spaces): every successful commit is applied to it,
 * and after every commit, failed or not, the module's layout must equal it
 * (a failed commit changes nothing). Every errno must be one the uapi
 * documents for that command. The kernel runs with panic_on_warn: a splat
 * ends the run. KVMAS_FUZZ_SEED replays, KVMAS_FUZZ_CALLS sets the count.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "batch_helpers.h"
#include "rng.h"
#include "ringvm.h"
#include "kselftest_harness.h"

#define FZ_FIRST 8 /* slot ids the fuzzer owns: FZ_FIRST.. */
#define FZ_IDS 16
#define FZ_GPA (256 * MiB) /* far from the ring VM's own slots */
#define FZ_UNIT (64 * KiB)
#define FZ_SPACE (64 * MiB)
#define FZ_MEM (80 * MiB)
#define FZ_RING 4096 /* entries per vCPU ring */

/* The fuzzer's slots, as the module must have them. */
struct fz_slot {
	int used;
	uint32_t flags;
	uint64_t gpa, size, hva;
};

struct fz {
	struct ringvm r;
	int dev;
	long psz;
	uint8_t *mem; /* backs the fuzzer's slots */
	uint8_t *pages; /* rw | ro | none: pointer targets */
	uint8_t *rw, *ro, *none;
	struct fz_slot model[2][FZ_IDS];
	volatile int stop;
	unsigned long passes[2];
	unsigned long calls, ok, by_errno[160];
	unsigned long commits, commit_ok, model_bad, errno_bad;
};

/* A vCPU: passes over its stripe, harvesting and resetting its own ring. */
struct fz_vcpu {
	struct fz *f;
	int i;
};

static void *fz_vcpu(void *arg)
{
	const struct timespec pause = { .tv_nsec = 500 * 1000 };
	struct fz_vcpu *v = arg;
	struct ringvm *r = &v->f->r;
	struct kvmas_ring_vcpu e = { .vcpu_id = v->i };
	struct kvmas_reset_ring c = { .size = sizeof(c),
				      .nr_vcpus = 1,
				      .vcpu_size = sizeof(e),
				      .vcpus = (uintptr_t)&e };

	while (!v->f->stop) {
		if (rv_run_pass(r, v->i) < 0)
			break;
		/* No ring on this kernel (arm64 6.1): the pages are logged. */
		if (r->ring_entries) {
			rv_harvest(r, v->i);
			e.boundary = r->fetch[v->i];
			ioctl(v->f->dev, KVMAS_RESET_RING, &c);
		}
		v->f->passes[v->i]++;
		/* Running, not hogging the (TCG) CPUs the fuzzer needs. */
		nanosleep(&pause, NULL);
	}
	return NULL;
}

/*
 * Where an argument goes: mostly where it belongs, often where it cannot be
 * read or written. Returns the address to pass, with @len bytes of @good
 * copied there where that is possible (read-only page, straddling the
 * writable and the read-only page).
 */
static void *fz_ptr(struct fz *f, void *good, size_t len)
{
	uint8_t *p;

	switch (below(12)) {
	case 0:
		return NULL;
	case 1:
		return f->none;
	case 2:
	case 3:
		p = chance(50) ? f->ro : f->ro - (len > 1 ? len / 2 : 1);
		mprotect(f->ro, f->psz, PROT_READ | PROT_WRITE);
		if (len <= (size_t)f->psz / 2)
			memcpy(p, good, len);
		mprotect(f->ro, f->psz, PROT_READ);
		return p;
	case 4:
		return (void *)0xffff888000000000ULL;
	case 5:
		/* Non-canonical: never one of our own pages. */
		return (void *)(uintptr_t)(rnd() | (1ULL << 63)) -
		       (rnd() & 0x7000000000000000ULL);
	default:
		return good;
	}
}

/* A size word: exact most often, then every other kind. */
static uint32_t fz_size(uint32_t exact)
{
	switch (below(10)) {
	case 0:
		return 0;
	case 1:
		return below(exact);
	case 2:
		return exact + 8 * (1 + below(8));
	case 3:
		return 0xffffffffu;
	default:
		return exact;
	}
}

static void fz_garble(void *p, size_t len)
{
	uint8_t *b = p;
	size_t i;

	for (i = 0; i < len; i++)
		if (chance(10))
			b[i] = rnd();
}

/* A plausible op on the fuzzer's slots, from the model. */
static void fz_op(struct fz *f, unsigned int as, struct kvmas_batch_op *o)
{
	unsigned int id = below(FZ_IDS);
	struct fz_slot *s = &f->model[as][id];

	memset(o, 0, sizeof(*o));
	o->as_id = as;
	o->slot = FZ_FIRST + id;
	o->op = s->used ? 2 + below(4) : KVMAS_OP_CREATE;
	switch (o->op) {
	case KVMAS_OP_DELETE:
		if (chance(20))
			o->dirty_bitmap = (uintptr_t)fz_ptr(f, f->rw, 512);
		break;
	case KVMAS_OP_SET_FLAGS:
		o->flags = s->flags ^
			   (chance(70) ? KVM_MEM_LOG_DIRTY_PAGES : 0);
		break;
	case KVMAS_OP_MOVE:
		o->flags = s->flags;
		o->memory_size = s->size;
		o->userspace_addr = s->hva;
		o->guest_phys_addr =
			FZ_GPA + below(FZ_SPACE / FZ_UNIT) * FZ_UNIT;
		break;
	default:
		o->flags = below(3);
		o->guest_phys_addr =
			FZ_GPA + below(FZ_SPACE / FZ_UNIT) * FZ_UNIT;
		o->memory_size = (1 + below(16)) * FZ_UNIT;
		o->userspace_addr =
			(uintptr_t)f->mem +
			below((FZ_MEM - 16 * FZ_UNIT) / FZ_UNIT) * FZ_UNIT;
		if (o->op == KVMAS_OP_REPLACE && chance(20))
			o->dirty_bitmap = (uintptr_t)fz_ptr(f, f->rw, 512);
		break;
	}
	/*
	 * Garbage in the fields that name what to do, never in the id (a
	 * valid foreign id would take the ring VM's own slots away) nor in
	 * the hand-off pointer (a garbled valid pointer could land in this
	 * process's own memory).
	 */
	if (chance(10))
		fz_garble(o, offsetof(struct kvmas_batch_op, dirty_bitmap));
	o->as_id = as;
	o->slot = FZ_FIRST + id;
	if (chance(2))
		o->slot = 32764 + below(4); /* ids KVM refuses */
}

/* A successful commit, applied to the model. */
static void fz_apply(struct fz *f, const struct kvmas_batch_op *o,
		     unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n; i++) {
		struct fz_slot *s;

		if (o[i].as_id > 1 || o[i].slot < FZ_FIRST ||
		    o[i].slot >= FZ_FIRST + FZ_IDS)
			continue; /* cannot succeed; the layout check says so */
		s = &f->model[o[i].as_id][o[i].slot - FZ_FIRST];
		switch (o[i].op) {
		case KVMAS_OP_DELETE:
			s->used = 0;
			break;
		case KVMAS_OP_SET_FLAGS:
			s->flags = o[i].flags;
			break;
		default:
			s->used = 1;
			s->flags = o[i].flags;
			s->gpa = o[i].guest_phys_addr;
			s->size = o[i].memory_size;
			s->hva = o[i].userspace_addr;
			break;
		}
	}
}

/* The module's layout of the fuzzer's slots equals the model's. */
static int fz_model_ok(struct fz *f)
{
	struct kvmas_slot s[64];
	unsigned int nr = 0, i, seen = 0, as, want = 0;
	const struct fz_slot *m;

	if (kvmas_layout(f->dev, KVMAS_LAYOUT_ALL_AS, 0, s, 64, &nr, NULL))
		return 0;
	for (i = 0; i < nr; i++) {
		if (s[i].slot < FZ_FIRST || s[i].slot >= FZ_FIRST + FZ_IDS)
			continue;
		m = &f->model[s[i].as_id][s[i].slot - FZ_FIRST];
		if (!m->used || m->flags != s[i].flags ||
		    m->gpa != s[i].guest_phys_addr ||
		    m->size != s[i].memory_size ||
		    m->hva != s[i].userspace_addr)
			return 0;
		seen++;
	}
	for (as = 0; as < 2; as++)
		for (i = 0; i < FZ_IDS; i++)
			want += f->model[as][i].used;
	return seen == want;
}

/* Errnos the uapi documents, per command (others mean a bug). */
static int fz_errno_ok(unsigned int nr, int err)
{
	switch (err) {
	case EINVAL:
	case EFAULT:
	case E2BIG:
	case ENOTTY:
		return 1;
	}
	switch (nr) {
	case KVMAS_CMD_ATTACH_VM:
		return err == EBADF || err == EBUSY || err == EPERM;
	case KVMAS_CMD_COMMIT_BATCH:
		return err == EEXIST || err == ENOENT || err == EMSGSIZE ||
		       err == EOPNOTSUPP || err == ENOMEM;
	case KVMAS_CMD_RESET_RING:
		return err == ENOENT || err == EMSGSIZE || err == EOPNOTSUPP ||
		       err == ENOMEM;
	}
	return 0;
}

/* The model, taken from the module (after a mismatch was counted). */
static void fz_resync(struct fz *f)
{
	struct kvmas_slot s[64];
	unsigned int k, cnt = 0;
	struct fz_slot *m;

	memset(f->model, 0, sizeof(f->model));
	kvmas_layout(f->dev, KVMAS_LAYOUT_ALL_AS, 0, s, 64, &cnt, NULL);
	for (k = 0; k < cnt; k++) {
		if (s[k].slot < FZ_FIRST || s[k].slot >= FZ_FIRST + FZ_IDS)
			continue;
		m = &f->model[s[k].as_id][s[k].slot - FZ_FIRST];
		*m = (struct fz_slot){ 1, s[k].flags, s[k].guest_phys_addr,
				       s[k].memory_size, s[k].userspace_addr };
	}
}

/*
 * One KVMAS_COMMIT_BATCH: the ioctl's return, errno preserved. A success
 * of a well-formed call is applied to the model; then, success or not, the
 * module's layout must be the model's.
 */
static int fz_commit(struct fz *f)
{
	static struct kvmas_batch_op ops[KVMAS_MAX_BATCH_OPS + 8];
	struct kvmas_commit_batch c = { .size = sizeof(c) }, *pc = &c;
	unsigned int n, i, as = chance(80) ? 0 : 1;
	uint8_t big[sizeof(ops[0]) + 16];
	int well_formed, r, err;

	n = chance(90) ? 1 + below(6) : below(KVMAS_MAX_BATCH_OPS + 8);
	for (i = 0; i < n; i++)
		fz_op(f, as, &ops[i]);
	c.nr_ops = chance(97) ? n : rnd();
	c.op_size = sizeof(ops[0]);
	c.ops = (uintptr_t)ops;
	if (chance(10))
		c.flags = chance(50) ? KVMAS_BATCH_VALIDATE_ONLY :
				       (uint32_t)rnd();
	if (chance(20))
		c.flags |= KVMAS_BATCH_ROUTE_INVALIDATE;
	if (chance(3))
		c.__reserved = rnd();
	if (chance(5) && n == 1) {
		/* A newer caller's longer op: its tail must be zero. */
		memset(big, 0, sizeof(big));
		memcpy(big, ops, sizeof(ops[0]));
		if (chance(50))
			big[sizeof(big) - 1] = 1;
		c.op_size = sizeof(big);
		c.ops = (uintptr_t)big;
	} else if (chance(5)) {
		c.op_size = fz_size(sizeof(ops[0]));
	}
	if (chance(6))
		c.ops = (uintptr_t)fz_ptr(f, ops, sizeof(ops[0]));
	if (chance(6))
		c.size = fz_size(sizeof(c));
	if (chance(6))
		pc = fz_ptr(f, &c, sizeof(c));
	/*
	 * What a success applies: exactly these ops. A call with a bogus op
	 * stride may still succeed, with ops read at that stride: the model
	 * cannot predict those and takes the module's layout after them.
	 */
	well_formed =
		pc == &c && c.nr_ops == n &&
		((c.ops == (uintptr_t)ops && c.op_size == sizeof(ops[0])) ||
		 (c.ops == (uintptr_t)big && c.op_size == sizeof(big)));
	r = ioctl(f->dev, KVMAS_COMMIT_BATCH, pc);
	err = errno;
	f->commits++;
	if (!r && !(c.flags & KVMAS_BATCH_VALIDATE_ONLY)) {
		f->commit_ok++;
		if (well_formed)
			fz_apply(f, ops, n);
		else
			fz_resync(f);
	}
	if (!fz_model_ok(f)) {
		if (!f->model_bad++)
			printf("# layout differs from the model after a commit of %u ops (return %d, errno %d)\n",
			       n, r, r ? err : 0);
		fz_resync(f);
	}
	errno = err;
	return r;
}

/* One call of a random command; *@nr says which (99: unknown). */
static int fz_call(struct fz *f, unsigned int *nr)
{
	union {
		struct kvmas_caps caps;
		struct kvmas_attach_vm at;
		struct kvmas_vm_info info;
		struct kvmas_layout l;
		struct kvmas_reset_ring rr;
		uint8_t raw[256];
	} u;
	static struct kvmas_slot ents[64];
	struct kvmas_ring_vcpu v[4];
	void *arg = &u;
	size_t exact = 0;
	unsigned long cmd;
	unsigned int k;

	memset(&u, 0, sizeof(u));
	switch (below(9)) {
	case 0:
		*nr = KVMAS_CMD_GET_API_VERSION;
		return ioctl(f->dev, KVMAS_GET_API_VERSION,
			     chance(80) ? 0 : rnd());
	case 1:
		*nr = KVMAS_CMD_CHECK_EXTENSION;
		return ioctl(f->dev, KVMAS_CHECK_EXTENSION, rnd() % 20);
	case 2:
		*nr = KVMAS_CMD_GET_CAPS;
		exact = sizeof(u.caps);
		u.caps.flags = chance(90) ? 0 : rnd();
		break;
	case 3:
		*nr = KVMAS_CMD_ATTACH_VM;
		exact = sizeof(u.at);
		u.at.vm_fd = chance(50) ? f->r.vm : (int)below(64) - 2;
		break;
	case 4:
		*nr = KVMAS_CMD_GET_VM_INFO;
		exact = sizeof(u.info);
		break;
	case 5:
		*nr = KVMAS_CMD_GET_LAYOUT;
		exact = sizeof(u.l);
		u.l.flags = below(4) | (chance(5) ? rnd() : 0);
		u.l.as_id = chance(90) ? below(2) : rnd();
		u.l.entry_size = chance(80) ? sizeof(ents[0]) : fz_size(40);
		u.l.nr_entries = chance(80) ? 64 : rnd();
		/* Never more than our buffer holds, unless it is unmapped. */
		if (u.l.entry_size > sizeof(ents[0]) || u.l.nr_entries > 64)
			u.l.entries = (uintptr_t)f->none;
		else
			u.l.entries = (uintptr_t)fz_ptr(f, ents, 0);
		break;
	case 6:
		*nr = KVMAS_CMD_RESET_RING;
		exact = sizeof(u.rr);
		for (k = 0; k < 4; k++)
			v[k] = (struct kvmas_ring_vcpu){
				.vcpu_id = chance(80) ? below(2) : rnd(),
				.boundary = rnd(),
			};
		u.rr.flags = chance(80) ? below(4) : rnd();
		u.rr.nr_vcpus = chance(90) ? 1 + below(4) : rnd();
		u.rr.vcpu_size = chance(80) ? sizeof(v[0]) : fz_size(24);
		u.rr.max_entries = below(3) ? 0 : below(100);
		if (u.rr.nr_vcpus > 4 || u.rr.vcpu_size > sizeof(v[0]))
			u.rr.vcpus = (uintptr_t)f->none;
		else
			u.rr.vcpus = (uintptr_t)fz_ptr(f, v, sizeof(v));
		break;
	case 7:
		/* Unknown commands, and known ones wrongly encoded. */
		*nr = 99;
		cmd = chance(50) ? _IO(KVMAS_TYPE, 7 + below(40)) :
				   _IOWR(KVMAS_TYPE, below(0x12), u.raw);
		return ioctl(f->dev, cmd, &u);
	default:
		*nr = KVMAS_CMD_COMMIT_BATCH;
		return fz_commit(f);
	}
	if (chance(5)) {
		fz_garble(&u, exact);
		/*
		 * The kernel writes where these point: garbage there could
		 * be this process's own memory. Sizes past our buffers go
		 * to the unmapped page.
		 */
		if (*nr == KVMAS_CMD_GET_LAYOUT)
			u.l.entries = (u.l.entry_size > sizeof(ents[0]) ||
				       u.l.nr_entries > 64) ?
					      (uintptr_t)f->none :
					      (uintptr_t)ents;
		if (*nr == KVMAS_CMD_RESET_RING)
			u.rr.vcpus = (u.rr.nr_vcpus > 4 ||
				      u.rr.vcpu_size > sizeof(v[0])) ?
					     (uintptr_t)f->none :
					     (uintptr_t)v;
	}
	*(uint32_t *)&u = chance(85) ? exact : fz_size(exact);
	if (chance(8))
		u.raw[exact + below(16)] = 1; /* a non-zero unknown tail */
	if (chance(8))
		arg = fz_ptr(f, &u, exact);
	return ioctl(f->dev, _IO(KVMAS_TYPE, *nr), arg);
}

FIXTURE(fz){};
FIXTURE_SETUP(fz)
{
}
FIXTURE_TEARDOWN(fz)
{
}

TEST_F_TIMEOUT(fz, ioctls_while_vcpus_run, 1200)
{
	const char *s_seed = getenv("KVMAS_FUZZ_SEED");
	const char *s_calls = getenv("KVMAS_FUZZ_CALLS");
	unsigned long calls = s_calls ? strtoul(s_calls, NULL, 0) : 100000;
	uint64_t seed = s_seed ? strtoull(s_seed, NULL, 0) :
				 (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ULL;
	struct fz_vcpu vc[2];
	pthread_t th[2];
	static struct fz f;
	unsigned int nr;
	unsigned long i;
	uint64_t t0;
	int r, k;

	if (kvmas_cap(KVMAS_CAP_BATCH_COMMIT) <= 0)
		SKIP(return, "no batch commits here");
	/*
	 * Without a dirty ring (arm64 before 6.2) RESET_RING is fuzzed all the
	 * same: it must answer EOPNOTSUPP, a documented errno.
	 */
	if (rv_have_ring() != (kvmas_cap(KVMAS_CAP_RING_RESET) > 0))
		TH_LOG("dirty ring %d, ring reset cap %d", rv_have_ring(),
		       kvmas_cap(KVMAS_CAP_RING_RESET));
	printf("# fuzz seed %" PRIu64 " (KVMAS_FUZZ_SEED=%" PRIu64
	       " replays), %lu calls\n",
	       seed, seed, calls);
	rng_seed(seed);
	f.psz = sysconf(_SC_PAGESIZE);
	f.pages = mmap(NULL, 3 * f.psz, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, f.pages);
	f.rw = f.pages;
	f.ro = f.pages + f.psz;
	f.none = f.pages + 2 * f.psz;
	ASSERT_EQ(0, mprotect(f.ro, f.psz, PROT_READ));
	ASSERT_EQ(0, mprotect(f.none, f.psz, PROT_NONE));
	f.mem = guest_mem(FZ_MEM);
	ASSERT_NE(NULL, f.mem);
	ASSERT_EQ(0, rv_create(&f.r, 2, rv_have_ring() ? FZ_RING : 0, 64));
	f.dev = kvmas_dev_open();
	ASSERT_GE(f.dev, 0);
	ASSERT_EQ(0, kvmas_attach(f.dev, f.r.vm));
	for (k = 0; k < 2; k++) {
		vc[k] = (struct fz_vcpu){ &f, k };
		ASSERT_EQ(0, pthread_create(&th[k], NULL, fz_vcpu, &vc[k]));
	}

	t0 = time(NULL);
	for (i = 0; i < calls; i++) {
		r = fz_call(&f, &nr);
		f.calls++;
		if (r >= 0) {
			f.ok++;
			continue;
		}
		if (errno < 160)
			f.by_errno[errno]++;
		if (!fz_errno_ok(nr, errno) && !f.errno_bad++)
			printf("# command %u: undocumented errno %d\n", nr,
			       errno);
	}
	f.stop = 1;
	for (k = 0; k < 2; k++)
		pthread_join(th[k], NULL);

	EXPECT_EQ(0, f.model_bad);
	EXPECT_EQ(0, f.errno_bad);
	EXPECT_TRUE(fz_model_ok(&f));
	EXPECT_LT(0, f.passes[0] + f.passes[1]);
	printf("# fuzz: %lu calls in %llu s (%lu commits, %lu committed), "
	       "%lu succeeded; EINVAL %lu EFAULT %lu E2BIG %lu ENOTTY %lu "
	       "EEXIST %lu ENOENT %lu EMSGSIZE %lu EBUSY %lu EBADF %lu "
	       "EOPNOTSUPP %lu; vCPU passes %lu+%lu; model mismatches %lu\n",
	       f.calls, (unsigned long long)(time(NULL) - t0), f.commits,
	       f.commit_ok, f.ok, f.by_errno[EINVAL], f.by_errno[EFAULT],
	       f.by_errno[E2BIG], f.by_errno[ENOTTY], f.by_errno[EEXIST],
	       f.by_errno[ENOENT], f.by_errno[EMSGSIZE], f.by_errno[EBUSY],
	       f.by_errno[EBADF], f.by_errno[EOPNOTSUPP], f.passes[0],
	       f.passes[1], f.model_bad);
	close(f.dev);
	rv_destroy(&f.r);
}

TEST_HARNESS_MAIN
