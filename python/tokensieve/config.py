"""The token budget a history is compacted to: :class:`BudgetConfig` and its presets."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from tokensieve._core import ENCODINGS
from tokensieve.errors import ConfigurationError, InputTypeError

__all__ = ["BudgetConfig", "resolve_config", "PRESETS"]

DanglingCalls = Literal["drop", "stub"]


@dataclass(frozen=True, slots=True)
class BudgetConfig:
    """How large a history may grow, and how far compaction cuts it back.

    The defaults are the reference design's values for a model with a 50K-token input
    window (the ``"cerebras"`` preset): compaction starts above 30% of the window, cuts
    the history down toward 15K tokens keeping at most 4 exchanges, and a history still
    above 50% of the window is refused.

    Attributes:
        max_input_tokens: the model's input window.
        compaction_threshold: fraction of the window above which the history is compacted.
        hard_limit_threshold: fraction of the window above which a request is refused
            (``BudgetExceededError``) even after compaction.
        target_input_tokens: compaction drops the oldest exchanges until the history is at
            or below this (keeping at least one exchange).
        max_exchanges: the most exchanges (a model response and the request that led to it)
            a compacted history keeps.
        encoding: the tokenizer counts are made with (``"o200k_base"`` or ``"cl100k_base"``).
        reserved_tokens: what every request carries besides the history (tool schemas,
            the output budget); it counts against every limit.
        dangling_calls: a tool call whose result was cut away is removed (``"drop"``) or
            answered by a short synthesized result (``"stub"``).

    Example:
        >>> from tokensieve import BudgetConfig
        >>> config = BudgetConfig(max_input_tokens=128_000, target_input_tokens=30_000)
        >>> config.compaction_tokens
        38400.0
        >>> config.replace(max_exchanges=8).max_exchanges
        8
    """

    max_input_tokens: int = 50_000
    compaction_threshold: float = 0.30
    hard_limit_threshold: float = 0.50
    target_input_tokens: int = 15_000
    max_exchanges: int = 4
    encoding: str = "o200k_base"
    reserved_tokens: int = 0
    dangling_calls: DanglingCalls = "drop"

    def __post_init__(self) -> None:
        for name in ("max_input_tokens", "target_input_tokens", "max_exchanges", "reserved_tokens"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ConfigurationError(f"{name} must be an int, got {type(value).__name__}")
            if value < 0:
                raise ConfigurationError(f"{name} must be 0 or more, got {value}")
        if self.max_input_tokens == 0:
            raise ConfigurationError("max_input_tokens must be positive")
        if self.max_exchanges == 0:
            raise ConfigurationError("max_exchanges must be at least 1")
        for name in ("compaction_threshold", "hard_limit_threshold"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise ConfigurationError(f"{name} must be a number, got {type(value).__name__}")
            if not 0 < value <= 1:
                raise ConfigurationError(f"{name} must be in (0, 1], got {value}")
        if self.compaction_threshold > self.hard_limit_threshold:
            raise ConfigurationError(
                f"compaction_threshold ({self.compaction_threshold}) is above "
                f"hard_limit_threshold ({self.hard_limit_threshold})"
            )
        if self.target_input_tokens > self.hard_limit_tokens:
            raise ConfigurationError(
                f"target_input_tokens ({self.target_input_tokens}) is above the hard limit "
                f"({self.hard_limit_tokens:g} tokens = hard_limit_threshold * max_input_tokens)"
            )
        if self.encoding not in ENCODINGS:
            raise ConfigurationError(f"encoding must be one of {', '.join(ENCODINGS)}, got {self.encoding!r}")
        if self.dangling_calls not in ("drop", "stub"):
            raise ConfigurationError(f"dangling_calls must be 'drop' or 'stub', got {self.dangling_calls!r}")

    @property
    def compaction_tokens(self) -> float:
        """Above this many tokens the history is compacted."""
        return self.compaction_threshold * self.max_input_tokens

    @property
    def hard_limit_tokens(self) -> float:
        """Above this many tokens, even after compaction, a request is refused."""
        return self.hard_limit_threshold * self.max_input_tokens

    def replace(self, **changes: Any) -> BudgetConfig:
        """A copy with some fields changed (validated again).

        Example:
            >>> from tokensieve import BudgetConfig
            >>> BudgetConfig().replace(reserved_tokens=2_000).reserved_tokens
            2000
        """
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ConfigurationError(f"unknown BudgetConfig field(s): {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **changes)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> BudgetConfig:
        """The preset called ``name`` (see ``PRESETS``), with ``overrides`` applied.

        Example:
            >>> from tokensieve import BudgetConfig
            >>> BudgetConfig.preset("cerebras").max_input_tokens
            50000
        """
        try:
            base = PRESETS[name]
        except KeyError:
            raise ConfigurationError(f"unknown preset {name!r}; presets: {', '.join(sorted(PRESETS))}") from None
        return base.replace(**overrides) if overrides else base

    def _core_budget(self) -> tuple[int, float, float, int, int, int, bool]:
        return (
            self.max_input_tokens,
            float(self.compaction_threshold),
            float(self.hard_limit_threshold),
            self.target_input_tokens,
            self.max_exchanges,
            self.reserved_tokens,
            self.dangling_calls == "stub",
        )


#: Named budgets. ``"cerebras"``: the reference design's 50K-token window, with
#: compaction at 30%, a 15K target, 4 exchanges and requests refused above 50%.
PRESETS: dict[str, BudgetConfig] = {
    "cerebras": BudgetConfig(),
}


def resolve_config(config: BudgetConfig | str | None, overrides: dict[str, Any]) -> BudgetConfig:
    """``config`` as a :class:`BudgetConfig`: itself, a preset by name, or the defaults;
    then ``overrides`` applied."""
    if config is None:
        resolved = BudgetConfig()
    elif isinstance(config, str):
        resolved = BudgetConfig.preset(config)
    elif isinstance(config, BudgetConfig):
        resolved = config
    else:
        raise InputTypeError(f"config: expected a BudgetConfig, a preset name or None, got {type(config).__name__}")
    return resolved.replace(**overrides) if overrides else resolved
