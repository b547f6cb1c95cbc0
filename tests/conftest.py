"""Fixtures for the test suite; the shared ones live in ``tests/support/fixtures.py``."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

from tests.support.fixtures import (  # noqa: F401 - fixtures are used by name
    cache_disabled,
    corpus,
    corpus_texts,
    pristine_cache,
    reference_counts,
    tiktoken_encodings,
)
from tests.support.reference import ENCODING_NAMES

# Hypothesis profiles. `make test` runs the default one (example counts stay modest: the
# whole suite must fit in ~15 minutes on 2 cores). For a long hunt:
#   HYPOTHESIS_PROFILE=long .venv/bin/python -m pytest tests/test_adversarial_properties.py
# Tests that set max_examples themselves keep their own count; the adversarial properties
# take theirs from the profile (see ``tests/test_adversarial_properties.py``).
settings.register_profile(
    "long",
    max_examples=2000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(params=ENCODING_NAMES)
def encoding_name(request) -> str:
    return request.param


@pytest.fixture
def tiktoken_enc(tiktoken_encodings, encoding_name):
    """The official tiktoken encoding for the parametrized ``encoding_name``."""
    return tiktoken_encodings[encoding_name]
