# Meridian. The two commands:
#
#   make run    build bin/meridian and run it with a private PostgreSQL and
#               demo data (internal/devrun); prints the URL and a demo token
#   make test   go vet, then every test with the race detector against a
#               throwaway PostgreSQL cluster (internal/pgcluster/withpg)
#
# Both first install missing Debian packages when run as root
# (scripts/ensure-deps.sh; a no-op on a prepared machine).
#
#   make static the web front ends: MapLibre GL JS for the preview page
#               (`npm ci` in compat/, copied into static/preview/vendor/) and
#               the web apps: the Builder, the workspace, the accounts app
#               and the admin console (`npm ci` in web/, bundled by esbuild
#               into static/<app>/dist/); all embedded by the next Go build;
#               run and test do it first

GO       ?= go
VERSION  ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X main.version=$(VERSION)
# Narrowing: `make test PKGS=./tiles/... TESTFLAGS='-run TestX -v'`;
# `make run RUNFLAGS=-prepare-only` (database and demo data only).
PKGS      ?= ./...
TESTFLAGS ?=
RUNFLAGS  ?=

# The shared geodata, for the demo data and for tests that load real files.
export MERIDIAN_TESTDATA ?= $(abspath ../shared/data)

# The npm project of the real-client tests (compat/), also the source of
# the preview page's MapLibre GL JS.
NPM      ?= npm
COMPAT   := compat
MAPLIBRE := $(COMPAT)/node_modules/maplibre-gl
VENDOR   := static/preview/vendor
# The web apps: an npm project (web/) bundled by esbuild (web/build.mjs);
# one bundle stands for all (one build writes them all).
WEB      := web
BUILDER  := static/builder/dist/builder.js
WEBSRC   := $(shell find $(WEB)/src $(WEB)/examples -name dist -prune -o -type f -print 2>/dev/null)

.PHONY: all build run test bench deps static fmt lint clean

all: build

deps:
	@scripts/ensure-deps.sh core build node

# npm ci writes node_modules/.package-lock.json: reinstall when the lock
# file is newer.
$(COMPAT)/node_modules/.package-lock.json: $(COMPAT)/package.json $(COMPAT)/package-lock.json
	$(NPM) ci --prefix $(COMPAT) --no-audit --no-fund

# MapLibre 6 is an ES module with a module worker; the page inlines both
# (static/static.go). LICENSE.txt goes along: the build is redistributed
# inside the binary.
static: $(COMPAT)/node_modules/.package-lock.json $(BUILDER)
	@mkdir -p $(VENDOR)
	cp $(MAPLIBRE)/dist/maplibre-gl.mjs $(MAPLIBRE)/dist/maplibre-gl-worker.mjs \
		$(MAPLIBRE)/dist/maplibre-gl.css $(MAPLIBRE)/LICENSE.txt $(VENDOR)/

$(WEB)/node_modules/.package-lock.json: $(WEB)/package.json $(WEB)/package-lock.json
	$(NPM) ci --prefix $(WEB) --no-audit --no-fund

$(BUILDER): $(WEB)/node_modules/.package-lock.json $(WEB)/build.mjs $(WEBSRC)
	cd $(WEB) && node build.mjs

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/meridian ./edge

run: deps static build
	$(GO) build -o bin/devrun ./internal/devrun
	./bin/devrun $(RUNFLAGS)

# MERIDIAN_REQUIRE_DB turns "skipped: no database" into a failure, so a
# broken harness cannot pass as all-skipped (likewise a missing node,
# Chromium or MapLibre build for the compatibility tests in edge/). go
# test's own output is printed as is (CI reads its closing lines).
# The multi-host cluster test (internal/netcluster) runs bin/meridian (built
# without -race) on network namespaces. -timeout 30m: edge/ (the browser
# tests) takes 7.5 minutes on 2 cores under -race, too near go test's
# 10-minute default.
test: deps static build
	@scripts/ensure-deps.sh browser
	$(GO) vet $(PKGS)
	MERIDIAN_REQUIRE_DB=1 MERIDIAN_BINARY=$(CURDIR)/bin/meridian $(GO) run ./internal/pgcluster/withpg -- $(GO) test -race -timeout 30m $(TESTFLAGS) $(PKGS)
	@# The Helm chart, rendered and checked by its own Go module (Helm's deps stay out of ours).
	@if [ "$(PKGS)" = "./..." ]; then cd deploy/helm/check && MERIDIAN_REQUIRE_DB=1 MERIDIAN_BINARY=$(CURDIR)/bin/meridian $(GO) test ./...; fi

bench: build
	@scripts/ensure-deps.sh core build bench
	$(GO) run ./bench/cmd/bench -scenarios all -rounds 5

fmt:
	$(GO) fmt ./...

# gofmt must have nothing to say, and go vet must pass.
lint:
	@out=$$(gofmt -l $$(find . -name '*.go' -not -path './.git/*' -not -path '*/testdata/*' -not -path '*/node_modules/*')); \
	if [ -n "$$out" ]; then echo "gofmt -l: these files need gofmt (make fmt):"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# Keeps .meridian/: it holds the local database and the secret key that
# seals stored connection credentials. Remove it by hand to start over.
clean:
	rm -rf bin/ coverage.out $(VENDOR)
