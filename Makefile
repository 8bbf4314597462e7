# coplay: the two commands are `make demo` and `make test`; each installs what it needs.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test lint typecheck unit bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("coplay needs Python 3.11 or newer") if sys.version_info < (3, 11) else None'
	tests/ensure-system-deps build $(PYTHON)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[relay,uinput,dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(PY) -m relay.demo

test: $(STAMP)
	tests/ensure-system-deps test
	$(VENV)/bin/ruff check relay host guest tests
	$(VENV)/bin/ruff format --check relay host guest tests
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check relay host guest tests
	$(VENV)/bin/ruff format --check relay host guest tests
	$(VENV)/bin/mypy

unit: $(STAMP)
	$(VENV)/bin/pytest tests/unit

bench: $(STAMP)
	tests/ensure-system-deps test
	$(PY) -m tests.bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
