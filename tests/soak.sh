#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# `make soak`: the soak (tests/soak_test.c) for KVMAS_SOAK_SECONDS (default
# 300) per kernel lane, in a boot with multi-threaded TCG, the console
# captured with ignore_loglevel in build/logs/LANE-soak.log. KVMAS_SOAK_RUNS
# repeats the boot (default 1); KVMAS_SOAK_PARTS picks the load's parts
# (soak_test.c; default 0x5, 0x27 adds the two that show open findings:
# README, Reliability). Sets up what it needs like `make check`.
set -euo pipefail
# shellcheck source=tests/common.sh
. "$(dirname "$0")/common.sh"
lanes=${KVMAS_LANES:-6.12 6.1} # also arm64-6.12, arm64-6.1
secs=${KVMAS_SOAK_SECONDS:-300}
runs=${KVMAS_SOAK_RUNS:-1}
failed=0

say "host dependencies and payload"
prepare_host "$lanes" >/dev/null
for lane in $lanes; do
	use_lane "$lane"
	ko=$(build_module "$ABI" "$KDIR" | tail -n 1)
	for r in $(seq 1 "$runs"); do
		log=$out/logs/$ABI-soak-$r.log
		say "$ABI: soak $r/$runs, $secs s (console: $log)"
		rc=0
		"$vm/run.sh" --env "$ENV_FILE" --ko "$ko" --payload "$LANE_PAYLOAD" \
			--cmd "KVMAS_SOAK_SECONDS=$secs KVMAS_SOAK_PARTS=${KVMAS_SOAK_PARTS:-0x5} KVMAS_RING4_ROUNDS=${KVMAS_RING4_ROUNDS:-5} KVMAS_RING4_SLOTS=${KVMAS_RING4_SLOTS:-0} ./soak-all.sh" \
			--tcg-thread multi --append "maxcpus=1 ignore_loglevel" \
			--timeout $((secs + 900)) --log "$log" --quiet || rc=$?
		grep -E '^(not )?ok |^# ' "$log" | tr -d '\r' || true
		if [ "$rc" -ne 0 ]; then
			failed=1
			echo "soak $ABI run $r failed (rc=$rc); the console's last lines:" >&2
			tail -n 40 "$log" >&2
		fi
	done
done
exit $failed
