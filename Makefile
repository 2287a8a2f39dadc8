# Two commands matter: `make run` (set up from nothing, then serve) and `make test`.
PY      ?= python3.11
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
GEN     := engine/server/gen/.built
PROTOS  := $(shell find protos -name '*.proto' 2>/dev/null)
HOST    ?= 127.0.0.1
PORT    ?= 50051
STORE   ?= sqlite:///var/audit.db
CONSOLE_PORT ?= 8080

.PHONY: run test test-slow setup protos models lint typecheck bench clean

setup: $(STAMP) $(GEN)

$(STAMP): pyproject.toml
	@command -v $(PY) >/dev/null || { echo "need $(PY)"; exit 1; }
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

$(GEN): $(STAMP) $(PROTOS) scripts/build_protos.py
	$(BIN)/python scripts/build_protos.py
	touch $@

protos: $(GEN)

models: setup
	$(BIN)/python scripts/build_models.py

run: setup
	$(BIN)/credo serve --host $(HOST) --port $(PORT) --policies policies --models models --store $(STORE) \
		--console-port $(CONSOLE_PORT) --reports var/reports

test: setup
	$(BIN)/ruff check engine tests scripts
	$(BIN)/mypy
	$(BIN)/python -m pytest -q -m "unit and not slow"
	$(BIN)/python -m pytest -q -m "e2e and not slow"

test-slow: setup
	$(BIN)/python -m pytest -q -m slow

lint: setup
	$(BIN)/ruff check engine tests scripts
	$(BIN)/ruff format --check engine tests scripts

typecheck: setup
	$(BIN)/mypy

bench: setup
	$(BIN)/credo bench

clean:
	rm -rf $(VENV) engine/server/gen .pytest_cache .mypy_cache .hypothesis
