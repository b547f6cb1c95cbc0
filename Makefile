# Everything a fresh machine needs (the Rust toolchain, Python >= 3.10 and pip) is
# set up by these targets themselves: a virtual environment in .venv and the build.
# bash: `make demo` filters the build log through a pipe and keeps pip's exit status.
SHELL  := /bin/bash
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test test-rust test-python bench fuzz fuzz-setup clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

## Build and install tokensieve, then run it on the bundled example session.
## The build is shown as it goes (pip -v passes on cargo's "Compiling ..." lines): the
## first one compiles the Rust core with fat LTO and takes minutes.
demo: $(BIN)/python
	@echo "==> building tokensieve from source (Rust, release, fat LTO): a few minutes the first time"
	@set -o pipefail; $(BIN)/python -m pip install -v . 2>&1 \
	  | grep -E --line-buffered '^ *(Collecting|Compiling|Finished|Building|Built|Successfully|Installing collected|error|ERROR|warning: )|📦|🔗|🍹' \
	  || { echo "==> the build failed: $(BIN)/python -m pip install -v . shows the whole log"; exit 1; }
	@echo "==> tokensieve compact examples/session.json"
	$(BIN)/tokensieve compact examples/session.json

## Every test: the Rust core (no Python needed) and the Python package.
test: test-rust test-python

test-rust:
	cargo test --locked

test-python: $(BIN)/python
	@echo "==> building tokensieve with the test extra (Rust release build: minutes the first time)"
	$(BIN)/python -m pip install --quiet ".[test]"
	$(BIN)/python -m pytest

## Benchmarks against tiktoken, the exact peers and the pure-Python baseline, in one run.
## The peers: tiktoken, fastokens, toktok-rs (counting, first count), pydantic-ai-harness
## and LangChain core (compaction). The harness pins pydantic-ai-slim to its own release,
## which the test extra pins otherwise: it is installed without its dependencies
## (pyproject's bench-peers extra lists the others).
HARNESS ?= pydantic-ai-harness==0.62.0
bench: $(BIN)/python
	$(BIN)/python -m pip install --quiet ".[test,bench,bench-peers]"
	$(BIN)/python -m pip install --quiet --no-deps "$(HARNESS)"
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
