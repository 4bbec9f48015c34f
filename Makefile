# Two commands on a fresh machine (Python 3.11 + pip): `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export EMBED_HOME ?= $(CURDIR)/.state

.PHONY: install demo airflow test test-fast lint clean

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-tasks.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

demo: install
	VENV=$(CURDIR)/$(VENV) bash bin/demo

# The Airflow UI (and the MLflow UI) on the demo's local state; Ctrl-C stops it.
airflow: install
	$(PY) bin/airflow-ui

test: install
	$(PY) -m pytest

test-fast: install
	$(PY) -m pytest -m unit

lint: install
	$(VENV)/bin/ruff check .

clean:
	rm -rf .state
