# steplab: `make run` starts the lab dashboard with the simulated step box;
# `make test` runs the whole test suite.  Both work on a fresh machine: they
# create .venv, install steplab into it and, for tests, Debian's chromium and
# chromium-driver (browser tests) when missing.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test bench system-deps venv clean

run: $(STAMP)
	$(VENV)/bin/steplab run

test: $(STAMP) system-deps
	$(PY) -m pytest

bench: $(STAMP)
	$(VENV)/bin/steplab bench --json

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# Browser tests drive Debian's chromium through chromium-driver (dash_duo).
system-deps:
	@if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then \
		echo "installing Debian's chromium and chromium-driver"; \
		$(SUDO) apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q chromium chromium-driver; \
	fi

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
