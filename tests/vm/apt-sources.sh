#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Prints one-line apt sources for Debian suites, taking the archive location
# from the host's own apt configuration, so that a host behind a local
# mirror or proxy fetches through it:
#   tests/vm/apt-sources.sh bookworm bookworm-updates bookworm-security ...
#
# Read: Dir::Etc::SourceList (one-line format) and every *.list and *.sources
# (deb822) file in Dir::Etc::SourceParts, as apt-config reports them;
# disabled stanzas (Enabled: no), deb-src and non-Debian repositories are
# ignored.
#  - the main archive: the URI of an entry for a Debian suite that is not a
#    security suite (e.g. bookworm, bookworm-updates);
#  - the security archive: the URI of an entry for a *-security suite; if the
#    host has none, the main archive URI with .../debian -> .../debian-security;
#  - backports (often not configured on a host) and every other suite: the
#    main archive URI.
# KVMAS_DEBIAN_MIRROR / KVMAS_DEBIAN_SECURITY_MIRROR override the result.
# No mirror is built in: without a Debian entry on the host and without the
# overrides, this fails and says so.
set -euo pipefail

keyring_default=/usr/share/keyrings/debian-archive-keyring.gpg
sl=/etc/apt/sources.list
sp=/etc/apt/sources.list.d
if command -v apt-config >/dev/null; then
	eval "$(apt-config shell sl Dir::Etc::sourcelist/f sp Dir::Etc::sourceparts/d)"
fi
sp=${sp%/}

# "URI SUITE SIGNED-BY" for every enabled binary (deb) entry on the host.
host_entries() {
	local f
	for f in "$sl" "$sp"/*.list; do
		[ -f "$f" ] || continue
		awk '
		/^[[:space:]]*deb[[:space:]]/ {
			sub(/#.*/, "")
			key = "-"
			i = 2
			if ($2 ~ /^\[/) {
				# [opt=val ...] may span several fields
				for (; i <= NF; i++) {
					if ($i ~ /signed-by=/) { key = $i; sub(/.*signed-by=/, "", key); sub(/\]$/, "", key) }
					if ($i ~ /\]$/) { i++; break }
				}
			}
			if (i + 1 <= NF) print $i, $(i + 1), key
		}' "$f"
	done
	for f in "$sp"/*.sources; do
		[ -f "$f" ] || continue
		awk '
		function flush(  u, s, nu, ns, a, b, j, k) {
			if (types ~ /(^|[[:space:]])deb([[:space:]]|$)/ && tolower(enabled) != "no") {
				nu = split(uris, a, /[[:space:]]+/)
				ns = split(suites, b, /[[:space:]]+/)
				for (j = 1; j <= nu; j++)
					for (k = 1; k <= ns; k++)
						if (a[j] != "" && b[k] != "")
							print a[j], b[k], (key == "" ? "-" : key)
			}
			types = uris = suites = key = enabled = ""
		}
		/^[[:space:]]*#/ { next }
		/^[[:space:]]*$/ { flush(); next }
		{
			field = tolower($1); sub(/:$/, "", field)
			val = $0; sub(/^[^:]*:[[:space:]]*/, "", val)
			if (field == "types") types = val
			else if (field == "uris") uris = val
			else if (field == "suites") suites = val
			else if (field == "signed-by") key = val
			else if (field == "enabled") enabled = val
		}
		END { flush() }' "$f"
	done
}

# Debian entries only: signed by the Debian archive keyring, or an archive
# path of .../debian or .../debian-security (a local mirror keeps those).
debian_entries() {
	host_entries | awk '$3 ~ /debian-archive/ || $1 ~ /\/debian(-security)?\/?$/'
}

entries=$(debian_entries || true)
main=${KVMAS_DEBIAN_MIRROR:-$(awk '$2 !~ /(-security|\/updates)$/ { print $1; exit }' <<<"$entries")}
security=${KVMAS_DEBIAN_SECURITY_MIRROR:-$(awk '$2 ~ /(-security|\/updates)$/ { print $1; exit }' <<<"$entries")}
if [ -z "$main" ]; then
	echo "apt-sources.sh: no Debian archive in the host's apt sources ($sl, $sp);" \
	     "set KVMAS_DEBIAN_MIRROR (and KVMAS_DEBIAN_SECURITY_MIRROR)" >&2
	exit 1
fi
main=${main%/}
if [ -z "$security" ]; then
	case $main in
	*/debian) security=${main}-security ;;
	*)
		echo "apt-sources.sh: no security archive configured and none derivable from $main;" \
		     "set KVMAS_DEBIAN_SECURITY_MIRROR" >&2
		exit 1
		;;
	esac
fi
security=${security%/}
key=$(awk '$3 != "-" { print $3; exit }' <<<"$entries")
key=${key:-$keyring_default}

for suite in "$@"; do
	case $suite in
	*-security) uri=$security ;;
	*) uri=$main ;;
	esac
	echo "deb [signed-by=$key] $uri $suite main"
done
