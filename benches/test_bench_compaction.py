"""compact_history against the pure-Python baseline (tokensieve.baseline), same run.

Histories are agent tool loops in pydantic-ai form (tokensieve._bench.history): tool
results of 200 B to 50 KB; the 10,000-message history is about 13 MB.

* cold: the content cache emptied before every round;
* warm: the per-request case, the history the agent sent last time plus one new
  exchange (a different one each round), after that history was compacted once.

The baseline has no cache (what users write today), so its cold and warm cost the same;
it is measured on both for a like-for-like table. Ratios are printed at the end of the
run (benches/conftest.py).
"""

from __future__ import annotations

import itertools
import random

import pytest

import tokensieve
from tokensieve import _bench

SIZES = [100, 1_000, 10_000]
CONFIG = _bench.BENCH_CONFIG


@pytest.fixture(scope="module")
def histories():
    return {n: _bench.history(n) for n in SIZES}


@pytest.fixture(scope="module")
def baseline():
    from tokensieve import baseline

    baseline.compact_history([], CONFIG)  # load its tiktoken encoding outside the timings
    return baseline


def _grown(history, rounds=50):
    """An endless supply of `history` + one new exchange, different each time."""
    rng = random.Random(len(history))
    extras = [_bench.exchange(rng, len(history) + 2 * i) for i in range(rounds)]
    return itertools.cycle([history + extra for extra in extras])


@pytest.mark.parametrize("size", SIZES)
def test_compact_cold(benchmark, histories, record, size):
    benchmark.group = f"compact {size:,} messages, cold"
    history = histories[size]
    result = benchmark.pedantic(
        tokensieve.compact_history, args=(history, CONFIG), setup=tokensieve.clear_cache, rounds=5, iterations=1
    )
    assert result
    record(("compact-cold", str(size), "tokensieve"))


@pytest.mark.parametrize("size", SIZES)
def test_compact_warm(benchmark, histories, record, size):
    benchmark.group = f"compact {size:,} messages, warm"
    history = histories[size]
    tokensieve.compact_history(history, CONFIG)  # the previous request
    grown = _grown(history)
    result = benchmark.pedantic(lambda: tokensieve.compact_history(next(grown), CONFIG), rounds=20, iterations=1)
    assert result
    record(("compact-warm", str(size), "tokensieve"))


@pytest.mark.parametrize("size", SIZES)
def test_baseline_cold(benchmark, histories, baseline, record, size):
    benchmark.group = f"compact {size:,} messages, cold"
    history = histories[size]
    result = benchmark.pedantic(baseline.compact_history, args=(history, CONFIG), rounds=2, iterations=1)
    assert result == tokensieve.compact_history(history, CONFIG)
    record(("compact-cold", str(size), "baseline"))


@pytest.mark.parametrize("size", SIZES)
def test_baseline_warm(benchmark, histories, baseline, record, size):
    benchmark.group = f"compact {size:,} messages, warm"
    grown = _grown(histories[size])
    result = benchmark.pedantic(lambda: baseline.compact_history(next(grown), CONFIG), rounds=2, iterations=1)
    assert result
    record(("compact-warm", str(size), "baseline"))


def test_pipeline_warm(benchmark, histories, record):
    """The whole pipeline (masking and pruning on, the window driven by the budget alone),
    warm, on the 10,000-message history: held within 2x of the window's warm row (issue 11)."""
    benchmark.group = "compact 10,000 messages, warm"
    history = histories[10_000]
    tokensieve.compact_history(history, _bench.PIPELINE_CONFIG)  # the previous request
    grown = _grown(history)
    result = benchmark.pedantic(
        lambda: tokensieve.compact_history(next(grown), _bench.PIPELINE_CONFIG), rounds=20, iterations=1
    )
    assert result
    record(("pipeline-warm", "10000", "tokensieve"))


def test_session_cost_per_request_stays_flat(benchmark, record):
    """2,000 requests, each appending an exchange and storing the compacted history."""
    benchmark.group = "session of 2,000 requests"

    def session():
        rng = random.Random(42)
        stored = _bench.history(1)
        for n in range(2_000):
            stored = tokensieve.compact_history(stored + _bench.exchange(rng, n), CONFIG)
        return stored

    stored = benchmark.pedantic(session, rounds=1, iterations=1)
    assert len(stored) < 100
    record(("session", "2000", "tokensieve"))
