"""pytest fixtures shared by ``tests/`` and ``benches/`` (each conftest imports them)."""

from __future__ import annotations

import pytest

import tokensieve

from .corpus import Chunk, generate_corpus
from .reference import ENCODING_NAMES, build_tiktoken_encoding

DEFAULT_MAX_ENTRIES = 100_000


@pytest.fixture(scope="session")
def corpus() -> list[Chunk]:
    """The seeded >= 5 MiB corpus, generated once per session."""
    return generate_corpus()


@pytest.fixture(scope="session")
def corpus_texts(corpus: list[Chunk]) -> list[str]:
    return [chunk.text for chunk in corpus]


@pytest.fixture(scope="session")
def tiktoken_encodings(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Official tiktoken encodings, built offline: {name: tiktoken.Encoding}."""
    directory = tmp_path_factory.mktemp("tiktoken-files")
    return {name: build_tiktoken_encoding(name, directory) for name in ENCODING_NAMES}


@pytest.fixture(scope="session")
def reference_counts(tiktoken_encodings: dict, corpus_texts: list[str]) -> dict[str, list[int]]:
    """tiktoken's ``len(encode_ordinary(chunk))`` for every corpus chunk, per encoding."""
    return {
        name: [len(tokens) for tokens in enc.encode_ordinary_batch(corpus_texts, num_threads=2)]
        for name, enc in tiktoken_encodings.items()
    }


def restore_cache_defaults() -> None:
    tokensieve.configure_cache(max_entries=DEFAULT_MAX_ENTRIES, enabled=True)
    tokensieve.clear_cache()


@pytest.fixture
def pristine_cache():
    """An empty cache with default settings, and defaults restored afterwards."""
    restore_cache_defaults()
    yield
    restore_cache_defaults()


@pytest.fixture
def cache_disabled():
    """Cache off for the test, so every count really tokenizes; defaults restored after."""
    tokensieve.configure_cache(enabled=False)
    yield
    restore_cache_defaults()
