"""``compact_history``: keep a history inside its token budget without breaking it.

The work is done by the Rust core in one call per history (read the messages, count
them through the content cache without the GIL, window and repair, rebuild); this module
only resolves the configuration and wraps the report. The algorithm is specified in
``docs/compaction.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from tokensieve import _core
from tokensieve.config import BudgetConfig, resolve_config

if TYPE_CHECKING:  # numpy is imported by the first call that returns an array, not by `import tokensieve`
    import numpy as np
    import numpy.typing as npt

__all__ = ["CompactionResult", "Compactor", "compact_history", "count_history_tokens"]

M = TypeVar("M")
Format = Literal["pydantic-ai", "openai", "responses", "anthropic"]


@dataclass(frozen=True, slots=True)
class CompactionResult:
    """What :meth:`Compactor.compact` did.

    Attributes:
        messages: the history to send: the caller's own message objects where untouched,
            new objects of the same type where parts were removed.
        action: ``"compacted"`` if the window dropped messages, else ``"none"`` (pairing
            repairs may still have happened: see ``orphans_removed``, ``calls_repaired``).
        tokens_before: tokens of the input (plus ``reserved_tokens``).
        tokens_after: tokens of ``messages`` (plus ``reserved_tokens``).
        messages_before: number of input messages.
        messages_after: number of output messages.
        exchanges_kept: exchanges (model responses with the requests that led to them) in
            the output.
        dropped: indices of the input messages that are not in the output.
        orphans_removed: tool results removed because their call was gone (a total: the
            input's own defects and the pairs the window cut).
        calls_repaired: tool calls removed (or stubbed) because their result was gone (a
            total, like ``orphans_removed``).
        input_defects_repaired: of those two totals, the defects of the input itself
            (results answering no call, calls never answered): what a repair of the whole
            input, without any window, makes too.
        pairs_cut_by_window: of those two totals, the call/result pairs valid in the input
            that the window separated (one side cut away with its exchange, the other then
            removed or stubbed): routine when compacting, not a sign of a broken input.
            ``orphans_removed + calls_repaired == input_defects_repaired + pairs_cut_by_window``.
        per_message_tokens: tokens of each input message, as counted.
        format: the history format that was read.
    """

    messages: list[Any]
    action: Literal["none", "compacted"]
    tokens_before: int
    tokens_after: int
    messages_before: int
    messages_after: int
    exchanges_kept: int
    dropped: tuple[int, ...]
    orphans_removed: int
    calls_repaired: int
    input_defects_repaired: int
    pairs_cut_by_window: int
    per_message_tokens: npt.NDArray[np.int64]
    format: Format

    @property
    def tokens_saved(self) -> int:
        """``tokens_before - tokens_after``."""
        return self.tokens_before - self.tokens_after


class Compactor:
    """A compactor bound to one budget, for use before every model request.

    Args:
        config: a :class:`BudgetConfig`, a preset name such as ``"cerebras"``, or None
            for the defaults.
        **overrides: single fields to change, e.g. ``max_exchanges=6``.

    Example:
        >>> from tokensieve import Compactor
        >>> compactor = Compactor("cerebras", max_exchanges=2)
        >>> history = [
        ...     {"role": "system", "content": "You are terse."},
        ...     {"role": "user", "content": "Hi"},
        ... ]
        >>> result = compactor.compact(history)
        >>> (result.action, result.messages == history)
        ('none', True)
    """

    __slots__ = ("config",)

    def __init__(self, config: BudgetConfig | str | None = None, **overrides: Any) -> None:
        self.config: BudgetConfig = resolve_config(config, overrides)

    def __repr__(self) -> str:
        return f"Compactor({self.config!r})"

    def compact(self, messages: Sequence[M], *, format: Format | None = None) -> CompactionResult:
        """Compact ``messages`` (never modified) and report what was done.

        Raises:
            BudgetExceededError: the history is over the hard limit even when compacted.
            InvalidMessageError: a message cannot be read (its index is in the error).
            InputTypeError: ``messages`` is not a list.
        """
        config = self.config
        (out, action, before, after, exchanges, dropped, orphans, calls, defects, cut, per_message, fmt) = (
            _core.compact_history(messages, config._core_budget(), encoding=config.encoding, format=format)
        )
        return CompactionResult(
            messages=out,
            action=action,
            tokens_before=before,
            tokens_after=after,
            messages_before=len(per_message),
            messages_after=len(out),
            exchanges_kept=exchanges,
            dropped=tuple(dropped),
            orphans_removed=orphans,
            calls_repaired=calls,
            input_defects_repaired=defects,
            pairs_cut_by_window=cut,
            per_message_tokens=per_message,
            format=fmt,
        )

    def __call__(self, messages: Sequence[M]) -> list[M]:
        """The compacted messages: makes a Compactor usable as a history processor."""
        return self.compact(messages).messages


def compact_history(
    messages: Sequence[M],
    config: BudgetConfig | str | None = None,
    *,
    format: Format | None = None,
    **overrides: Any,
) -> list[M]:
    """Return ``messages`` cut down to the token budget, as a valid history.

    Call it before every model request. Below the compaction threshold the history comes
    back whole (broken tool-call pairs repaired); above it, the system prompt, the current
    task and the last ``max_exchanges`` exchanges are kept, the oldest dropped until the
    target is met, and every tool call stays with its result. The input is never modified.

    Args:
        messages: pydantic-ai ``ModelMessage`` objects, OpenAI chat-completions dicts,
            OpenAI Responses input items or Anthropic Messages dicts (detected, or named
            with ``format``).
        config: a :class:`BudgetConfig`, a preset name, or None for the defaults.
        format: ``"pydantic-ai"``, ``"openai"``, ``"responses"`` or ``"anthropic"``.
        **overrides: single :class:`BudgetConfig` fields to change.

    Returns:
        A new list of messages.

    Raises:
        BudgetExceededError: over the hard limit even when compacted.
        InvalidMessageError: a message cannot be read (its index is in the error).

    Example:
        >>> from tokensieve import compact_history
        >>> history = [{"role": "user", "content": "Summarize our plan."}]
        >>> compact_history(history, max_input_tokens=8_000, target_input_tokens=2_000) == history
        True
    """
    return Compactor(config, **overrides).compact(messages, format=format).messages


def count_history_tokens(
    messages: Sequence[Any], encoding: str | None = None, *, format: Format | None = None
) -> npt.NDArray[np.int64]:
    """Tokens of each message, exactly as the compactor counts them.

    Example:
        >>> from tokensieve import count_history_tokens
        >>> count_history_tokens([{"role": "user", "content": "Hello, world!"}]).tolist()
        [8]
    """
    return _core.count_history_tokens(messages, encoding=encoding, format=format)
