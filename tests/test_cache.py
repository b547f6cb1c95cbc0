"""The content cache: hits and misses, the size threshold, the bound, switching it off,
and that a cached count is always the count."""

from __future__ import annotations

import subprocess
import sys

import pytest

import tokensieve
from tokensieve import _core
from tests.support.guards import raises_cleanly

pytestmark = pytest.mark.usefixtures("pristine_cache")

MIN = _core.MIN_CACHED_BYTES


def distinct_texts(n: int, prefix: str = "message") -> list[str]:
    return [f"{prefix} {i}: " + "lorem ipsum dolor sit amet " * 3 for i in range(n)]


def test_counting_the_same_text_twice_is_one_miss_then_one_hit():
    text = "a message long enough to be worth caching, " * 3
    assert len(text.encode()) >= MIN
    first = tokensieve.count_tokens(text)
    second = tokensieve.count_tokens(text)
    info = tokensieve.cache_info()
    assert first == second
    assert (info.hits, info.misses, info.size) == (1, 1, 1)


def test_texts_shorter_than_the_threshold_bypass_the_cache():
    short = "x" * (MIN - 1)
    for _ in range(3):
        tokensieve.count_tokens(short)
    info = tokensieve.cache_info()
    assert (info.hits, info.misses, info.size) == (0, 0, 0)


def test_a_text_exactly_at_the_threshold_is_cached():
    tokensieve.count_tokens("x" * MIN)
    tokensieve.count_tokens("x" * MIN)
    assert tokensieve.cache_info()[:3] == (1, 1, 1)


def test_the_threshold_is_in_utf8_bytes_not_characters():
    text = "é" * (MIN // 2)  # MIN bytes, MIN / 2 characters
    assert len(text.encode()) == MIN
    tokensieve.count_tokens(text)
    tokensieve.count_tokens(text)
    assert tokensieve.cache_info()[:3] == (1, 1, 1)


def test_batches_go_through_the_cache_too():
    texts = distinct_texts(50)
    first = tokensieve.count_tokens_batch(texts).tolist()
    assert tokensieve.count_tokens_batch(texts).tolist() == first
    info = tokensieve.cache_info()
    assert (info.hits, info.misses, info.size) == (50, 50, 50)


def test_the_same_text_under_two_encodings_is_two_entries_each_with_its_own_count(tiktoken_encodings):
    text = "今日は良い天気ですね。 Ça va?   " * 4
    counts = {name: tokensieve.count_tokens(text, encoding=name) for name in tokensieve.ENCODINGS}
    assert counts["o200k_base"] != counts["cl100k_base"]
    for _ in range(2):
        for name, enc in tiktoken_encodings.items():
            assert tokensieve.count_tokens(text, encoding=name) == len(enc.encode_ordinary(text))
    # One entry per encoding, o200k_harmony's too (its counts equal o200k_base's).
    assert tokensieve.cache_info().size == len(tokensieve.ENCODINGS)


def test_clear_cache_empties_it_and_resets_the_counters():
    texts = distinct_texts(20)
    tokensieve.count_tokens_batch(texts)
    tokensieve.count_tokens_batch(texts)
    tokensieve.clear_cache()
    assert tokensieve.cache_info()[:3] == (0, 0, 0)


@pytest.mark.parametrize(
    "max_entries",
    [
        16,
        160,
        10,
        100,
        1000,
    ],
)
def test_the_cache_never_holds_more_than_max_entries(max_entries):
    tokensieve.configure_cache(max_entries=max_entries)
    tokensieve.count_tokens_batch(distinct_texts(3 * max_entries + 200))
    info = tokensieve.cache_info()
    assert info.max_entries == max_entries
    assert info.size <= max_entries, f"{info.size} entries cached with max_entries={max_entries}"


def test_lowering_the_bound_evicts_at_once():
    tokensieve.count_tokens_batch(distinct_texts(1000))
    assert tokensieve.cache_info().size == 1000
    tokensieve.configure_cache(max_entries=160)
    assert tokensieve.cache_info().size <= 160


def test_a_bound_of_zero_caches_nothing_but_still_counts():
    texts = distinct_texts(30)
    expected = tokensieve.count_tokens_batch(texts).tolist()
    tokensieve.configure_cache(max_entries=0)
    assert tokensieve.cache_info().size == 0
    assert tokensieve.count_tokens_batch(texts).tolist() == expected
    assert tokensieve.cache_info().size == 0


def test_disabling_the_cache_stops_caching_and_re_enabling_resumes_it():
    texts = distinct_texts(30)
    tokensieve.count_tokens_batch(texts)
    tokensieve.configure_cache(enabled=False)
    before = tokensieve.cache_info()
    assert before.enabled is False and before.size == 0
    tokensieve.count_tokens_batch(texts)
    tokensieve.count_tokens_batch(texts)
    after = tokensieve.cache_info()
    assert (after.hits, after.misses, after.size) == (before.hits, before.misses, 0)
    tokensieve.configure_cache(enabled=True)
    tokensieve.count_tokens_batch(texts)
    tokensieve.count_tokens_batch(texts)
    resumed = tokensieve.cache_info()
    assert resumed.size == 30 and resumed.hits == before.hits + 30


def test_none_keeps_the_current_settings():
    tokensieve.configure_cache(max_entries=777, enabled=False)
    tokensieve.configure_cache()
    tokensieve.configure_cache(max_entries=None, enabled=None)
    info = tokensieve.cache_info()
    assert (info.max_entries, info.enabled) == (777, False)


def test_cache_info_is_a_named_tuple_of_counters_and_settings():
    info = tokensieve.cache_info()
    assert isinstance(info, tokensieve.CacheInfo)
    assert info._fields == ("hits", "misses", "size", "max_entries", "enabled")
    assert tuple(info) == _core.cache_info()


def test_the_defaults_in_a_fresh_process_are_100_000_entries_and_enabled():
    code = "import tokensieve; i = tokensieve.cache_info(); print(i.max_entries, i.enabled, i.size)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.split() == ["100000", "True", "0"]


def test_cached_counts_equal_uncached_counts_on_the_corpus(corpus_texts, reference_counts):
    tokensieve.configure_cache(enabled=False)
    uncached = tokensieve.count_tokens_batch(corpus_texts).tolist()
    tokensieve.configure_cache(enabled=True)
    tokensieve.clear_cache()
    first = [tokensieve.count_tokens(t) for t in corpus_texts]  # misses
    second = [tokensieve.count_tokens(t) for t in corpus_texts]  # hits
    info = tokensieve.cache_info()
    assert uncached == first == second == reference_counts["o200k_base"]
    distinct = len(set(corpus_texts))
    assert info.misses == distinct and info.hits == 2 * len(corpus_texts) - distinct


def test_a_failed_configuration_keeps_the_cache_contents():
    texts = distinct_texts(10)
    tokensieve.count_tokens_batch(texts)
    with raises_cleanly(tokensieve.ConfigurationError):
        tokensieve.configure_cache(max_entries=-5)
    assert tokensieve.cache_info().size == 10
