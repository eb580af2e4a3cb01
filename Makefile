# Two entry points for a fresh machine with only Python and make:
#   make demo   the main job (racefree demo on the in-memory default)
#   make test   lint, type-check and the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
LINTED := src tests examples $(wildcard benchmarks/*.py)

.PHONY: demo test lint pytest browser clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Stamp files: reinstall only when the project's metadata changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

# The tests run against the real agent frameworks (the integrations' extras); the three
# install side by side.
$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev,langgraph,openai-agents,adk]'
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/racefree demo

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/mypy

pytest: $(VENV)/.installed-dev
	$(BIN)/python -m pytest

# The HTML report tests drive a real headless Chromium: install Debian's when it
# is missing (CI runs as root). Without it those tests are skipped, and say so.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	{ if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "Installing Chromium for the HTML report tests (apt-get)..."; \
	    { DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null && \
	      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	    echo "warning: could not install Chromium: the browser tests will be skipped"; \
	  else echo "note: no Chromium, and not root with apt-get: the browser tests will be skipped"; fi; }

test: lint browser pytest

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
