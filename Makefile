# Roster: `make run` starts a local cluster, the operator and a demo;
# `make test` runs the whole suite. Everything else is a building block.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

# The project runs on the Node that the `node` npm package ships (Node 24),
# whatever the system Node is.
export PATH := $(CURDIR)/node_modules/.bin:$(PATH)

K8S_VERSION := $(shell awk '$$1 == "k8s.io/kubernetes" { print $$2; exit }' sandbox/go.mod)
K8S_MINOR := $(word 2,$(subst ., ,$(K8S_VERSION)))
SANDBOX := bin/roster-sandbox
SANDBOX_DIR ?= .sandbox/dev
VERSION_PKG := k8s.io/component-base/version
SANDBOX_LDFLAGS := -s -w -X $(VERSION_PKG).gitVersion=$(K8S_VERSION) -X $(VERSION_PKG).gitMajor=1 \
	-X $(VERSION_PKG).gitMinor=$(K8S_MINOR) -X $(VERSION_PKG).gitTreeState=clean

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{ printf "  make %-14s %s\n", $$1, $$2 }'

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

.PHONY: deps
deps: node_modules/.package-lock.json ## Install the npm dependencies (Node 24 included)

$(SANDBOX): sandbox/go.mod sandbox/go.sum $(wildcard sandbox/*.go)
	@mkdir -p bin
	cd sandbox && CGO_ENABLED=0 go build -trimpath -ldflags "$(SANDBOX_LDFLAGS)" -o ../$(SANDBOX) .

.PHONY: sandbox
sandbox: $(SANDBOX) ## Build the local control plane (etcd + kube-apiserver + kube-controller-manager)

.PHONY: sandbox-up
sandbox-up: $(SANDBOX) ## Run the local control plane in the foreground (data in $(SANDBOX_DIR))
	$(SANDBOX) --dir $(SANDBOX_DIR) --log-file $(SANDBOX_DIR).log

.PHONY: crds
crds: deps ## Regenerate crds/ from the zod schemas in src/api
	npm run --silent gen:crds

.PHONY: lint
lint: deps ## Lint, format check and type check
	biome check .
	tsc --noEmit -p .

.PHONY: test-unit
test-unit: deps
	npm run --silent test:unit

.PHONY: test-integration
test-integration: deps $(SANDBOX)
	npm run --silent test:integration

.PHONY: test
test: lint test-unit test-integration ## The whole suite: lint, types, unit and sandbox integration tests

.PHONY: run
run: deps $(SANDBOX) ## Start a local cluster, install the CRDs and the examples, and run Roster on it
	node scripts/dev.ts

.PHONY: clean
clean: ## Remove build output and sandbox data (keeps node_modules and Go caches)
	rm -rf bin .sandbox dist bench/results
