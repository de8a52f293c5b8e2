// SPDX-License-Identifier: GPL-2.0
/*
 * klp-sim: replay, in user space, what the module loader and the livepatch
 * core do with a klp-convert output, and check that every converted call
 * ends up calling the address livepatch resolved.
 *
 *   klp-sim FILE [obj.symbol=0xADDR ...]
 *
 * Mirrors (Linux 6.12):
 *   kernel/module/main.c   elf_validity_cache_sechdrs/_secstrings (subset),
 *                          simplify_symbols(), apply_relocations()
 *   kernel/livepatch/core.c klp_write_section_relocs(), klp_resolve_symbols()
 *                          (same sscanf formats)
 *   arch/x86/kernel/module.c __write_relocate_add() for PC32/PLT32/64/32S
 *   arch/arm64/kernel/module.c CALL26/JUMP26
 * Exit 0 if everything resolves, 1 otherwise.
 */

#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SHN_LIVEPATCH 0xff20
#define SHF_RELA_LIVEPATCH 0x00100000
#define MODULE_NAME_LEN 56
#define KSYM_NAME_LEN 512

static unsigned char *img;
static size_t img_size;
static Elf64_Ehdr *eh;
static Elf64_Shdr *sh;
static const char *secstr;
static unsigned char **mem; /* loaded copy of each SHF_ALLOC section */
static uint64_t *addr; /* its fake kernel address */
static int fails;

static void __attribute__((format(printf, 1, 2))) fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	printf("FAIL: ");
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	fails++;
}

struct ksym {
	char *key; /* obj.symbol */
	uint64_t addr;
};

static struct ksym *ksyms;
static int nksyms;

static bool lookup(const char *obj, const char *name, uint64_t *val)
{
	for (int i = 0; i < nksyms; i++) {
		size_t ol = strlen(obj);

		if (!strncmp(ksyms[i].key, obj, ol) &&
		    ksyms[i].key[ol] == '.' &&
		    !strcmp(ksyms[i].key + ol + 1, name)) {
			*val = ksyms[i].addr;
			return true;
		}
	}
	return false;
}

static bool in_file(uint64_t off, uint64_t size)
{
	return off <= img_size && size <= img_size - off;
}

static int32_t rd32(const unsigned char *p)
{
	return (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 |
			 (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
}

static void wr32(unsigned char *p, uint32_t v)
{
	p[0] = v;
	p[1] = v >> 8;
	p[2] = v >> 16;
	p[3] = v >> 24;
}

/* Apply one livepatch relocation and check the branch lands on @S. */
static void apply_and_verify(unsigned int target, const Elf64_Rela *r,
			     uint64_t S, const char *symname,
			     const char *relsec)
{
	unsigned char *loc = mem[target] + r->r_offset;
	uint64_t P = addr[target] + r->r_offset;
	unsigned int type = ELF64_R_TYPE(r->r_info);
	uint64_t dest;

	if (r->r_offset + 4 > sh[target].sh_size) {
		fail("%s: %s: relocation outside section (%llx)", relsec,
		     symname, (unsigned long long)r->r_offset);
		return;
	}

	if (eh->e_machine == EM_X86_64) {
		uint64_t val = S + r->r_addend;
		bool branch;

		if (type != R_X86_64_PC32 && type != R_X86_64_PLT32) {
			fail("%s: %s: relocation type %u is not a branch",
			     relsec, symname, type);
			return;
		}
		val -= P;
		if ((int64_t)val != (int32_t)val) {
			fail("%s: %s: overflow in relocation (%llx)", relsec,
			     symname, (unsigned long long)val);
			return;
		}
		if (rd32(loc)) {
			fail("%s: %s: existing value is nonzero at %llx",
			     relsec, symname, (unsigned long long)r->r_offset);
			return;
		}
		wr32(loc, (uint32_t)val);
		branch = loc[-1] == 0xe8 || loc[-1] == 0xe9 ||
			 (loc[-2] == 0x0f && (loc[-1] & 0xf0) == 0x80);
		if (!branch) {
			fail("%s: %s: not a call/jmp/jcc at %llx", relsec,
			     symname, (unsigned long long)r->r_offset);
			return;
		}
		dest = P + 4 + (int64_t)rd32(loc);
	} else {
		int64_t delta = (int64_t)(S + r->r_addend - P);
		uint32_t insn = (uint32_t)rd32(loc);

		if (type != R_AARCH64_CALL26 && type != R_AARCH64_JUMP26) {
			fail("%s: %s: relocation type %u is not a branch",
			     relsec, symname, type);
			return;
		}
		if (delta < -(1LL << 27) || delta >= (1LL << 27)) {
			fail("%s: %s: branch out of range (%lld)", relsec,
			     symname, (long long)delta);
			return;
		}
		insn = (insn & 0xfc000000) |
		       ((uint32_t)(delta >> 2) & 0x03ffffff);
		wr32(loc, insn);
		if ((insn & 0x7c000000) != 0x14000000) {
			fail("%s: %s: not b/bl at %llx", relsec, symname,
			     (unsigned long long)r->r_offset);
			return;
		}
		dest = P + (int64_t)((int32_t)((insn & 0x03ffffff) << 6) >> 4);
	}
	if (dest != S) {
		fail("%s: %s: branch goes to %llx", relsec, symname,
		     (unsigned long long)dest);
		return;
	}
	printf("ok: %s+0x%llx -> %s (0x%llx)\n", secstr + sh[target].sh_name,
	       (unsigned long long)r->r_offset, symname, (unsigned long long)S);
}

int main(int argc, char **argv)
{
	unsigned int symndx = 0, strndx;
	Elf64_Sym *syms;
	const char *strtab;
	size_t nsyms;
	uint64_t next = 0xffffffffc1000000ULL;
	struct stat st;
	int fd;

	if (argc < 2) {
		fprintf(stderr,
			"usage: klp-sim FILE [obj.symbol=0xADDR ...]\n");
		return 2;
	}
	ksyms = calloc(argc, sizeof(*ksyms));
	for (int i = 2; i < argc; i++) {
		char *eq = strchr(argv[i], '=');

		if (!eq || !strchr(argv[i], '.'))
			return fprintf(stderr, "bad symbol '%s'\n", argv[i]), 2;
		*eq = '\0';
		ksyms[nksyms].key = argv[i];
		ksyms[nksyms++].addr = strtoull(eq + 1, NULL, 0);
	}

	fd = open(argv[1], O_RDONLY);
	if (fd < 0 || fstat(fd, &st))
		return perror(argv[1]), 2;
	img_size = st.st_size;
	img = malloc(img_size);
	if (!img || read(fd, img, img_size) != (ssize_t)img_size)
		return perror(argv[1]), 2;
	close(fd);

	/* elf_validity_ehdr() / _cache_sechdrs() / _cache_secstrings() */
	eh = (Elf64_Ehdr *)img;
	if (img_size < sizeof(*eh) || memcmp(eh->e_ident, ELFMAG, SELFMAG) ||
	    eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_type != ET_REL ||
	    eh->e_ident[EI_DATA] != ELFDATA2LSB ||
	    (eh->e_machine != EM_X86_64 && eh->e_machine != EM_AARCH64))
		return printf("FAIL: not a loadable ELF64 LE relocatable\n"), 1;
	if (eh->e_shentsize != sizeof(Elf64_Shdr) || eh->e_shnum == 0 ||
	    !in_file(eh->e_shoff, (uint64_t)eh->e_shnum * sizeof(Elf64_Shdr)))
		return printf("FAIL: Invalid ELF section header overflow\n"), 1;
	sh = (Elf64_Shdr *)(img + eh->e_shoff);
	if (sh[0].sh_type != SHT_NULL || sh[0].sh_size || sh[0].sh_addr)
		return printf("FAIL: section 0 not NULL\n"), 1;
	for (unsigned int i = 1; i < eh->e_shnum; i++)
		if (sh[i].sh_type != SHT_NOBITS && sh[i].sh_type != SHT_NULL &&
		    !in_file(sh[i].sh_offset, sh[i].sh_size))
			return printf("FAIL: Invalid ELF section %u out of file\n",
				      i),
			       1;
	if (eh->e_shstrndx == SHN_UNDEF || eh->e_shstrndx >= eh->e_shnum ||
	    sh[eh->e_shstrndx].sh_type != SHT_STRTAB ||
	    !sh[eh->e_shstrndx].sh_size)
		return printf("FAIL: bad section name table\n"), 1;
	secstr = (char *)img + sh[eh->e_shstrndx].sh_offset;
	if (secstr[sh[eh->e_shstrndx].sh_size - 1])
		return printf("FAIL: section name table isn't null terminated\n"),
		       1;
	for (unsigned int i = 1; i < eh->e_shnum; i++) {
		if (sh[i].sh_type != SHT_NULL &&
		    sh[i].sh_name >= sh[eh->e_shstrndx].sh_size)
			return printf("FAIL: bad section name offset %u\n", i),
			       1;
		if (sh[i].sh_type == SHT_SYMTAB) {
			if (symndx)
				return printf("FAIL: two symbol tables\n"), 1;
			symndx = i;
		}
	}
	if (!symndx)
		return printf("FAIL: no symbol table\n"), 1;
	strndx = sh[symndx].sh_link;
	if (strndx == SHN_UNDEF || strndx >= eh->e_shnum ||
	    sh[strndx].sh_type != SHT_STRTAB || !sh[strndx].sh_size)
		return printf("FAIL: bad string table\n"), 1;
	strtab = (char *)img + sh[strndx].sh_offset;
	if (strtab[sh[strndx].sh_size - 1])
		return printf("FAIL: string table isn't null terminated\n"), 1;
	syms = (Elf64_Sym *)(img + sh[symndx].sh_offset);
	nsyms = sh[symndx].sh_size / sizeof(Elf64_Sym);
	for (size_t i = 0; i < nsyms; i++)
		if (syms[i].st_name >= sh[strndx].sh_size)
			return printf("FAIL: bad symbol name offset\n"), 1;

	/* layout + move_module(): give every SHF_ALLOC section an address */
	mem = calloc(eh->e_shnum, sizeof(*mem));
	addr = calloc(eh->e_shnum, sizeof(*addr));
	for (unsigned int i = 1; i < eh->e_shnum; i++) {
		uint64_t a = sh[i].sh_addralign ? sh[i].sh_addralign : 1;

		if (!(sh[i].sh_flags & SHF_ALLOC))
			continue;
		next = (next + a - 1) / a * a;
		addr[i] = next;
		next += sh[i].sh_size + 16;
		mem[i] = calloc(1, sh[i].sh_size + 16);
		if (sh[i].sh_type != SHT_NOBITS)
			memcpy(mem[i], img + sh[i].sh_offset, sh[i].sh_size);
	}

	/* simplify_symbols() */
	for (size_t i = 1; i < nsyms; i++) {
		const char *name = strtab + syms[i].st_name;

		switch (syms[i].st_shndx) {
		case SHN_COMMON:
			fail("%s: common symbol", name);
			break;
		case SHN_ABS:
		case SHN_LIVEPATCH:
			break;
		case SHN_UNDEF:
			/* exported symbols: resolved by the loader, any value */
			syms[i].st_value = 0xffffffff81000000ULL + i * 0x10;
			if (ELF64_ST_BIND(syms[i].st_info) == STB_WEAK) {
				syms[i].st_value = 0;
				printf("note: weak undefined %s resolves to 0\n",
				       name);
			}
			break;
		default:
			if (syms[i].st_shndx >= eh->e_shnum) {
				fail("%s: invalid section index %u", name,
				     syms[i].st_shndx);
				break;
			}
			syms[i].st_value += addr[syms[i].st_shndx];
		}
	}

	/* apply_relocations(): what the loader itself applies */
	for (unsigned int i = 1; i < eh->e_shnum; i++) {
		unsigned int info = sh[i].sh_info;
		const Elf64_Rela *r = (void *)(img + sh[i].sh_offset);

		if (info >= eh->e_shnum || !(sh[info].sh_flags & SHF_ALLOC))
			continue;
		if (sh[i].sh_flags & SHF_RELA_LIVEPATCH) {
			char obj[MODULE_NAME_LEN];

			/* klp_write_section_relocs(), objname == NULL */
			if (sscanf(secstr + sh[i].sh_name, ".klp.rela.%55[^.]",
				   obj) != 1)
				fail("%s: incorrectly formatted name",
				     secstr + sh[i].sh_name);
			if (!(sh[i].sh_flags & SHF_ALLOC))
				fail("%s: livepatch relocations not SHF_ALLOC",
				     secstr + sh[i].sh_name);
			continue; /* for kvm: applied when the object is patched */
		}
		if (sh[i].sh_type != SHT_RELA || sh[i].sh_link != symndx)
			continue;
		for (size_t j = 0; j < sh[i].sh_size / sizeof(*r); j++) {
			const Elf64_Sym *s = &syms[ELF64_R_SYM(r[j].r_info)];

			if (s->st_shndx == SHN_UNDEF &&
			    ELF64_ST_BIND(s->st_info) == STB_WEAK && s->st_name)
				fail("%s: %s applied with value 0 (offset %llx)",
				     secstr + sh[i].sh_name,
				     strtab + s->st_name,
				     (unsigned long long)r[j].r_offset);
			if (s->st_shndx == SHN_LIVEPATCH)
				fail("%s: livepatch symbol %s in ordinary relocations (%llx)",
				     secstr + sh[i].sh_name,
				     strtab + s->st_name,
				     (unsigned long long)r[j].r_offset);
		}
	}

	/* klp_enable_patch() -> klp_write_object_relocs() for every object */
	for (unsigned int i = 1; i < eh->e_shnum; i++) {
		const Elf64_Rela *r = (void *)(img + sh[i].sh_offset);
		const char *relsec = secstr + sh[i].sh_name;
		char sec_objname[MODULE_NAME_LEN];

		if (!(sh[i].sh_flags & SHF_RELA_LIVEPATCH))
			continue;
		if (sscanf(relsec, ".klp.rela.%55[^.]", sec_objname) != 1)
			continue; /* reported above */
		if (sh[i].sh_link != symndx || sh[i].sh_info >= eh->e_shnum ||
		    !mem[sh[i].sh_info]) {
			fail("%s: bad sh_link/sh_info", relsec);
			continue;
		}
		for (size_t j = 0; j < sh[i].sh_size / sizeof(*r); j++) {
			Elf64_Sym *s = &syms[ELF64_R_SYM(r[j].r_info)];
			char sym_objname[MODULE_NAME_LEN],
				sym_name[KSYM_NAME_LEN];
			unsigned long sympos;
			uint64_t a;

			/* klp_resolve_symbols() */
			if (s->st_shndx != SHN_LIVEPATCH) {
				fail("%s: symbol %s is not marked as a livepatch symbol",
				     relsec, strtab + s->st_name);
				continue;
			}
			if (sscanf(strtab + s->st_name,
				   ".klp.sym.%55[^.].%511[^,],%lu", sym_objname,
				   sym_name, &sympos) != 3) {
				fail("%s: symbol %s has an incorrectly formatted name",
				     relsec, strtab + s->st_name);
				continue;
			}
			if (strcmp(sec_objname, "vmlinux") &&
			    !strcmp(sym_objname, "vmlinux")) {
				fail("%s: invalid access to vmlinux symbol %s",
				     relsec, sym_name);
				continue;
			}
			if (!lookup(sym_objname, sym_name, &a)) {
				fail("%s: symbol '%s' (pos %lu) not found in symbol table",
				     relsec, sym_name, sympos);
				continue;
			}
			s->st_value = a;
			apply_and_verify(sh[i].sh_info, &r[j], a, sym_name,
					 relsec);
		}
	}

	printf("%s: %d failure%s\n", argv[1], fails, fails == 1 ? "" : "s");
	return fails ? 1 : 0;
}
