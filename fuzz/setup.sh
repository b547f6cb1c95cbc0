#!/usr/bin/env bash
# Set up the fuzzing environment: a virtual environment of its own (.venv-fuzz) with
# atheris, and tokensieve's native extension built with SanitizerCoverage so that
# libFuzzer (inside atheris) sees which Rust branches an input reaches.
#
#   fuzz/setup.sh            # idempotent; `make fuzz` runs it
#
# Why a separate venv and target dir: the instrumented extension references libFuzzer's
# __sanitizer_cov_* callbacks, which only exist when atheris's libFuzzer is loaded
# first (fuzz/run.sh LD_PRELOADs it); imported anywhere else it fails to load. It must
# never end up in .venv, which the test suite uses.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${FUZZ_VENV:-.venv-fuzz}

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
fi

# atheris ships manylinux wheels (x86_64; CPython 3.11 here) with libFuzzer inside: no
# clang needed. Where there is no wheel, pip builds it from source, which needs clang
# and its libFuzzer runtime (Debian 12: apt-get install clang libclang-rt-14-dev).
if ! "$VENV/bin/python" -c "import atheris" 2>/dev/null; then
    if ! "$VENV/bin/python" -m pip install --quiet atheris; then
        echo "no atheris wheel for this Python: installing clang to build it" >&2
        if command -v apt-get >/dev/null; then
            apt-get update -qq && apt-get install -y -qq clang libclang-rt-dev || \
                apt-get install -y -qq clang libclang-rt-14-dev
        fi
        CLANG_BIN=$(command -v clang) "$VENV/bin/python" -m pip install --quiet --no-binary atheris atheris
    fi
fi
"$VENV/bin/python" -m pip install --quiet maturin "hypothesis>=6.100" "pydantic-ai-slim==2.68.0" "tiktoken==0.14.0" numpy logfire-api

# The extension, instrumented: 8-bit edge counters, the PC table and comparison tracing
# (what clang's -fsanitize=fuzzer-no-link gives C code), overflow checks on so that an
# arithmetic overflow becomes a panic the fuzzer reports. No LTO: quicker to build, and
# the instrumentation is per function anyway.
SANCOV="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=3 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Coverflow-checks=on"
# An explicit --target keeps RUSTFLAGS off the build scripts and proc macros (host
# artifacts), which would otherwise fail to link without libFuzzer.
HOST=$(rustc -vV | sed -n 's/^host: //p')
# A wheel, not `maturin develop`: develop would put the instrumented _core.so into
# python/tokensieve/, where an editable install in .venv would pick it up.
rm -rf target/fuzz/wheels
if [ "${FUZZ_NATIVE:-1}" = "1" ]; then
    RUSTFLAGS="$SANCOV" CARGO_TARGET_DIR=target/fuzz \
        CARGO_PROFILE_RELEASE_LTO=off CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
        "$VENV/bin/maturin" build --release -q --target "$HOST" -i "$VENV/bin/python" -o target/fuzz/wheels
else
    # Python-level instrumentation only: the ordinary build.
    CARGO_TARGET_DIR=target/fuzz "$VENV/bin/maturin" build --release -q -i "$VENV/bin/python" -o target/fuzz/wheels
fi
"$VENV/bin/python" -m pip install --quiet --force-reinstall --no-deps target/fuzz/wheels/tokensieve-*.whl
echo "fuzzing environment ready in $VENV"
