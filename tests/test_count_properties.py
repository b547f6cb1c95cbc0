"""Property tests: for any text, tokensieve counts what tiktoken counts.

Counts are compared with ``len(tiktoken_enc.encode_ordinary(text))`` for both
encodings. Counting is not additive over concatenation (pieces merge across the
seam), so no such property is asserted.
"""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import tokensieve
from tests.support.reference import ENCODING_NAMES

SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Characters and short strings around which the pre-tokenizer patterns branch.
TRICKY = (
    # letters of every category: Lu, Ll, Lt, Lm, Lo
    "A", "Z", "É", "Σ", "Ж", "a", "z", "ß", "é", "σ", "ς", "ж", "ı", "İ", "ǅ", "ᾈ",
    "ʰ", "ˆ", "ー", "ـ", "ʼ", "〻", "中", "あ", "ア", "한", "א", "ب", "ก",
    # marks: Mn, Mc, Me, a variation selector
    "\u0301", "\u0308", "\u0903", "\u093f", "\u20dd", "\ufe0f",
    # numbers: Nd in several scripts, Nl, No
    "0", "7", "9", "\u0663", "\u06f4", "\u0967", "\uff11", "\U0001D7D7", "Ⅻ", "〇", "²", "½", "①",
    # contraction material
    "'", "’", "s", "S", "ſ", "t", "T", "re", "RE", "Re", "ve", "VE", "ll", "LL", "d", "D", "m", "M",
    "'s", "'ſ", "'ll", "'LL", "'re",
    # whitespace of every kind, and look-alikes that are not whitespace
    " ", "  ", "\t", "\n", "\r", "\r\n", "\x0b", "\x0c", "\u0085", "\u00a0", "\u3000", "\u2028",
    "\u2029", "\u2009", "\u200b", "\ufeff", "\x1c",
    # slash (o200k keeps trailing [\r\n/]) and punctuation
    "/", "//", ".", ",", "!", "?", "-", "_", "(", ")", '"', "<|", "|>", "<|endoftext|>", "#", "…", "。",
    # emoji: plain, skin tone, ZWJ, flag halves
    "😀", "👍", "\U0001F3FD", "\u200d", "👨\u200d👩\u200d👧", "🇺", "🇸",
)

tricky_text = st.lists(
    st.tuples(st.sampled_from(TRICKY), st.integers(min_value=1, max_value=4)).map(lambda t: t[0] * t[1]),
    max_size=40,
).map("".join)

# Every code point, surrogates (category Cs) included. st.characters() generates Cs
# when no category is excluded, but rarely (2,048 of 1.1 million code points), so the
# surrogate range is also drawn from explicitly.
surrogates = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, exclude_categories=())
# (Built as a list of characters: st.text(alphabet=st.one_of(...)) silently drops Cs.)
any_code_points = st.lists(
    st.one_of(
        st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=()),
        surrogates,
    ),
    max_size=60,
).map("".join)
with_surrogates = st.lists(
    st.one_of(
        surrogates,
        st.sampled_from(TRICKY),
        st.sampled_from(("\ud83d\ude00", "\ud83d", "\ude00", "a\udc80b", "\udbff\udfff")),
    ),
    max_size=30,
).map("".join)


def assert_counts_equal_tiktoken(text: str, tiktoken_encodings: dict) -> None:
    for name in ENCODING_NAMES:
        expected = len(tiktoken_encodings[name].encode_ordinary(text))
        assert tokensieve.count_tokens(text, encoding=name) == expected, (name, text)


@pytest.fixture(autouse=True)
def _uncached(cache_disabled):
    """Hypothesis replays examples; keep every replay a real count."""


@SETTINGS
@given(text=st.text())
def test_any_text_counts_as_tiktoken_counts(text, tiktoken_encodings):
    assert_counts_equal_tiktoken(text, tiktoken_encodings)


@SETTINGS
@given(text=tricky_text)
@example(text="Hello   world's 'LL ſ'ſ 1234567 \u3000\u00a0x\r\n\r\n  /// 😀👍🏽 <|endoftext|>")
@example(text=" \u0301a")
@example(text="'ſ")
def test_text_from_tricky_characters_counts_as_tiktoken_counts(text, tiktoken_encodings):
    assert_counts_equal_tiktoken(text, tiktoken_encodings)


# Mostly ASCII, as the o200k scanner's ASCII fast path sees it, with the multi-byte
# characters that can continue or end an ASCII run next to them: the fast path hands
# such a piece to the general scanner, and the two must agree at every seam.
ASCII_PARTS = (
    "a", "z", "A", "Z", "x", "Hello", "HTTP", "parseHTTPResponse", "s", "S", "t", "re", "RE", "ve", "ll", "LL", "d",
    "m", "'", "'s", "'S", "'ll", "'Re", "0", "7", "12", "345", "6789", " ", " ", " ", "  ", "\t", "\n", "\r",
    "\r\n", "\n\n", "\x0b", "\x0c", "\x1c", "/", "//", ".", ",", ";", "-", "_", "(", ")", "{", "}", '"', "=", "#",
)
SEAM_PARTS = ("é", "É", "ß", "ǅ", "ʰ", "\u0301", "ſ", "'ſ", "\u0663", "²", "Ⅷ", "\u00a0", "\u3000", "\u0085", "😀", "—",
              "’", "中")
ascii_text = st.lists(
    st.one_of(st.sampled_from(ASCII_PARTS), st.sampled_from(ASCII_PARTS), st.sampled_from(SEAM_PARTS)), max_size=40
).map("".join)


@SETTINGS
@given(text=ascii_text)
@example(text=" é")
@example(text="ab\u0301")
@example(text="12\u0663")
@example(text="  \u00a0x")
@example(text="x'ſ")
@example(text=";😀")
def test_mostly_ascii_text_with_multibyte_seams_counts_as_tiktoken_counts(text, tiktoken_encodings):
    assert_counts_equal_tiktoken(text, tiktoken_encodings)


@SETTINGS
@given(text=any_code_points)
def test_text_from_all_code_points_including_surrogates_counts_as_tiktoken_counts(text, tiktoken_encodings):
    assert_counts_equal_tiktoken(text, tiktoken_encodings)


def test_the_all_code_points_strategy_really_generates_surrogates():
    # Guards the test above: without Cs it would not exercise the repair path.
    seen = []

    @settings(max_examples=200, deadline=None, database=None, derandomize=True)
    @given(any_code_points)
    def collect(text):
        seen.extend(unicodedata.category(c) for c in text)

    collect()
    assert "Cs" in seen


@SETTINGS
@given(text=with_surrogates)
@example(text="\ud83d\ude00")
@example(text="\ud800")
@example(text="x\udfffy")
def test_lone_surrogates_and_split_pairs_count_as_tiktoken_counts_after_its_repair(text, tiktoken_encodings):
    assert_counts_equal_tiktoken(text, tiktoken_encodings)
    # Also through the batch and Encoding entry points.
    for name in ENCODING_NAMES:
        expected = len(tiktoken_encodings[name].encode_ordinary(text))
        assert tokensieve.count_tokens_batch([text], encoding=name).tolist() == [expected]
        assert tokensieve.get_encoding(name).count(text) == expected


@pytest.mark.parametrize("name", ENCODING_NAMES)
def test_a_surrogate_pair_written_as_two_code_units_counts_as_its_character(name):
    assert tokensieve.count_tokens("\ud83d\ude00", encoding=name) == tokensieve.count_tokens("😀", encoding=name)
    assert tokensieve.count_tokens("a\ud800b", encoding=name) == tokensieve.count_tokens("a\ufffdb", encoding=name)


@pytest.mark.parametrize("name", ENCODING_NAMES)
def test_the_empty_string_has_no_tokens(name):
    assert tokensieve.count_tokens("", encoding=name) == 0
    assert tokensieve.get_encoding(name).count("") == 0
    assert tokensieve.count_tokens_batch([""], encoding=name).tolist() == [0]


@SETTINGS
@given(texts=st.lists(st.one_of(tricky_text, st.text(max_size=30)), max_size=12))
def test_batch_counts_equal_single_counts(texts, tiktoken_encodings):
    for name in ENCODING_NAMES:
        singles = [tokensieve.count_tokens(t, encoding=name) for t in texts]
        assert tokensieve.count_tokens_batch(texts, encoding=name).tolist() == singles
        assert singles == [len(tokens) for tokens in tiktoken_encodings[name].encode_ordinary_batch(texts)]
