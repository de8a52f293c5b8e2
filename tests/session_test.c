// SPDX-License-Identifier: GPL-2.0
/*
 * Sessions on /dev/kvm-atomic-slots: the device, version and capability
 * queries, size-first struct handling, attaching real KVM VMs, refusing
 * everything that is not one, VM and owner life cycles, and the layout
 * snapshot against what stock KVM ioctls set up.
 */
#include <signal.h>
#include <sys/wait.h>

#include "kvm_helpers.h"
#include "kselftest_harness.h"

/*
 * What the module must report per architecture: x86 has an SMM address
 * space and faults that retry on an INVALID slot (the invalidate route);
 * arm64 has one address space and treats INVALID like a hole (fence only).
 */
#if defined(__x86_64__)
#define ARCH_NR_AS 2
#define ARCH_ROUTE_INVALIDATE 1
#elif defined(__aarch64__)
#define ARCH_NR_AS 1
#define ARCH_ROUTE_INVALIDATE 0
#endif

#define MiB (1UL << 20)

TEST(device_open_close)
{
	struct stat st;
	int fd;

	ASSERT_EQ(0, stat(KVMAS_DEVICE_PATH, &st));
	ASSERT_TRUE(S_ISCHR(st.st_mode));
	fd = kvmas_dev_open();
	ASSERT_GE(fd, 0);
	/* Not seekable, not readable: a session is driven by ioctls only. */
	EXPECT_EQ(-ESPIPE, sys_ret(lseek(fd, 0, SEEK_SET)));
	EXPECT_EQ(0, close(fd));
}

TEST(api_version)
{
	int fd = kvmas_dev_open();

	ASSERT_GE(fd, 0);
	EXPECT_EQ(KVMAS_API_VERSION, ioctl(fd, KVMAS_GET_API_VERSION, 0));
	EXPECT_EQ(-EINVAL, sys_ret(ioctl(fd, KVMAS_GET_API_VERSION, 1)));
	/* Another type, a size-encoding variant, an unused number. */
	EXPECT_EQ(-ENOTTY, sys_ret(ioctl(fd, _IO(0xAE, 0x00), 0)));
	EXPECT_EQ(-ENOTTY, sys_ret(ioctl(fd, _IOR(KVMAS_TYPE, 0, int), 0)));
	EXPECT_EQ(-ENOTTY, sys_ret(ioctl(fd, _IO(KVMAS_TYPE, 0x7f), 0)));
	close(fd);
}

TEST(capabilities)
{
	struct kvmas_caps caps = { .size = sizeof(caps) };
	unsigned int cap;
	int fd = kvmas_dev_open();

	ASSERT_GE(fd, 0);
	ASSERT_EQ(0, ioctl(fd, KVMAS_GET_CAPS, &caps));
	EXPECT_EQ(KVMAS_API_VERSION, caps.api_version);
	EXPECT_EQ(KVMAS_CAP_COUNT, caps.nr_caps);
	EXPECT_EQ(sizeof(caps), caps.size);
	EXPECT_GT(caps.kvm_user_mem_slots, 500);
	for (cap = 0; cap < KVMAS_CAP_COUNT; cap++) {
		int v = ioctl(fd, KVMAS_CHECK_EXTENSION, cap);

		ASSERT_GE(v, 0);
		EXPECT_EQ(!!(caps.caps & (1ULL << cap)), v > 0)
		TH_LOG("cap %u: bit and CHECK_EXTENSION disagree", cap);
	}
	EXPECT_EQ(1, ioctl(fd, KVMAS_CHECK_EXTENSION, KVMAS_CAP_SESSION));
	EXPECT_EQ(1, ioctl(fd, KVMAS_CHECK_EXTENSION, KVMAS_CAP_NETLINK));
#ifdef ARCH_NR_AS
	EXPECT_EQ(ARCH_NR_AS, ioctl(fd, KVMAS_CHECK_EXTENSION,
				    KVMAS_CAP_MAX_ADDRESS_SPACES));
	EXPECT_EQ(ARCH_NR_AS, caps.max_address_spaces);
	EXPECT_EQ(ARCH_ROUTE_INVALIDATE,
		  ioctl(fd, KVMAS_CHECK_EXTENSION, KVMAS_CAP_ROUTE_INVALIDATE));
#endif
	/* Unknown capabilities read as absent, like KVM_CHECK_EXTENSION. */
	EXPECT_EQ(0, ioctl(fd, KVMAS_CHECK_EXTENSION, 1000));
	EXPECT_EQ(0, ioctl(fd, KVMAS_CHECK_EXTENSION, -1L));
	close(fd);
}

TEST(struct_size_rules)
{
	struct {
		struct kvmas_caps c;
		__u64 tail[2];
	} big;
	struct kvmas_caps caps;
	int fd = kvmas_dev_open();

	ASSERT_GE(fd, 0);
	/* Smaller than the first version of the struct. */
	memset(&caps, 0, sizeof(caps));
	caps.size = 8;
	EXPECT_EQ(-EINVAL, sys_ret(ioctl(fd, KVMAS_GET_CAPS, &caps)));
	/* Unknown flags and reserved fields. */
	caps = (struct kvmas_caps){ .size = sizeof(caps), .flags = 1 };
	EXPECT_EQ(-EINVAL, sys_ret(ioctl(fd, KVMAS_GET_CAPS, &caps)));
	caps = (struct kvmas_caps){ .size = sizeof(caps), .__reserved = 1 };
	EXPECT_EQ(-EINVAL, sys_ret(ioctl(fd, KVMAS_GET_CAPS, &caps)));
	/* A newer caller's larger struct: zero tail accepted, size kept. */
	memset(&big, 0, sizeof(big));
	big.c.size = sizeof(big);
	EXPECT_EQ(0, ioctl(fd, KVMAS_GET_CAPS, &big));
	EXPECT_EQ(sizeof(big), big.c.size);
	EXPECT_EQ(KVMAS_API_VERSION, big.c.api_version);
	EXPECT_EQ(0, big.tail[0]);
	/* ... but a non-zero tail the kernel does not understand is E2BIG. */
	big.tail[1] = 7;
	EXPECT_EQ(-E2BIG, sys_ret(ioctl(fd, KVMAS_GET_CAPS, &big)));
	/* Bad pointers fault cleanly. */
	EXPECT_EQ(-EFAULT, sys_ret(ioctl(fd, KVMAS_GET_CAPS, (void *)8)));
	close(fd);
}

TEST(vm_commands_need_attach)
{
	struct kvmas_vm_info info;
	unsigned int nr;
	int fd = kvmas_dev_open();

	ASSERT_GE(fd, 0);
	EXPECT_EQ(-ENOTCONN, kvmas_vm_info(fd, &info));
	EXPECT_EQ(-ENOTCONN, kvmas_layout(fd, 0, 0, NULL, 0, &nr, NULL));
	close(fd);
}

FIXTURE(vm)
{
	int dev;
	int vm;
};

FIXTURE_SETUP(vm)
{
	self->dev = kvmas_dev_open();
	ASSERT_GE(self->dev, 0);
	self->vm = kvm_vm_create();
	ASSERT_GE(self->vm, 0) TH_LOG("KVM_CREATE_VM: %s", strerror(-self->vm));
}

FIXTURE_TEARDOWN(vm)
{
	if (self->dev >= 0)
		close(self->dev);
	if (self->vm >= 0)
		close(self->vm);
}

TEST_F(vm, attach_and_info)
{
	struct kvmas_vm_info info;
	struct kvmas_caps caps = { .size = sizeof(caps) };
	void *mem = guest_mem(4 * MiB);

	ASSERT_NE(NULL, mem);
	ASSERT_EQ(0, ioctl(self->dev, KVMAS_GET_CAPS, &caps));
	ASSERT_EQ(0, kvm_set_slot(self->vm, 0, 0, 0, 0, 2 * MiB, mem));
	ASSERT_EQ(0, kvm_set_slot(self->vm, 0, 1, KVM_MEM_LOG_DIRTY_PAGES,
				  4 * MiB, 2 * MiB, mem + 2 * MiB));
	ASSERT_EQ(0, kvmas_attach(self->dev, self->vm));
	ASSERT_GE(kvm_vcpu_create(self->vm, 0), 0);
	ASSERT_GE(kvm_vcpu_create(self->vm, 1), 0);

	ASSERT_EQ(0, kvmas_vm_info(self->dev, &info));
	EXPECT_EQ(sizeof(info), info.size);
	EXPECT_EQ(2, info.nr_vcpus);
	EXPECT_GE(info.max_vcpus, 2);
	EXPECT_EQ(caps.kvm_user_mem_slots, info.max_user_slots);
	EXPECT_EQ(0, info.dirty_ring_size);
	EXPECT_EQ(0, info.vm_flags & KVMAS_VM_DIRTY_RING);
	EXPECT_EQ(2, info.user_slots[0]);
	EXPECT_EQ(1, info.dirty_log_slots[0]);
	EXPECT_EQ(0, info.user_slots[1]);
	/* Two 2 MiB user slots; internal slots (if any) come on top. */
	EXPECT_GE(info.guest_pages[0], 2 * (2 * MiB / 4096));
	if (!info.internal_slots[0])
		EXPECT_EQ(2 * (2 * MiB / 4096), info.guest_pages[0]);
#ifdef ARCH_NR_AS
	EXPECT_EQ(ARCH_NR_AS, info.nr_address_spaces);
#endif
	/* Flags on an output-only command are refused, not ignored. */
	info = (struct kvmas_vm_info){ .size = sizeof(info), .flags = 1 };
	EXPECT_EQ(-EINVAL, sys_ret(ioctl(self->dev, KVMAS_GET_VM_INFO, &info)));
}

TEST_F(vm, dirty_ring_reported)
{
	struct kvm_enable_cap cap = { .cap = KVM_CAP_DIRTY_LOG_RING_ACQ_REL,
				      .args = { 4096 * 16 } };
	struct kvmas_vm_info info;
	int kvm = kvm_dev_open();

	ASSERT_GE(kvm, 0);
	if (ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_DIRTY_LOG_RING_ACQ_REL) <=
	    0)
		cap.cap = KVM_CAP_DIRTY_LOG_RING;
	/* arm64 6.1 has no dirty ring at all (it came in 6.2). */
	if (ioctl(kvm, KVM_CHECK_EXTENSION, cap.cap) <= 0) {
		close(kvm);
		SKIP(return, "no dirty ring on this kernel");
	}
	close(kvm);
	ASSERT_EQ(0, ioctl(self->vm, KVM_ENABLE_CAP, &cap));
	ASSERT_EQ(0, kvmas_attach(self->dev, self->vm));
	ASSERT_EQ(0, kvmas_vm_info(self->dev, &info));
	EXPECT_EQ(4096 * 16, info.dirty_ring_size);
	EXPECT_TRUE(info.vm_flags & KVMAS_VM_DIRTY_RING);
}

TEST_F(vm, reject_bad_fds)
{
	int closed, devnull, kvm, vcpu, other_dev;

	closed = dup(self->vm);
	ASSERT_GE(closed, 0);
	close(closed);
	EXPECT_EQ(-EBADF, kvmas_attach(self->dev, closed));
	EXPECT_EQ(-EBADF, kvmas_attach(self->dev, -1));

	devnull = open("/dev/null", O_RDWR);
	ASSERT_GE(devnull, 0);
	EXPECT_EQ(-EINVAL, kvmas_attach(self->dev, devnull));
	close(devnull);

	kvm = kvm_dev_open();
	ASSERT_GE(kvm, 0);
	EXPECT_EQ(-EINVAL, kvmas_attach(self->dev, kvm));
	close(kvm);

	vcpu = kvm_vcpu_create(self->vm, 0);
	ASSERT_GE(vcpu, 0);
	EXPECT_EQ(-EINVAL, kvmas_attach(self->dev, vcpu));
	close(vcpu);

	other_dev = kvmas_dev_open();
	ASSERT_GE(other_dev, 0);
	EXPECT_EQ(-EINVAL, kvmas_attach(self->dev, other_dev));
	EXPECT_EQ(-EINVAL, kvmas_attach(self->dev, self->dev));
	close(other_dev);

	/* Bad struct contents. */
	{
		struct kvmas_attach_vm a = { .size = sizeof(a),
					     .vm_fd = self->vm,
					     .flags = 1 };

		EXPECT_EQ(-EINVAL,
			  sys_ret(ioctl(self->dev, KVMAS_ATTACH_VM, &a)));
		a.flags = 0;
		a.__reserved = 1;
		EXPECT_EQ(-EINVAL,
			  sys_ret(ioctl(self->dev, KVMAS_ATTACH_VM, &a)));
	}
	/* After all those refusals the session is still usable. */
	EXPECT_EQ(0, kvmas_attach(self->dev, self->vm));
}

TEST_F(vm, second_attach_refused)
{
	int vm2 = kvm_vm_create();
	struct kvmas_vm_info info;

	ASSERT_GE(vm2, 0);
	ASSERT_EQ(0, kvmas_attach(self->dev, self->vm));
	EXPECT_EQ(-EBUSY, kvmas_attach(self->dev, self->vm));
	EXPECT_EQ(-EBUSY, kvmas_attach(self->dev, vm2));
	/* Still attached to the first one. */
	ASSERT_EQ(0, kvm_set_slot(self->vm, 0, 3, 0, 0, 4096, guest_mem(4096)));
	ASSERT_EQ(0, kvmas_vm_info(self->dev, &info));
	EXPECT_EQ(1, info.user_slots[0]);
	close(vm2);
}

/* A VM fd inherited across fork() belongs to the parent's mm. */
TEST_F(vm, other_process_refused)
{
	int status;
	pid_t pid;

	ASSERT_EQ(0, kvmas_attach(self->dev, self->vm));
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		struct kvmas_vm_info info;
		int dev2 = kvmas_dev_open();
		int rc = 0;

		if (dev2 < 0 || kvmas_attach(dev2, self->vm) != -EPERM)
			rc |= 1;
		/* The inherited, attached session is the parent's too. */
		if (kvmas_vm_info(self->dev, &info) != -EPERM)
			rc |= 2;
		if (kvmas_layout(self->dev, 0, 0, NULL, 0, NULL, NULL) !=
		    -EPERM)
			rc |= 4;
		_exit(rc);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status));
}

TEST_F(vm, vm_fd_closed_while_attached)
{
	struct kvmas_vm_info info;
	int vm = self->vm;
	void *mem = guest_mem(2 * MiB);

	ASSERT_EQ(0, kvm_set_slot(vm, 0, 5, 0, 1 * MiB, 2 * MiB, mem));
	ASSERT_EQ(0, kvmas_attach(self->dev, vm));
	ASSERT_TRUE(kvm_debugfs_vm_exists(getpid(), vm));
	close(vm);
	self->vm = -1;
	/* Our reference keeps the VM alive and usable for read-only queries. */
	EXPECT_TRUE(kvm_debugfs_vm_exists(getpid(), vm));
	ASSERT_EQ(0, kvmas_vm_info(self->dev, &info));
	EXPECT_EQ(1, info.user_slots[0]);
	/* Closing the session drops the last reference: KVM destroys it. */
	close(self->dev);
	self->dev = -1;
	EXPECT_FALSE(kvm_debugfs_vm_exists(getpid(), vm));
}

/*
 * The VM's owner hands its session to another process and exits. The
 * survivor may not act on the VM (its mm is gone), and closing the session
 * destroys the VM from the survivor's context.
 */
TEST(owner_exits_while_attached)
{
	int sv[2], status, sess, before;
	struct kvmas_vm_info info;
	pid_t pid;

	before = kvm_debugfs_nr_vms();
	ASSERT_GE(before, 0);
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		int dev = kvmas_dev_open(), vm = kvm_vm_create();

		close(sv[0]);
		if (dev < 0 || vm < 0 || kvmas_attach(dev, vm))
			_exit(1);
		if (kvm_vcpu_create(vm, 0) < 0)
			_exit(2);
		if (send_fd(sv[1], dev) < 0)
			_exit(3);
		_exit(0);
	}
	close(sv[1]);
	sess = recv_fd(sv[0]);
	ASSERT_GE(sess, 0);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_EQ(0, WEXITSTATUS(status));
	/* The child's VM fd is closed, its mm gone; the VM lives on for us. */
	EXPECT_EQ(before + 1, kvm_debugfs_nr_vms());
	EXPECT_EQ(-EPERM, kvmas_vm_info(sess, &info));
	close(sess);
	EXPECT_EQ(before, kvm_debugfs_nr_vms());
	close(sv[0]);
}

struct want_slot {
	unsigned int as_id, slot, flags;
	uint64_t gpa, size;
	void *hva;
};

static int layout_matches(struct __test_metadata *_metadata, int dev,
			  const struct want_slot *want, unsigned int n)
{
	struct kvmas_slot got[64];
	unsigned int nr, i, as, pos = 0;
	uint64_t gen[KVMAS_MAX_AS];
	int mismatches = 0;

	/* All address spaces at once, then one by one: the same slots. */
	EXPECT_EQ(0,
		  kvmas_layout(dev, KVMAS_LAYOUT_ALL_AS, 0, got, 64, &nr, gen));
	EXPECT_EQ(n, nr);
	for (i = 0; i < n && i < nr; i++) {
		const struct want_slot *w = &want[i];

		if (got[i].as_id != w->as_id || got[i].slot != w->slot ||
		    got[i].flags != w->flags ||
		    got[i].guest_phys_addr != w->gpa ||
		    got[i].memory_size != w->size ||
		    got[i].userspace_addr != (uintptr_t)w->hva ||
		    (got[i].attrs & KVMAS_SLOT_INTERNAL)) {
			TH_LOG("entry %u: got as%u slot %u flags %x gpa %llx size %llx",
			       i, got[i].as_id, got[i].slot, got[i].flags,
			       (unsigned long long)got[i].guest_phys_addr,
			       (unsigned long long)got[i].memory_size);
			mismatches++;
		}
	}
	for (as = 0; as < KVMAS_MAX_AS; as++) {
		unsigned int expect = 0;

		for (i = 0; i < n; i++)
			expect += want[i].as_id == as;
		EXPECT_EQ(0, kvmas_layout(dev, 0, as, got, 64, &nr, NULL));
		EXPECT_EQ(expect, nr);
		for (i = 0; i < nr; i++, pos++)
			if (pos >= n || got[i].slot != want[pos].slot ||
			    got[i].as_id != as)
				mismatches++;
	}
	return mismatches;
}

TEST_F(vm, layout_matches_stock_ioctls)
{
	uint8_t *m = guest_mem(64 * MiB);
	struct kvmas_vm_info info;
	uint64_t gen[KVMAS_MAX_AS];
	unsigned int nr;
	/* Expected order: by address space, then by guest physical address. */
	struct want_slot want[] = {
		{ 0, 4, 0, 0x0, 1 * MiB, m },
		{ 0, 0, KVM_MEM_READONLY, 0x100000, 2 * MiB, m + 1 * MiB },
		{ 0, 7, KVM_MEM_LOG_DIRTY_PAGES, 0x400000, 4 * MiB,
		  m + 4 * MiB },
		{ 0, 2, 0, 0x10000000, 8 * MiB, m + 8 * MiB },
		{ 1, 0, 0, 0x0, 640 * 1024, m },
		{ 1, 3, 0, 0xa0000, 128 * 1024, m + 40 * MiB },
		{ 1, 1, KVM_MEM_LOG_DIRTY_PAGES, 0x200000, 2 * MiB,
		  m + 42 * MiB },
	};
	unsigned int i, n = sizeof(want) / sizeof(want[0]);

	ASSERT_NE(NULL, m);
	if (ioctl(self->vm, KVM_CHECK_EXTENSION, KVM_CAP_MULTI_ADDRESS_SPACE) <
	    2)
		SKIP(return, "this architecture has one address space");
	/* Insert in an order unlike the expected one. */
	for (i = n; i-- > 0;)
		ASSERT_EQ(0, kvm_set_slot(self->vm, want[i].as_id, want[i].slot,
					  want[i].flags, want[i].gpa,
					  want[i].size, want[i].hva));
	ASSERT_EQ(0, kvmas_attach(self->dev, self->vm));
	EXPECT_EQ(0, layout_matches(_metadata, self->dev, want, n));

	/* Generation agrees with GET_VM_INFO when nothing changed between. */
	ASSERT_EQ(-E2BIG, kvmas_layout(self->dev, KVMAS_LAYOUT_ALL_AS, 0, NULL,
				       0, &nr, gen));
	EXPECT_EQ(n, nr);
	ASSERT_EQ(0, kvmas_vm_info(self->dev, &info));
	EXPECT_EQ(info.generation[0], gen[0]);
	EXPECT_EQ(info.generation[1], gen[1]);

	/* Deletes (size 0) and a flags change, then compare again. */
	ASSERT_EQ(0, kvm_set_slot(self->vm, 0, 0, 0, 0, 0, NULL));
	ASSERT_EQ(0, kvm_set_slot(self->vm, 1, 3, 0, 0, 0, NULL));
	ASSERT_EQ(0, kvm_set_slot(self->vm, 0, 2, KVM_MEM_LOG_DIRTY_PAGES,
				  0x10000000, 8 * MiB, m + 8 * MiB));
	{
		struct want_slot after[] = {
			want[0], want[2], want[3], want[4], want[6],
		};

		after[2].flags = KVM_MEM_LOG_DIRTY_PAGES;
		EXPECT_EQ(0, layout_matches(_metadata, self->dev, after, 5));
		ASSERT_EQ(0, kvmas_vm_info(self->dev, &info));
		EXPECT_EQ(3, info.user_slots[0]);
		EXPECT_EQ(2, info.user_slots[1]);
		EXPECT_EQ(2, info.dirty_log_slots[0]);
		EXPECT_EQ(1, info.dirty_log_slots[1]);
		EXPECT_GT(gen[0], 0);
		EXPECT_NE(gen[0], info.generation[0]);
	}
}

TEST_F(vm, layout_buffer_rules)
{
	struct kvmas_slot ents[8];
	struct {
		struct kvmas_slot s;
		__u64 extra;
	} wide[4];
	uint8_t *m = guest_mem(8 * MiB);
	struct kvmas_layout l;
	unsigned int nr, i;

	ASSERT_NE(NULL, m);
	for (i = 0; i < 4; i++)
		ASSERT_EQ(0, kvm_set_slot(self->vm, 0, i, 0, i * 2 * MiB,
					  2 * MiB, m + i * 2 * MiB));
	ASSERT_EQ(0, kvmas_attach(self->dev, self->vm));

	/* Too small: nothing copied, the needed count reported. */
	memset(ents, 0xaa, sizeof(ents));
	EXPECT_EQ(-E2BIG, kvmas_layout(self->dev, 0, 0, ents, 3, &nr, NULL));
	EXPECT_EQ(4, nr);
	EXPECT_EQ(0xaaaaaaaa, ents[0].slot);
	EXPECT_EQ(0, kvmas_layout(self->dev, 0, 0, ents, 8, &nr, NULL));
	EXPECT_EQ(4, nr);

	/* A larger entry stride: our fields, then a zeroed tail. */
	memset(wide, 0xaa, sizeof(wide));
	l = (struct kvmas_layout){ .size = sizeof(l),
				   .entry_size = sizeof(wide[0]),
				   .nr_entries = 4,
				   .entries = (uintptr_t)wide };
	ASSERT_EQ(0, ioctl(self->dev, KVMAS_GET_LAYOUT, &l));
	for (i = 0; i < 4; i++) {
		EXPECT_EQ(i, wide[i].s.slot);
		EXPECT_EQ(i * 2 * MiB, wide[i].s.guest_phys_addr);
		EXPECT_EQ(0, wide[i].extra);
	}

	/* Invalid requests. */
	l = (struct kvmas_layout){ .size = sizeof(l),
				   .entry_size = 16,
				   .nr_entries = 8,
				   .entries = (uintptr_t)ents };
	EXPECT_EQ(-EINVAL, sys_ret(ioctl(self->dev, KVMAS_GET_LAYOUT, &l)));
	l.entry_size = sizeof(ents[0]);
	l.as_id = KVMAS_MAX_AS;
	EXPECT_EQ(-EINVAL, sys_ret(ioctl(self->dev, KVMAS_GET_LAYOUT, &l)));
	l.as_id = 1;
	l.flags = KVMAS_LAYOUT_ALL_AS;
	EXPECT_EQ(-EINVAL, sys_ret(ioctl(self->dev, KVMAS_GET_LAYOUT, &l)));
	l.as_id = 0;
	l.flags = 1U << 7;
	EXPECT_EQ(-EINVAL, sys_ret(ioctl(self->dev, KVMAS_GET_LAYOUT, &l)));
	l.flags = 0;
	l.__reserved = 1;
	EXPECT_EQ(-EINVAL, sys_ret(ioctl(self->dev, KVMAS_GET_LAYOUT, &l)));
	l.__reserved = 0;
	l.entries = 16;
	EXPECT_EQ(-EFAULT, sys_ret(ioctl(self->dev, KVMAS_GET_LAYOUT, &l)));
}

/* x86 keeps internal slots above the user range; they must be visible. */
TEST_F(vm, layout_internal_slots)
{
	struct kvmas_slot ents[16];
	struct kvmas_vm_info info;
	unsigned int nr, nr_all, i, internal = 0;

	ASSERT_EQ(0, kvmas_attach(self->dev, self->vm));
#if defined(__x86_64__)
	/* An in-kernel APIC + vCPU makes KVM allocate internal memslots on VMX
	 * (APIC access page); SVM may have none, which is also fine. */
	ASSERT_EQ(0, ioctl(self->vm, KVM_CREATE_IRQCHIP, 0));
	ASSERT_GE(kvm_vcpu_create(self->vm, 0), 0);
#endif
	ASSERT_EQ(0, kvmas_vm_info(self->dev, &info));
	ASSERT_EQ(0, kvmas_layout(self->dev, 0, 0, ents, 16, &nr, NULL));
	ASSERT_EQ(0, kvmas_layout(self->dev, KVMAS_LAYOUT_INTERNAL, 0, ents, 16,
				  &nr_all, NULL));
	EXPECT_EQ(info.internal_slots[0], nr_all - nr);
	for (i = 0; i < nr_all; i++) {
		if (ents[i].attrs & KVMAS_SLOT_INTERNAL) {
			EXPECT_GE(ents[i].slot, info.max_user_slots);
			internal++;
		}
	}
	EXPECT_EQ(info.internal_slots[0], internal);
	TH_LOG("%u internal slot(s) in address space 0", internal);
}

/*
 * 1000 sessions open/attach/close on one VM, then VMs created and
 * destroyed through sessions: no module reference, session object, VM or
 * vendor-module reference may leak.
 */
TEST(no_leaks_over_1000_cycles)
{
	long ref0, ref1, amd0, amd1, slab0, slab1, per_slab;
	const char *vendor = "/sys/module/kvm_amd/refcnt";
	int vms0, i, vm;

	if (access(vendor, R_OK))
		vendor = "/sys/module/kvm_intel/refcnt";
	ref0 = read_long_file("/sys/module/kvm_atomic_slots/refcnt");
	amd0 = read_long_file(vendor);
	vms0 = kvm_debugfs_nr_vms();
	ASSERT_GE(ref0, 0);
	ASSERT_EQ(0, slab_active("kvmas_session", &slab0, &per_slab));

	vm = kvm_vm_create();
	ASSERT_GE(vm, 0);
	for (i = 0; i < 1000; i++) {
		int dev = kvmas_dev_open();

		ASSERT_GE(dev, 0);
		ASSERT_EQ(0, kvmas_attach(dev, vm));
		if (i == 500)
			EXPECT_EQ(
				ref0 + 1,
				read_long_file(
					"/sys/module/kvm_atomic_slots/refcnt"));
		ASSERT_EQ(0, close(dev));
	}
	close(vm);
	for (i = 0; i < 50; i++) {
		int dev = kvmas_dev_open();

		vm = kvm_vm_create();
		ASSERT_GE(dev, 0);
		ASSERT_GE(vm, 0);
		ASSERT_EQ(0, kvmas_attach(dev, vm));
		/* Alternate who lets go last: the VM fd or the session. */
		if (i & 1) {
			close(vm);
			close(dev);
		} else {
			close(dev);
			close(vm);
		}
	}

	ref1 = read_long_file("/sys/module/kvm_atomic_slots/refcnt");
	amd1 = read_long_file(vendor);
	ASSERT_EQ(0, slab_active("kvmas_session", &slab1, &per_slab));
	EXPECT_EQ(ref0, ref1);
	EXPECT_EQ(amd0, amd1);
	EXPECT_EQ(vms0, kvm_debugfs_nr_vms());
	/* SLUB counts a CPU's partly used slab as active: allow one slab. */
	EXPECT_LE(slab1 - slab0, per_slab)
	TH_LOG("kvmas_session objects %ld -> %ld", slab0, slab1);
}

TEST_HARNESS_MAIN
