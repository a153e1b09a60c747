# Two commands set up a fresh machine: `make run` and `make test`.
# Everything runs from .venv; nothing is installed globally.

PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Extra pytest arguments, e.g. `make test PYTEST_ARGS="-k smtp -x"`.
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help venv install deps-browser deps-node deps-promtool run test lint contracts constraints clean distclean deps-bench bench

help:
	@echo "make run         start the whole platform on the embedded servers (Ctrl-C stops it)"
	@echo "make test        run the test suite"
	@echo "make lint        ruff"
	@echo "make bench       benchmarks on the embedded stack (~52 min on 2 cores, 22 of them the 50,000 surge; not part of make test)"
	@echo "make contracts   regenerate docs/contracts/ (AsyncAPI, OpenAPI, event JSON Schemas)"
	@echo "make install     create .venv and install (only when pyproject.toml/constraints.txt changed)"
	@echo "make constraints re-pin constraints.txt from .venv"
	@echo "make clean       remove caches and .data/ (dev MongoDB data, mail, SMS, logs, admin key)"
	@echo "make distclean   clean, and remove .venv"

venv: $(PY)

$(PY):
	$(PYTHON) -m venv $(VENV)

install: $(STAMP)

# Reinstall only when the declared or pinned dependencies changed.
$(STAMP): pyproject.toml constraints.txt | $(PY)
	$(PY) -m pip install -c constraints.txt -e '.[embedded,dev]'
	@touch $(STAMP)

run: install
	$(PY) -m deploy.run

# Debian's Chromium for the browser tests (Playwright drives it; it downloads nothing).
deps-browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

# The standards' own npm tools for the contract checks (the official AsyncAPI parser,
# Redocly's OpenAPI linter), pinned in package-lock.json; Node.js from Debian if missing.
NODE_STAMP := node_modules/.installed
deps-node: $(NODE_STAMP)

$(NODE_STAMP): package.json package-lock.json
	@command -v npm >/dev/null 2>&1 || { \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm; }
	npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	@touch $(NODE_STAMP)

# promtool (`promtool check metrics` on every service's /metrics, in tests/e2e/
# test_ops_observability.py): the binary alone, from Debian's prometheus package, into
# .venv/bin (no Prometheus server is installed or started).
deps-promtool: install
	@command -v promtool >/dev/null 2>&1 || [ -x $(VENV)/bin/promtool ] || { \
	  tmp=$$(mktemp -d) && ( cd $$tmp && { apt-get download -qq prometheus 2>/dev/null || \
	    { apt-get update -qq && apt-get download -qq prometheus; }; } ) && \
	  dpkg-deb --fsys-tarfile $$tmp/prometheus_*.deb | tar -xO ./usr/bin/promtool > $(VENV)/bin/promtool && \
	  chmod +x $(VENV)/bin/promtool && rm -rf $$tmp; }

# zbarimg (Debian's zbar-tools) scans the QR ticket attached to the emails in the tests
# (tests/mailcheck.py): a ticket a real scanner cannot read fails the build.
.PHONY: deps-zbar
deps-zbar:
	@command -v zbarimg >/dev/null 2>&1 || { \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq zbar-tools; }

test: deps-zbar
test: install deps-browser deps-node deps-promtool
	$(PY) -m pytest -q -p no:cacheprovider -rfEs --durations=10 --durations-min=0.5 $(PYTEST_ARGS) tests

# Benchmarks (issue 8): wrk from Debian, matplotlib from the `bench` extra; writes
# bench/results/latest.json and docs/BENCHMARKS.md. Not part of `make test`.
deps-bench: install
	@command -v wrk >/dev/null 2>&1 || { \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }
	@$(PY) -c "import matplotlib" 2>/dev/null || $(PY) -m pip install -q -c constraints.txt -e '.[bench]'

bench: deps-bench
	$(PY) -m bench $(BENCH_ARGS)

lint: install
	$(PY) -m ruff check .

# The committed contracts; tests/unit/test_contracts_check.py fails CI when they drift.
contracts: install
	$(PY) -m deploy.contracts generate

# Pins every installed distribution except the project itself (installed editable).
constraints: install
	$(PY) -m pip freeze --exclude-editable | grep -viE '^mkutano([=@ ]|$$)' > constraints.txt
	@touch $(STAMP)

clean:
	rm -rf .data .pytest_cache .ruff_cache build *.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) node_modules
