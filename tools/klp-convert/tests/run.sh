#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# klp-convert test suite (TAP). Needs gcc, binutils (readelf, ld) and the
# two binaries built by the Makefile; no kernel.
#
#   tests/run.sh [KLP_CONVERT [KLP_SIM]]
#   KEEP=1         keep the scratch directory
#   KLP_TEST_KDIRS="<kdir> ..."  also build a scratch module against each of
#                  these kernel header trees and convert it (optional)

set -u

HERE=$(cd "$(dirname "$0")" && pwd)
KLP=$(realpath "${1:-$HERE/../klp-convert}")
SIM=$(realpath "${2:-$HERE/klp-sim}")
SRC=$HERE/src
CC=${CC:-gcc}
XCC=${XCC:-aarch64-linux-gnu-gcc}

W=$(mktemp -d "${TMPDIR:-/tmp}/klp-convert-test.XXXXXX")
[ "${KEEP:-0}" = 1 ] && echo "# scratch: $W" || trap 'rm -rf "$W"' EXIT
cd "$W" || exit 2
LOG=$W/log

n=0 npass=0 nfail=0

report() {	# report STATUS DESCRIPTION
	n=$((n + 1))
	if [ "$1" = 0 ]; then
		npass=$((npass + 1))
		echo "ok $n - $2"
	else
		nfail=$((nfail + 1))
		echo "not ok $n - $2"
		[ -s "$LOG" ] && sed 's/^/#   /' "$LOG" | head -40
	fi
}

t() {		# t DESCRIPTION COMMAND...: passes if COMMAND succeeds
	local desc=$1
	shift
	"$@" >"$LOG" 2>&1
	report $? "$desc"
}

skip() {
	n=$((n + 1))
	npass=$((npass + 1))
	echo "ok $n - # SKIP $1"
}

# ---------------------------------------------------------------- helpers

# sections FILE: "idx name type off size es lk inf al flags" per section
sections() {
	readelf -W -t "$1" | awk '
	/^ *\[ *[0-9]+\]/ {
		sub(/^ *\[ */, ""); sub(/\]/, "");
		idx = $1; name = ($2 == "") ? "-" : $2
		getline; type = $1; off = $3; size = $4; es = $5; lk = $6; inf = $7; al = $8
		getline; fl = $1; gsub(/[^0-9a-fA-F]/, "", fl)
		print idx, name, type, off, size, es, lk, inf, al, fl
	}'
}

# symbols FILE: "num ndx bind type name" per symbol
symbols() {
	readelf -W -s "$1" | awk '
	/^ *[0-9]+:/ {
		sub(":", "", $1)
		if ($7 == "OS") { ndx = $8; name = $9 } else { ndx = $7; name = $8 }
		if (name == "") name = "-"
		print $1, ndx, $5, $4, name
	}'
}

# relocs FILE: "relsec offset type symbol addend" per relocation entry
relocs() {
	readelf -W -r "$1" | awk '
	/^Relocation section/ { sec = $3; gsub(/\047/, "", sec); next }
	/^[0-9a-f]+ +[0-9a-f]+ +R_/ {
		sym = $5; add = "+0"
		if (NF >= 7) add = $6 $7
		print sec, $1, $3, sym, add
	}'
}

secidx() { sections "$1" | awk -v n="$2" '$2 == n { print $1 }'; }
secfield() { sections "$1" | awk -v n="$2" -v f="$3" '$2 == n { print $f }'; }

# section_bytes FILE OFFHEX SIZEHEX
section_bytes() {
	dd if="$1" bs=1M iflag=skip_bytes,count_bytes skip=$((16#$2)) count=$((16#$3)) 2>/dev/null | sha256sum
}

# check_klp_section FILE NAME TARGET: header of one converted section
check_klp_section() {
	local f=$1 name=$2 target=$3 line symtab tidx
	line=$(sections "$f" | awk -v n="$name" '$2 == n')
	[ -n "$line" ] || { echo "no section $name"; return 1; }
	[ "$(sections "$f" | awk -v n="$name" '$2 == n' | wc -l)" = 1 ] ||
		{ echo "$name more than once"; return 1; }
	symtab=$(secidx "$f" .symtab)
	tidx=$(secidx "$f" "$target")
	set -- $line
	echo "$line"
	[ "$3" = RELA ] || { echo "type $3"; return 1; }
	[ "${10}" = 0000000000100042 ] || { echo "flags ${10}, want ALLOC|INFO_LINK|RELA_LIVEPATCH"; return 1; }
	[ "$7" = "$symtab" ] || { echo "sh_link $7, .symtab is $symtab"; return 1; }
	[ "$8" = "$tidx" ] || { echo "sh_info $8, $target is $tidx"; return 1; }
	[ "$6" = 18 ] || { echo "entsize $6"; return 1; }
	[ "$9" = 8 ] || { echo "align $9"; return 1; }
}

# check_klp_symbol IN OUT NAME KLPNAME: same index, SHN_LIVEPATCH, GLOBAL
check_klp_symbol() {
	local in=$1 out=$2 name=$3 klp=$4 a b
	a=$(symbols "$in" | awk -v n="$name" '$5 == n { print $1 }')
	b=$(symbols "$out" | awk -v n="$klp" '$5 == n { print $1, $2, $3, $4 }')
	echo "in: #$a $name   out: $b"
	[ -n "$a" ] && [ "$b" = "$a [0xff20] GLOBAL NOTYPE" ] || return 1
	! symbols "$out" | awk '{ print $5 }' | grep -qx "$name"
}

# check_relocs IN OUT LIST: ordinary relocations unchanged, the moved ones
# are exactly those against listed symbols, all PLT32/PC32 -4 (x86) or
# CALL26/JUMP26 +0 (arm64), in .klp.rela.<obj>.<sec>
check_relocs() {
	local in=$1 out=$2 list=$3
	awk '!/^#/ && NF >= 2 { print $2, $1 }' "$list" | sed 's/#.*//' >"$W/map"
	relocs "$in" | awk -v map="$W/map" '
		BEGIN { while ((getline l < map) > 0) { split(l, a, " "); obj[a[1]] = a[2] } }
		($4 in obj) { s = $1; sub(/^\.rela/, "", s); print ".klp.rela." obj[$4] "." s, $2, $3, $4, $5; next }
		{ print }' | sort >"$W/want"
	relocs "$out" | sed -E 's/ \.klp\.sym\.[^.]+\.([^,]+),[0-9]+ / \1 /' | sort >"$W/got"
	diff -u "$W/want" "$W/got" || return 1
	relocs "$out" | awk '$1 ~ /^\.klp\.rela\./' >"$W/klp"
	[ -s "$W/klp" ] || { echo "no klp relocations"; return 1; }
	! awk '
		$4 !~ /^\.klp\.sym\./ { print "not a klp symbol:", $0; bad = 1 }
		!(($3 == "R_X86_64_PLT32" || $3 == "R_X86_64_PC32") && $5 == "-4") &&
		!(($3 == "R_AARCH64_CALL26" || $3 == "R_AARCH64_JUMP26") && $5 == "+0") {
			print "not a call:", $0; bad = 1 }
		END { exit !bad }' "$W/klp" || return 1
	! relocs "$out" | awk '$1 !~ /^\.klp\.rela\./ && $4 ~ /^\.klp\.sym\./' | grep .
}

# check_untouched IN OUT: every section that klp-convert had no reason to
# touch has the same header (offset included) and the same bytes (.symtab:
# same header; its unconverted symbols are compared one by one)
check_untouched() {
	local in=$1 out=$2 bad=0 idx name type off size rest
	sections "$in" >"$W/s.in"
	sections "$out" >"$W/s.out"
	while read -r idx name type off size rest; do
		[ "$idx" = 0 ] && continue
		case $name in .strtab | .shstrtab) continue ;; esac
		if [ "$type" = RELA ] && [ "$(awk -v i="$idx" '$1 == i { print $5 }' "$W/s.out")" != "$size" ]; then
			continue	# a relocation section that lost entries
		fi
		if ! grep -qxF "$idx $name $type $off $size $rest" "$W/s.out"; then
			echo "header changed: $idx $name"
			bad=1
		elif [ "$type" != NOBITS ] && [ "$name" != .symtab ] && [ "$(section_bytes "$in" "$off" "$size")" != "$(section_bytes "$out" "$off" "$size")" ]; then
			echo "bytes changed: $idx $name"
			bad=1
		fi
	done <"$W/s.in"
	# the symbols that were not converted are unchanged
	symbols "$in" | sort >"$W/y.in"
	symbols "$out" | grep -v '\[0xff20\]' | sort >"$W/y.out"
	comm -13 "$W/y.in" "$W/y.out" | grep . && bad=1
	return $bad
}

expect_fail() {	# expect_fail STATUS PATTERN... -- COMMAND...: exit STATUS, stderr matches all
	local want=$1 pats=() rc
	shift
	while [ "$1" != -- ]; do pats+=("$1"); shift; done
	shift
	"$@" 2>"$W/stderr" >/dev/null
	rc=$?
	cat "$W/stderr"
	[ "$rc" = "$want" ] || { echo "exit $rc, want $want"; return 1; }
	for p in "${pats[@]}"; do
		grep -q -- "$p" "$W/stderr" || { echo "stderr lacks: $p"; return 1; }
	done
}

sum() { sha256sum "$1" | cut -d' ' -f1; }

# ---------------------------------------------------------------- build

X86FLAGS="-c -O2 -mcmodel=kernel -fno-pic -fno-asynchronous-unwind-tables -fno-common"
build_x86() {
	set -e
	for f in calls bad_table bad_ptrarg bad_nullcheck bad_init unlisted global defined; do
		$CC $X86FLAGS -o $f.o "$SRC/$f.c"
	done
	for f in asm_ok bad_lea bad_long bad_addend bad_got bad_alt bad_field; do
		$CC -c -o $f.o "$SRC/$f.S"
	done
	$CC -c -o module.o "$SRC/module.S"
	$CC -c -DLIVEPATCH -o module_lp.o "$SRC/module.S"
	# like a .ko: one relocatable link of several objects
	ld -r -o mod.o calls.o asm_ok.o
	cp "$SRC/calls.list" list
	set +e
}

echo "# klp-convert: $KLP"
t "build x86_64 test objects ($($CC -dumpfullversion), $(ld -v | head -1))" build_x86

# ---------------------------------------------------------------- x86_64

conv() { "$KLP" list mod.o out.o >"$W/summary"; }
t "convert: exit 0" conv

count_refs() { relocs mod.o | awk -v s="$1" '$4 == s' | wc -l; }
check_summary() {
	cat "$W/summary"
	for s in "kvm_a .klp.sym.kvm.kvm_a,0" "kvm_b .klp.sym.kvm.kvm_b,2" \
		 "kvm_c .klp.sym.kvm.kvm_c,0" "amd_d .klp.sym.kvm_amd.amd_d,0"; do
		set -- $s
		c=$(count_refs "$1")
		[ "$c" -ge 1 ] || { echo "no reference to $1 in input"; return 1; }
		[ "$c" = 1 ] && w="1 call site" || w="$c call sites"
		grep -qxF "klp-convert: $1 -> $2 ($w)" "$W/summary" ||
			{ echo "missing: klp-convert: $1 -> $2 ($w)"; return 1; }
	done
	[ "$(wc -l <"$W/summary")" = 4 ]
}
t "convert: one summary line per converted symbol with its call site count" check_summary

t "section .klp.rela.kvm..text: RELA, flags AIo, link .symtab, info .text, entsize 24" \
	check_klp_section out.o .klp.rela.kvm..text .text
t "section .klp.rela.kvm..text.unlikely: info .text.unlikely" \
	check_klp_section out.o .klp.rela.kvm..text.unlikely .text.unlikely
t "section .klp.rela.kvm_amd..text.unlikely: one section per (object, target)" \
	check_klp_section out.o .klp.rela.kvm_amd..text.unlikely .text.unlikely
check_appended() {
	local nin
	nin=$(sections mod.o | wc -l)
	sections out.o | awk -v n="$nin" '$1 >= n && $2 !~ /^\.klp\.rela\./ { print "unexpected:", $0; bad = 1 }
		$1 < n && $2 ~ /^\.klp\.rela\./ { print "not appended:", $0; bad = 1 } END { exit bad }'
}
t "new sections appended after the existing ones (no renumbering)" check_appended

t "symbol kvm_a -> .klp.sym.kvm.kvm_a,0 at the same index, SHN_LIVEPATCH, GLOBAL" \
	check_klp_symbol mod.o out.o kvm_a .klp.sym.kvm.kvm_a,0
t "symbol kvm_b -> .klp.sym.kvm.kvm_b,2 (sympos from the list)" \
	check_klp_symbol mod.o out.o kvm_b .klp.sym.kvm.kvm_b,2
t "symbol kvm_c -> .klp.sym.kvm.kvm_c,0" check_klp_symbol mod.o out.o kvm_c .klp.sym.kvm.kvm_c,0
t "symbol amd_d -> .klp.sym.kvm_amd.amd_d,0" check_klp_symbol mod.o out.o amd_d .klp.sym.kvm_amd.amd_d,0
first_global_ok() {
	local g
	g=$(secfield out.o .symtab 8)
	symbols out.o | awk -v g="$g" '($1 < g) != ($3 == "LOCAL") { print "bad:", $0; bad = 1 } END { exit bad }'
}
t ".symtab sh_info still separates local from global symbols" first_global_ok
t "relocations: only those against listed symbols moved, all direct branches; the rest unchanged" \
	check_relocs mod.o out.o list
t "untouched sections keep offset, header and bytes; other symbols unchanged" check_untouched mod.o out.o

sim_ok() {
	"$SIM" out.o kvm.kvm_a=0xffffffffc0a01000 kvm.kvm_b=0xffffffffc0a02000 \
		kvm.kvm_c=0xffffffffc0a03000 kvm_amd.amd_d=0xffffffffc0b04000 || return 1
	[ "$("$SIM" out.o kvm.kvm_a=0xffffffffc0a01000 kvm.kvm_b=0xffffffffc0a02000 \
		kvm.kvm_c=0xffffffffc0a03000 kvm_amd.amd_d=0xffffffffc0b04000 | grep -c '^ok:')" = \
	     "$(relocs out.o | grep -c '^\.klp\.rela\.')" ]
}
t "loader+livepatch replay (klp-sim): every converted branch lands on the resolved address" sim_ok
sim_unconverted() { ! "$SIM" mod.o && "$SIM" mod.o | grep -q 'kvm_a applied with value 0'; }
t "loader replay of the unconverted object: weak calls would be applied with value 0" sim_unconverted

# ---- --check
t "--check passes on the converted output" "$KLP" --check list out.o
t "--check fails on the unconverted input, naming the symbols" \
	expect_fail 1 "listed symbol 'kvm_a' is still undefined" "amd_d" -- "$KLP" --check list mod.o
check_readonly() {
	local a
	a=$(sum mod.o)
	"$KLP" --check list mod.o never.o
	[ "$a" = "$(sum mod.o)" ] && [ ! -e never.o ]
}
t "--check writes nothing (input unchanged, OUT not created)" check_readonly

# ---- idempotence
idem() {
	"$KLP" list out.o out2.o | tee "$W/o" && grep -q 'nothing to convert' "$W/o" && cmp out.o out2.o
}
t "idempotent: converting the output again is a no-op, byte-identical" idem
determ() { "$KLP" list mod.o out3.o >/dev/null && cmp out.o out3.o; }
t "deterministic: converting the input twice gives identical bytes" determ
inplace() { cp mod.o w.o && "$KLP" list w.o w.o >/dev/null && cmp out.o w.o && ! ls w.o.klp-convert.* 2>/dev/null; }
t "in place (OUT == IN) gives the same bytes, no temporary left" inplace

incremental() {
	printf 'kvm kvm_a\n' >list1
	"$KLP" list1 mod.o step1.o 2>"$W/warn" >/dev/null || return 1
	grep -q "weak undefined symbol 'kvm_c' is not in the list" "$W/warn" || return 1
	"$KLP" list step1.o step2.o >/dev/null || return 1
	"$KLP" --check list step2.o || return 1
	check_klp_section step2.o .klp.rela.kvm..text .text || return 1
	[ "$(relocs step2.o | grep -c '^\.klp')" = "$(relocs out.o | grep -c '^\.klp')" ]
}
t "incremental: a second list extends the existing .klp.rela section" incremental

# ---- rejections
rej() {	# rej OBJ PATTERN...: conversion exits 1, names things, writes nothing
	local obj=$1 a
	shift
	rm -f rej.o inplace.o
	a=$(sum "$obj")
	expect_fail 1 "$@" -- "$KLP" list "$obj" rej.o || return 1
	[ ! -e rej.o ] || { echo "rej.o written"; return 1; }
	cp "$obj" inplace.o
	expect_fail 1 -- "$KLP" list inplace.o inplace.o >/dev/null || return 1
	[ "$a" = "$(sum inplace.o)" ] || { echo "in-place failure modified the file"; return 1; }
	! ls inplace.o.klp-convert.* 2>/dev/null
}
t "reject: address stored in a table (R_X86_64_64 in .rodata)" \
	rej bad_table.o "kvm_c: address taken outside executable code at .rodata+0x8" "R_X86_64_64"
t "reject: address passed as an argument (mov \$sym)" \
	rej bad_ptrarg.o "kvm_c: not a rel32 call/jmp relocation" "at .text+0x" "R_X86_64_32S"
t "reject: 'if (weak_fn)' NULL test takes the address" \
	rej bad_nullcheck.o "kvm_a: not a rel32 call/jmp relocation" "at .text+0x"
t "reject: PC32 on a lea (rip-relative address)" \
	rej bad_lea.o "kvm_c: not a call/jmp/jcc rel32 (opcode bytes 8d 05" "at .text+0x3 (R_X86_64_PC32 in .rela.text)"
t "reject: pc-relative word after an 0xe8 byte (addend != -4)" \
	rej bad_long.o "kvm_c: branch to symbol+4, not to its entry" "at .text+0x1"
t "reject: call into the middle of the function" \
	rej bad_addend.o "kvm_c: branch to symbol+16" "at .text+0x1"
t "reject: call from .init.text (freed after init)" \
	rej bad_init.o "kvm_c: reference from init code" "at .init.text+0x"
t "reject: call whose rel32 field is not zero" \
	rej bad_field.o "kvm_c: relocated field is not zero" "at .text+0x1 (R_X86_64_PLT32"
t "reject: indirect call through the GOT" rej bad_got.o "kvm_c: not a rel32" "GOTPCREL"
t "reject: call inside .altinstr_replacement" \
	rej bad_alt.o "kvm_c: reference from code that is copied at load time" ".altinstr_replacement+0x1"
reject_all() {	# every bad site is reported, not only the first
	expect_fail 1 -- "$KLP" list bad_nullcheck.o rej.o >/dev/null || return 1
	grep -c 'error:' "$W/stderr"
	[ "$(grep -c 'error:.*kvm_a:' "$W/stderr")" -ge 1 ]
}
t "reject: the conversion reports and writes nothing" reject_all

# ---- lists and symbols
unlisted() {
	"$KLP" list unlisted.o unlisted.out.o 2>"$W/e" >/dev/null || return 1
	grep -q "warning: .*weak undefined symbol 'kvm_x' is not in the list" "$W/e" || return 1
	expect_fail 1 "weak undefined symbol 'kvm_x' is not in the list" -- "$KLP" --check list unlisted.out.o
}
t "unlisted weak undefined symbol: warning when converting, error with --check" unlisted
global() {
	"$KLP" list global.o global.out.o | grep -qxF 'klp-convert: kvm_g -> .klp.sym.kvm.kvm_g,0 (1 call site)' &&
		"$KLP" --check list global.out.o
}
t "listed symbol declared without weak (SHN_UNDEF GLOBAL) is converted" global
defined() {
	"$KLP" list defined.o defined.out.o 2>"$W/e" || return 1
	cat "$W/e"
	grep -q "listed symbol 'kvm_a' is defined in the module" "$W/e" &&
		symbols defined.out.o | awk '$5 == "kvm_a" && $2 != "UND"' | grep -q .
}
t "listed symbol defined in the module: left alone with a warning" defined
stale() {
	printf 'kvm kvm_a 1\nkvm kvm_b 2\nkvm kvm_c\nkvm_amd amd_d\n' >list_stale
	expect_fail 1 ".klp.sym.kvm.kvm_a,0' does not match the list" -- "$KLP" --check list_stale out.o
}
t "--check: a .klp.sym whose sympos no longer matches the list is an error" stale
badlist() {
	local l
	for l in 'kvm' 'kv.m kvm_a' 'kvm kvm_a x' 'kvm kvm_a 1 2' 'kvm kvm,a'; do
		printf '%s\n' "$l" >badlist
		expect_fail 2 "badlist:1" -- "$KLP" badlist mod.o rej.o || return 1
	done
	printf 'kvm kvm_a\nkvm kvm_a\n' >badlist
	expect_fail 2 "already listed" -- "$KLP" badlist mod.o rej.o
}
t "malformed list lines and duplicates are rejected (exit 2)" badlist
signed() {
	cp mod.o signed.o && printf '~Module signature appended~\n' >>signed.o &&
		expect_fail 2 "module is signed" -- "$KLP" list signed.o rej.o
}
t "a signed module is refused (convert before signing)" signed
signed_check() {	# --check looks at the ELF part of a signed module
	cp out.o signed_out.o &&
		head -c 256 /dev/urandom >>signed_out.o &&
		printf '\0\0\2\0\0\0\0\0\0\0\1\0~Module signature appended~\n' >>signed_out.o &&
		"$KLP" --check list signed_out.o &&
		expect_fail 2 "module is signed" -- "$KLP" list signed_out.o rej.o
}
t "--check accepts a signed module (checks the part before the signature)" signed_check
notelf() { echo hello >notelf.ko && expect_fail 2 "not an ELF file" -- "$KLP" list notelf.ko rej.o; }
t "a non-ELF (e.g. compressed) input is refused" notelf

# ---- module-like object
modlike() {
	"$KLP" list module.o module.out.o 2>"$W/e" >/dev/null || return 1
	grep -q 'no MODULE_INFO(livepatch, "Y")' "$W/e" || return 1
	grep -q "does not depend on 'kvm'" "$W/e" || return 1
	expect_fail 1 'no MODULE_INFO(livepatch, "Y")' -- "$KLP" --check list module.out.o
}
t "module without MODULE_INFO(livepatch) or depends=kvm: warnings on convert, error on --check" modlike
modlike_lp() {
	"$KLP" list module_lp.o module_lp.out.o 2>"$W/e" >/dev/null && [ ! -s "$W/e" ] &&
		"$KLP" --check list module_lp.out.o &&
		check_untouched module_lp.o module_lp.out.o
}
t "module with livepatch=Y, depends=kvm: no warning, this_module/__versions/.modinfo untouched, --check OK" modlike_lp

# ---- extended section numbering, SHN_ABS, SHN_COMMON
xindex() {
	{
		echo '	.weak kvm_c'
		echo '	.text'
		echo '	.globl f'
		echo 'f:	call kvm_c'
		echo '	ret'
		echo '	.set abs_sym, 0x1234'
		echo '	.globl abs_sym'
		echo '	.comm comm_sym, 8, 8'
		for i in $(seq 1 65300); do echo "	.section .t.$i,\"a\""; echo '	.byte 1'; done
		echo '	.globl high_sym'
		echo 'high_sym: .byte 1'
		echo '	.text'
		echo 'g:	jmp kvm_c'
		echo '	.section .note.GNU-stack,"",@progbits'
	} >xindex.S
	$CC -c -o xindex.o xindex.S || return 1
	readelf -W -h xindex.o | grep 'Number of section headers:  *0 (' || return 1
	"$KLP" list xindex.o xindex.out.o || return 1
	symbols xindex.o | grep -E ' (abs_sym|comm_sym|high_sym)$'
	symbols xindex.out.o | grep -E ' (abs_sym|comm_sym|high_sym)$'
	symbols xindex.out.o | grep -qxF '4 ABS GLOBAL NOTYPE abs_sym' || return 1
	symbols xindex.out.o | grep -qxF '5 COM GLOBAL OBJECT comm_sym' || return 1
	[ "$(symbols xindex.o | grep ' high_sym$')" = "$(symbols xindex.out.o | grep ' high_sym$')" ] || return 1
	check_klp_section xindex.out.o .klp.rela.kvm..text .text || return 1
	"$KLP" --check list xindex.out.o
}
t "extended section numbering (SHN_XINDEX), SHN_ABS and SHN_COMMON symbols kept" xindex

# ---------------------------------------------------------------- aarch64

if command -v "$XCC" >/dev/null 2>&1; then
	A64FLAGS="-c -O2 -fno-pic -mcmodel=small -fno-asynchronous-unwind-tables -fno-common"
	build_a64() {
		set -e
		for f in calls bad_table bad_ptrarg; do
			$XCC $A64FLAGS -o a64_$f.o "$SRC/$f.c"
		done
		set +e
	}
	t "build aarch64 test objects ($XCC $($XCC -dumpfullversion))" build_a64
	a64_conv() {
		"$KLP" list a64_calls.o a64_out.o && "$KLP" --check list a64_out.o
	}
	t "aarch64: convert and --check" a64_conv
	t "aarch64: .klp.rela.kvm..text header" check_klp_section a64_out.o .klp.rela.kvm..text .text
	t "aarch64: only CALL26/JUMP26 moved, the rest unchanged" check_relocs a64_calls.o a64_out.o list
	a64_types() { relocs a64_out.o | grep '^\.klp' | awk '{ print $3 }' | sort -u | tee /dev/stderr | grep -qx R_AARCH64_JUMP26; }
	t "aarch64: tail call kept as R_AARCH64_JUMP26" a64_types
	a64_sim() {
		"$SIM" a64_out.o kvm.kvm_a=0xffffffffc0a01000 kvm.kvm_b=0xffffffffc0a02000 \
			kvm.kvm_c=0xffffffffc0a03000 kvm_amd.amd_d=0xffffffffc0b04000
	}
	t "aarch64: loader+livepatch replay, every bl/b lands on the resolved address" a64_sim
	t "aarch64: reject address stored in a table (R_AARCH64_ABS64)" \
		rej a64_bad_table.o "kvm_c: address taken outside executable code" "R_AARCH64_ABS64"
	t "aarch64: reject address passed as an argument (adrp, via GOT or not)" \
		rej a64_bad_ptrarg.o "kvm_c: not a CALL26/JUMP26" "at .text+0x0 (R_AARCH64_ADR"
else
	skip "aarch64: $XCC not installed"
fi

# ---------------------------------------------------------------- optional: real kernel headers

for kdir in ${KLP_TEST_KDIRS:-}; do
	kmod() {
		local d=$W/kmod-$(basename "$kdir")
		mkdir -p "$d" && cd "$d" || return 1
		cat >kvmtest.c <<-'EOF'
		// SPDX-License-Identifier: GPL-2.0
		#include <linux/module.h>
		#include <linux/kvm_host.h>
		void kvm_arch_memslots_updated(struct kvm *kvm, u64 gen) __attribute__((weak));
		void kvmtest_poke(struct kvm *kvm, u64 gen);
		noinline void kvmtest_poke(struct kvm *kvm, u64 gen)
		{
			kvm_get_kvm(kvm);
			kvm_arch_memslots_updated(kvm, gen);
			kvm_arch_memslots_updated(kvm, gen + 1);
			kvm_put_kvm(kvm);
		}
		EXPORT_SYMBOL_GPL(kvmtest_poke);
		MODULE_LICENSE("GPL");
		MODULE_DESCRIPTION("klp-convert test");
		MODULE_INFO(livepatch, "Y");
		EOF
		echo 'obj-m := kvmtest.o' >Kbuild
		printf 'kvm kvm_arch_memslots_updated\n' >list
		make -C "$kdir" M="$d" W=1 modules >build.log 2>&1 || { cat build.log; return 1; }
		grep -i 'kvm_arch_memslots_updated' build.log && return 1
		"$KLP" list kvmtest.ko kvmtest.klp.ko 2>warn || return 1
		[ ! -s warn ] || { cat warn; return 1; }
		"$KLP" --check list kvmtest.klp.ko || return 1
		check_klp_section kvmtest.klp.ko .klp.rela.kvm..text .text || return 1
		check_untouched kvmtest.ko kvmtest.klp.ko || return 1
		modinfo kvmtest.klp.ko | grep -q '^livepatch: *Y' || return 1
		modinfo kvmtest.klp.ko | grep -q '^depends: *kvm$' || return 1
		"$SIM" kvmtest.klp.ko kvm.kvm_arch_memslots_updated=0xffffffffc0a01000
	}
	t "real module against $kdir: modpost silent, converted, --check, modinfo, replay" kmod
	cd "$W" || exit 2
done

echo "1..$n"
echo "$npass passed, $nfail failed"
[ "$nfail" = 0 ]
