#!/usr/bin/env bash
# ensure-deps.sh — install the Debian packages Meridian's make targets need,
# and only those that are missing. On a prepared machine it runs one
# dpkg-query and exits, so `make run` and `make test` can call it every time.
#
# usage: scripts/ensure-deps.sh [group...]      (default: core build)
#
#   core   PostgreSQL 15 + PostGIS 3 + pgRouting (private clusters), GDAL (ogr2ogr),
#          osmium-tool (the LDS loader reads OSM extracts through it)
#   build  C toolchain for `go test -race` (cgo), make, git
#   bench  load generators (wrk, h2load) and peer caches (Varnish, nginx) for `make bench`
#   node   Node.js and npm (`make static`: MapLibre GL JS for the preview page), only
#          when the node / npm commands are missing, so a Node.js from elsewhere
#          (NodeSource, nvm) is kept
#   browser  headless Chromium for the browser test (edge/compat_test.go); also checks
#          that node is at least version 20, which playwright-core needs (Debian 12's
#          own nodejs is 18: install Node.js 20 from NodeSource then)
#
# As root it runs `apt-get update` (once, and only when something is
# missing) and `apt-get install`; otherwise it uses `sudo -n` when that
# works without a password, else it prints the command to run and fails.
# MERIDIAN_SKIP_DEPS=1 skips every check (for non-Debian machines that
# provide the tools themselves).
set -euo pipefail

if [[ "${MERIDIAN_SKIP_DEPS:-}" == 1 ]]; then
	exit 0
fi

groups=("$@")
if [[ ${#groups[@]} -eq 0 ]]; then
	groups=(core build)
fi

pkgs=()
commands=() # "command package" pairs: install package when command is missing
check_node_version=
for g in "${groups[@]}"; do
	case "$g" in
	core) pkgs+=(postgresql-15 postgresql-15-postgis-3 postgresql-15-pgrouting gdal-bin iproute2 osmium-tool) ;;
	build) pkgs+=(gcc libc6-dev make git ca-certificates) ;;
	bench) pkgs+=(wrk varnish nginx nghttp2-client) ;;
	node) commands+=("node nodejs" "npm npm") ;;
	browser)
		pkgs+=(chromium)
		commands+=("node nodejs" "npm npm")
		check_node_version=1
		;;
	*)
		echo "ensure-deps: unknown group '$g' (want core, build, bench, node or browser)" >&2
		exit 2
		;;
	esac
done

# node_major prints the major version of node, or 0.
node_major() {
	local v
	v=$(node --version 2>/dev/null || true)
	v=${v#v}
	echo "${v%%.*}" | grep -E '^[0-9]+$' || echo 0
}
check_node() {
	if [[ -n "${check_node_version}" ]] && [[ $(node_major) -lt 20 ]]; then
		echo "ensure-deps: node $(node --version 2>/dev/null || echo missing) is too old: the browser test (playwright-core) needs Node.js 20 or later; install it from NodeSource (https://deb.nodesource.com)" >&2
		exit 1
	fi
}

if ! command -v dpkg-query >/dev/null 2>&1; then
	echo "ensure-deps: not a Debian system; install by hand: ${pkgs[*]} (or set MERIDIAN_SKIP_DEPS=1)" >&2
	exit 1
fi

# One query for all: "name status" per known package. A package removed
# but not purged is known with status "deinstall ok config-files", which
# `dpkg -s` alone would count as present.
installed=$(dpkg-query -W -f='${Package} ${Status}\n' "${pkgs[@]}" 2>/dev/null | awk '$NF == "installed" { print $1 }' || true)
missing=()
for p in "${pkgs[@]}"; do
	if ! grep -qx -- "$p" <<<"$installed"; then
		missing+=("$p")
	fi
done
for cp in "${commands[@]}"; do
	read -r c p <<<"$cp"
	if ! command -v "$c" >/dev/null 2>&1 && [[ " ${missing[*]} " != *" $p "* ]]; then
		missing+=("$p")
	fi
done
if [[ ${#missing[@]} -eq 0 ]]; then
	check_node
	exit 0
fi

sudo=()
if [[ $(id -u) -ne 0 ]]; then
	if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
		sudo=(sudo -n)
	else
		echo "ensure-deps: missing Debian packages: ${missing[*]}" >&2
		echo "ensure-deps: run as root: apt-get update && apt-get install -y --no-install-recommends ${missing[*]}" >&2
		exit 1
	fi
fi

echo "ensure-deps: installing ${missing[*]}" >&2

# Meridian runs its own private clusters (internal/pgcluster): keep the
# postgresql package from creating and starting a system cluster on :5432.
# createcluster.conf reads createcluster.d/, so no packaged file is edited.
if [[ " ${missing[*]} " == *" postgresql-"* ]] && [[ ! -d /etc/postgresql ]]; then
	"${sudo[@]}" mkdir -p /etc/postgresql-common/createcluster.d
	echo "create_main_cluster = false" | "${sudo[@]}" tee /etc/postgresql-common/createcluster.d/meridian.conf >/dev/null
fi

export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q
"${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
check_node
