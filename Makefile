# Set-up and everyday commands. `make serve` and `make test` each set up from nothing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
WORKERS ?= 2
# The pinned torch is a CPU build where only that is on disk, and PyPI's CUDA build elsewhere.
TORCH ?= torch==2.13.0

.PHONY: setup serve test lint benchmarks browser
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 $(BIN)/python -m pip install --quiet "$(TORCH)" -e ".[test]"
	touch $@

serve: setup
	$(BIN)/recommender serve --host $(HOST) --port $(PORT) --workers $(WORKERS)

# The browser tests drive Debian's chromium (Playwright's own browser download is not used).
# As root, or with passwordless sudo, apt installs it; otherwise those tests skip, saying why.
browser:
	@if command -v chromium >/dev/null 2>&1 && \
		{ ! command -v dpkg >/dev/null 2>&1 || dpkg -s fonts-nanum >/dev/null 2>&1; }; then :; \
	elif ! command -v apt-get >/dev/null 2>&1; then \
		echo "no apt-get: chromium not installed, the browser tests will skip"; \
	else \
		if [ "$$(id -u)" = 0 ]; then SUDO=; elif sudo -n true 2>/dev/null; then SUDO=sudo; \
		else echo "not root: chromium not installed, the browser tests will skip"; exit 0; fi; \
		echo "installing chromium and fonts-nanum with apt for the browser tests"; \
		{ $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq chromium fonts-nanum >/dev/null; } \
			|| echo "apt could not install chromium: the browser tests will skip"; \
	fi

test: setup browser
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check recommender tests benchmarks
	$(BIN)/ruff format --check recommender tests benchmarks
	$(BIN)/mypy
