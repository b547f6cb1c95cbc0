"""The exceptions tokensieve raises, all rooted at :class:`TokensieveError`.

Each also derives from the built-in exception whose meaning it shares, so code that
already catches ``ValueError`` or ``TypeError`` keeps working. The Rust core raises
these same classes (see ``rust/src/python/mod.rs``).
"""

from __future__ import annotations

__all__ = [
    "TokensieveError",
    "UnknownEncodingError",
    "InputTypeError",
    "ConfigurationError",
    "InvalidMessageError",
    "BudgetExceededError",
    "BudgetWarning",
]


class TokensieveError(Exception):
    """Base class of every error tokensieve raises."""


class UnknownEncodingError(TokensieveError, ValueError):
    """An encoding name that tokensieve does not offer (it offers o200k_base and cl100k_base)."""


class InputTypeError(TokensieveError, TypeError):
    """An argument of the wrong type, such as a non-string where text is counted."""


class ConfigurationError(TokensieveError, ValueError):
    """An invalid setting, such as a negative cache size."""


class InvalidMessageError(TokensieveError, ValueError):
    """A message of a history that cannot be read: an unknown role or shape, a tool call
    without an id. ``index`` is its position in the list, ``reason`` what was wrong."""

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(f"messages[{index}]: {reason}")
        self.index = index
        self.reason = reason

    def __reduce__(self) -> tuple[type[InvalidMessageError], tuple[int, str]]:
        return type(self), (self.index, self.reason)


class BudgetExceededError(TokensieveError):
    """Even compacted as far as it may be, the history is over the hard limit: the request
    should not be sent. The caller's history is untouched.

    Attributes:
        tokens_before: tokens of the history as given (plus ``reserved_tokens``).
        tokens_after: tokens of the most compacted history allowed.
        limit: the hard limit, ``hard_limit_threshold * max_input_tokens``.
    """

    def __init__(self, tokens_before: int, tokens_after: int, limit: int) -> None:
        super().__init__(
            f"the history needs {tokens_after} tokens after compaction (from {tokens_before}), "
            f"over the hard limit of {limit}"
        )
        self.tokens_before = tokens_before
        self.tokens_after = tokens_after
        self.limit = limit

    def __reduce__(self) -> tuple[type[BudgetExceededError], tuple[int, int, int]]:
        return type(self), (self.tokens_before, self.tokens_after, self.limit)


class BudgetWarning(UserWarning):
    """Issued (``warnings.warn``) when a request approaches a limit: the context window,
    tokens or requests per minute, tokens per day. Also emitted as a ``capacity_warning``
    telemetry event."""


class EncodingFallbackWarning(UserWarning):
    """A model's tokenizer is not available, so its tokens are counted with ``o200k_base``
    (an approximation); the message says how to count exactly."""


def _format_argument(format: object) -> str | None:
    """The value of a ``format=`` argument as a plain ``str`` (None: detect the format).

    A ``str`` subclass is taken by its string value, as the readers take every string
    they read in place: its own ``__eq__``, ``__hash__`` or ``__str__`` are never called,
    so comparing or looking the name up cannot run the caller's code. Anything else is
    an :class:`InputTypeError`.

    Example:
        >>> _format_argument("openai"), _format_argument(None)
        ('openai', None)
    """
    if format is None:
        return None
    if not isinstance(format, str):
        raise InputTypeError(f"format: expected str, got {type(format).__name__}")
    return str.__str__(format)
