#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Host-side check of `kvmas --json` as the guest's tools_test saw it: every
# "# kvmas-json NAME DOC" line of a boot log must parse with python3's json
# module (python3 -m json.tool) and carry the keys a consumer relies on.
# Prints TAP and "N passed, N failed".
#
# usage: tests/json-check.sh BOOT-LOG
set -u

log=${1:?usage: json-check.sh BOOT-LOG}
pass=0
fail=0
n=0
declare -A seen=()

ok() { n=$((n + 1)); pass=$((pass + 1)); echo "ok $n - $1"; }
nok() { n=$((n + 1)); fail=$((fail + 1)); echo "not ok $n - $1"; }

# Keys each document must have (python expressions over the parsed doc d).
declare -A want=(
	[caps]='isinstance(d, dict) and {"api_version", "nr_caps", "caps", "kvm_user_mem_slots"} <= d.keys() and isinstance(d["caps"], dict) and d["caps"].get("netlink") == 1'
	[stats]='isinstance(d, dict) and {"sessions_open", "sessions_total", "attached", "attach_ok", "attach_failed", "ioctl_errors", "batches", "batch_ops", "ring_resets", "ring_entries"} <= d.keys() and all(isinstance(v, int) for v in d.values())'
	[sessions]='isinstance(d, list) and len(d) > 0 and all({"id", "pid", "attached", "vm"} <= s.keys() for s in d)'
	[monitor]='isinstance(d, dict) and d.get("event") in ("attach", "detach", "batch_rejected", "ring_anomaly") and {"type", "id", "pid", "attached", "vm"} <= d.keys() and (d["event"] != "batch_rejected" or {"vm_id", "errno", "error", "error_index", "nr_ops", "flags", "suppressed"} <= d.keys())'
	[vmstats]='isinstance(d, list) and len(d) == 1 and all({"vm", "vm_id", "sessions", "batches", "batch_ops", "grace_periods", "route_fence", "route_invalidate", "route_none", "dry_runs", "dry_runs_rejected", "ring_calls", "ring_entries", "events_sent", "events_suppressed"} <= v.keys() and set(v["rejected"]) == {"EINVAL", "EEXIST", "ENOENT", "ENOMEM", "EFAULT", "EOPNOTSUPP", "EMSGSIZE", "EINTR", "other"} and len(v["latency_us"]) == 24 and sum(b["commits"] for b in v["latency_us"]) == v["batches"] and v["latency_us"][-1]["to"] is None and "no_ring" in v["ring_stops"] for v in d)'
	[vms]='isinstance(d, list) and len(d) > 0 and all({"vm", "vm_id", "sessions", "batches", "rejected", "latency_us", "ring_stops"} <= v.keys() for v in d)'
)

while IFS= read -r line; do
	line=${line%$'\r'}
	rest=${line#*# kvmas-json }
	name=${rest%% *}
	doc=${rest#* }
	seen[$name]=1
	if ! printf '%s' "$doc" | python3 -m json.tool >/dev/null 2>&1; then
		nok "$name: python3 -m json.tool rejects: $doc"
		continue
	fi
	if [ -z "${want[$name]:-}" ]; then
		nok "$name: unknown document kind"
	elif printf '%s' "$doc" | python3 -c "import json, sys; d = json.load(sys.stdin); sys.exit(0 if (${want[$name]}) else 1)"; then
		ok "$name: valid JSON with the expected keys"
	else
		nok "$name: keys missing: $doc"
	fi
done < <(grep -a '# kvmas-json ' "$log")

for k in caps stats sessions monitor vmstats vms; do
	if [ -n "${seen[$k]:-}" ]; then
		ok "the guest published $k"
	else
		nok "the guest published $k (none in $log)"
	fi
done
echo "1..$n"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
