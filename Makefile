# `make test` and `make demo` create or reuse .venv; the stamp file makes a second run quick.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test demo venv bench clean

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt setup.py package.xml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet -r requirements.txt -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q test

demo: $(STAMP)
	$(BIN)/stkd demo --quick --out runs/demo

bench: $(STAMP)
	$(BIN)/python bench/synthetic.py
	$(BIN)/python bench/flow.py

clean:
	rm -rf runs build *.egg-info
