"""Fixtures for the test suite; the shared ones live in ``tests/support/fixtures.py``."""

from __future__ import annotations

import pytest

from tests.support.fixtures import (  # noqa: F401 - fixtures are used by name
    cache_disabled,
    corpus,
    corpus_texts,
    pristine_cache,
    reference_counts,
    tiktoken_encodings,
)
from tests.support.reference import ENCODING_NAMES


@pytest.fixture(params=ENCODING_NAMES)
def encoding_name(request) -> str:
    return request.param


@pytest.fixture
def tiktoken_enc(tiktoken_encodings, encoding_name):
    """The official tiktoken encoding for the parametrized ``encoding_name``."""
    return tiktoken_encodings[encoding_name]
