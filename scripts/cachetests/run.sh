#!/usr/bin/env bash
# Runs the public HTTP cache-tests suite (github.com/http-tests/cache-tests)
# against meridian_cache: builds the edge from this checkout, starts the
# suite's origin server and a Caddy with `meridian_cache` + `reverse_proxy`
# in front of it on 127.0.0.1, runs the suite's CLI and counts the required
# tests passed (the cache-tests.fyi rule: "required" or unmarked tests,
# browser-only ones excluded, dependencies honoured).
#
#   scripts/cachetests/run.sh [-i test-id] [-o results.json] [SUITE_DIR]
#
# SUITE_DIR is a checkout of the suite (default: $CACHE_TESTS_DIR, else
# ~/.cache/meridian/cache-tests, exported there from the mirror fetched into
# /work/.mirror/http-tests+cache-tests/repo on first use, with its npm
# dependencies). The suite is never part of this repository. Needs Node >= 18.
# CACHE_TESTS_EXTRA adds lines to the meridian_cache block (e.g.
# "stale_if_error 1h").
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
id=""
out=""
while getopts "i:o:" opt; do
	case $opt in
	i) id=$OPTARG ;;
	o) out=$OPTARG ;;
	*) exit 2 ;;
	esac
done
shift $((OPTIND - 1))

work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

suite=${1:-${CACHE_TESTS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/meridian/cache-tests}}
if [[ ! -f $suite/test-engine/cli.mjs ]]; then
	mirror=/work/.mirror/http-tests+cache-tests/repo
	mkdir -p "$suite"
	git --git-dir="$mirror" archive HEAD | tar -x -C "$suite"
fi
# The suite's origin listens on every interface (server.listen(port)):
# this copy listens on loopback only.
server=$suite/test-engine/server/server.mjs
sed -i "s/server\.listen(port)\$/server.listen(port, '127.0.0.1')/" "$server"
if ! grep -q "server.listen(port, '127.0.0.1')" "$server"; then
	echo "cachetests: could not make $server listen on 127.0.0.1 only" >&2
	exit 1
fi
if [[ ! -d $suite/node_modules/undici ]]; then # the interim-response test needs it
	(cd "$suite" && npm install --omit=dev --no-audit --no-fund >/dev/null)
fi

freeport() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
origin_port=$(freeport)
edge_port=$(freeport)
admin_port=$(freeport)

(cd "$root" && go build -o "$work/meridian" ./edge)

cat >"$work/Caddyfile" <<CADDY
{
	admin 127.0.0.1:$admin_port
	auto_https off
	meridian_cache {
		max_size 64MiB
	}
}

http://127.0.0.1:$edge_port {
	bind 127.0.0.1
	meridian_cache {
		${CACHE_TESTS_EXTRA:-}
	}
	reverse_proxy 127.0.0.1:$origin_port
}
CADDY

(cd "$suite" && npm_package_config_protocol=http npm_package_config_port=$origin_port \
	npm_package_config_pidfile=$work/origin.pid \
	exec node test-engine/server/server.mjs >"$work/origin.log" 2>&1) &
pids+=($!)
"$work/meridian" run --config "$work/Caddyfile" --adapter caddyfile >"$work/edge.log" 2>&1 &
pids+=($!)

for _ in $(seq 100); do
	if curl -fs -o /dev/null "http://127.0.0.1:$origin_port/config/" 2>/dev/null ||
		curl -s -o /dev/null "http://127.0.0.1:$origin_port/"; then break; fi
	sleep 0.1
done
for _ in $(seq 100); do
	curl -s -o /dev/null "http://127.0.0.1:$edge_port/" && break
	sleep 0.1
done

results=${out:-$work/results.json}
(cd "$suite" && npm_config_base="http://127.0.0.1:$edge_port" npm_config_id="$id" npm_package_config_id="" \
	node --no-warnings test-engine/cli.mjs) >"$results"
if [[ -n $id ]]; then
	cat "$results"
	exit 0
fi
node "$here/count.mjs" "$suite" "$results"
