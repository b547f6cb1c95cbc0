"""tokensieve against tiktoken 0.14 and, when installed, the exact peers fastokens and
toktok-rs (``pip install fastokens toktok-rs``), on the same inputs, in the same run.

Groups put the libraries side by side; ``conftest.py`` prints the tokensieve/tiktoken
ratios at the end. Each tokensieve and tiktoken benchmark also checks its result, so a
fast wrong answer cannot pass; a peer's total is compared too and a wrong one is
reported in ``extra_info["exact"]`` (it is their bug, not ours to fail on).

``test_first_count_in_a_fresh_process`` runs a new interpreter per round: the time and
memory a process pays before its first count (``import tokensieve`` plus loading the
encoding, which builds nothing), for every embedded encoding, against the peers loading
the same vocabulary (``tokensieve._first_count``).
"""

from __future__ import annotations

import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest

import tokensieve
from tokensieve import _first_count
from benches.conftest import FIRST_COUNTS, NOT_EXACT
from tests.support.reference import ENCODING_NAMES, write_bpe_file

LIBRARIES = ("tokensieve", "tiktoken")
PEERS = ("fastokens", "toktok-rs")
HELLO = "Hello, world!"

# At most this much resident memory after importing tokensieve and counting once with one
# encoding (issue 12). RSS does not depend on the machine's load, so this is a hard bound.
FIRST_COUNT_MAX_RSS_MB = 40


def peer_counter(library: str, encoding: str, tiktoken_encodings, tmp_path_factory, threads: int = 1):
    """``texts -> total`` with a peer tokenizer, or skip when it is not installed."""
    if library == "fastokens":
        fastokens = pytest.importorskip("fastokens")
        path, _ = write_bpe_file(encoding, tmp_path_factory.mktemp("fastokens"))
        tok = fastokens.Tokenizer.from_tiktoken(str(path), pattern=tiktoken_encodings[encoding]._pat_str,
                                                special_tokens={})
        if threads == 1:
            return lambda texts: sum(len(tok.encode_ordinary(t)) for t in texts)
        return lambda texts: sum(map(len, tok.encode_batch(texts)))
    toktok = pytest.importorskip("toktok")
    tok = toktok._encoding(encoding)
    return lambda texts: sum(tok.count_batch(texts, threads, False))


@pytest.mark.parametrize("library", PEERS)
@pytest.mark.parametrize("encoding", ENCODING_NAMES)
def test_peer_single_thread_throughput_on_the_corpus(
    benchmark, record, library, encoding, corpus_texts, tiktoken_encodings, reference_totals, tmp_path_factory
):
    benchmark.group = f"cold single-thread, corpus, {encoding}"
    count = peer_counter(library, encoding, tiktoken_encodings, tmp_path_factory)
    total = benchmark.pedantic(lambda: count(corpus_texts), rounds=3, iterations=1, warmup_rounds=1)
    benchmark.extra_info["exact"] = total == reference_totals[encoding]
    NOT_EXACT[("cold", encoding, library)] = total != reference_totals[encoding]
    record(("cold", encoding, library), sum(len(t.encode()) for t in corpus_texts))


@pytest.mark.parametrize("library", PEERS)
@pytest.mark.parametrize("encoding", ENCODING_NAMES)
def test_peer_batch_throughput_on_the_corpus(
    benchmark, record, library, encoding, corpus_texts, tiktoken_encodings, reference_totals, tmp_path_factory
):
    benchmark.group = f"batch (parallel allowed), corpus, {encoding}"
    count = peer_counter(library, encoding, tiktoken_encodings, tmp_path_factory, threads=0)
    total = benchmark.pedantic(lambda: count(corpus_texts), rounds=3, iterations=1, warmup_rounds=1)
    benchmark.extra_info["exact"] = total == reference_totals[encoding]
    NOT_EXACT[("batch", encoding, library)] = total != reference_totals[encoding]
    record(("batch", encoding, library), sum(len(t.encode()) for t in corpus_texts))


@pytest.fixture(scope="module")
def rank_files(tmp_path_factory) -> dict[str, str]:
    """Every embedded encoding's rank file, for the peers to load offline."""
    return _first_count.write_rank_files(str(tmp_path_factory.mktemp("ranks")))


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmRSS from /proc")
@pytest.mark.parametrize("library", _first_count.LIBRARIES)
@pytest.mark.parametrize("encoding", tokensieve.ENCODINGS)
def test_first_count_in_a_fresh_process(benchmark, record, library, encoding, rank_files):
    """A new interpreter imports the library, loads the encoding and counts once: the
    whole process is timed (interpreter start-up included); it reports its own import
    and first-count times and its resident memory after it (``extra_info``), which the
    ratio table at the end shows for every embedded encoding."""
    if not _first_count.installed(library):
        pytest.skip(f"{library} is not installed (pip install \"tokensieve[bench]\")")
    if not _first_count.supports(library, encoding):
        pytest.skip(f"{library} has no {encoding}")
    benchmark.group = f"first count in a fresh process, {encoding}"
    reports = []

    def run():
        reports.append(_first_count.measure_once(library, encoding, rank_files))

    benchmark.pedantic(run, rounds=3, iterations=1)
    best = min(reports, key=lambda r: r["first_count"])
    benchmark.extra_info.update(best)
    assert best["n"] == 4
    if not benchmark.disabled:  # a smoke run (benchmarks disabled) ran one round: no table
        FIRST_COUNTS[(encoding, library)] = best
    record(("first", encoding, library))  # the whole process, interpreter start-up included
    if library == "tokensieve":
        assert best["rss_mb"] <= FIRST_COUNT_MAX_RSS_MB, best


@pytest.mark.parametrize("encoding", tokensieve.ENCODINGS)
def test_a_bare_interpreter_for_reference(benchmark, encoding):
    """``python -c pass``: the part of each fresh process above that no library can save."""
    benchmark.group = f"first count in a fresh process, {encoding}"
    benchmark.pedantic(lambda: subprocess.run([sys.executable, "-c", "pass"], check=True), rounds=3, iterations=1)


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
