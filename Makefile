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
COREDNS := bin/roster-coredns
HELM := bin/helm
XDS_CLIENT := bin/roster-xds-client
PAUSE := bin/roster-pause
ECHO := bin/roster-echo
SANDBOX_DIR ?= .sandbox/dev
VERSION_PKG := k8s.io/component-base/version
SANDBOX_LDFLAGS := -s -w -X $(VERSION_PKG).gitVersion=$(K8S_VERSION) -X $(VERSION_PKG).gitMajor=1 \
	-X $(VERSION_PKG).gitMinor=$(K8S_MINOR) -X $(VERSION_PKG).gitTreeState=clean

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{ printf "  make %-14s %s\n", $$1, $$2 }'

# `npm install` rather than `npm ci`: npm 11 writes lock files without the
# other platforms' optional packages (biome's), and `npm ci` then refuses them.
# With the lock file present, `npm install` installs exactly the locked versions.
# npm runs on whatever Node is installed (often an older one), but the packages
# need Node 24 (`engines`), so npm would warn EBADENGINE about them. Fetch the
# locked `node` package alone first and run the real install under it.
NODE_VERSION := $(shell sed -n '/"node_modules\/node": {/,/}/s/.*"version": "\(.*\)".*/\1/p' package-lock.json)
NODE_BOOT := .cache/node-$(NODE_VERSION)

node_modules/.package-lock.json: package.json package-lock.json
	@test -x node_modules/.bin/node || test -x $(NODE_BOOT)/node_modules/.bin/node || \
		npm install --prefix $(NODE_BOOT) --no-save --no-package-lock --no-audit --no-fund --loglevel=error node@$(NODE_VERSION)
	PATH=$(CURDIR)/node_modules/.bin:$(CURDIR)/$(NODE_BOOT)/node_modules/.bin:$$PATH npm install --no-audit --no-fund
	@touch $@

.PHONY: deps
deps: node_modules/.package-lock.json ## Install the npm dependencies (Node 24 included)

$(SANDBOX): sandbox/go.mod sandbox/go.sum $(wildcard sandbox/*.go)
	@mkdir -p bin
	cd sandbox && CGO_ENABLED=0 go build -trimpath -ldflags "$(SANDBOX_LDFLAGS)" -o ../$(SANDBOX) .

# A real grpc-go xDS client for the xDS integration tests, the demo and the bench (its own module).
$(XDS_CLIENT): xds-client/go.mod xds-client/go.sum $(wildcard xds-client/*.go)
	@mkdir -p bin
	cd xds-client && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o ../$(XDS_CLIENT) .

.PHONY: xds-client
xds-client: $(XDS_CLIENT) ## Build the grpc-go xDS client used by the xDS tests (bin/roster-xds-client)

.PHONY: sandbox
sandbox: $(SANDBOX) ## Build the local control plane (etcd + kube-apiserver + kube-controller-manager + kube-proxy; kubelet + kube-scheduler for --node)

# CoreDNS with only the plugins the data plane needs, in its own module
# (CoreDNS pins a newer client-go than the sandbox's k8s.io/kubernetes).
$(COREDNS): coredns/go.mod coredns/go.sum coredns/main.go
	@mkdir -p bin
	cd coredns && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o ../$(COREDNS) .

.PHONY: coredns
coredns: $(COREDNS) ## Build the data plane's cluster DNS (CoreDNS: kubernetes, errors, log plugins)

# The data plane (network namespaces, kube-proxy's nftables rules) needs root,
# `ip` and `nft`. Installs the Debian packages only when a tool is missing.
.PHONY: net-deps
net-deps: ## Install iproute2, nftables, dnsutils and curl (Debian/Ubuntu, as root) when missing
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		missing=""; \
		for t in ip:iproute2 nft:nftables dig:dnsutils curl:curl; do \
			command -v $${t%%:*} >/dev/null || missing="$$missing $${t#*:}"; \
		done; \
		if [ -n "$$missing" ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; fi; \
	else echo "net-deps: not root or no apt-get: the data plane tests will say why they skip"; fi

# The node's images, built from source (no registry): the pause binary that
# the node packs as its pod sandbox image, and the static HTTP server the
# node tests pack as their workload (`roster-sandbox oci-image`).
$(PAUSE): sandbox/go.mod $(wildcard sandbox/pause/*.go)
	@mkdir -p bin
	cd sandbox && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o ../$(PAUSE) ./pause

$(ECHO): sandbox/go.mod $(wildcard sandbox/echo/*.go)
	@mkdir -p bin
	cd sandbox && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o ../$(ECHO) ./echo

.PHONY: node-images
node-images: $(PAUSE) $(ECHO) ## Build the node's pause binary and the node tests' HTTP server (bin/roster-pause, bin/roster-echo)

# The sandbox's node (roster-sandbox --node) runs Debian's containerd and
# runc with Debian's CNI plugins (/usr/lib/cni). Installs them only when missing.
.PHONY: node-deps
node-deps: ## Install containerd, runc and containernetworking-plugins (Debian/Ubuntu, as root) when missing
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		missing=""; \
		for t in containerd:containerd ctr:containerd runc:runc /usr/lib/cni/bridge:containernetworking-plugins nsenter:util-linux; do \
			command -v $${t%%:*} >/dev/null || missing="$$missing $${t#*:}"; \
		done; \
		if [ -n "$$missing" ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$(echo $$missing | tr ' ' '\n' | sort -u); fi; \
	else echo "node-deps: not root or no apt-get: the node tests will say why they skip"; fi

# The postgres and redis probe tests start real servers from Debian's packages
# (PostgreSQL 15's initdb/pg_ctl, redis-server). Installs them only when missing.
.PHONY: db-deps
db-deps: ## Install postgresql and redis-server (Debian/Ubuntu, as root) when missing
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		missing=""; \
		[ -x /usr/lib/postgresql/15/bin/initdb ] || missing="$$missing postgresql"; \
		command -v redis-server >/dev/null || [ -x /usr/bin/redis-server ] || missing="$$missing redis-server"; \
		if [ -n "$$missing" ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; fi; \
	else echo "db-deps: not root or no apt-get: the database probe tests will say why they skip"; fi

.PHONY: sandbox-up
sandbox-up: $(SANDBOX) ## Run the local control plane in the foreground (data in $(SANDBOX_DIR))
	$(SANDBOX) --dir $(SANDBOX_DIR) --log-file $(SANDBOX_DIR).log

.PHONY: crds
crds: deps ## Regenerate crds/ from the zod schemas in src/api
	npm run --silent gen:crds
	$(MAKE) --no-print-directory chart-crds

.PHONY: schemas
schemas: deps ## Regenerate schemas/ (endpoints.json JSON Schema, balancing conformance vectors)
	npm run --silent gen:schemas

.PHONY: lint
lint: deps ## Lint, format check and type check
	biome check .
	tsc --noEmit -p .

.PHONY: test-unit
test-unit: deps
	npm run --silent test:unit

.PHONY: test-integration
test-integration: deps $(SANDBOX) $(COREDNS) $(HELM) $(XDS_CLIENT) $(PAUSE) $(ECHO) net-deps image-deps node-deps db-deps
	npm run --silent test:integration

.PHONY: test
test: lint test-unit test-integration ## The whole suite: lint, types, unit and sandbox integration tests

# As root the demo runs on the data plane (CoreDNS, ip, nft); otherwise on
# loopback, so CoreDNS is built only for root.
RUN_DATA_PLANE := $(if $(filter 0,$(shell id -u)),$(COREDNS) net-deps)

.PHONY: run
run: deps $(SANDBOX) $(RUN_DATA_PLANE) ## Local cluster + CRDs + demo backends + the operator, with a live view (as root: on the data plane, with a traffic panel; Ctrl-C stops all)
	node src/cli/main.ts dev

# The same demo with the operator as pods installed by Helm on a sandbox node
# (the real install path): root and the node's tools only.
.PHONY: run-in-cluster
run-in-cluster: deps $(SANDBOX) $(COREDNS) $(HELM) $(PAUSE) net-deps node-deps ## The demo with the operator as pods: offline image on a sandbox node, `helm install` of the chart, same view and traffic panel (as root; Ctrl-C uninstalls and removes the node)
	node src/cli/main.ts dev --in-cluster

.PHONY: clean
clean: ## Remove build output and sandbox data (keeps node_modules and Go caches)
	rm -rf bin .sandbox dist bench/results

# --- Helm, the chart and the image ------------------------------------------------
HELM_VERSION := $(shell awk '$$1 == "helm.sh/helm/v3" { print $$2; exit }' helm/go.mod)
# Helm's default Kubernetes version (offline `helm template`, lint) is that of its client-go, as upstream builds it.
HELM_K8S_MINOR := $(word 2,$(subst ., ,$(shell awk '$$1 == "k8s.io/client-go" { print $$2; exit }' helm/go.mod)))
HELM_LDFLAGS := -s -w -X helm.sh/helm/v3/internal/version.version=$(HELM_VERSION) \
	-X helm.sh/helm/v3/internal/version.gitTreeState=clean \
	-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$(HELM_K8S_MINOR) \
	-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$(HELM_K8S_MINOR)

IMAGE_REPO ?= roster
IMAGE_TAG ?= dev
IMAGE := $(IMAGE_REPO):$(IMAGE_TAG)
KIND := bin/kind
KIND_VERSION := v0.33.0
KIND_CLUSTER ?= roster
KIND_NODE_IMAGE ?=
KUBE_CONTEXT ?= kind-$(KIND_CLUSTER)
HELM_RELEASE ?= roster
HELM_NAMESPACE ?= roster-system

$(HELM): helm/go.mod helm/go.sum
	@mkdir -p bin
	cd helm && CGO_ENABLED=0 go build -trimpath -ldflags "$(HELM_LDFLAGS)" -o ../$(HELM) helm.sh/helm/v3/cmd/helm

.PHONY: helm
helm: $(HELM) ## Build Helm (version pinned in helm/go.mod) into bin/helm

.PHONY: chart-crds
chart-crds: ## Copy crds/ into the Helm chart (charts/roster/crds/ must stay identical; a test checks)
	rm -f charts/roster/crds/*.yaml
	cp crds/*.yaml charts/roster/crds/

.PHONY: image
image: ## Build the operator image (IMAGE_REPO:IMAGE_TAG, default roster:dev; needs Docker)
	docker build -t $(IMAGE) --build-arg ROSTER_COMMIT=$$(git rev-parse HEAD 2>/dev/null) .

# The same image without Docker or a registry: an OCI layout archive (src/dev/image.ts).
.PHONY: image-offline
image-offline: deps ## Build the operator image offline as an OCI archive (.cache/image/roster-oci.tar, docker.io/library/roster:dev)
	node scripts/image-offline.ts

# The image test unpacks the OCI image with umoci and runs it under runc (as root).
.PHONY: image-deps
image-deps: ## Install umoci and runc (Debian/Ubuntu, as root) when missing
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		missing=""; \
		for t in umoci runc; do command -v $$t >/dev/null || missing="$$missing $$t"; done; \
		if [ -n "$$missing" ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; fi; \
	else echo "image-deps: not root or no apt-get: the image test will say why it skips"; fi

$(KIND):
	@mkdir -p bin
	GOBIN=$(CURDIR)/bin go install sigs.k8s.io/kind@$(KIND_VERSION)

.PHONY: kind-up
kind-up: $(KIND) ## Create the kind cluster KIND_CLUSTER (default roster) unless it exists (needs Docker)
	$(KIND) get clusters 2>/dev/null | grep -qx '$(KIND_CLUSTER)' || \
		$(KIND) create cluster --name $(KIND_CLUSTER) $(if $(KIND_NODE_IMAGE),--image $(KIND_NODE_IMAGE))

.PHONY: kind-load
kind-load: image $(KIND) ## Build the image and load it into the kind cluster
	$(KIND) load docker-image $(IMAGE) --name $(KIND_CLUSTER)

.PHONY: deploy
deploy: $(HELM) ## Apply the CRDs and helm upgrade --install the chart with that image (KUBE_CONTEXT, default kind-roster)
	kubectl --context $(KUBE_CONTEXT) apply --server-side --force-conflicts -f charts/roster/crds/
	$(HELM) upgrade --install $(HELM_RELEASE) charts/roster --kube-context $(KUBE_CONTEXT) \
		--namespace $(HELM_NAMESPACE) --create-namespace \
		--set image.repository=$(IMAGE_REPO) --set image.tag=$(IMAGE_TAG) --set image.pullPolicy=IfNotPresent \
		--wait --timeout 3m

# --- Benchmarks (figures in bench/results/, never asserted) --------------------------
.PHONY: bench
bench: deps $(SANDBOX) $(COREDNS) net-deps ## All benchmarks (half an hour or more on 2 cores); summary in bench/results/summary.md
	node bench/balance.bench.ts
	node bench/publish.bench.ts
	node bench/health.bench.ts
	node bench/detection.bench.ts
	node bench/informer.bench.ts
	node bench/operator.bench.ts
	node bench/peer.bench.ts
	node bench/peer-scale.bench.ts
	node bench/suite.bench.ts
	node bench/storm.bench.ts
	node bench/xds.bench.ts
	node bench/xds-server.bench.ts
	node bench/tls-reload.bench.ts
	node bench/dataplane.bench.ts

.PHONY: bench-storm
bench-storm: deps $(SANDBOX) ## Zone outage and churn at 10k instances against the API server's write ceiling measured in the same run (~15 min on 2 busy cores; STORM_ARGS=--quick for 1k); bench/results/storm-10k.json
	node bench/storm.bench.ts $(STORM_ARGS)

# Skips (exit 0, saying why) without root or network namespaces.
.PHONY: bench-dataplane
bench-dataplane: deps $(SANDBOX) $(COREDNS) net-deps ## Instance dies → last new connection to it through kube-proxy, Roster vs the pod path (~7 min, root); bench/results/dataplane.json
	node bench/dataplane.bench.ts

.PHONY: bench-peer-scale
bench-peer-scale: deps $(SANDBOX) ## 10,000 Pods vs 10,000 instances, a third flipped at once: time to the last EndpointSlice (~15-25 min); bench/results/peer-scale.json
	node bench/peer-scale.bench.ts

.PHONY: bench-quick
bench-quick: deps $(SANDBOX) ## About 2 minutes: peer comparison and the 1k scale scenarios in one sandbox, ratios to bench/baseline.json
	node bench/suite.bench.ts --quick

# --- Soak (not in CI) ----------------------------------------------------------------
.PHONY: soak
soak: deps $(SANDBOX) ## One hour of churn checked against ground truth (SOAK_DURATION=10m shortens it); bench/results/soak.json
	node test/soak/soak.ts $(if $(SOAK_DURATION),--duration $(SOAK_DURATION))
