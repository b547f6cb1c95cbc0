"""Shared test support: the deterministic corpus, the offline tiktoken reference and
small guards. Importable as ``tests.support`` from both ``tests/`` and ``benches/``."""
