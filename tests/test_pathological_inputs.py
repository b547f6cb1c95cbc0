"""Inputs that break naive tokenizers: megabyte runs of one character, of whitespace,
text without whitespace, emoji. Each gets tiktoken's exact count, without hanging.

Where the reference comes from: tiktoken 0.14 itself, called directly, up to 100 KiB
and for 1 MiB inputs it can handle. On some 1 MiB inputs its regex fails
(``o200k_base`` on a megabyte of spaces or tabs raises a PanicException from
fancy-regex's ``StackOverflow``, as do both encodings on spaces followed by a word).
Those inputs are a single pre-tokenizer piece (or a known split into pieces), so the
reference is tiktoken's own byte-pair encoder without the regex,
``len(enc._encode_single_piece(bytes))``; at 100 KiB, where tiktoken works, the tests
check that this shortcut agrees with tiktoken's full ``encode_ordinary``.

A worker-thread hang guard (generous: 10 s) catches quadratic behaviour; speed itself
is measured by the benchmarks, not here.
"""

from __future__ import annotations

import base64
import random
from collections.abc import Callable

import pytest

import tokensieve
from tests.support.guards import finishes_within

pytestmark = pytest.mark.usefixtures("cache_disabled")

KIB = 1024
MIB = 1024 * KIB
HANG_GUARD_SECONDS = 10.0


def _random_base64(nbytes: int) -> str:
    raw = random.Random(nbytes).randbytes(nbytes * 3 // 4 + 3)
    return base64.b64encode(raw).decode()[:nbytes]


def _random_letters(nbytes: int) -> str:
    return "".join(random.Random(nbytes).choices("abcdefghijklmnopqrstuvwxyz", k=nbytes))


def _mixed_emoji(nbytes: int) -> str:
    rng = random.Random(nbytes)
    choices = ("👍🏽", "👨\u200d👩\u200d👧", "❤️", "🇺🇸", "😀", "1\ufe0f\u20e3", "🧑🏿\u200d🚀")
    out, size = [], 0
    while size < nbytes:
        e = rng.choice(choices)
        out.append(e)
        size += len(e.encode())
    return "".join(out)


def _mixed_whitespace(nbytes: int) -> str:
    return "".join(random.Random(nbytes).choices(" \t\r\n", k=nbytes))


# name -> (builder taking a size in bytes, is the whole text one pre-tokenizer piece?)
INPUTS: dict[str, tuple[Callable[[int], str], bool]] = {
    "one repeated letter": (lambda n: "a" * n, True),
    "spaces": (lambda n: " " * n, True),
    "tabs": (lambda n: "\t" * n, True),
    "newlines": (lambda n: "\n" * n, True),
    "CRLF pairs": (lambda n: "\r\n" * (n // 2), True),
    "one word of random letters": (_random_letters, True),
    "one repeated punctuation mark": (lambda n: "=" * n, True),
    "one repeated combining mark": (lambda n: "\u0301" * (n // 2), True),
    "one repeated CJK character": (lambda n: "中" * (n // 3), True),
    "one repeated emoji": (lambda n: "😀" * (n // 4), True),
    "ZWJ and skin-tone emoji without spaces": (_mixed_emoji, False),
    "base64 without whitespace": (_random_base64, False),
    "one repeated digit": (lambda n: "7" * n, False),
    "random spaces tabs and newlines": (_mixed_whitespace, False),
}


def spaces_then_word(nbytes: int) -> str:
    return " " * (nbytes - 1) + "x"


def count_guarded(text: str, encoding: str) -> int:
    return finishes_within(HANG_GUARD_SECONDS, tokensieve.count_tokens, text, encoding=encoding)


def single_piece_count(tiktoken_enc, text: str) -> int:
    return len(tiktoken_enc._encode_single_piece(text.encode("utf-8")))


@pytest.mark.parametrize("size", [10 * KIB, 100 * KIB], ids=["10KiB", "100KiB"])
@pytest.mark.parametrize("kind", list(INPUTS))
def test_pathological_input_counts_equal_tiktoken_up_to_100_kib(kind, size, encoding_name, tiktoken_enc):
    build, _ = INPUTS[kind]
    text = build(size)
    assert count_guarded(text, encoding_name) == len(tiktoken_enc.encode_ordinary(text))


@pytest.mark.parametrize("kind", [k for k, (_, single) in INPUTS.items() if single])
def test_single_piece_inputs_really_are_one_piece_for_tiktoken(kind, tiktoken_enc):
    # Validates the reference used at 1 MiB, where tiktoken's regex gives up.
    text = INPUTS[kind][0](100 * KIB)
    assert len(tiktoken_enc.encode_ordinary(text)) == single_piece_count(tiktoken_enc, text)


@pytest.mark.parametrize("kind", list(INPUTS))
def test_one_mebibyte_pathological_input_gets_the_exact_count(kind, encoding_name, tiktoken_enc):
    build, single_piece = INPUTS[kind]
    text = build(MIB)
    if single_piece:
        expected = single_piece_count(tiktoken_enc, text)
    else:
        expected = len(tiktoken_enc.encode_ordinary(text))
    assert count_guarded(text, encoding_name) == expected


def spaces_then_word_reference(tiktoken_enc, nbytes: int) -> int:
    # Both patterns split "<spaces> x" as: all spaces but the last (\s+(?!\S)), then " x".
    return single_piece_count(tiktoken_enc, " " * (nbytes - 2)) + len(tiktoken_enc.encode_ordinary(" x"))


def test_spaces_then_a_word_reference_agrees_with_tiktoken_at_100_kib(tiktoken_enc):
    text = spaces_then_word(100 * KIB)
    assert len(tiktoken_enc.encode_ordinary(text)) == spaces_then_word_reference(tiktoken_enc, 100 * KIB)


def test_one_mebibyte_of_spaces_then_a_word_gets_the_exact_count(encoding_name, tiktoken_enc):
    # tiktoken 0.14's own encode_ordinary raises a PanicException on this input.
    assert count_guarded(spaces_then_word(MIB), encoding_name) == spaces_then_word_reference(tiktoken_enc, MIB)


def test_a_parallel_batch_of_pathological_inputs_counts_each_exactly(encoding_name, tiktoken_enc):
    quarter = MIB // 4  # together above PARALLEL_MIN_BYTES, so the batch runs in parallel
    texts = ["a" * quarter, " " * quarter, "😀" * (quarter // 4), _random_base64(quarter)]
    assert sum(len(t.encode()) for t in texts) >= tokensieve._core.PARALLEL_MIN_BYTES
    expected = [single_piece_count(tiktoken_enc, t) for t in texts[:3]] + [len(tiktoken_enc.encode_ordinary(texts[3]))]
    got = finishes_within(HANG_GUARD_SECONDS, tokensieve.count_tokens_batch, texts, encoding=encoding_name)
    assert got.tolist() == expected
