# Two entry points for a fresh machine with Python 3.11+, Node/npm and make:
#   make demo   - install everything, start a local chain + enclave + node, answer real requests
#   make test   - install everything, run the Solidity and Python test suites
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
FORGE := node_modules/@foundry-rs/forge-linux-amd64/bin/forge
# `make demo PORT=9545 STATE=/tmp/demo`: Anvil's port (the quote and jobs endpoints take the next two, further
# chains 10 ports apart) and the state dir.
PORT ?= 8545
STATE ?= .coprocessor
DEV_ARGS = --state-dir $(STATE) dev --port $(PORT) --quote-port $(shell expr $(PORT) + 1) --jobs-port $(shell expr $(PORT) + 2)

.PHONY: setup demo dev test lint test-solidity test-python bench wheel clean

setup: $(BIN)/coprocessor node_modules/.installed solidity/out/.built

$(BIN)/coprocessor: pyproject.toml constraints.txt
	@echo "== setup 1/3: Python packages into $(VENV) (pinned by constraints.txt)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --progress-bar off -c constraints.txt -e '.[dev]' | grep -E '^(Collecting|Successfully)' || true
	@test -x $(BIN)/coprocessor || (echo "error: the Python install failed: run '$(BIN)/pip install -c constraints.txt -e .[dev]' to see why" && exit 1)
	@touch $@

node_modules/.installed: package.json package-lock.json
	@echo "== setup 2/3: npm packages (Foundry's anvil and forge, solcjs, v4-core, OpenZeppelin)"
	npm ci --no-audit --no-fund
	chmod +x node_modules/@foundry-rs/*/bin/*
	@touch $@

# The contracts the commands use; forge's test and script files compile in `make test`.
solidity/out/.built: node_modules/.installed $(shell find solidity/src -name '*.sol')
	@echo "== setup 3/3: compiling the contracts (forge, offline solcjs)"
	cd solidity && ../$(FORGE) build --skip test --skip script
	@touch $@

demo: setup
	$(BIN)/coprocessor $(DEV_ARGS) --demo

dev: setup
	$(BIN)/coprocessor $(DEV_ARGS)

test: setup lint test-solidity test-python

# ruff (lint and format) and mypy (the strict block in pyproject.toml); template bundles are left as written.
lint: setup
	$(BIN)/ruff check coprocessor coprocessor_enclave tests benchmarks
	$(BIN)/ruff format --check coprocessor coprocessor_enclave tests benchmarks
	$(BIN)/mypy

test-solidity: setup
	cd solidity && FORGE_SNAPSHOT_CHECK=true ../$(FORGE) test

test-python: setup
	$(BIN)/pytest

# An installable wheel in dist/: it carries the contracts' ABIs and bytecode and the template library
# (coprocessor/shipped/, copied from the build), so it runs outside a checkout.
wheel: setup
	$(BIN)/python -c "from coprocessor.toolchain import ship_build_outputs; ship_build_outputs()"
	$(BIN)/pip wheel --quiet --no-deps --no-build-isolation --wheel-dir dist .

bench: setup
	$(BIN)/python benchmarks/node.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/templates.py
	$(BIN)/python benchmarks/cli.py

clean:
	rm -rf $(VENV) node_modules solidity/out solidity/cache .coprocessor coprocessor/shipped dist build
