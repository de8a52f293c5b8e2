// SPDX-License-Identifier: GPL-2.0
/*
 * klp-convert - turn a module's references to another module's internals
 * into livepatch relocations.
 *
 * The module source declares the internals it needs as weak undefined
 * externs. modpost does not report weak undefined symbols and the plain
 * module loader would resolve them to 0, so every reference to them is
 * rewritten here, after the final .ko link and before signing, into the
 * format of Documentation/livepatch/module-elf-format.rst:
 *
 *   - the symbol becomes ".klp.sym.<obj>.<name>,<sympos>", st_shndx =
 *     SHN_LIVEPATCH, STB_GLOBAL, STT_NOTYPE;
 *   - each relocation against it moves from ".rela<sec>" into
 *     ".klp.rela.<obj>.<sec>" (SHT_RELA, SHF_ALLOC | SHF_INFO_LINK |
 *     SHF_RELA_LIVEPATCH, sh_link = .symtab, sh_info = <sec>), one section
 *     per (object, target section), appended after the existing sections.
 *
 * The livepatch core resolves them when the patch's klp_object for <obj>
 * is enabled (kernel/livepatch/core.c klp_apply_section_relocs()).
 *
 * Safety rule: such a symbol may only be the target of a direct call or
 * jump (x86_64: R_X86_64_PLT32/PC32 on the rel32 of e8 call, e9 jmp or
 * 0f 8x jcc, addend -4; arm64: R_AARCH64_CALL26 on bl, R_AARCH64_JUMP26 on
 * b). A taken address can become an indirect call target, and on an IBT
 * kernel the target's ENDBR may have been sealed: anything else is an
 * error.
 *
 * Usage: klp-convert LISTFILE IN.ko OUT.ko   (OUT may be IN)
 *        klp-convert --check LISTFILE IN.ko [OUT.ko]
 *   LISTFILE: "<obj> <symbol> [sympos]" per line, '#' starts a comment.
 *
 * Converting writes a scratch file next to OUT and renames it over OUT only
 * if every check passed; an input with nothing left to convert is copied
 * unchanged (so a second run is a byte-identical no-op). --check writes
 * nothing; it accepts a signed module (the part before the signature is
 * checked), while converting refuses one. Exit status: 0 OK, 1 the module
 * breaks a rule (every problem is reported), 2 usage, I/O or ELF trouble.
 */

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* include/uapi/linux/elf.h */
#define SHN_LIVEPATCH 0xff20
#define SHF_RELA_LIVEPATCH 0x00100000

#define KLP_SYM_PREFIX ".klp.sym."
#define KLP_RELA_PREFIX ".klp.rela."
/* Field widths of the sscanf() formats in kernel/livepatch/core.c. */
#define KLP_OBJNAME_MAX 55
#define KLP_SYMNAME_MAX 511

#define MODSIG_MAGIC "~Module signature appended~\n"

#define EXIT_INVALID 1 /* the module breaks a rule */
#define EXIT_USAGE 2 /* bad arguments, I/O or ELF trouble */

struct entry { /* one line of the list file */
	char *obj;
	char *name;
	unsigned long pos;
	unsigned int line;
};

struct group { /* relocations for one .klp.rela section */
	const struct entry *ent;
	size_t target; /* section the relocations apply to */
	size_t relsec; /* existing .klp.rela section, or 0 */
	Elf64_Rela *rela;
	size_t n, cap;
};

struct ctx {
	const char *path;
	Elf *elf;
	GElf_Ehdr ehdr;
	size_t shnum, shstrndx;
	size_t symndx, strndx;
	Elf_Data *symdata, *strdata;
	Elf64_Sym *syms;
	size_t nsyms, first_global;
	bool check;
	struct entry *list;
	size_t nlist;
	unsigned int errors;
};

static const char *prog = "klp-convert";

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "%s: ", prog);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(EXIT_USAGE);
}

static void die_elf(const char *what)
{
	die("%s: %s", what, elf_errmsg(-1));
}

static void error(struct ctx *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "%s: error: %s: ", prog, c->path);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	c->errors++;
}

static void warning(struct ctx *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "%s: warning: %s: ", prog, c->path);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p)
		die("out of memory");
	return p;
}

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		die("out of memory");
	return p;
}

static char *xstrdup(const char *s)
{
	char *p = strdup(s);

	if (!p)
		die("out of memory");
	return p;
}

/* ---------------------------------------------------------------- list */

static bool valid_objname(const char *s)
{
	size_t n = strlen(s);

	/* ".klp.rela.%55[^.]" and ".klp.sym.%55[^.]" stop at the first '.' */
	return n > 0 && n <= KLP_OBJNAME_MAX && !strpbrk(s, ".,");
}

static bool valid_symname(const char *s)
{
	size_t n = strlen(s);

	/* ".klp.sym.obj.%511[^,],%lu" stops at the first ',' */
	return n > 0 && n <= KLP_SYMNAME_MAX && !strchr(s, ',');
}

static bool parse_ulong(const char *s, unsigned long *val)
{
	char *end;

	if (!*s || strspn(s, "0123456789") != strlen(s))
		return false;
	errno = 0;
	*val = strtoul(s, &end, 10);
	return !errno && !*end;
}

static void read_list(struct ctx *c, const char *path)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0, alloc = 0;
	unsigned int lineno = 0;
	ssize_t len;

	if (!f)
		die("%s: %s", path, strerror(errno));

	while ((len = getline(&line, &cap, f)) >= 0) {
		char *tok[4], *save = NULL, *p;
		struct entry *e;
		int n = 0;

		lineno++;
		p = strchr(line, '#');
		if (p)
			*p = '\0';
		for (p = strtok_r(line, " \t\r\n", &save); p && n < 4;
		     p = strtok_r(NULL, " \t\r\n", &save))
			tok[n++] = p;
		if (!n)
			continue;
		if (n < 2 || n > 3)
			die("%s:%u: expected \"<obj> <symbol> [sympos]\"", path,
			    lineno);
		if (!valid_objname(tok[0]))
			die("%s:%u: bad object name '%s' (1-%d chars, no '.' or ',')",
			    path, lineno, tok[0], KLP_OBJNAME_MAX);
		if (!valid_symname(tok[1]))
			die("%s:%u: bad symbol name '%s' (1-%d chars, no ',')",
			    path, lineno, tok[1], KLP_SYMNAME_MAX);

		for (size_t i = 0; i < c->nlist; i++)
			if (!strcmp(c->list[i].name, tok[1]))
				die("%s:%u: '%s' already listed on line %u",
				    path, lineno, tok[1], c->list[i].line);

		if (c->nlist == alloc) {
			alloc = alloc ? 2 * alloc : 16;
			c->list = xrealloc(c->list, alloc * sizeof(*c->list));
		}
		e = &c->list[c->nlist++];
		memset(e, 0, sizeof(*e));
		e->obj = xstrdup(tok[0]);
		e->name = xstrdup(tok[1]);
		e->line = lineno;
		if (n == 3 && !parse_ulong(tok[2], &e->pos))
			die("%s:%u: bad sympos '%s'", path, lineno, tok[2]);
	}
	if (ferror(f))
		die("%s: read error", path);
	free(line);
	fclose(f);
}

static struct entry *find_entry(struct ctx *c, const char *name)
{
	for (size_t i = 0; i < c->nlist; i++)
		if (!strcmp(c->list[i].name, name))
			return &c->list[i];
	return NULL;
}

/* ------------------------------------------------------------ ELF helpers */

static Elf_Scn *get_scn(struct ctx *c, size_t i)
{
	Elf_Scn *s = elf_getscn(c->elf, i);

	if (!s)
		die_elf("elf_getscn");
	return s;
}

static void get_shdr(struct ctx *c, size_t i, GElf_Shdr *sh)
{
	if (!gelf_getshdr(get_scn(c, i), sh))
		die_elf("gelf_getshdr");
}

static Elf_Data *get_data(struct ctx *c, size_t i)
{
	Elf_Scn *s = get_scn(c, i);
	Elf_Data *d = elf_getdata(s, NULL);

	if (!d && elf_errno())
		die_elf("elf_getdata");
	if (d && elf_getdata(s, d))
		die("%s: section %zu has several data blocks", c->path, i);
	return d;
}

/* A NUL-terminated string at @off of a string table, or NULL. */
static const char *str_at(Elf_Data *d, size_t off)
{
	const char *s;

	if (!d || !d->d_buf || off >= d->d_size)
		return NULL;
	s = (const char *)d->d_buf + off;
	return memchr(s, '\0', d->d_size - off) ? s : NULL;
}

static const char *sec_name(struct ctx *c, size_t i)
{
	GElf_Shdr sh;
	const char *s;

	if (i == 0 || i >= c->shnum)
		return "<bad section index>";
	get_shdr(c, i, &sh);
	s = str_at(get_data(c, c->shstrndx), sh.sh_name);
	return s ? s : "<bad section name>";
}

static const char *sym_name(struct ctx *c, size_t i)
{
	const char *s = str_at(c->strdata, c->syms[i].st_name);

	return s ? s : "<bad symbol name>";
}

static const char *rel_type_name(struct ctx *c, unsigned int type)
{
	static char buf[32];

	if (c->ehdr.e_machine == EM_X86_64) {
		switch (type) {
		case R_X86_64_64:
			return "R_X86_64_64";
		case R_X86_64_PC32:
			return "R_X86_64_PC32";
		case R_X86_64_PLT32:
			return "R_X86_64_PLT32";
		case R_X86_64_GOTPCREL:
			return "R_X86_64_GOTPCREL";
		case R_X86_64_32:
			return "R_X86_64_32";
		case R_X86_64_32S:
			return "R_X86_64_32S";
		case R_X86_64_PC64:
			return "R_X86_64_PC64";
		case R_X86_64_GOTPCRELX:
			return "R_X86_64_GOTPCRELX";
		case R_X86_64_REX_GOTPCRELX:
			return "R_X86_64_REX_GOTPCRELX";
		}
	} else if (c->ehdr.e_machine == EM_AARCH64) {
		switch (type) {
		case R_AARCH64_ABS64:
			return "R_AARCH64_ABS64";
		case R_AARCH64_ABS32:
			return "R_AARCH64_ABS32";
		case R_AARCH64_PREL32:
			return "R_AARCH64_PREL32";
		case R_AARCH64_PREL64:
			return "R_AARCH64_PREL64";
		case R_AARCH64_ADR_PREL_LO21:
			return "R_AARCH64_ADR_PREL_LO21";
		case R_AARCH64_ADR_PREL_PG_HI21:
			return "R_AARCH64_ADR_PREL_PG_HI21";
		case R_AARCH64_ADD_ABS_LO12_NC:
			return "R_AARCH64_ADD_ABS_LO12_NC";
		case R_AARCH64_JUMP26:
			return "R_AARCH64_JUMP26";
		case R_AARCH64_CALL26:
			return "R_AARCH64_CALL26";
		case R_AARCH64_ADR_GOT_PAGE:
			return "R_AARCH64_ADR_GOT_PAGE";
		case R_AARCH64_LD64_GOT_LO12_NC:
			return "R_AARCH64_LD64_GOT_LO12_NC";
		}
	}
	snprintf(buf, sizeof(buf), "relocation type %u", type);
	return buf;
}

static void open_elf(struct ctx *c)
{
	GElf_Shdr sh;
	size_t nsyms = 0;

	if (elf_kind(c->elf) != ELF_K_ELF)
		die("%s: not an ELF file (compressed module?)", c->path);
	if (!gelf_getehdr(c->elf, &c->ehdr))
		die_elf("gelf_getehdr");
	if (c->ehdr.e_ident[EI_CLASS] != ELFCLASS64)
		die("%s: only 64-bit ELF is supported", c->path);
	if (c->ehdr.e_type != ET_REL)
		die("%s: not a relocatable object (ET_REL)", c->path);
	if (c->ehdr.e_machine != EM_X86_64 && c->ehdr.e_machine != EM_AARCH64)
		die("%s: unsupported machine %u (x86_64 and aarch64 only)",
		    c->path, c->ehdr.e_machine);
	if (elf_getshdrnum(c->elf, &c->shnum) ||
	    elf_getshdrstrndx(c->elf, &c->shstrndx))
		die_elf("section count");
	if (c->shstrndx == 0 || c->shstrndx >= c->shnum)
		die("%s: bad section name table index", c->path);

	for (size_t i = 1; i < c->shnum; i++) {
		get_shdr(c, i, &sh);
		if (sh.sh_type != SHT_SYMTAB)
			continue;
		if (c->symndx)
			die("%s: more than one symbol table", c->path);
		c->symndx = i;
	}
	if (!c->symndx)
		die("%s: no symbol table", c->path);
	get_shdr(c, c->symndx, &sh);
	if (sh.sh_entsize != sizeof(Elf64_Sym))
		die("%s: bad .symtab entry size", c->path);
	c->strndx = sh.sh_link;
	c->first_global = sh.sh_info;
	if (c->strndx == 0 || c->strndx >= c->shnum)
		die("%s: bad .symtab sh_link", c->path);
	c->symdata = get_data(c, c->symndx);
	c->strdata = get_data(c, c->strndx);
	if (c->symdata) {
		if (c->symdata->d_type != ELF_T_SYM)
			die("%s: unexpected .symtab data type", c->path);
		nsyms = c->symdata->d_size / sizeof(Elf64_Sym);
		c->syms = c->symdata->d_buf;
	}
	c->nsyms = nsyms;
	if (c->first_global > nsyms)
		die("%s: bad .symtab sh_info", c->path);
}

/* ------------------------------------------------------------ call sites */

/*
 * Sections that are executable but whose code is copied or patched into
 * other places at load time (alternatives): a relocation applied to them
 * later by livepatch would not reach the code that actually runs.
 */
static bool forbidden_exec_section(const char *name)
{
	return !strncmp(name, ".altinstr", 9) || !strncmp(name, ".discard", 8);
}

/*
 * Is relocation @r, applied to section @target, a direct call or jump to
 * the start of its symbol? Returns NULL if so, else the reason why not
 * (written to @buf when it needs details).
 */
static const char *call_site_problem(struct ctx *c, size_t target,
				     const Elf64_Rela *r, char *buf,
				     size_t bufsz)
{
	unsigned int type = ELF64_R_TYPE(r->r_info);
	const unsigned char *p;
	GElf_Shdr sh;
	Elf_Data *d;
	uint64_t off = r->r_offset;

	get_shdr(c, target, &sh);
	if (sh.sh_type != SHT_PROGBITS || !(sh.sh_flags & SHF_EXECINSTR))
		return "address taken outside executable code";
	if (forbidden_exec_section(sec_name(c, target)))
		return "reference from code that is copied at load time (alternatives)";
	/*
	 * kernel/module/main.c module_init_layout_section(): ".init*" is
	 * freed after init, but livepatch clears and re-applies the
	 * relocations whenever the target object goes and comes back
	 * (klp_cleanup_module_patches_limited(), klp_module_coming()).
	 */
	if (!strncmp(sec_name(c, target), ".init", 5))
		return "reference from init code (freed after load, but livepatch rewrites it when the object reloads)";
	d = get_data(c, target);
	if (!d || !d->d_buf || d->d_size != sh.sh_size)
		return "target section has no data";
	p = d->d_buf;

	if (c->ehdr.e_machine == EM_X86_64) {
		bool call_jmp, jcc;

		if (type != R_X86_64_PLT32 && type != R_X86_64_PC32)
			return "not a rel32 call/jmp relocation (address taken)";
		if (off < 1 || off > d->d_size || d->d_size - off < 4)
			return "relocation outside its section";
		call_jmp = p[off - 1] == 0xe8 || p[off - 1] == 0xe9;
		jcc = off >= 2 && p[off - 2] == 0x0f &&
		      (p[off - 1] & 0xf0) == 0x80;
		if (!call_jmp && !jcc) {
			snprintf(
				buf, bufsz,
				"not a call/jmp/jcc rel32 (opcode bytes %02x %02x; address taken by lea/mov?)",
				off >= 2 ? p[off - 2] : 0, p[off - 1]);
			return buf;
		}
		if (r->r_addend != -4) {
			snprintf(
				buf, bufsz,
				"branch to symbol%+lld, not to its entry (addend must be -4)",
				(long long)r->r_addend + 4);
			return buf;
		}
		/* arch/x86/kernel/module.c refuses to patch a nonzero field */
		if (p[off] | p[off + 1] | p[off + 2] | p[off + 3])
			return "relocated field is not zero (the kernel would refuse it)";
		return NULL;
	}

	/* EM_AARCH64 */
	{
		uint32_t insn, want;

		if (type != R_AARCH64_CALL26 && type != R_AARCH64_JUMP26)
			return "not a CALL26/JUMP26 branch relocation (address taken)";
		if (off % 4 || off > d->d_size || d->d_size - off < 4)
			return "relocation outside its section or misaligned";
		if (c->ehdr.e_ident[EI_DATA] == ELFDATA2MSB)
			insn = (uint32_t)p[off] << 24 |
			       (uint32_t)p[off + 1] << 16 |
			       (uint32_t)p[off + 2] << 8 | p[off + 3];
		else
			insn = (uint32_t)p[off + 3] << 24 |
			       (uint32_t)p[off + 2] << 16 |
			       (uint32_t)p[off + 1] << 8 | p[off];
		want = type == R_AARCH64_CALL26 ? 0x94000000 : 0x14000000;
		if ((insn & 0xfc000000) != want) {
			snprintf(buf, bufsz, "instruction %08x is not %s", insn,
				 type == R_AARCH64_CALL26 ? "bl" : "b");
			return buf;
		}
		if (r->r_addend != 0) {
			snprintf(buf, bufsz,
				 "branch to symbol%+lld, not to its entry",
				 (long long)r->r_addend);
			return buf;
		}
		return NULL;
	}
}

static bool check_call_site(struct ctx *c, const char *sym, size_t relsec,
			    size_t target, const Elf64_Rela *r)
{
	char buf[160];
	const char *why = call_site_problem(c, target, r, buf, sizeof(buf));

	if (!why)
		return true;
	error(c, "%s: %s at %s+0x%llx (%s in %s)", sym, why,
	      sec_name(c, target), (unsigned long long)r->r_offset,
	      rel_type_name(c, ELF64_R_TYPE(r->r_info)), sec_name(c, relsec));
	return false;
}

/* ------------------------------------------------------------ validation */

/* Parse ".klp.sym.<obj>.<name>,<pos>" the way klp_resolve_symbols() does. */
static bool parse_klp_sym(const char *s, char *obj, char *name,
			  unsigned long *pos)
{
	const char *o, *dot, *comma;

	if (strncmp(s, KLP_SYM_PREFIX, strlen(KLP_SYM_PREFIX)))
		return false;
	o = s + strlen(KLP_SYM_PREFIX);
	dot = strchr(o, '.');
	if (!dot || dot == o || dot - o > KLP_OBJNAME_MAX)
		return false;
	comma = strchr(dot + 1, ',');
	if (!comma || comma == dot + 1 || comma - dot - 1 > KLP_SYMNAME_MAX)
		return false;
	if (!parse_ulong(comma + 1, pos))
		return false;
	memcpy(obj, o, dot - o);
	obj[dot - o] = '\0';
	memcpy(name, dot + 1, comma - dot - 1);
	name[comma - dot - 1] = '\0';
	return true;
}

/* Object name of a ".klp.rela.<obj>.<sec>" section and the <sec> part. */
static bool parse_klp_rela(const char *s, char *obj, const char **rest)
{
	const char *o, *dot;

	if (strncmp(s, KLP_RELA_PREFIX, strlen(KLP_RELA_PREFIX)))
		return false;
	o = s + strlen(KLP_RELA_PREFIX);
	dot = strchr(o, '.');
	if (!dot || dot == o || dot - o > KLP_OBJNAME_MAX)
		return false;
	memcpy(obj, o, dot - o);
	obj[dot - o] = '\0';
	*rest = dot + 1;
	return true;
}

static bool modinfo_has(struct ctx *c, const char *key)
{
	size_t klen = strlen(key);

	for (size_t i = 1; i < c->shnum; i++) {
		Elf_Data *d;
		const char *p, *end;

		if (strcmp(sec_name(c, i), ".modinfo"))
			continue;
		d = get_data(c, i);
		if (!d || !d->d_buf)
			return false;
		p = d->d_buf;
		end = p + d->d_size;
		while (p < end) {
			size_t n = strnlen(p, end - p);

			if (n > klen && !strncmp(p, key, klen) &&
			    p[klen] == '=')
				return true;
			p += n + 1;
		}
	}
	return false;
}

static bool has_section(struct ctx *c, const char *name)
{
	for (size_t i = 1; i < c->shnum; i++)
		if (!strcmp(sec_name(c, i), name))
			return true;
	return false;
}

struct summary {
	unsigned int klp_syms, klp_secs, klp_relas;
};

/*
 * Check the module as it is now (the input for --check, the result for a
 * conversion). Errors go through error(); returns counts for the summary.
 */
static struct summary validate(struct ctx *c)
{
	char obj[KLP_OBJNAME_MAX + 1], name[KLP_SYMNAME_MAX + 1];
	struct summary sum = { 0, 0, 0 };
	bool *is_klp = xmalloc(c->nsyms * sizeof(bool));

	/* Symbols. */
	for (size_t i = 1; i < c->nsyms; i++) {
		const Elf64_Sym *s = &c->syms[i];
		unsigned int bind = ELF64_ST_BIND(s->st_info);
		const char *n = sym_name(c, i);
		struct entry *e;
		unsigned long pos;

		is_klp[i] = false;
		if ((i < c->first_global) != (bind == STB_LOCAL))
			error(c,
			      "symbol %zu '%s' is on the wrong side of .symtab sh_info (%zu)",
			      i, n, c->first_global);

		if (s->st_shndx == SHN_LIVEPATCH) {
			is_klp[i] = true;
			sum.klp_syms++;
			if (!parse_klp_sym(n, obj, name, &pos)) {
				error(c,
				      "livepatch symbol '%s' is not .klp.sym.<obj>.<name>,<pos>",
				      n);
				continue;
			}
			if (bind != STB_GLOBAL)
				error(c,
				      "livepatch symbol '%s' is not STB_GLOBAL",
				      n);
			e = find_entry(c, name);
			if (!e) {
				if (c->check)
					error(c,
					      "livepatch symbol '%s' is not in the list",
					      n);
				else
					warning(c,
						"livepatch symbol '%s' is not in the list",
						n);
			} else if (strcmp(e->obj, obj) || e->pos != pos) {
				error(c,
				      "livepatch symbol '%s' does not match the list (%s %s %lu): stale conversion, relink the module",
				      n, e->obj, e->name, e->pos);
			}
			continue;
		}

		if (s->st_shndx != SHN_UNDEF || !s->st_name)
			continue;
		e = find_entry(c, n);
		if (e)
			error(c,
			      "listed symbol '%s' is still undefined (%s): not converted",
			      n, bind == STB_WEAK ? "weak" : "global");
		else if (bind == STB_WEAK && c->check)
			error(c,
			      "weak undefined symbol '%s' is not in the list (it would resolve to 0)",
			      n);
		else if (bind == STB_WEAK)
			warning(c,
				"weak undefined symbol '%s' is not in the list (it will resolve to 0)",
				n);
	}

	/* Relocation sections. */
	for (size_t i = 1; i < c->shnum; i++) {
		GElf_Shdr sh, tsh;
		const char *rest, *secname = sec_name(c, i);
		bool klp_sec, target_alloc;
		Elf_Data *d;
		size_t n;

		get_shdr(c, i, &sh);
		if (sh.sh_type != SHT_RELA && sh.sh_type != SHT_REL)
			continue;
		klp_sec = sh.sh_flags & SHF_RELA_LIVEPATCH;
		if (!klp_sec &&
		    !strncmp(secname, KLP_RELA_PREFIX, strlen(KLP_RELA_PREFIX)))
			error(c, "%s lacks SHF_RELA_LIVEPATCH", secname);
		if (sh.sh_link != c->symndx) {
			if (klp_sec)
				error(c, "%s: sh_link %u is not .symtab",
				      secname, sh.sh_link);
			continue;
		}
		if (sh.sh_info == 0 || sh.sh_info >= c->shnum) {
			error(c, "%s: bad sh_info %u", secname, sh.sh_info);
			continue;
		}
		get_shdr(c, sh.sh_info, &tsh);
		target_alloc = tsh.sh_flags & SHF_ALLOC;

		if (klp_sec) {
			sum.klp_secs++;
			if (sh.sh_type != SHT_RELA)
				error(c,
				      "%s: livepatch relocation section is not SHT_RELA",
				      secname);
			if (!(sh.sh_flags & SHF_ALLOC))
				error(c,
				      "%s: lacks SHF_ALLOC (the loader would free it before livepatch uses it)",
				      secname);
			if (!parse_klp_rela(secname, obj, &rest))
				error(c,
				      "%s: not named .klp.rela.<obj>.<section>",
				      secname);
			else if (strcmp(rest, sec_name(c, sh.sh_info)))
				error(c,
				      "%s: applies to %s, not to the section in its name",
				      secname, sec_name(c, sh.sh_info));
		}

		d = get_data(c, i);
		if (!d || !d->d_size)
			continue;
		if (sh.sh_type == SHT_REL) {
			const Elf64_Rel *rel = d->d_buf;

			n = d->d_size / sizeof(*rel);
			for (size_t j = 0; j < n; j++) {
				size_t si = ELF64_R_SYM(rel[j].r_info);

				if (si < c->nsyms && is_klp[si])
					error(c,
					      "%s: SHT_REL relocation against livepatch symbol %s",
					      secname, sym_name(c, si));
			}
			continue;
		}

		const Elf64_Rela *r = d->d_buf;

		n = d->d_size / sizeof(*r);
		for (size_t j = 0; j < n; j++) {
			size_t si = ELF64_R_SYM(r[j].r_info);
			char sobj[KLP_OBJNAME_MAX + 1];
			unsigned long pos;

			if (si >= c->nsyms) {
				error(c, "%s: entry %zu: bad symbol index %zu",
				      secname, j, si);
				continue;
			}
			if (!klp_sec) {
				/* The loader skips relocations for non-SHF_ALLOC
				 * sections (debug info): harmless. */
				if (is_klp[si] && target_alloc)
					error(c,
					      "%s: livepatch symbol %s in an ordinary relocation section at %s+0x%llx",
					      secname, sym_name(c, si),
					      sec_name(c, sh.sh_info),
					      (unsigned long long)r[j].r_offset);
				continue;
			}
			sum.klp_relas++;
			if (!is_klp[si]) {
				/* kernel/livepatch/core.c klp_resolve_symbols() */
				error(c,
				      "%s: entry %zu: symbol '%s' is not SHN_LIVEPATCH",
				      secname, j, sym_name(c, si));
				continue;
			}
			if (parse_klp_sym(sym_name(c, si), sobj, name, &pos) &&
			    parse_klp_rela(secname, obj, &rest) &&
			    strcmp(sobj, obj))
				error(c,
				      "%s: symbol %s belongs to another object",
				      secname, sym_name(c, si));
			check_call_site(c, sym_name(c, si), i, sh.sh_info,
					&r[j]);
		}
	}

	/* kernel/module/main.c check_modinfo_livepatch(): without it the
	 * module is not a livepatch module and klp_enable_patch() refuses it. */
	if ((sum.klp_syms || sum.klp_secs) &&
	    has_section(c, ".gnu.linkonce.this_module") &&
	    !modinfo_has(c, "livepatch")) {
		if (c->check)
			error(c,
			      "module has livepatch relocations but no MODULE_INFO(livepatch, \"Y\")");
		else
			warning(c,
				"module has livepatch relocations but no MODULE_INFO(livepatch, \"Y\")");
	}

	free(is_klp);
	return sum;
}

/* Each object with livepatch relocations should be in modinfo "depends". */
static void check_depends(struct ctx *c)
{
	char obj[KLP_OBJNAME_MAX + 1], *depends = NULL;
	const char *rest;

	if (!has_section(c, ".gnu.linkonce.this_module"))
		return;
	for (size_t i = 1; i < c->shnum; i++) {
		Elf_Data *d;
		const char *p, *end;

		if (strcmp(sec_name(c, i), ".modinfo"))
			continue;
		d = get_data(c, i);
		if (!d || !d->d_buf)
			return;
		for (p = d->d_buf, end = p + d->d_size; p < end;
		     p += strnlen(p, end - p) + 1)
			if (!strncmp(p, "depends=", 8) &&
			    memchr(p, '\0', end - p))
				depends = xstrdup(p + 8);
	}
	for (size_t i = 1; i < c->shnum; i++) {
		GElf_Shdr sh;
		char *list, *tok, *save = NULL;
		bool found = false;

		get_shdr(c, i, &sh);
		if (!(sh.sh_flags & SHF_RELA_LIVEPATCH) ||
		    !parse_klp_rela(sec_name(c, i), obj, &rest) ||
		    !strcmp(obj, "vmlinux"))
			continue;
		list = xstrdup(depends ? depends : "");
		for (tok = strtok_r(list, ",", &save); tok;
		     tok = strtok_r(NULL, ",", &save))
			found |= !strcmp(tok, obj);
		free(list);
		if (!found) {
			warning(c,
				"%s: the module does not depend on '%s' (use one of its exports), so '%s' may be unloaded and reloaded under it",
				sec_name(c, i), obj, obj);
			break;
		}
	}
	free(depends);
}

/* ------------------------------------------------------------ conversion */

static Elf_Data *replace_data(Elf_Data *d, void *buf, size_t size)
{
	d->d_buf = buf;
	d->d_size = size;
	d->d_off = 0;
	elf_flagdata(d, ELF_C_SET, ELF_F_DIRTY);
	return d;
}

/* Append @s to string table section @ndx; returns its offset. */
static size_t strtab_append(struct ctx *c, size_t ndx, const char *s)
{
	Elf_Data *d = get_data(c, ndx);
	size_t off = d->d_size, len = strlen(s) + 1;
	char *buf = xmalloc(off + len);

	memcpy(buf, d->d_buf, off);
	memcpy(buf + off, s, len);
	/* the old buffer may belong to libelf: it is leaked, not freed */
	replace_data(d, buf, off + len);
	return off;
}

static struct group *get_group(struct group **groups, size_t *ngroups,
			       const struct entry *e, size_t target)
{
	struct group *g;

	for (size_t i = 0; i < *ngroups; i++) {
		g = &(*groups)[i];
		if (g->target == target && !strcmp(g->ent->obj, e->obj))
			return g;
	}
	*groups = xrealloc(*groups, (*ngroups + 1) * sizeof(**groups));
	g = &(*groups)[(*ngroups)++];
	memset(g, 0, sizeof(*g));
	g->ent = e;
	g->target = target;
	return g;
}

static int group_cmp(const void *a, const void *b)
{
	const struct group *x = a, *y = b;

	if (x->target != y->target)
		return x->target < y->target ? -1 : 1;
	return strcmp(x->ent->obj, y->ent->obj);
}

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return a > 1 ? (v + a - 1) / a * a : v;
}

/*
 * Convert in place in c->elf (opened ELF_C_RDWR on a scratch copy of the
 * input, @file_size bytes). Returns true if anything changed.
 */
static bool convert(struct ctx *c, uint64_t file_size)
{
	struct entry **conv = xmalloc(c->nsyms * sizeof(*conv));
	bool *moved_from = xmalloc(c->shnum * sizeof(bool));
	unsigned int *sites = xmalloc(c->nsyms * sizeof(unsigned int));
	struct group *groups = NULL;
	size_t ngroups = 0, nconv = 0, shnum;
	bool *relocate;
	uint64_t end;
	GElf_Shdr sh;

	/* 1. Which symbols to convert. */
	for (size_t i = 0; i < c->nsyms; i++) {
		const Elf64_Sym *s = &c->syms[i];
		unsigned int type = ELF64_ST_TYPE(s->st_info);
		struct entry *e;

		conv[i] = NULL;
		sites[i] = 0;
		if (i == 0 || !s->st_name || type == STT_SECTION ||
		    type == STT_FILE)
			continue;
		e = find_entry(c, sym_name(c, i));
		if (!e)
			continue;
		if (s->st_shndx != SHN_UNDEF) {
			if (s->st_shndx != SHN_LIVEPATCH)
				warning(c,
					"listed symbol '%s' is defined in the module: not converted",
					e->name);
			continue;
		}
		if (i < c->first_global) {
			error(c,
			      "listed symbol '%s' is an undefined local symbol",
			      e->name);
			continue;
		}
		conv[i] = e;
		nconv++;
	}

	/* 2. Classify every relocation against them; check each call site. */
	for (size_t i = 0; i < c->shnum; i++)
		moved_from[i] = false;
	for (size_t i = 1; nconv && i < c->shnum; i++) {
		Elf_Data *d;
		GElf_Shdr tsh;
		size_t n;

		get_shdr(c, i, &sh);
		if ((sh.sh_type != SHT_RELA && sh.sh_type != SHT_REL) ||
		    sh.sh_link != c->symndx ||
		    (sh.sh_flags & SHF_RELA_LIVEPATCH))
			continue;
		d = get_data(c, i);
		if (!d || !d->d_size)
			continue;
		if (sh.sh_type == SHT_REL) {
			const Elf64_Rel *rel = d->d_buf;

			for (size_t j = 0; j < d->d_size / sizeof(*rel); j++) {
				size_t si = ELF64_R_SYM(rel[j].r_info);

				if (si < c->nsyms && conv[si])
					error(c,
					      "%s: SHT_REL relocation against %s is not supported",
					      sec_name(c, i), conv[si]->name);
			}
			continue;
		}
		if (sh.sh_info == 0 || sh.sh_info >= c->shnum)
			continue;
		get_shdr(c, sh.sh_info, &tsh);

		const Elf64_Rela *r = d->d_buf;

		n = d->d_size / sizeof(*r);
		for (size_t j = 0; j < n; j++) {
			size_t si = ELF64_R_SYM(r[j].r_info);
			struct group *g;

			if (si >= c->nsyms || !conv[si])
				continue;
			/* Debug info and other non-SHF_ALLOC targets: the
			 * loader never applies these (apply_relocations()). */
			if (!(tsh.sh_flags & SHF_ALLOC))
				continue;
			if (!check_call_site(c, conv[si]->name, i, sh.sh_info,
					     &r[j]))
				continue;
			g = get_group(&groups, &ngroups, conv[si], sh.sh_info);
			if (g->n == g->cap) {
				g->cap = g->cap ? 2 * g->cap : 8;
				g->rela = xrealloc(g->rela,
						   g->cap * sizeof(*g->rela));
			}
			g->rela[g->n++] = r[j];
			sites[si]++;
			moved_from[i] = true;
		}
	}
	if (c->errors || !nconv)
		goto out;

	/* 3. Take the moved entries out of their sections. */
	for (size_t i = 1; i < c->shnum; i++) {
		Elf_Data *d;
		Elf64_Rela *kept;
		const Elf64_Rela *r;
		size_t n, k = 0;

		if (!moved_from[i])
			continue;
		d = get_data(c, i);
		r = d->d_buf;
		n = d->d_size / sizeof(*r);
		kept = xmalloc(n * sizeof(*kept));
		for (size_t j = 0; j < n; j++) {
			size_t si = ELF64_R_SYM(r[j].r_info);

			if (si < c->nsyms && conv[si])
				continue;
			kept[k++] = r[j];
		}
		replace_data(d, kept, k * sizeof(*kept));
		get_shdr(c, i, &sh);
		sh.sh_size = k * sizeof(*kept); /* stays where it was */
		if (!gelf_update_shdr(get_scn(c, i), &sh))
			die_elf("gelf_update_shdr");
	}

	/* 4. Rename the symbols. */
	{
		Elf64_Sym *syms = xmalloc(c->symdata->d_size);

		memcpy(syms, c->syms, c->symdata->d_size);
		for (size_t i = 1; i < c->nsyms; i++) {
			char *name;

			if (!conv[i])
				continue;
			if (asprintf(&name, KLP_SYM_PREFIX "%s.%s,%lu",
				     conv[i]->obj, conv[i]->name,
				     conv[i]->pos) < 0)
				die("out of memory");
			syms[i].st_name = strtab_append(c, c->strndx, name);
			syms[i].st_info = ELF64_ST_INFO(STB_GLOBAL, STT_NOTYPE);
			syms[i].st_shndx = SHN_LIVEPATCH;
			syms[i].st_value = 0;
			syms[i].st_size = 0;
			printf("%s: %s -> %s (%u call site%s)\n", prog,
			       conv[i]->name, name, sites[i],
			       sites[i] == 1 ? "" : "s");
			free(name);
		}
		replace_data(c->symdata, syms, c->symdata->d_size);
		c->syms = syms;
	}

	/* 5. Fill the .klp.rela sections: extend existing ones, append new. */
	qsort(groups, ngroups, sizeof(*groups), group_cmp);
	for (size_t i = 1; i < c->shnum; i++) {
		char obj[KLP_OBJNAME_MAX + 1];
		const char *rest;

		get_shdr(c, i, &sh);
		if (sh.sh_type != SHT_RELA ||
		    !(sh.sh_flags & SHF_RELA_LIVEPATCH) ||
		    !parse_klp_rela(sec_name(c, i), obj, &rest))
			continue;
		for (size_t k = 0; k < ngroups; k++)
			if (groups[k].target == sh.sh_info &&
			    !strcmp(groups[k].ent->obj, obj) &&
			    !groups[k].relsec)
				groups[k].relsec = i;
	}
	for (size_t k = 0; k < ngroups; k++) {
		struct group *g = &groups[k];
		Elf_Data *d;
		Elf_Scn *s;

		if (g->relsec) {
			Elf64_Rela *buf;

			d = get_data(c, g->relsec);
			buf = xmalloc(d->d_size + g->n * sizeof(*buf));
			memcpy(buf, d->d_buf, d->d_size);
			memcpy((char *)buf + d->d_size, g->rela,
			       g->n * sizeof(*buf));
			replace_data(d, buf, d->d_size + g->n * sizeof(*buf));
			continue;
		}
		s = elf_newscn(c->elf);
		if (!s)
			die_elf("elf_newscn");
		d = elf_newdata(s);
		if (!d)
			die_elf("elf_newdata");
		d->d_type = ELF_T_RELA;
		d->d_version = EV_CURRENT;
		d->d_align = 8;
		replace_data(d, g->rela, g->n * sizeof(*g->rela));
		g->relsec = elf_ndxscn(s);
	}
	/* Names last: sec_name() reads .shstrtab, which this changes. */
	for (size_t k = 0; k < ngroups; k++) {
		struct group *g = &groups[k];
		char *name;

		get_shdr(c, g->relsec, &sh);
		if (sh.sh_type == SHT_RELA)
			continue; /* an existing section */
		if (asprintf(&name, KLP_RELA_PREFIX "%s.%s", g->ent->obj,
			     sec_name(c, g->target)) < 0)
			die("out of memory");
		memset(&sh, 0, sizeof(sh));
		sh.sh_name = strtab_append(c, c->shstrndx, name);
		sh.sh_type = SHT_RELA;
		/*
		 * SHF_RELA_LIVEPATCH: the loader hands it to livepatch
		 * instead of applying it (kernel/module/main.c
		 * apply_relocations()); SHF_ALLOC: kept in memory after load,
		 * livepatch reads it through sh_addr (module-elf-format.rst
		 * 3.1, klp_resolve_symbols()); SHF_INFO_LINK: sh_info is a
		 * section index.
		 */
		sh.sh_flags = SHF_ALLOC | SHF_INFO_LINK | SHF_RELA_LIVEPATCH;
		sh.sh_link = c->symndx;
		sh.sh_info = g->target;
		sh.sh_addralign = 8;
		sh.sh_entsize = sizeof(Elf64_Rela);
		if (!gelf_update_shdr(get_scn(c, g->relsec), &sh))
			die_elf("gelf_update_shdr");
		free(name);
	}

	/*
	 * 6. Layout. Sections keep their file offsets; the ones that grew
	 * (.strtab, .shstrtab, extended .klp.rela) and the new ones go
	 * after the end of the input, then the section header table.
	 */
	if (elf_getshdrnum(c->elf, &shnum))
		die_elf("elf_getshdrnum");
	if (shnum >= SHN_LORESERVE && c->shnum < SHN_LORESERVE)
		die("%s: too many sections", c->path);
	relocate = xmalloc(shnum * sizeof(bool));
	for (size_t i = 0; i < shnum; i++)
		relocate[i] = i >= c->shnum || i == c->strndx ||
			      i == c->shstrndx;
	for (size_t k = 0; k < ngroups; k++)
		relocate[groups[k].relsec] = true;
	end = file_size;
	for (size_t i = 1; i < shnum; i++) {
		Elf_Data *d;

		if (!relocate[i])
			continue;
		get_shdr(c, i, &sh);
		d = get_data(c, i);
		sh.sh_offset = align_up(end, sh.sh_addralign);
		sh.sh_size = d ? d->d_size : 0;
		end = sh.sh_offset + sh.sh_size;
		if (!gelf_update_shdr(get_scn(c, i), &sh))
			die_elf("gelf_update_shdr");
	}
	c->ehdr.e_shoff = align_up(end, 8);
	if (!gelf_update_ehdr(c->elf, &c->ehdr))
		die_elf("gelf_update_ehdr");
	elf_flagelf(c->elf, ELF_C_SET, ELF_F_LAYOUT | ELF_F_DIRTY);
	c->shnum = shnum;
	free(relocate);

out:
	for (size_t k = 0; k < ngroups; k++)
		if (c->errors)
			free(groups[k].rela);
	free(groups);
	free(moved_from);
	free(sites);
	free(conv);
	return nconv && !c->errors;
}

/* ------------------------------------------------------------ files */

static unsigned char *read_file(const char *path, size_t *size, mode_t *mode)
{
	int fd = open(path, O_RDONLY);
	unsigned char *buf;
	struct stat st;
	size_t done = 0;

	if (fd < 0 || fstat(fd, &st))
		die("%s: %s", path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		die("%s: not a regular file", path);
	buf = xmalloc(st.st_size);
	while (done < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + done, st.st_size - done);

		if (n <= 0)
			die("%s: read error", path);
		done += n;
	}
	close(fd);
	*size = done;
	*mode = st.st_mode & 07777;
	return buf;
}

static void write_all(int fd, const void *buf, size_t size, const char *path)
{
	size_t done = 0;

	while (done < size) {
		ssize_t n = write(fd, (const char *)buf + done, size - done);

		if (n <= 0)
			die("%s: write error: %s", path, strerror(errno));
		done += n;
	}
}

/*
 * Length of a signed module without its signature (kernel/module/signing.c
 * mod_verify_sig(): magic string, then struct module_signature, whose last
 * 4 bytes are the big-endian signature length, before it).
 */
static size_t unsigned_size(const char *path, const unsigned char *image,
			    size_t size)
{
	const size_t ms_size = 12; /* sizeof(struct module_signature) */
	const unsigned char *ms;
	uint32_t sig_len;

	size -= strlen(MODSIG_MAGIC);
	if (size < ms_size)
		die("%s: truncated module signature", path);
	ms = image + size - ms_size;
	sig_len = (uint32_t)ms[8] << 24 | (uint32_t)ms[9] << 16 |
		  (uint32_t)ms[10] << 8 | ms[11];
	if (size - ms_size < sig_len)
		die("%s: truncated module signature", path);
	return size - ms_size - sig_len;
}

static void usage(FILE *f, int status)
{
	fprintf(f,
		"usage: %s LISTFILE IN.ko OUT.ko        convert (OUT may be IN)\n"
		"       %s --check LISTFILE IN.ko [OUT.ko]  verify only, write nothing\n"
		"LISTFILE: \"<obj> <symbol> [sympos]\" per line, '#' starts a comment\n",
		prog, prog);
	exit(status);
}

int main(int argc, char **argv)
{
	struct ctx c;
	const char *listfile, *in, *out;
	unsigned char *image;
	size_t size;
	mode_t mode;
	int argi = 1;

	memset(&c, 0, sizeof(c));
	if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")))
		usage(stdout, 0);
	if (argc > 1 && !strcmp(argv[1], "--check")) {
		c.check = true;
		argi++;
	}
	if (c.check ? (argc - argi != 2 && argc - argi != 3) : argc - argi != 3)
		usage(stderr, EXIT_USAGE);
	listfile = argv[argi];
	in = argv[argi + 1];
	out = c.check ? NULL : argv[argi + 2];
	c.path = in;

	if (elf_version(EV_CURRENT) == EV_NONE)
		die_elf("elf_version");
	read_list(&c, listfile);
	image = read_file(in, &size, &mode);
	if (size >= strlen(MODSIG_MAGIC) &&
	    !memcmp(image + size - strlen(MODSIG_MAGIC), MODSIG_MAGIC,
		    strlen(MODSIG_MAGIC))) {
		if (!c.check)
			die("%s: module is signed; run %s before signing", in,
			    prog);
		size = unsigned_size(in, image, size);
	}

	if (c.check) {
		struct summary s;

		c.elf = elf_memory((char *)image, size);
		if (!c.elf)
			die_elf(in);
		open_elf(&c);
		s = validate(&c);
		check_depends(&c);
		elf_end(c.elf);
		if (c.errors) {
			fprintf(stderr, "%s: %s: check FAILED (%u error%s)\n",
				prog, in, c.errors, c.errors == 1 ? "" : "s");
			return EXIT_INVALID;
		}
		printf("%s: %s: check OK: %u livepatch symbol%s, %u call site%s in %u .klp.rela section%s\n",
		       prog, in, s.klp_syms, s.klp_syms == 1 ? "" : "s",
		       s.klp_relas, s.klp_relas == 1 ? "" : "s", s.klp_secs,
		       s.klp_secs == 1 ? "" : "s");
		return 0;
	}

	/* Work on a scratch copy next to OUT; rename it over OUT at the end. */
	{
		char *tmp;
		int fd;
		bool changed;

		if (asprintf(&tmp, "%s.klp-convert.XXXXXX", out) < 0)
			die("out of memory");
		fd = mkstemp(tmp);
		if (fd < 0)
			die("%s: %s", tmp, strerror(errno));
		write_all(fd, image, size, tmp);
		if (fchmod(fd, mode) || lseek(fd, 0, SEEK_SET))
			die("%s: %s", tmp, strerror(errno));

		c.elf = elf_begin(fd, ELF_C_RDWR, NULL);
		if (!c.elf) {
			unlink(tmp);
			die_elf(in);
		}
		open_elf(&c);
		changed = convert(&c, size);
		if (!c.errors) {
			validate(&c);
			check_depends(&c);
		}
		if (c.errors) {
			elf_end(c.elf);
			close(fd);
			unlink(tmp);
			fprintf(stderr,
				"%s: %s: conversion FAILED (%u error%s), %s not written\n",
				prog, in, c.errors, c.errors == 1 ? "" : "s",
				out);
			return EXIT_INVALID;
		}
		if (changed && elf_update(c.elf, ELF_C_WRITE) < 0) {
			unlink(tmp);
			die_elf("elf_update");
		}
		elf_end(c.elf);
		if (fsync(fd) || close(fd) || rename(tmp, out)) {
			unlink(tmp);
			die("%s: %s", out, strerror(errno));
		}
		if (!changed)
			printf("%s: %s: nothing to convert\n", prog, in);
		free(tmp);
	}
	free(image);
	return 0;
}
