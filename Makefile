# Quick start: `make lab` (JupyterLab on notebooks/) and `make test` (the whole suite).
# Both create .venv and install the package on first use, and reinstall only when
# pyproject.toml changes.

PYTHON ?= python3
VENV ?= .venv
HOST ?= 127.0.0.1
PORT ?= 8888
LAB_ARGS ?=
PYTEST_ARGS ?=

BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
# Jupyter refuses to run as root unless asked (containers, CI).
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

# The repository's address lives in pyproject.toml; README and notebook badges follow it.
REPOSITORY := $(shell sed -n 's|^Repository = "https://github.com/\(.*\)"|\1|p' pyproject.toml)

.PHONY: install browser lab test test-ipywidgets7 bench student repository clean

install: $(INSTALLED)

$(INSTALLED): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "Python 3.10+ is needed; run make PYTHON=python3.11 ...")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e ".[lab,test,bench,lightning,transformers]"
	@touch $(INSTALLED)

lab: $(INSTALLED)
	$(BIN)/jupyter lab --notebook-dir=notebooks --ServerApp.ip=$(HOST) --ServerApp.port=$(PORT) $(ROOT_FLAG) $(LAB_ARGS)

# The browser tests' Chromium: Playwright's, a system one, or installed now (tests/chromium.py)
browser: $(INSTALLED)
	@$(BIN)/python tests/chromium.py

test: $(INSTALLED) browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)
	@$(MAKE) --no-print-directory test-ipywidgets7

# Colab's ipywidgets 7.7: the widget tests again with ipywidgets 7.7 (and its front-end packages)
# installed into a folder of .venv put first on PYTHONPATH, in front of .venv's ipywidgets 8.
# Built once (a few seconds); unknown widget arguments (8-only traits) are errors there.
IPYWIDGETS7 := $(VENV)/ipywidgets7
IPYWIDGETS7_PACKAGES := "ipywidgets>=7.7,<7.8" "widgetsnbextension>=3.6,<3.7" \
	"jupyterlab_widgets>=1.1,<2" "ipython_genutils>=0.2,<0.3"
WIDGET_TESTS = $(wildcard tests/test_widget*.py tests/test_search_widget.py)

$(IPYWIDGETS7)/.installed: $(INSTALLED)
	rm -rf $(IPYWIDGETS7)
	$(BIN)/python -m pip install --quiet --no-deps --target $(IPYWIDGETS7) $(IPYWIDGETS7_PACKAGES)
	@touch $@

test-ipywidgets7: $(IPYWIDGETS7)/.installed
	PYTHONPATH=$(abspath $(IPYWIDGETS7)) DW_EXPECT_IPYWIDGETS=7.7 $(BIN)/python -m pytest -p no:cacheprovider \
		-W "error:Passing unrecognized arguments:DeprecationWarning" $(WIDGET_TESTS)

bench: $(INSTALLED)
	$(BIN)/python benchmarks/loop_overhead.py
	$(BIN)/python benchmarks/range_test.py
	$(BIN)/python benchmarks/widget_overhead.py
	$(BIN)/python benchmarks/search.py

# The classroom copy: exercise solutions removed, outputs cleared (into student/)
student: $(INSTALLED)
	$(BIN)/python -m disciplined_widgets.student notebooks student

# For a fork: make repository NEW=owner/name  (rewrites pyproject.toml, README and notebooks)
repository:
	@test -n "$(NEW)" || { echo "usage: make repository NEW=owner/name (now $(REPOSITORY))"; exit 1; }
	perl -pi -e 's#\Q$(REPOSITORY)\E#$(NEW)#g' pyproject.toml README.md notebooks/*.ipynb

clean:
	rm -rf $(VENV) .pytest_cache *.egg-info student
