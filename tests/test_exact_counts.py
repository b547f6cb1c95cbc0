"""tokensieve's counts equal tiktoken's ``len(encode_ordinary(text))`` on every chunk of
the generated corpus, for both encodings and through every counting entry point.

The cache is switched off here so each entry point really tokenizes (otherwise the
second one would only read what the first cached); ``test_cache.py`` covers caching.
"""

from __future__ import annotations

import pytest

import tokensieve
from tests.support.corpus import Chunk

pytestmark = pytest.mark.usefixtures("cache_disabled")


def mismatch_report(corpus: list[Chunk], expected: list[int], got: list[int], tiktoken_enc=None) -> str:
    bad = [i for i, (e, g) in enumerate(zip(expected, got, strict=True)) if e != g]
    if not bad:
        return ""
    lines = [f"{len(bad)} of {len(corpus)} chunks counted differently from tiktoken:"]
    for i in bad[:5]:
        lines.append(f"  tiktoken {expected[i]} vs tokensieve {got[i]}: {corpus[i].describe()}")
        if tiktoken_enc is not None:
            # Point at the first line that differs on its own, to make debugging quick.
            for line in corpus[i].text.splitlines(keepends=True):
                want = len(tiktoken_enc.encode_ordinary(line))
                have = tokensieve.count_tokens(line, encoding=tiktoken_enc.name)
                if want != have:
                    lines.append(f"    first differing line: {line[:200]!r} (tiktoken {want}, tokensieve {have})")
                    break
    return "\n".join(lines)


def test_count_tokens_equals_tiktoken_on_every_corpus_chunk(corpus, reference_counts, encoding_name, tiktoken_enc):
    expected = reference_counts[encoding_name]
    got = [tokensieve.count_tokens(chunk.text, encoding=encoding_name) for chunk in corpus]
    assert got == expected, mismatch_report(corpus, expected, got, tiktoken_enc)


def test_count_tokens_batch_equals_tiktoken_on_every_corpus_chunk(corpus, corpus_texts, reference_counts, encoding_name):
    # The corpus is far above PARALLEL_MIN_BYTES: this is the parallel path.
    expected = reference_counts[encoding_name]
    got = tokensieve.count_tokens_batch(corpus_texts, encoding=encoding_name).tolist()
    assert got == expected, mismatch_report(corpus, expected, got)


def test_encoding_count_equals_tiktoken_on_every_corpus_chunk(corpus, reference_counts, encoding_name):
    enc = tokensieve.get_encoding(encoding_name)
    expected = reference_counts[encoding_name]
    got = [enc.count(chunk.text) for chunk in corpus]
    assert got == expected, mismatch_report(corpus, expected, got)


def test_encoding_count_batch_equals_tiktoken_on_every_corpus_chunk(corpus, corpus_texts, reference_counts, encoding_name):
    enc = tokensieve.get_encoding(encoding_name)
    expected = reference_counts[encoding_name]
    got = enc.count_batch(corpus_texts).tolist()
    assert got == expected, mismatch_report(corpus, expected, got)


def test_counting_the_joined_corpus_equals_tiktoken_on_the_joined_text(corpus_texts, encoding_name, tiktoken_enc):
    # Not the sum of the chunk counts: pieces merge across chunk boundaries.
    joined = "".join(corpus_texts)
    assert tokensieve.count_tokens(joined, encoding=encoding_name) == len(tiktoken_enc.encode_ordinary(joined))


def test_the_two_encodings_really_differ_on_the_corpus(reference_counts):
    # Guards the tests above against comparing one encoding with itself.
    assert reference_counts["o200k_base"] != reference_counts["cl100k_base"]
