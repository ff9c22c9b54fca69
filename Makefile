# Two commands for a new machine: `make search` (the main job) and `make test` (the suite).
# Each creates .venv and installs the project when needed.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: search test lint install

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,export]'
	touch $(STAMP)

install: $(STAMP)

search: $(STAMP)
	$(BIN)/nas search

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
