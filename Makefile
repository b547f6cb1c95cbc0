# Everything a fresh machine needs (the Rust toolchain, Python >= 3.10 and pip) is
# set up by these targets themselves: a virtual environment in .venv and the build.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test test-rust test-python bench fuzz fuzz-setup clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

## Build and install tokensieve, then run it on the bundled example session.
demo: $(BIN)/python
	$(BIN)/python -m pip install --quiet .
	$(BIN)/tokensieve compact examples/session.json

## Every test: the Rust core (no Python needed) and the Python package.
test: test-rust test-python

test-rust:
	cargo test --locked

test-python: $(BIN)/python
	$(BIN)/python -m pip install --quiet ".[test]"
	$(BIN)/python -m pytest

## Benchmarks against tiktoken and the pure-Python baseline, measured in one run.
bench: $(BIN)/python
	$(BIN)/python -m pip install --quiet ".[test]"
	TOKENSIEVE_BENCH=1 $(BIN)/python -m pytest benches --benchmark-enable --benchmark-group-by=group --benchmark-columns=min,median,ops,rounds

## Coverage-guided fuzzing of the history readers (atheris + an instrumented build in
## .venv-fuzz, see docs/testing.md). Not part of `make test`. FUZZ_SECONDS=1800 by default.
FUZZ_SECONDS ?= 1800
fuzz-setup:
	PYTHON=$(PYTHON) fuzz/setup.sh

fuzz: fuzz-setup
	FUZZ_SECONDS=$(FUZZ_SECONDS) fuzz/run.sh

clean:
	rm -rf $(VENV) .venv-fuzz fuzz/out target .pytest_cache .hypothesis .benchmarks
