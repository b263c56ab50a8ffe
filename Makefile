# glowlib: `make reproduce` regenerates every figure and table into results/ and builds the book;
# `make test` runs the test suite (CI: .ci/run). Both create .venv first if it is missing.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# paper on a CUDA machine, cpu otherwise; PROFILE=smoke|cpu|paper overrides
PROFILE ?= $(shell $(PY) -c "import torch; print('paper' if torch.cuda.is_available() else 'cpu')" 2>/dev/null || echo cpu)

.PHONY: help env test system-packages

help:
	@echo "make reproduce [PROFILE=smoke|cpu|paper]   regenerate results/ and build the book"
	@echo "make test                                  run the tests (what CI runs)"
	@echo "make env                                   create .venv with everything installed"

env: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@$(MAKE) --no-print-directory system-packages
	@touch $@

# Fashion-MNIST (real data for the cpu profile's bits/dim table) and Chromium (the book's page checks) come from
# Debian. Without root or apt, say what to do instead; the rest of the project still works.
system-packages:
	@if [ -d /usr/share/datasets/fashion-mnist ] && command -v chromium >/dev/null; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist chromium >/dev/null; \
	else \
	  echo "note: install Debian's dataset-fashion-mnist and chromium (as root: apt-get install dataset-fashion-mnist chromium)," ; \
	  echo "      or put Fashion-MNIST's four idx files in \$$GLOWLIB_DATA/fashion_mnist/"; \
	fi

test: $(STAMP)
	$(PY) -m pytest -q
