# shellcheck shell=bash
# lib.sh - helpers shared by fetch-kernel.sh and run.sh (sourced, not run).
#
# Module lookups work on an extracted Debian kernel tree (MODDIR =
# .../lib/modules/<abi>) with the HOST's kmod: the host kernel has no module
# support, but modinfo only reads the .ko file (kmod 30 reads .ko.xz/.ko.zst).

kvmas_log() { printf '%s: %s\n' "${KVMAS_PROG:-kvmas}" "$*" >&2; }
kvmas_die() {
	kvmas_log "error: $*"
	exit 1
}

# Module names are spelled with '-' or '_' interchangeably (file kvm-amd.ko is
# module kvm_amd); compare them in the '_' form.
kvmas_modnorm() { printf '%s\n' "${1//-/_}"; }

# kvmas_mod_path MODDIR NAME: print the path of NAME's .ko, .ko.xz, .ko.zst or
# .ko.gz under MODDIR/kernel (and updates/extra, where DKMS puts modules).
# Returns 1 if not found.
kvmas_mod_path() {
	local moddir=$1 name glob f
	name=$(kvmas_modnorm "$2")
	# Turn every '_' into a [-_] class so one find matches either spelling.
	glob=${name//_/[-_]}
	f=$(find "$moddir" -type f \( -name "$glob.ko" -o -name "$glob.ko.xz" \
		-o -name "$glob.ko.zst" -o -name "$glob.ko.gz" \) -print -quit 2>/dev/null)
	[[ -n "$f" ]] || return 1
	printf '%s\n' "$f"
}

# kvmas_mod_builtin MODDIR NAME: true if NAME is built into the kernel, i.e.
# listed in modules.builtin (then it needs no insmod and has no file).
kvmas_mod_builtin() {
	local moddir=$1 name
	name=$(kvmas_modnorm "$2")
	[[ -f "$moddir/modules.builtin" ]] || return 1
	# Not grep -q: it exits at the first match, and under the callers'
	# pipefail sed's SIGPIPE would then turn a match into a failure
	# (seen with arm64's long modules.builtin).
	sed 's#.*/##; s#\.ko$##; y#-#_#' "$moddir/modules.builtin" | grep -xF "$name" >/dev/null
}

# kvmas_mod_closure MODDIR NAME...: print "name path" lines for NAME and all
# its dependencies, dependencies first (insmod order), each module once.
# Dependencies come from `modinfo -F depends` (the kernel's own record of
# the symbols a module imports), recursively.  Built-in modules are skipped.
# KVMAS_SKIP_MODS (space-separated normalized names) are treated as already
# provided, e.g. our own --ko modules.
kvmas_mod_closure() {
	local moddir=$1
	shift
	local -A _seen=()
	local -a _order=()
	local n
	for n in ${KVMAS_SKIP_MODS:-}; do _seen[$n]=1; done
	for n in "$@"; do
		_kvmas_visit "$moddir" "$n" || return 1
	done
	((${#_order[@]} == 0)) || printf '%s\n' "${_order[@]}"
}

_kvmas_visit() {
	local moddir=$1 name path deps d
	name=$(kvmas_modnorm "$2")
	[[ -z "${_seen[$name]:-}" ]] || return 0
	_seen[$name]=1
	if ! path=$(kvmas_mod_path "$moddir" "$name"); then
		if kvmas_mod_builtin "$moddir" "$name"; then
			return 0
		fi
		kvmas_log "error: module $name not found under $moddir (and not built in)"
		return 1
	fi
	deps=$(modinfo -F depends "$path") || {
		kvmas_log "error: modinfo failed on $path"
		return 1
	}
	local IFS=,
	for d in $deps; do
		[[ -n "$d" ]] || continue
		_kvmas_visit "$moddir" "$d" || return 1
	done
	_order+=("$name $path")
}

# kvmas_decompress SRC DST: write the plain .ko for SRC (.ko/.ko.xz/.ko.zst/
# .ko.gz) to DST.  busybox insmod does not decompress, so the guest gets
# plain files.
kvmas_decompress() {
	local src=$1 dst=$2
	case "$src" in
	*.ko.xz) xz -dc -- "$src" >"$dst" ;;
	*.ko.zst) zstd -qdc -- "$src" >"$dst" ;;
	*.ko.gz) gzip -dc -- "$src" >"$dst" ;;
	*) cp -- "$src" "$dst" ;;
	esac
}

# kvmas_extract_vmlinux BZIMAGE OUT: write the uncompressed ELF vmlinux
# inside a bzImage to OUT (what the kernel's scripts/extract-vmlinux does;
# Debian's kbuild package does not ship that script).  Tries every
# compressor's magic at every offset until the output is an ELF file.
# Used for PVH boot (run.sh --pvh): QEMU then jumps straight to the kernel's
# 32-bit PVH entry, skipping SeaBIOS and the in-guest decompressor, which
# under TCG costs ~3 s for Debian 6.1's xz image (~1 s for 6.12's zstd).
kvmas_extract_vmlinux() {
	local img=$1 out=$2 spec magic tool off
	for spec in $'\xfd7zXZ:xz -dc' $'\x28\xb5\x2f\xfd:zstd -qdc' $'\x1f\x8b\x08:gzip -dc'; do
		magic=${spec%%:*} tool=${spec#*:}
		while read -r off; do
			# Trailing bytes after the stream make the tool complain: the
			# output is complete anyway, so judge the output, not the status.
			# shellcheck disable=SC2086 # $tool is "cmd flags"
			tail -c +"$((off + 1))" "$img" | $tool >"$out" 2>/dev/null || true
			if [[ "$(head -c 4 "$out" | od -An -c | tr -d ' ')" == '177ELF' ]]; then
				return 0
			fi
		done < <(LC_ALL=C grep -abo "$magic" "$img" | cut -d: -f1 | head -n 8)
	done
	rm -f "$out"
	return 1
}

# kvmas_has_pvh_note VMLINUX: true if the ELF has XEN_ELFNOTE_PHYS32_ENTRY
# (type 18), the entry point QEMU's -kernel uses for an ELF vmlinux.
kvmas_has_pvh_note() {
	readelf -n "$1" 2>/dev/null | grep -Eq 'Xen[[:space:]].*\(0x00000012\)'
}
