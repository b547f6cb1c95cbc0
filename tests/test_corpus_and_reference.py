"""The test inputs themselves: the generated corpus covers what it claims, and the
tiktoken reference is built from the files OpenAI publishes."""

from __future__ import annotations

import hashlib
import re
from collections import Counter

import pytest

import tokensieve
from tests.support.corpus import KINDS, RUN_CHARS, MAX_CHUNK_BYTES, MIB, MIN_CHUNK_BYTES, generate_corpus, generate_messages
from tests.support.reference import ENCODING_NAMES, PUBLISHED_SHA256, PUBLISHED_VOCABULARY_SIZE


@pytest.mark.parametrize("name", ENCODING_NAMES)
def test_embedded_vocabularies_are_the_published_files(name, tmp_path):
    data = tokensieve.tiktoken_bpe_file(name)
    assert hashlib.sha256(data).hexdigest() == PUBLISHED_SHA256[name]
    # The same bytes whether the encoding is named or passed as an object.
    assert tokensieve.tiktoken_bpe_file(tokensieve.get_encoding(name)) == data


def test_the_reference_tiktoken_encodings_load_the_whole_vocabulary(tiktoken_encodings):
    for name, enc in tiktoken_encodings.items():
        assert enc.name == name
        assert enc.n_vocab == PUBLISHED_VOCABULARY_SIZE[name]
        assert enc.encode_ordinary("Hello, world!") == enc.encode("Hello, world!")


def test_corpus_is_at_least_five_mebibytes_in_chunks_of_one_to_sixty_four_kib(corpus):
    sizes = [chunk.nbytes for chunk in corpus]
    assert sum(sizes) >= 5 * MIB
    assert min(sizes) >= MIN_CHUNK_BYTES - 4  # truncation may drop a partial character
    assert max(sizes) <= MAX_CHUNK_BYTES


def test_corpus_has_several_chunks_of_every_kind(corpus):
    kinds = Counter(chunk.kind for chunk in corpus)
    assert set(kinds) == set(KINDS)
    assert min(kinds.values()) >= 5, kinds


REQUIRED_FEATURES = {
    "special-token text": "<|endoftext|>",
    "ZWJ sequence": "\u200d",
    "skin tone": "\U0001F3FD",
    "flag": "🇺🇸",
    "long s": "ſ",
    "'LL": "'LL",
    "'Re": "'Re",
    "'s": "'s",
    "NBSP": "\u00a0",
    "ideographic space": "\u3000",
    "line separator": "\u2028",
    "CRLF": "\r\n",
    "tab": "\t",
    "Arabic-Indic digit": "\u0663",
    "Extended Arabic-Indic digit": "\u06f4",
    "Roman numeral": "\u216b",
    "vulgar fraction": "½",
    "combining acute": "\u0301",
    "Devanagari vowel sign": "\u093f",
    "Hangul": "한",
    "Hiragana": "の",
    "Han": "中",
    "fullwidth digit": "\uff11",
    "4-byte digit": "\U0001D7D7",
    "zero-width space (not whitespace)": "\u200b",
}


def test_corpus_contains_every_tricky_feature(corpus_texts):
    joined = "".join(corpus_texts)
    missing = [label for label, needle in REQUIRED_FEATURES.items() if needle not in joined]
    assert not missing


def test_corpus_contains_long_runs_and_blobs(corpus_texts):
    joined = "".join(corpus_texts)
    long_runs = [ch for ch in RUN_CHARS if len(ch) == 1 and ch * 10_000 in joined]
    assert len(long_runs) >= 5, f"runs of 10,000 of one character: only {long_runs}"
    assert " " * 1000 in joined, "a run of 1,000 spaces"
    assert "\r\n" * 500 in joined, "a run of 500 CRLFs"
    assert re.search(r"[A-Za-z0-9+/]{20000}", joined), "an unbroken 20,000-character base64 blob"


def test_corpus_generation_is_deterministic_per_seed():
    first = generate_corpus(seed=7, total_bytes=200_000)
    assert first == generate_corpus(seed=7, total_bytes=200_000)
    assert first != generate_corpus(seed=8, total_bytes=200_000)


def test_generated_messages_are_distinct_and_a_few_hundred_bytes_to_a_few_kib():
    messages = generate_messages(count=500)
    assert len(set(messages)) == 500
    sizes = [len(m.encode("utf-8")) for m in messages]
    assert min(sizes) >= 150 and max(sizes) <= 4200
