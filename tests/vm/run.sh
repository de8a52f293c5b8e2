#!/usr/bin/env bash
# run.sh - boot one Debian kernel under QEMU TCG with a test payload, and judge the run.
#
# Usage:
#   tests/vm/run.sh --env ENVFILE --payload DIR --cmd 'COMMAND'
#                   [--ko PATH]... [--modprobe 'NAME [param=value...]']...
#                   [--kvm amd|intel|none] [--timeout SEC] [--log FILE]
#                   [--append 'kernel args'] [--mem 1G] [--smp 2] [--quiet] [--pvh]
#
#   --env       env file printed by fetch-kernel.sh (VMLINUZ, MODDIR, ABI...)
#   --payload   directory copied to /payload in the guest; COMMAND runs there
#               as `sh -c COMMAND`.  Binaries should be static; for dynamic
#               ones the host's shared libraries are copied in (via ldd).
#   --cmd       the test command; its exit code is the run's verdict
#   --ko        out-of-tree module to insmod after the KVM stack (repeatable,
#               loaded in the given order; distro modules they depend on are
#               loaded first)
#   --modprobe  module options, e.g. 'kvm_amd npt=0' (repeatable); a module
#               named here that is not in the KVM stack is loaded too
#   --kvm       KVM vendor module to load (default amd: TCG's -cpu max has
#               SVM, not VMX); none = load no KVM modules.  arm64 lanes
#               (env ARCH=arm64) build KVM in: always none there
#   --timeout   seconds before QEMU is killed (default 600)
#   --log       console log file (default: a temp file, removed at exit)
#   --append    extra kernel command line (appended last, so it overrides)
#   --mem/--smp guest size (default 1G / 2)
#   --tcg-thread single|multi  TCG threading (default: $KVMAS_TCG_THREAD or
#               single). Multi-threaded TCG was seen to leave a stale int3
#               from the kernel's text_poke_bp() executable on the other vCPU
#               (an "Oops: int3" in __schedule while a static key flipped),
#               an emulator artifact; single-threaded TCG interleaves vCPUs
#               at translation-block boundaries and measured as fast here.
#   --quiet     do not stream the console to stdout
#   --pvh       boot the uncompressed vmlinux (env VMLINUX) through its PVH
#               entry instead of the bzImage: same kernel binary, no SeaBIOS
#               and no in-guest decompression (~3 s faster on 6.1, ~1 s on
#               6.12 under TCG); no KASLR on that path (x86 only)
#
# arm64 lanes (env ARCH=arm64; fetch-kernel.sh arm64-6.1|arm64-6.12) boot
# the env's IMAGE with qemu-system-aarch64 -M virt,virtualization=on (EL2,
# so the built-in KVM initialises in VHE mode), console ttyAMA0, the env's
# arm64 BUSYBOX, and a virtio console (hvc0) as the second channel.  The
# payload must be aarch64 and static.
#
# Exit status: 0 only for a clean pass; 1 for a failed run; 2 for bad usage
# or a setup error on the host.
#
# A run PASSES only if ALL of these hold (no single channel is trusted):
#   - QEMU exited by itself (no timeout) with status 0;
#   - the console shows our init started and exactly one
#     `KVMAS-SENTINEL rc=N` line, with N = 0;
#   - the second serial port (ttyS1, a file on the host that only init
#     writes; hvc0 on arm64) carries the same rc;
#   - arm64: /dev/kvm exists and the kernel said KVM initialised (x86
#     loads KVM as modules, whose insmod failing already fails the run);
#   - no kernel message (a line with a printk timestamp) reports a WARNING,
#     BUG, Oops, KFENCE, panic, GPF, Call Trace, stall or lockup.
# panic_on_warn=1 oops=panic panic=-1 plus -no-reboot turn any kernel splat
# into an immediate QEMU exit (no sentinel), not a hang.
#
# Guest-side markers on the console:
#   KVMAS-INIT start | KVMAS-MODULE-FAIL <name> rc=N | KVMAS-INIT done uptime=S
#   KVMAS-SENTINEL rc=N   (rc 125 = a module failed to load; COMMAND not run)
#
# Environment: KVMAS_KEEP_TMP=1 keeps the temp dir (initramfs tree) for debugging.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export KVMAS_PROG=run
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

usage() {
	sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}" >&2
	exit 2
}
die2() {
	kvmas_log "error: $*"
	exit 2
}

ENVFILE="" PAYLOAD="" CMD="" TIMEOUT=600 LOG="" APPEND="" MEM=1G SMP=2 QUIET=0 KVM=amd PVH=0
TCG_THREAD=${KVMAS_TCG_THREAD:-single}
KOS=() MODPROBES=() CHANNEL_MODS=()
while (($#)); do
	case "$1" in
	--env) ENVFILE=${2:?} && shift ;;
	--ko) KOS+=("${2:?}") && shift ;;
	--payload) PAYLOAD=${2:?} && shift ;;
	--cmd) CMD=${2:?} && shift ;;
	--timeout) TIMEOUT=${2:?} && shift ;;
	--log) LOG=${2:?} && shift ;;
	--append) APPEND="$APPEND ${2?}" && shift ;;
	--mem) MEM=${2:?} && shift ;;
	--smp) SMP=${2:?} && shift ;;
	--tcg-thread) TCG_THREAD=${2:?} && shift ;;
	--modprobe) MODPROBES+=("${2:?}") && shift ;;
	--kvm) KVM=${2:?} && shift ;;
	--quiet) QUIET=1 ;;
	--pvh) PVH=1 ;;
	-h | --help) usage ;;
	*) kvmas_log "unknown argument: $1" && usage ;;
	esac
	shift
done
[[ -n "$ENVFILE" && -n "$PAYLOAD" && -n "$CMD" ]] || usage
[[ -f "$ENVFILE" ]] || die2 "no env file $ENVFILE"
[[ -d "$PAYLOAD" ]] || die2 "payload $PAYLOAD is not a directory"
[[ "$TIMEOUT" =~ ^[0-9]+$ ]] || die2 "--timeout wants seconds"
[[ "$TCG_THREAD" == single || "$TCG_THREAD" == multi ]] || die2 "--tcg-thread wants single or multi"
case "$KVM" in amd) KVM_MODS=(kvm_amd) ;; intel) KVM_MODS=(kvm_intel) ;; none) KVM_MODS=() ;;
*) die2 "--kvm wants amd, intel or none" ;; esac

# Source the env file in a subshell so it cannot clobber our variables, and
# take only the keys we use.
# shellcheck source=/dev/null
# ARCH is unset first: an env file written before it had ARCH (x86) must
# not inherit the caller's (a kbuild-style ARCH=x86 or a cross lane's).
mapfile -t _env < <(unset ARCH && . "$ENVFILE" && printf '%s\n' "${ABI:-}" "${VMLINUZ:-}" "${MODDIR:-}" "${LANE:-}" "${VMLINUX:-}" \
	"${ARCH:-x86_64}" "${IMAGE:-}" "${BUSYBOX:-}")
ABI=${_env[0]:-} VMLINUZ=${_env[1]:-} MODDIR=${_env[2]:-} LANE=${_env[3]:-} VMLINUX=${_env[4]:-}
GARCH=${_env[5]:-} IMAGE=${_env[6]:-} GBUSYBOX=${_env[7]:-}
[[ -n "$ABI" && -n "$VMLINUZ" && -n "$MODDIR" ]] || die2 "$ENVFILE lacks ABI/VMLINUZ/MODDIR"
[[ -f "$VMLINUZ" ]] || die2 "no kernel image $VMLINUZ"
KERNEL=$VMLINUZ
case "$GARCH" in
x86_64) QEMU_BIN=qemu-system-x86_64 ;;
arm64)
	QEMU_BIN=qemu-system-aarch64
	# QEMU's arm64 -kernel wants the plain Image (fetch-kernel.sh made it).
	[[ -n "$IMAGE" && -f "$IMAGE" ]] || die2 "$ENVFILE lacks an arm64 IMAGE"
	KERNEL=$IMAGE
	((!PVH)) || die2 "--pvh is x86 only"
	# KVM is built into Debian's arm64 kernels: no module to load.
	KVM_MODS=()
	# The second channel (virtio console on PCI): built in on 6.12,
	# modules on 6.1; the closure below skips what is built in.
	CHANNEL_MODS=(virtio_pci virtio_console)
	;;
*) die2 "$ENVFILE has unknown ARCH '$GARCH'" ;;
esac
if ((PVH)); then
	[[ -n "$VMLINUX" && -f "$VMLINUX" ]] ||
		die2 "--pvh: no VMLINUX in $ENVFILE (re-run fetch-kernel.sh to add it)"
	KERNEL=$VMLINUX
fi
[[ -d "$MODDIR" ]] || die2 "no module dir $MODDIR"
for t in "$QEMU_BIN" busybox cpio gzip modinfo timeout; do
	command -v "$t" >/dev/null || die2 "$t not found (run tests/vm/deps.sh)"
done
BUSYBOX=$(command -v busybox)
# arm64: the guest's busybox comes with the lane (Debian's arm64
# busybox-static, fetched by fetch-kernel.sh); the host's is amd64.
if [[ "$GARCH" == arm64 ]]; then
	BUSYBOX=$GBUSYBOX
	[[ -n "$BUSYBOX" && -f "$BUSYBOX" ]] || die2 "$ENVFILE lacks the arm64 BUSYBOX"
fi
# busybox-static is what we want; a dynamic busybox would need its libc too.
if ldd "$BUSYBOX" >/dev/null 2>&1; then die2 "$BUSYBOX is dynamically linked (install busybox-static)"; fi

T=$(mktemp -d "${TMPDIR:-/tmp}/kvmas-run.XXXXXX")
# shellcheck disable=SC2317 # invoked by the trap
cleanup() {
	if [[ "${KVMAS_KEEP_TMP:-0}" == 1 ]]; then
		kvmas_log "keeping $T"
	else
		rm -rf "$T"
	fi
}
QPID="" TPID=""
# shellcheck disable=SC2317 # invoked by the trap
on_signal() {
	[[ -z "$QPID" ]] || kill -TERM "$QPID" 2>/dev/null || true
	[[ -z "$TPID" ]] || kill -TERM "$TPID" 2>/dev/null || true
	wait 2>/dev/null || true
	exit 130
}
trap cleanup EXIT
trap on_signal INT TERM

R=$T/root
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,run,payload,root,etc,kvmas/mod}

# ---- busybox userland --------------------------------------------------------
cp "$BUSYBOX" "$R/bin/busybox"
# Host-side applet links: nothing to do at boot, and the set is exactly what
# this busybox binary provides.  The host cannot run an arm64 busybox to
# ask it: there init's first command links the applets itself (only
# /bin/sh is needed to start it).
if [[ "$GARCH" == arm64 ]]; then
	ln -sf /bin/busybox "$R/bin/sh"
else
	while read -r applet; do
		[[ "$applet" == bin/busybox ]] && continue
		mkdir -p "$R/$(dirname "$applet")"
		ln -sf /bin/busybox "$R/$applet"
	done < <("$BUSYBOX" --list-full)
fi
# The kernel opens /dev/console for PID 1 before our init can mount
# devtmpfs; the kernel's built-in initramfs has the node too, this is a
# belt to those braces (needs root; harmless to skip).
mknod -m 600 "$R/dev/console" c 5 1 2>/dev/null || true

# ---- modules -------------------------------------------------------------------
# "name file params" per line, in load order.
declare -A PARAMS=()
EXTRA_MODS=()
for spec in "${MODPROBES[@]}"; do
	read -r mname mparams <<<"$spec"
	mname=$(kvmas_modnorm "$mname")
	PARAMS[$mname]="${PARAMS[$mname]:-} ${mparams:-}"
	EXTRA_MODS+=("$mname")
done

# Our modules: their names (so the closure does not look for them in the
# distro tree) and a vermagic check (a mismatch would only show up as an
# insmod "Invalid module format" in the guest).
KO_NAMES=()
for ko in "${KOS[@]}"; do
	[[ -f "$ko" ]] || die2 "no module $ko"
	n=$(modinfo -F name "$ko" 2>/dev/null || true)
	[[ -n "$n" ]] || n=$(basename "${ko%%.ko*}")
	KO_NAMES+=("$(kvmas_modnorm "$n")")
	vm=$(modinfo -F vermagic "$ko")
	[[ "${vm%% *}" == "$ABI" ]] || die2 "$ko was built for '${vm%% *}', this kernel is $ABI"
done

# Distro modules in dependency order: the result channel's (arm64), the
# KVM stack, modules named by --modprobe, then whatever our modules import
# (modinfo depends, recursive).
ko_deps=()
for ko in "${KOS[@]}"; do
	IFS=, read -r -a d <<<"$(modinfo -F depends "$ko")"
	ko_deps+=("${d[@]}")
done
KVMAS_SKIP_MODS="${KO_NAMES[*]}" kvmas_mod_closure "$MODDIR" \
	"${CHANNEL_MODS[@]}" "${KVM_MODS[@]}" "${EXTRA_MODS[@]}" "${ko_deps[@]}" >"$T/closure" ||
	die2 "cannot resolve module dependencies for $ABI"
mapfile -t DISTRO <"$T/closure"

: >"$R/kvmas/modules"
for line in "${DISTRO[@]}"; do
	name=${line%% *} file=${line#* }
	kvmas_decompress "$file" "$R/kvmas/mod/$name.ko"
	printf '%s %s %s\n' "$name" "$name.ko" "${PARAMS[$name]:-}" >>"$R/kvmas/modules"
done
i=0
for ko in "${KOS[@]}"; do
	name=${KO_NAMES[$i]}
	i=$((i + 1))
	kvmas_decompress "$ko" "$R/kvmas/mod/$name.ko"
	printf '%s %s %s\n' "$name" "$name.ko" "${PARAMS[$name]:-}" >>"$R/kvmas/modules"
done

# ---- payload -------------------------------------------------------------------
cp -a "$PAYLOAD/." "$R/payload/"
# Dynamic executables would find no libc in the guest: copy what ldd names
# (the host's glibc runs fine on the guest kernel).
while IFS= read -r -d '' f; do
	libs=$(ldd "$f" 2>/dev/null) || continue # static or not ELF
	while read -r lib; do
		[[ -n "$lib" && -e "$lib" ]] && cp -L --parents "$lib" "$R/"
	done < <(awk '/=> \//{print $3} /^[[:space:]]*\//{print $1}' <<<"$libs")
done < <(find "$R/payload" -type f -perm -u+x -print0)

printf '%s\n' "$CMD" >"$R/kvmas/cmd"
# The second channel's device node in the guest (see the QEMU command).
RESULT_TTY=/dev/ttyS1
[[ "$GARCH" != arm64 ]] || RESULT_TTY=/dev/hvc0
{
	printf 'KVMAS_ABI=%q\n' "$ABI"
	printf 'KVMAS_LANE=%q\n' "$LANE"
	# How QEMU runs the guest CPUs: benchmarks state it with their figures.
	printf 'KVMAS_TCG=%q\n' "$TCG_THREAD"
	printf 'export KVMAS_ABI KVMAS_LANE KVMAS_TCG\n'
	printf 'KVMAS_RESULT_TTY=%q\n' "$RESULT_TTY"
	# arm64 has no KVM module whose insmod would fail: init reports /dev/kvm.
	[[ "$GARCH" != arm64 ]] || printf 'KVMAS_CHECK_KVM=1\n'
} >"$R/kvmas/env"

# ---- PID 1 -----------------------------------------------------------------------
cat >"$R/init" <<'EOF'
#!/bin/sh
# PID 1 of the test VM (written by tests/vm/run.sh).  Must always reach the
# sentinel and poweroff: a PID 1 that exits panics the kernel.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root
# arm64 initramfs: only /bin/sh is linked (run.sh cannot run the guest's
# busybox on the host to list its applets).
[ -e /bin/mount ] || /bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
# /dev/shm: POSIX shm and semaphores (selftests use them).
mount -t tmpfs tmpfs /dev/shm
mount -t debugfs debugfs /sys/kernel/debug || echo "KVMAS-NOTE: no debugfs"
mount -t tmpfs tmpfs /tmp
. /kvmas/env
echo "KVMAS-INIT start abi=$KVMAS_ABI"
if [ "${KVMAS_CHECK_KVM:-0}" = 1 ]; then
	if [ -c /dev/kvm ]; then echo "KVMAS-KVM dev=present"; else echo "KVMAS-KVM dev=missing"; fi
fi

rc=0
# Each line: name file params (params may be empty).
while read -r name file params; do
	[ -n "$name" ] || continue
	# shellcheck disable=SC2086 # params are word-split on purpose
	insmod "/kvmas/mod/$file" $params
	r=$?
	if [ "$r" -ne 0 ]; then
		echo "KVMAS-MODULE-FAIL $name rc=$r (insmod /kvmas/mod/$file $params)"
		rc=125
		break
	fi
done </kvmas/modules

if [ "$rc" -eq 0 ]; then
	cd /payload || rc=126
fi
if [ "$rc" -eq 0 ]; then
	sh -c "$(cat /kvmas/cmd)" </dev/null
	rc=$?
fi
read -r up _ </proc/uptime
echo "KVMAS-INIT done uptime=$up"
echo "KVMAS-SENTINEL rc=$rc"
# Second channel, a serial port nothing else writes to (ttyS1; a virtio
# console on arm64).  The last close of a tty waits until its output has
# drained, so by the time this returns the console has had time to drain
# as well.  A virtio console appears once the device has announced its
# port, which a module loaded above may still be doing: give it 5 s.
i=0
while [ ! -e "$KVMAS_RESULT_TTY" ] && [ "$i" -lt 50 ]; do
	sleep 0.1
	i=$((i + 1))
done
echo "KVMAS-RESULT rc=$rc" >"$KVMAS_RESULT_TTY"
sleep 0.2
poweroff -f
EOF
chmod 755 "$R/init"

INITRD=$T/initrd.cpio.gz
(cd "$R" && find . -print0 | LC_ALL=C sort -z |
	cpio --null -o -H newc --quiet -R 0:0) | gzip -1 >"$INITRD"

# ---- boot ------------------------------------------------------------------------
# printk.time=1: kernel lines carry [ sec.usec ], which is how the judge tells
# kernel messages from payload output.  loglevel=7: everything but debug, so
# WARN/BUG text and our module's pr_info reach the console (the kernel
# default; spelled out so a distro `quiet` could not hide a WARN).
CONSOLE=ttyS0
[[ "$GARCH" != arm64 ]] || CONSOLE=ttyAMA0
CMDLINE="console=$CONSOLE panic=-1 panic_on_warn=1 oops=panic slab_nomerge loglevel=7 printk.time=1${APPEND}"
[[ -n "$LOG" ]] || LOG=$T/console.log
mkdir -p "$(dirname "$LOG")"
RESULT=$T/result
if [[ "$GARCH" == arm64 ]]; then
	# virt has one PL011 (the console), so the second channel is a virtio
	# console on PCI (hvc0): Debian's arm64 kernels build in
	# PCI_HOST_GENERIC; VIRTIO_PCI and VIRTIO_CONSOLE are built in on 6.12
	# and modules on 6.1 (CHANNEL_MODS, loaded first).  virtualization=on
	# starts the kernel at EL2, which KVM needs; gic-version=3 gives KVM a
	# GICv3 to virtualise.
	QEMU=(qemu-system-aarch64 -M "virt,virtualization=on,gic-version=3"
		-accel "tcg,thread=$TCG_THREAD" -cpu max -m "$MEM" -smp "$SMP"
		-nodefaults -nographic -no-reboot -monitor none
		-serial stdio
		-device virtio-serial-pci -chardev "file,id=result,path=$RESULT"
		-device "virtconsole,chardev=result"
		-kernel "$KERNEL" -initrd "$INITRD" -append "$CMDLINE")
else
	QEMU=(qemu-system-x86_64 -accel "tcg,thread=$TCG_THREAD" -cpu max -m "$MEM" -smp "$SMP"
		-nodefaults -nographic -no-reboot -monitor none
		-serial stdio -serial "file:$RESULT"
		-kernel "$KERNEL" -initrd "$INITRD" -append "$CMDLINE")
fi

kvmas_log "booting $ABI (timeout ${TIMEOUT}s, log $LOG)"
start=$(date +%s.%N)
# QEMU runs in the background and we `wait` for it: bash runs a signal trap
# only between commands, and `wait` is interruptible, so an outer timeout or
# Ctrl-C stops QEMU too instead of leaving it to run out its own timeout.
# The console goes to the log file; tail streams it (tail exits once QEMU's
# `timeout` wrapper is gone, after a last read).
timeout -k 10 "$TIMEOUT" "${QEMU[@]}" </dev/null >"$LOG" 2>&1 &
QPID=$!
TPID=""
if ((!QUIET)); then
	tail -s 0.2 -n +1 -f --pid="$QPID" "$LOG" &
	TPID=$!
fi
set +e
wait "$QPID"
qrc=$?
set -e
QPID=""
if [[ -n "$TPID" ]]; then wait "$TPID" || true; fi
TPID=""
end=$(date +%s.%N)
elapsed=$(awk -v a="$start" -v b="$end" 'BEGIN{printf "%.1f", b-a}')

# ---- judge -----------------------------------------------------------------------
tr -d '\r' <"$LOG" >"$T/clean.log"
reasons=()
if ((qrc == 124 || qrc == 137)); then
	reasons+=("timeout after ${TIMEOUT}s")
elif ((qrc != 0)); then
	reasons+=("qemu exited with status $qrc")
fi
grep -q 'KVMAS-INIT start' "$T/clean.log" || reasons+=("init never started")

mapfile -t sentinels < <(grep -o 'KVMAS-SENTINEL rc=[0-9]*' "$T/clean.log" || true)
rc=""
if ((${#sentinels[@]} == 0)); then
	reasons+=("no sentinel on the console (crash, panic or hang)")
elif ((${#sentinels[@]} > 1)); then
	reasons+=("${#sentinels[@]} sentinel lines (expected exactly one)")
else
	rc=${sentinels[0]#*rc=}
	((rc == 0)) || reasons+=("command exited with rc=$rc")
fi
res=$(tr -d '\r' <"$RESULT" 2>/dev/null | grep -o 'KVMAS-RESULT rc=[0-9]*' | head -n1 || true)
if [[ -z "$res" ]]; then
	reasons+=("no result on the second serial channel")
elif [[ -n "$rc" && "${res#*rc=}" != "$rc" ]]; then
	reasons+=("channels disagree: console rc=$rc, ${RESULT_TTY#/dev/} rc=${res#*rc=}")
fi
if [[ "$GARCH" == arm64 ]]; then
	# Built-in KVM that failed to initialise leaves no /dev/kvm and only a
	# kernel line saying so: require both the node and the success line
	# ("kvm [1]: VHE mode initialized successfully", or Hyp/nVHE/hVHE).
	grep -q 'KVMAS-KVM dev=present' "$T/clean.log" ||
		reasons+=("no /dev/kvm in the guest")
	grep -qE '\[ *[0-9]+\.[0-9]+\] kvm \[[0-9]+\]: .*mode initialized successfully' "$T/clean.log" ||
		reasons+=("the kernel did not report KVM initialised")
fi
grep -o 'KVMAS-MODULE-FAIL.*' "$T/clean.log" >&2 || true

# Kernel messages only (printk timestamp anywhere in the line: a kernel
# record can follow unterminated payload output on the same console line).
BAD='WARNING:|BUG:|kernel BUG at|Oops|KFENCE|Kernel panic|general protection fault|Call Trace|UBSAN:|KASAN:|detected stall|soft lockup|hard LOCKUP|blocked for more than|Unable to handle kernel'
bad=$(grep -nE "\[ *[0-9]+\.[0-9]+\].*($BAD)" "$T/clean.log" || true)
if [[ -n "$bad" ]]; then
	reasons+=("kernel reported problems")
	kvmas_log "offending console lines:"
	head -n 40 <<<"$bad" >&2
fi

up=$(grep -o 'KVMAS-INIT done uptime=[0-9.]*' "$T/clean.log" | head -n1 | sed 's/.*=//' || true)
if ((${#reasons[@]} == 0)); then
	echo "KVMAS-RUN: PASS $ABI (${elapsed}s wall, guest uptime ${up:-?}s)"
	exit 0
fi
if ((QUIET)); then
	kvmas_log "last console lines:"
	tail -n 30 "$T/clean.log" >&2
fi
joined=$(printf '%s; ' "${reasons[@]}")
echo "KVMAS-RUN: FAIL $ABI (${elapsed}s wall): ${joined%; }"
exit 1
