"""tokensieve against tiktoken 0.14 on the same inputs, in the same run.

Groups put the two libraries side by side; ``conftest.py`` prints the ratios at the end.
Each benchmark also checks its result, so a fast wrong answer cannot pass.
"""

from __future__ import annotations

from functools import partial

import pytest

import tokensieve
from tests.support.reference import ENCODING_NAMES

LIBRARIES = ("tokensieve", "tiktoken")
HELLO = "Hello, world!"


@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize("encoding", ENCODING_NAMES)
def test_cold_single_thread_throughput_on_the_corpus(
    benchmark, record, single_thread_cold, library, encoding, corpus_texts, tiktoken_encodings, reference_totals
):
    benchmark.group = f"cold single-thread, corpus, {encoding}"
    if library == "tokensieve":
        tokensieve.count_tokens("warm up: load the vocabulary", encoding=encoding)
        count = partial(tokensieve.count_tokens, encoding=encoding)

        def run():
            return sum(map(count, corpus_texts))
    else:
        encode = tiktoken_encodings[encoding].encode_ordinary

        def run():
            return sum(len(encode(t)) for t in corpus_texts)

    total = benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=1)
    assert total == reference_totals[encoding]
    record(("cold", encoding, library), sum(len(t.encode()) for t in corpus_texts))


@pytest.mark.parametrize("library", LIBRARIES)
def test_per_call_overhead_on_a_short_message(benchmark, record, library, tiktoken_encodings):
    benchmark.group = "per call, 'Hello, world!'"
    # Both through a lambda, so each pays the same Python call around it.
    if library == "tokensieve":
        count = tokensieve.count_tokens
        result = benchmark(lambda: count(HELLO))
    else:
        encode = tiktoken_encodings["o200k_base"].encode_ordinary
        result = benchmark(lambda: len(encode(HELLO)))
    assert result == 4
    record(("call", "o200k_base", library), len(HELLO))


@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize("encoding", ENCODING_NAMES)
def test_batch_throughput_on_the_corpus(
    benchmark, record, cache_off, library, encoding, corpus_texts, tiktoken_encodings, reference_totals
):
    benchmark.group = f"batch (parallel allowed), corpus, {encoding}"
    if library == "tokensieve":

        def run():
            return int(tokensieve.count_tokens_batch(corpus_texts, encoding=encoding).sum())
    else:
        enc = tiktoken_encodings[encoding]

        def run():
            return sum(map(len, enc.encode_ordinary_batch(corpus_texts)))

    total = benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=1)
    assert total == reference_totals[encoding]
    record(("batch", encoding, library), sum(len(t.encode()) for t in corpus_texts))


@pytest.fixture(scope="module")
def message_total(messages, tiktoken_encodings) -> int:
    return sum(map(len, tiktoken_encodings["o200k_base"].encode_ordinary_batch(messages)))


@pytest.mark.parametrize("mode", ["cached", "cold", "tiktoken"])
def test_recounting_ten_thousand_messages(benchmark, record, mode, messages, message_total, tiktoken_encodings):
    """An agent re-counts its whole history before every request: with the cache that is
    a hash per message. "cold" clears the cache before every round."""
    benchmark.group = f"re-count {len(messages):,} messages"
    tokensieve.configure_cache(max_entries=100_000, enabled=True)
    tokensieve.clear_cache()
    if mode == "cached":
        tokensieve.count_tokens_batch(messages)  # fill the cache
        total = benchmark(lambda: int(tokensieve.count_tokens_batch(messages).sum()))
        assert tokensieve.cache_info().hits >= len(messages)
    elif mode == "cold":
        total = benchmark.pedantic(
            lambda: int(tokensieve.count_tokens_batch(messages).sum()),
            setup=tokensieve.clear_cache, rounds=3, iterations=1,
        )
    else:
        enc = tiktoken_encodings["o200k_base"]
        total = benchmark.pedantic(lambda: sum(map(len, enc.encode_ordinary_batch(messages))), rounds=2, iterations=1)
    tokensieve.clear_cache()
    assert total == message_total
    record(("messages", "o200k_base", mode), sum(len(m.encode()) for m in messages))
