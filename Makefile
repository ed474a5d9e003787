# Two commands for a fresh machine: `make demo` and `make test` (see README.md).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.install-stamp
PYTEST_ARGS ?=

.PHONY: install demo test lint unit test-slow bench clean

$(STAMP): pyproject.toml scripts/install.sh scripts/constraints.txt
	bash scripts/install.sh
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(PY) -m bidsapp.demo demo

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/hadolint Dockerfile

unit: install
	$(VENV)/bin/pytest $(PYTEST_ARGS)

test: lint unit

# The slow checks, in the bounded form CI runs (see .ci/run).
test-slow: install
	$(VENV)/bin/pytest -m slow $(PYTEST_ARGS) || [ $$? -eq 5 ]

bench: install
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf demo .pytest_cache .ruff_cache
