// SPDX-License-Identifier: GPL-2.0
/*
 * pamguest: a bare-metal 2-vCPU guest for an unmodified QEMU 7.2 (i440FX)
 * that remaps memory under a running vCPU.
 *
 * The BSP toggles the i440FX PAM registers (PCI config of 00:00.0,
 * 0x59-0x5f, through ports 0xcf8/0xcfc) between RAM and ROM mappings;
 * QEMU turns each PAM write into one memory transaction, i.e. memslot
 * DELETEs and CREATEs. The AP meanwhile executes code copied into two
 * PAM windows (0xc4000, 0xf4000), into low RAM and at 4 MiB, plus its own
 * loop in this image (1 MiB), and checks the results and the data it
 * reads through the windows; a vCPU that fetches an instruction from a
 * gpa whose memslot is momentarily gone makes KVM give up on emulation
 * ("KVM internal error. Suberror: 1" in QEMU).
 *
 * Four windows, one PAM nibble each (a "toggle" is one PAM register write
 * that flips one window between its two states):
 *   C4000 (16 KiB) and F0000 (64 KiB): RAM <-> RAM read-only (PAM 3 <-> 1),
 *     the AP executes code there, which reads the same in both states;
 *   D0000 and E0000 (16 KiB each): RAM <-> ROM (PAM 3 <-> 0, pc.rom and the
 *     BIOS image: other host pages), the AP checks that every dword it reads
 *     there is either our RAM pattern or the ROM's content.
 * After each toggle the BSP checks the window it flipped: the exact view
 * (pattern or ROM snapshot, code bytes) and, in the RAM state, that a write
 * sticks.
 *
 * Output goes to the debugcon port (0xe9): a '.' per toggle, progress
 * lines, then "RESULT ..."; the isa-debug-exit device (iobase 0xf4) ends
 * QEMU with status 1 (pass) or 3 (the guest found an error).
 *
 * Multiboot command line: toggles=N (default 2000), mode=exec|idle (idle:
 * the AP halts instead of executing: the control run).
 */
#include <stdint.h>

#define DEBUGCON 0xe9
#define EXIT_PORT 0xf4
#define LAPIC 0xfee00000u
#define TRAMP_PAGE 0x8
#define LOWCODE 0x20000u
#define HICODE 0x400000u

extern char blob[], blob_end[], ap_tramp[], ap_tramp_end[];
typedef uint32_t __attribute__((regparm(1))) (*blob_fn)(uint32_t);

struct mbinfo {
	uint32_t flags, mem_lower, mem_upper, boot_device, cmdline;
};

struct win {
	const char *name;
	uint32_t base, size;
	uint8_t reg, shift; /* PAM register, nibble */
	uint8_t alt; /* PAM value of the ROM state */
	uint8_t exec; /* AP runs code at base + code_off */
	uint32_t code_off;
	int rom; /* current state: 1 = ROM state */
	uint32_t probe; /* value last written to the probe dword */
};

static struct win wins[] = {
	{ .name = "C4000",
	  .base = 0xc4000,
	  .size = 0x4000,
	  .reg = 0x5a,
	  .shift = 4,
	  .alt = 1,
	  .exec = 1 },
	{ .name = "F0000",
	  .base = 0xf0000,
	  .size = 0x10000,
	  .reg = 0x59,
	  .shift = 4,
	  .alt = 1,
	  .exec = 1,
	  .code_off = 0x4000 },
	{ .name = "D0000",
	  .base = 0xd0000,
	  .size = 0x4000,
	  .reg = 0x5c,
	  .shift = 0 },
	{ .name = "E0000",
	  .base = 0xe0000,
	  .size = 0x4000,
	  .reg = 0x5e,
	  .shift = 0 },
};
#define NWIN (sizeof(wins) / sizeof(wins[0]))
#define DATA_WORDS (0x4000 / 4)

/* ROM content of the data windows, read at start. */
static uint32_t romsnap[2][DATA_WORDS];

/* Shared between the vCPUs. */
static volatile uint32_t ap_state; /* 1 = running, 2 = stopped */
static volatile uint32_t stop;
static volatile uint32_t execs;
static volatile uint32_t ap_errors;
static volatile uint32_t err_addr, err_got, err_want;
static volatile uint32_t mode_idle;

static inline void outb(uint16_t port, uint8_t v)
{
	asm volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline void outl(uint16_t port, uint32_t v)
{
	asm volatile("outl %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint8_t inb(uint16_t port)
{
	uint8_t v;

	asm volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static inline void cpu_relax(void)
{
	asm volatile("pause" ::: "memory");
}

static inline uint32_t rd32(uint32_t a)
{
	return *(volatile uint32_t *)a;
}

static inline void wr32(uint32_t a, uint32_t v)
{
	*(volatile uint32_t *)a = v;
}

static void putc(char c)
{
	outb(DEBUGCON, c);
}

static void puts(const char *s)
{
	while (*s)
		putc(*s++);
}

static void putu(uint32_t v)
{
	char b[11];
	int i = 10;

	b[i] = 0;
	do {
		b[--i] = '0' + v % 10;
		v /= 10;
	} while (v);
	puts(b + i);
}

static void putx(uint32_t v)
{
	int i;

	puts("0x");
	for (i = 28; i >= 0; i -= 4)
		putc("0123456789abcdef"[(v >> i) & 15]);
}

static void __attribute__((noreturn)) qemu_exit(uint32_t code)
{
	outl(EXIT_PORT, code);
	for (;;)
		asm volatile("cli; hlt");
}

static uint8_t pci_read8(uint8_t reg)
{
	outl(0xcf8, 0x80000000u | (reg & 0xfc));
	return inb(0xcfc + (reg & 3));
}

static void pci_write8(uint8_t reg, uint8_t v)
{
	outl(0xcf8, 0x80000000u | (reg & 0xfc));
	outb(0xcfc + (reg & 3), v);
}

static void pam_set(struct win *w, uint8_t val)
{
	uint8_t r = pci_read8(w->reg);

	r = (r & ~(0xf << w->shift)) | (val << w->shift);
	pci_write8(w->reg, r);
}

static void copy(uint32_t dst, const void *src, uint32_t n)
{
	const uint8_t *s = src;
	volatile uint8_t *d = (volatile uint8_t *)dst;

	while (n--)
		*d++ = *s++;
}

static uint32_t pattern(uint32_t addr)
{
	uint32_t x = addr * 0x9e3779b1u;

	return x ^ (x >> 15) ^ 0x5a5aa5a5u;
}

static uint32_t lapic_rd(uint32_t off)
{
	return rd32(LAPIC + off);
}

static void lapic_ipi(uint32_t apic_id, uint32_t low)
{
	int n = 1000000;

	while ((lapic_rd(0x300) & (1u << 12)) && n--)
		cpu_relax();
	wr32(LAPIC + 0x310, apic_id << 24);
	wr32(LAPIC + 0x300, low);
}

static void delay(uint32_t n)
{
	while (n--)
		cpu_relax();
}

static uint32_t parse_u(const char *s)
{
	uint32_t v = 0;

	while (*s >= '0' && *s <= '9')
		v = v * 10 + (*s++ - '0');
	return v;
}

static int prefix(const char *s, const char *p)
{
	while (*p)
		if (*s++ != *p++)
			return 0;
	return 1;
}

static void ap_error(uint32_t addr, uint32_t got, uint32_t want)
{
	if (!ap_errors++) {
		err_addr = addr;
		err_got = got;
		err_want = want;
	}
}

static const uint32_t sites[] = { 0xc4000, 0xf4000, HICODE, LOWCODE };

void ap_main(void)
{
	uint32_t seed = 1;
	unsigned int i, w, k;

	ap_state = 1;
	if (mode_idle) {
		for (;;)
			asm volatile("cli; hlt");
	}
	while (!stop) {
		uint32_t want = ((blob_fn)blob)(seed);

		for (i = 0; i < sizeof(sites) / sizeof(sites[0]); i++) {
			uint32_t got = ((blob_fn)sites[i])(seed);

			if (got != want)
				ap_error(sites[i], got, want);
		}
		for (w = 2; w < NWIN; w++) {
			for (k = 0; k < DATA_WORDS; k++) {
				uint32_t a = wins[w].base + 4 * k;
				uint32_t v = rd32(a);

				if (v != pattern(a) && v != romsnap[w - 2][k])
					ap_error(a, v, pattern(a));
			}
		}
		seed = seed * 1103515245u + 12345u;
		execs++;
	}
	ap_state = 2;
	for (;;)
		asm volatile("cli; hlt");
}

/* Checks the view of a window after a toggle; returns the errors. */
static uint32_t check_win(struct win *w, uint32_t idx)
{
	uint32_t errs = 0, k, n = blob_end - blob;
	uint32_t probe = w->base + w->size - 4;

	if (!w->exec) {
		for (k = 0; k < DATA_WORDS; k++) {
			uint32_t a = w->base + 4 * k;
			uint32_t want = w->rom ? romsnap[idx - 2][k] :
						 pattern(a);

			if (rd32(a) != want) {
				if (!errs)
					puts("\nERROR view "), puts(w->name),
						puts(w->rom ? " (rom) at " :
							      " (ram) at "),
						putx(a), puts(" got "),
						putx(rd32(a)), puts(" want "),
						putx(want), putc('\n');
				errs++;
			}
		}
		return errs;
	}
	for (k = 0; k < n; k++) {
		if (*(volatile uint8_t *)(w->base + w->code_off + k) !=
		    (uint8_t)blob[k]) {
			puts("\nERROR code bytes ");
			puts(w->name);
			putc('\n');
			return 1;
		}
	}
	/*
	 * The probe dword holds what the RAM state last wrote; the RAM state
	 * must take a new value. No write in the read-only state: QEMU 7.2
	 * maps a read-only PAM alias of RAM as a writable memslot under KVM
	 * (the alias's read-only flag does not reach kvm_mem_flags()), so
	 * whether such a write sticks says nothing about memslot updates.
	 */
	if (rd32(probe) != w->probe) {
		puts("\nERROR probe ");
		puts(w->name);
		puts(" changed\n");
		errs++;
	}
	if (!w->rom) {
		wr32(probe, ++w->probe);
		if (rd32(probe) != w->probe) {
			puts("\nERROR probe ");
			puts(w->name);
			puts(" (RAM state dropped a write)\n");
			errs++;
		}
	}
	return errs;
}

void bsp_main(struct mbinfo *mbi)
{
	uint32_t toggles = 2000, t, i, k, errs = 0, differ;
	const char *cmd = "";
	const char *p;

	if (mbi && (mbi->flags & 4) && mbi->cmdline)
		cmd = (const char *)mbi->cmdline;
	for (p = cmd; *p; p++) {
		if (p != cmd && p[-1] != ' ')
			continue;
		if (prefix(p, "toggles="))
			toggles = parse_u(p + 8);
		else if (prefix(p, "mode=idle"))
			mode_idle = 1;
	}
	puts("pamguest: toggles=");
	putu(toggles);
	puts(mode_idle ? " mode=idle\n" : " mode=exec\n");

	/* All windows RAM (read/write), then snapshot the ROM of the data windows. */
	pci_write8(0x59, 0x30);
	for (i = 0x5a; i <= 0x5f; i++)
		pci_write8(i, 0x33);
	for (i = 2; i < NWIN; i++) {
		pam_set(&wins[i], wins[i].alt);
		for (k = 0; k < DATA_WORDS; k++)
			romsnap[i - 2][k] = rd32(wins[i].base + 4 * k);
		pam_set(&wins[i], 3);
		differ = 0;
		for (k = 0; k < DATA_WORDS; k++) {
			uint32_t a = wins[i].base + 4 * k;

			wr32(a, pattern(a));
			differ += romsnap[i - 2][k] != pattern(a);
		}
		if (differ < DATA_WORDS / 2) {
			puts("FAIL: ROM view of ");
			puts(wins[i].name);
			puts(" is too close to the RAM pattern\n");
			qemu_exit(1);
		}
	}
	for (i = 0; i < 2; i++) {
		copy(wins[i].base + wins[i].code_off, blob, blob_end - blob);
		wins[i].probe = 0x1234 + i;
		wr32(wins[i].base + wins[i].size - 4, wins[i].probe);
	}
	copy(LOWCODE, blob, blob_end - blob);
	copy(HICODE, blob, blob_end - blob);
	for (i = 0; i < NWIN; i++) {
		if (check_win(&wins[i], i)) {
			puts("FAIL: setup check\n");
			qemu_exit(1);
		}
	}

	/* INIT-SIPI-SIPI to APIC id 1. */
	copy(TRAMP_PAGE << 12, ap_tramp, ap_tramp_end - ap_tramp);
	wr32(LAPIC + 0xf0, rd32(LAPIC + 0xf0) | 0x100);
	lapic_ipi(1, 0x4500);
	delay(100000);
	for (i = 0; i < 2 && !ap_state; i++) {
		lapic_ipi(1, 0x4600 | TRAMP_PAGE);
		for (k = 0; k < 2000000 && !ap_state; k++)
			cpu_relax();
	}
	for (k = 0; k < 50000000 && !ap_state; k++)
		cpu_relax();
	if (!ap_state) {
		puts("FAIL: AP did not start\n");
		qemu_exit(1);
	}
	/* Let the AP get going in the windows first. */
	for (k = 0; k < 100000000 && !mode_idle && execs < 2; k++)
		cpu_relax();
	puts("READY execs=");
	putu(execs);
	putc('\n');

	for (t = 0; t < toggles; t++) {
		struct win *w = &wins[t % NWIN];

		w->rom = !w->rom;
		pam_set(w, w->rom ? w->alt : 3);
		errs += check_win(w, t % NWIN);
		putc('.');
		if ((t + 1) % 100 == 0) {
			puts(" toggles=");
			putu(t + 1);
			puts(" execs=");
			putu(execs);
			putc('\n');
		}
		if (errs || ap_errors)
			break;
	}
	stop = 1;
	for (k = 0; k < 100000000 && !mode_idle && ap_state != 2; k++)
		cpu_relax();
	if (!mode_idle && ap_state != 2) {
		puts("\nERROR: AP did not stop\n");
		errs++;
	}
	if (ap_errors) {
		puts("\nERROR: AP saw ");
		putu(ap_errors);
		puts(" bad values, first at ");
		putx(err_addr);
		puts(" got ");
		putx(err_got);
		puts(" want ");
		putx(err_want);
		putc('\n');
	}
	puts("\nRESULT toggles=");
	putu(t < toggles ? t + 1 : t);
	puts(" execs=");
	putu(execs);
	puts(" errors=");
	putu(errs + ap_errors);
	puts(errs + ap_errors ? " FAIL\n" : " PASS\n");
	qemu_exit(errs + ap_errors ? 1 : 0);
}
