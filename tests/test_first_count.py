"""The first-count measurement of ``tokensieve bench`` and ``make bench``
(``tokensieve._first_count``): what a fresh process reports is the count and its memory.

The speed itself is a benchmark (benches/test_bench_counting.py), not a test."""

from __future__ import annotations

import os

import pytest

import tokensieve
from tokensieve import _first_count

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads VmRSS from /proc")


@pytest.fixture(scope="module")
def rank_files(tmp_path_factory) -> dict[str, str]:
    return _first_count.write_rank_files(str(tmp_path_factory.mktemp("ranks")))


@pytest.mark.parametrize("encoding", tokensieve.ENCODINGS)
def test_a_fresh_process_counts_hello_world_with_each_embedded_encoding(encoding, rank_files):
    report = _first_count.measure_once("tokensieve", encoding, rank_files)
    assert report["n"] == tokensieve.count_tokens(_first_count.HELLO, encoding=encoding) == 4
    assert 0 < report["import"] <= report["first_count"]
    # One loaded encoding stays far below issue 12's 40 MB (the vocabulary is mapped, not built).
    assert 0 < report["rss_mb"] <= report["peak_mb"] <= 40


def test_the_peers_load_the_rank_files_tokensieve_writes(rank_files):
    """tiktoken (the bench extra's oracle) counts what tokensieve counts from the same file."""
    pytest.importorskip("tiktoken")
    for encoding in tokensieve.ENCODINGS:
        assert _first_count.measure_once("tiktoken", encoding, rank_files)["n"] == 4


def test_the_table_names_every_embedded_encoding_and_the_peers_not_installed():
    lines = _first_count.table(list(tokensieve.ENCODINGS), runs=1, libraries=("tokensieve",))
    rows = [line.split() for line in lines[2:]]
    assert [(r[0], r[1]) for r in rows] == [(e, "tokensieve") for e in tokensieve.ENCODINGS]
