# NovaPulse — `make test` and `make demo` work on a fresh machine: they create .venv themselves.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: install test lint typecheck unit demo bench crds clean

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

test: lint typecheck
	$(BIN)/pytest $(PYTEST_ARGS)

unit: $(STAMP)
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

demo: $(STAMP)
	$(BIN)/novapulse run --mode paper --speed 600 \
	  --feed replay:data/sample/ETH_BTC-5m.csv.gz,data/sample/LTC_BTC-5m.csv.gz,data/sample/XMR_BTC-5m.csv.gz

bench: $(STAMP)
	$(BIN)/python bench/backtest_throughput.py
	$(BIN)/python bench/tick_to_decision.py
	$(BIN)/python bench/strategy_throughput.py
	$(BIN)/python bench/operator_scale.py
	$(BIN)/python bench/venue_latency.py
	$(BIN)/python bench/analytics_latency.py
	$(BIN)/python bench/ml_model.py

# The CRD's spec.config schema comes from the bot's config model; a test fails when stale.
crds: $(STAMP)
	$(BIN)/python -m novapulse_operator.crd > crds/tradingbot.yaml

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
