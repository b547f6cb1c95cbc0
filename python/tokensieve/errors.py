"""The exceptions tokensieve raises, all rooted at :class:`TokensieveError`.

Each also derives from the built-in exception whose meaning it shares, so code that
already catches ``ValueError`` or ``TypeError`` keeps working. The Rust core raises
these same classes (see ``rust/src/python.rs``).
"""

from __future__ import annotations

__all__ = [
    "TokensieveError",
    "UnknownEncodingError",
    "InputTypeError",
    "ConfigurationError",
]


class TokensieveError(Exception):
    """Base class of every error tokensieve raises."""


class UnknownEncodingError(TokensieveError, ValueError):
    """An encoding name that tokensieve does not offer (it offers o200k_base and cl100k_base)."""


class InputTypeError(TokensieveError, TypeError):
    """An argument of the wrong type, such as a non-string where text is counted."""


class ConfigurationError(TokensieveError, ValueError):
    """An invalid setting, such as a negative cache size."""
