# steplab: `make run` starts the lab dashboard with the simulated step box;
# `make test` runs ruff, mypy and the whole test suite.  Both work on a fresh
# machine: they create .venv and install steplab into it; for tests, Debian's
# packages the suite drives when missing: chromium and chromium-driver (browser
# tests), postgresql (the tests start their own throwaway server), poppler-utils
# (PDF pages to PNG), gcc and gcc-arm-none-eabi (the reference firmware).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test lint bench system-deps venv clean

run: $(STAMP)
	$(VENV)/bin/steplab run

test: $(STAMP) system-deps lint
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(VENV)/bin/steplab bench --json

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# Debian packages the tests drive, installed only when missing.
SYSTEM_PROGRAMS := chromium chromedriver pdftoppm pdftotext gcc make arm-none-eabi-gcc
SYSTEM_PACKAGES := chromium chromium-driver poppler-utils gcc make gcc-arm-none-eabi libnewlib-arm-none-eabi postgresql

system-deps:
	@missing=""; \
	for prog in $(SYSTEM_PROGRAMS); do command -v $$prog >/dev/null 2>&1 || missing="$$missing $$prog"; done; \
	ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || missing="$$missing postgresql"; \
	[ -f /usr/lib/arm-none-eabi/newlib/libc_nano.a ] || missing="$$missing newlib"; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages for the tests (missing:$$missing)"; \
		$(SUDO) apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q $(SYSTEM_PACKAGES); \
	fi

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
