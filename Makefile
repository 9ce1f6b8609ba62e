# Set-up and everyday commands. `make serve` and `make test` each set up from nothing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
WORKERS ?= 2
# The pinned torch is a CPU build where only that is on disk, and PyPI's CUDA build elsewhere.
TORCH ?= torch==2.13.0

.PHONY: setup serve test lint benchmarks
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)" -e ".[test]"
	touch $@

serve: setup
	$(BIN)/recommender serve --host $(HOST) --port $(PORT) --workers $(WORKERS)

test: setup
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check recommender tests benchmarks
	$(BIN)/ruff format --check recommender tests benchmarks
	$(BIN)/mypy
