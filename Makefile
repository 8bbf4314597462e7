# coplay: the two commands are `make demo` and `make test`; each installs what it needs.
# Python packages come from uv.lock (exact versions and hashes) via uv; uv itself is
# installed from PyPI into .tools/ when it is not on PATH.
PYTHON     ?= python3
VENV       ?= .venv
UV_VERSION := 0.13.9
TOOLS      := .tools
PY         := $(VENV)/bin/python
STAMP      := $(VENV)/.installed-stamp
UV         ?= $(shell command -v uv 2>/dev/null || echo $(TOOLS)/bin/uv)

# The suite mostly waits on processes and brokers: pytest-xdist workers overlap the waits
# (3 measured best on 2 cores; 4 overloads the CPU, 2 leaves it idle).
# Tests that must not overlap share an xdist_group (tests/conftest.py), hence loadgroup.
PYTEST_WORKERS  ?= 3
PYTEST_PARALLEL ?= -n $(PYTEST_WORKERS) --dist loadgroup

export UV_PROJECT_ENVIRONMENT := $(VENV)
export UV_PYTHON_DOWNLOADS    := never

.PHONY: demo test lint typecheck unit bench lock check-lock clean

$(TOOLS)/bin/uv:
	@$(PYTHON) -c 'import sys; sys.exit("coplay needs Python 3.11 or newer") if sys.version_info < (3, 11) else None'
	tests/ensure-system-deps build $(PYTHON)
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install -q --disable-pip-version-check 'uv==$(UV_VERSION)'

$(STAMP): pyproject.toml uv.lock | $(UV)
	@$(PYTHON) -c 'import sys; sys.exit("coplay needs Python 3.11 or newer") if sys.version_info < (3, 11) else None'
	tests/ensure-system-deps build $(PYTHON)
	$(UV) sync --locked --all-extras --python $(PYTHON)
	@touch $(STAMP)

demo: $(STAMP)
	$(PY) -m relay.demo

# The lock must match pyproject.toml, and .venv must hold exactly the lock's versions.
check-lock: $(STAMP)
	$(UV) lock --check --python $(PYTHON)
	$(UV) sync --locked --all-extras --check --python $(PYTHON)
	@echo "installed (exactly uv.lock):"; $(UV) pip freeze --python $(PY) --exclude-editable | paste -sd' ' | fold -s -w 100

test: check-lock
	tests/ensure-system-deps test
	$(VENV)/bin/ruff check relay host guest tests
	$(VENV)/bin/ruff format --check relay host guest tests
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest $(PYTEST_PARALLEL)

lint: $(STAMP)
	$(VENV)/bin/ruff check relay host guest tests
	$(VENV)/bin/ruff format --check relay host guest tests
	$(VENV)/bin/mypy

# The quick tier: every test not marked integration (tests/conftest.py marks all outside tests/unit).
unit: $(STAMP)
	$(VENV)/bin/pytest -m "not integration"

bench: $(STAMP)
	tests/ensure-system-deps test
	$(PY) -m tests.bench

# After changing dependencies in pyproject.toml: re-resolve and commit uv.lock.
lock: | $(UV)
	$(UV) lock --python $(PYTHON)

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache
