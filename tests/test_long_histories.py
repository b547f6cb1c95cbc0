"""Long histories take another path: read in chunks while a worker thread counts them
(rust/src/python/mod.rs, from 1,024 messages). The result must not depend on it."""

from __future__ import annotations

import pytest

import tokensieve
from tokensieve import _bench


@pytest.fixture(scope="module")
def long_history():
    return _bench.history(3_000, seed=11)


def test_counts_are_the_same_read_in_chunks_by_two_threads_or_by_one(long_history, monkeypatch):
    tokensieve.clear_cache()
    pipelined = tokensieve.count_history_tokens(long_history)
    tokensieve.clear_cache()
    monkeypatch.setenv("TOKENSIEVE_PARALLELISM", "0")
    serial = tokensieve.count_history_tokens(long_history)
    assert pipelined.tolist() == serial.tolist()


def test_a_long_history_compacts_as_the_baseline_does(long_history):
    from tokensieve import baseline

    config = _bench.BENCH_CONFIG.replace(max_input_tokens=100_000, target_input_tokens=20_000)
    ours = tokensieve.Compactor(config).compact(long_history)
    theirs = baseline.compact(long_history, config)
    assert ours.messages == theirs.messages
    assert all(a is b for a, b in zip(ours.messages, theirs.messages))
    assert (ours.tokens_before, ours.tokens_after, ours.dropped) == (
        theirs.tokens_before,
        theirs.tokens_after,
        theirs.dropped,
    )
    assert ours.per_message_tokens.tolist() == list(theirs.per_message_tokens)


def test_a_bad_message_deep_in_a_long_history_is_reported_by_its_index(long_history):
    broken = [*long_history[:2_500], {"role": "robot"}, *long_history[2_500:]]
    with pytest.raises(tokensieve.InvalidMessageError) as info:
        tokensieve.count_history_tokens(broken, format="pydantic-ai")
    assert info.value.index == 2_500
