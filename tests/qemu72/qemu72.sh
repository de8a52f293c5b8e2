#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Runs inside the booted test kernel (busybox sh, cwd = the qemu72 payload):
# Debian bookworm's own, unmodified QEMU 7.2 as the VMM under KVM, booting
# pamguest.elf (2 vCPUs: one toggles i440FX PAM registers, one executes code
# in the remapped windows). Prints TAP.
#
#   1 control: stock QEMU, the AP halted: all toggles done, no error
#   2 stock QEMU, the AP executing: how many runs stop with "KVM internal
#     error" and after how many toggles (a figure: a run that completes
#     is reported, not failed; a run that ends any other way fails)
#   3 stock QEMU + LD_PRELOAD=libkvmas-preload.so (DELETE + re-covering
#     CREATEs committed as one batch through the module), AP executing:
#     every toggle done, no internal error, the guest's checks intact, the
#     module's batch counter moved (SKIP if the shim is not in the payload)
#   4 the shim with the AP halted, alternating with stock runs: wall time
#     per toggle, shim against stock
#
# Environment: QEMU72_RUNS (stock runs, 3), QEMU72_TOGGLES (shim target,
# 2000), QEMU72_CONTROL (toggles of an AP-halted run, 200), QEMU72_ROUNDS
# (shim/stock pairs of the timing test, 3), QEMU72_TRACE (1: print the
# memslot trace of a few stock toggles, 2: only the last toggle's, 0: none),
# QEMU72_PRELOAD (the shim, ./libkvmas-preload.so), QEMU72_MEM (guest MiB, 32).
RUNS=${QEMU72_RUNS:-3}
TOGGLES=${QEMU72_TOGGLES:-2000}
CONTROL=${QEMU72_CONTROL:-200}
ROUNDS=${QEMU72_ROUNDS:-3}
TRACE=${QEMU72_TRACE:-1}
PRELOAD=${QEMU72_PRELOAD:-$PWD/libkvmas-preload.so}
MEM=${QEMU72_MEM:-32}
W=/tmp/qemu72
mkdir -p "$W"
n=0
failed=0

ok() {
	n=$((n + 1))
	echo "ok $n - $*"
}
notok() {
	n=$((n + 1))
	failed=1
	echo "not ok $n - $*"
}

now_cs() {
	read -r up _ </proc/uptime
	echo "${up%.*}${up#*.}"
}

# centiseconds -> "S.CC"
secs() {
	printf '%d.%02d' $(($1 / 100)) $(($1 % 100))
}

# run NAME MODE TOGGLES TIMEOUT [LD_PRELOAD] [extra qemu args...]
# Sets R_RC (QEMU: 1 = guest passed, 3 = guest found an error, 143 =
# killed by us), R_KIE (internal errors), R_DOTS (toggles completed),
# R_RESULT (the guest's RESULT line), R_EIP, R_CS (wall centiseconds), R_NAME,
# R_TIMEOUT.
run() {
	name=$1 mode=$2 toggles=$3 limit=$4 pre=${5:-}
	shift 5
	dc=$W/$name.dc err=$W/$name.err R_NAME=$name
	rm -f "$dc" "$err"
	KVMTRACE_FILE=$W/$name.kt
	KVMAS_PRELOAD_LOG=$W/$name.pl
	export KVMTRACE_FILE KVMAS_PRELOAD_LOG
	t0=$(now_cs)
	if [ -n "$pre" ]; then
		LD_PRELOAD=$pre ./qemu-system-x86_64 -L ./qemu-fw -accel kvm \
			-m "$MEM" -smp 2 -nodefaults -display none -no-reboot \
			-monitor none -serial none -debugcon "file:$dc" \
			-device isa-debug-exit,iobase=0xf4,iosize=4 \
			-kernel pamguest.elf -append "toggles=$toggles mode=$mode" \
			"$@" 2>"$err" &
	else
		./qemu-system-x86_64 -L ./qemu-fw -accel kvm \
			-m "$MEM" -smp 2 -nodefaults -display none -no-reboot \
			-monitor none -serial none -debugcon "file:$dc" \
			-device isa-debug-exit,iobase=0xf4,iosize=4 \
			-kernel pamguest.elf -append "toggles=$toggles mode=$mode" \
			"$@" 2>"$err" &
	fi
	pid=$!
	R_TIMEOUT=0
	# QEMU 7.2 pauses the VM on an internal error (it does not exit):
	# stop it once the register dump is out.
	while kill -0 "$pid" 2>/dev/null; do
		if grep -q '^Code=' "$err" 2>/dev/null; then
			kill "$pid"
			break
		fi
		if [ $(($(now_cs) - t0)) -gt $((limit * 100)) ]; then
			R_TIMEOUT=1
			kill "$pid"
			break
		fi
		sleep 0.1
	done
	wait "$pid"
	R_RC=$?
	R_CS=$(($(now_cs) - t0))
	R_KIE=$(grep -c 'KVM internal error' "$err")
	R_DOTS=$(tr -cd . <"$dc" 2>/dev/null | wc -c)
	R_RESULT=$(grep '^RESULT' "$dc" 2>/dev/null)
	R_EIP=$(sed -n 's/^EIP=\([0-9a-f]*\).*/\1/p' "$err" | head -n 1)
}

# An AP-halted run (tests 1 and 4), re-run once if the guest reset.
# A guest reset is QEMU ending the run itself with status 0 before the
# guest's RESULT line: a triple fault, which -no-reboot turns into an exit.
# CI saw one on a stock control run (nothing of this project in its path:
# the livepatch only replaces the dirty-ring reset, which QEMU 7.2 does not
# use) under the TCG-emulated SVM; it is the TCG artefact REFERENCE.md warns
# of, not a result. Either side gets the one re-run, and the evidence and a
# note are printed; a second reset in a row stands as the run's result.
# run_idle NAME TOGGLES PRELOAD
RESETS=""
run_idle() {
	run "$1" idle "$2" 600 "$3"
	if [ "$R_RC" = 0 ] && [ -z "$R_RESULT" ]; then
		echo "# note: $1 ended in a guest reset after $R_DOTS/$2 toggles ($(secs "$R_CS") s); evidence, then one re-run:"
		show "$1"
		RESETS="$RESETS $1"
		run "$1-again" idle "$2" 600 "$3"
	fi
}

# Prints a run's evidence when it went wrong.
show() {
	echo "# --- $1: rc=$R_RC timeout=$R_TIMEOUT, debugcon tail:"
	tail -c 600 "$W/$1.dc" 2>/dev/null | sed 's/^/#   /'
	echo "# --- stderr:"
	grep -v '^kvm_set_user_memory' "$W/$1.err" | head -n 30 | sed 's/^/#   /'
}

# ms per toggle, 2 decimals
per_toggle() {
	[ "$2" -gt 0 ] || { echo "-"; return; }
	v=$(($1 * 1000 / $2))
	printf '%d.%02d' $((v / 100)) $((v % 100))
}

# a/b, 2 decimals
ratio() {
	[ "$2" -gt 0 ] || { echo "-"; return; }
	v=$(($1 * 100 / $2))
	printf '%d.%02d' $((v / 100)) $((v % 100))
}

echo "TAP version 13"
echo "1..4"
echo "# $(./qemu-system-x86_64 --version | head -n 1)"
echo "# guest: pamguest.elf, ${MEM} MiB, 2 vCPUs, -accel kvm; kernel $(uname -r)"

# 1: control.
run_idle control "$CONTROL" ""
ctl_cs=$R_CS
if [ "$R_RC" = 1 ] && [ "$R_KIE" = 0 ] && [ "$R_DOTS" = "$CONTROL" ] &&
   echo "$R_RESULT" | grep -q ' PASS$'; then
	ok "control: stock QEMU 7.2, AP halted: $R_DOTS/$CONTROL toggles, 0 errors ($(secs "$R_CS") s, $(per_toggle "$R_CS" "$R_DOTS") ms/toggle)"
else
	notok "control: stock QEMU 7.2, AP halted: rc=$R_RC, $R_KIE internal errors, $R_DOTS/$CONTROL toggles"
	show "$R_NAME"
fi

# The memslot ioctls of the guest's setup and first stock toggles, from
# QEMU's own trace events (Slot# = as_id << 16 | slot id; size 0 = DELETE),
# after each PAM write (pci_cfg_write): from the guest's first PAM write on
# (the last "@0x59 <- 0x30": SeaBIOS's come before).
if [ "$TRACE" != 0 ]; then
	run trace idle 4 120 "$PWD/libkvmtrace.so" -trace kvm_set_user_memory -trace pci_cfg_write
	if [ "$TRACE" = 1 ]; then
		echo "# memslot trace, stock QEMU 7.2: pamguest setup (all RAM, ROM snapshots), then 4 toggles (C4000 RO, F0000 RO, D0000 ROM, E0000 ROM):"
		grep -E '^(kvm_set_user_memory|pci_cfg_write)' "$W/trace.err" |
			awk '{ l[NR] = $0 } /@0x59 <- 0x30$/ { s = NR } END { for (i = s; i <= NR; i++) print l[i] }' |
			sed -e 's/^kvm_set_user_memory /#     /' -e 's/^pci_cfg_write /#   PAM write: /'
	fi
	# The same from libkvmtrace.so (every ioctl, with thread and time):
	# the last toggles, and how long each address space's range stays
	# uncovered (first DELETE to last CREATE of a group) in the whole run.
	# QEMU72_TRACE=2 (the demo): only this part, the last toggle.
	lines=44
	[ "$TRACE" = 1 ] || lines=9
	echo "# libkvmtrace.so, the last toggle(s) (usec tid fd ioctl), the last one = PAM 0x5e <- 0x30 (0xE0000 to ROM):"
	grep -v ' ioctl 0x' "$W/trace.kt" | tail -n "$lines" | sed -e 's/^/#   /' -e 's/SET_USER_MEMORY_REGION //'
	awk 'function fin() {
		if (last) { d = last - t0; n++; sum += d; if (d > max) max = d; if (!n0 || d < min) min = d; n0 = 1 }
		open = 0; last = 0 }
	/SET_USER_MEMORY_REGION/ {
		as = $6; sub("as=", "", as)
		if ($5 == "DELETE") {
			if (open && (as != cur || last)) fin()
			if (!open) { t0 = $1; open = 1; cur = as }
		} else if (open) last = $1
		next }
	{ if (open) fin() }
	END { if (open) fin(); if (n) printf "# uncovered window per group (first DELETE to last CREATE of one address space): %d groups, min %d us, avg %d us, max %d us\n", n, min, sum / n, max }' "$W/trace.kt"
fi

# 2: stock, AP executing.
i=0 hit=0 done_ok=0 bad=0 list="" eips=""
while [ "$i" -lt "$RUNS" ]; do
	i=$((i + 1))
	run "stock$i" exec "$TOGGLES" 300 ""
	if [ "$R_KIE" -gt 0 ]; then
		hit=$((hit + 1))
		list="$list $R_DOTS"
		eips="$eips $R_EIP"
	elif [ "$R_RC" = 1 ] && echo "$R_RESULT" | grep -q ' PASS$'; then
		done_ok=$((done_ok + 1))
	else
		bad=$((bad + 1))
		show "stock$i"
	fi
	echo "# stock run $i: rc=$R_RC internal_errors=$R_KIE toggles_done=$R_DOTS eip=${R_EIP:--} $(secs "$R_CS") s ${R_RESULT:-}"
done
msg="stock QEMU 7.2, AP executing: $hit/$RUNS runs stopped by KVM internal error (toggles done before it:${list:- -}; vCPU EIP:${eips:- -}), $done_ok/$RUNS completed $TOGGLES toggles"
if [ "$bad" -eq 0 ]; then
	ok "$msg"
else
	notok "$msg, $bad ended otherwise"
fi

# 3 and 4: the shim.
if [ ! -f "$PRELOAD" ]; then
	ok "shim, AP executing # SKIP $(basename "$PRELOAD") not in the payload"
	ok "wall time, AP halted, shim vs stock # SKIP $(basename "$PRELOAD") not in the payload"
else
	b0=$(./kvmas stats 2>/dev/null | sed -n 's/^batches *//p')
	run shim exec "$TOGGLES" 900 "$PRELOAD"
	b1=$(./kvmas stats 2>/dev/null | sed -n 's/^batches *//p')
	batches=$((${b1:-0} - ${b0:-0}))
	shim_cs=$R_CS
	echo "# shim run: rc=$R_RC internal_errors=$R_KIE toggles_done=$R_DOTS module_batches=$batches $(secs "$R_CS") s $R_RESULT"
	echo "# shim counters (KVMAS_PRELOAD_LOG): $(tr '\n' ' ' <"$W/shim.pl" 2>/dev/null)"
	if [ "$R_RC" = 1 ] && [ "$R_KIE" = 0 ] && [ "$R_DOTS" = "$TOGGLES" ] &&
	   echo "$R_RESULT" | grep -q ' errors=0 PASS$' && [ "$batches" -ge "$TOGGLES" ]; then
		ok "shim, AP executing: 0 internal errors in $R_DOTS toggles, guest checks intact (${R_RESULT#RESULT }), $batches module batches ($(secs "$shim_cs") s, $(per_toggle "$shim_cs" "$R_DOTS") ms/toggle)"
	else
		notok "shim, AP executing: rc=$R_RC, $R_KIE internal errors, $R_DOTS/$TOGGLES toggles, $batches module batches"
		show shim
	fi
	# Wall time per toggle, AP halted: shim and stock alternate, ROUNDS
	# pairs (the host's load moves between runs; stock's first run is
	# test 1's): the ratio of the sums and each pair's ratio.
	shim_t=0 stock_t=$ctl_cs bad4="" pairs="" r=1 prev=$ctl_cs
	while :; do
		run_idle "shimidle$r" "$CONTROL" "$PRELOAD"
		if [ "$R_RC" != 1 ] || [ "$R_KIE" != 0 ] || [ "$R_DOTS" != "$CONTROL" ]; then
			bad4="$bad4 shimidle$r: rc=$R_RC, $R_KIE internal errors, $R_DOTS/$CONTROL toggles;"
			show "$R_NAME"
		fi
		shim_t=$((shim_t + R_CS))
		pairs="$pairs $(ratio "$R_CS" "$prev")"
		echo "# round $r: stock $(secs "$prev") s, shim $(secs "$R_CS") s"
		[ "$r" -ge "$ROUNDS" ] && break
		r=$((r + 1))
		run_idle "control$r" "$CONTROL" ""
		if [ "$R_RC" != 1 ] || [ "$R_KIE" != 0 ] || [ "$R_DOTS" != "$CONTROL" ]; then
			bad4="$bad4 control$r: rc=$R_RC, $R_KIE internal errors, $R_DOTS/$CONTROL toggles;"
			show "$R_NAME"
		fi
		stock_t=$((stock_t + R_CS))
		prev=$R_CS
	done
	tt=$((CONTROL * ROUNDS))
	[ -z "$RESETS" ] || echo "# guest resets re-run once (tests 1 and 4):$RESETS"
	if [ -z "$bad4" ]; then
		ok "wall time, AP halted, $ROUNDS x $CONTROL toggles each: shim $(per_toggle "$shim_t" "$tt") ms/toggle, stock $(per_toggle "$stock_t" "$tt") ms/toggle: ratio shim/stock $(ratio "$shim_t" "$stock_t") (per round:$pairs)"
	else
		notok "wall time, AP halted:$bad4"
	fi
fi
exit $failed
