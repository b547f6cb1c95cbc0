"""The token budget of a model: :class:`BudgetConfig`, its presets and model patterns.

Presets are data (``presets.json`` in the package): per model family, the input window,
the default and maximum output, the tokenizer that best approximates the model, and
rate limits where known. ``BudgetConfig.for_model("provider:model-name")`` picks the
first preset whose pattern matches the name.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import math
import json
import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypedDict, cast

from tokensieve.encodings import (
    FALLBACK_ENCODING,
    _model_encoding,
    encoding_name_for_model,
    is_known_encoding,
    list_encodings,
)
from tokensieve.errors import ConfigurationError, InputTypeError

if TYPE_CHECKING:
    from tokensieve.narrow import ToolOutputPolicy

    if sys.version_info >= (3, 11):
        from typing import Unpack
    else:
        from typing_extensions import Unpack

__all__ = [
    "PRESETS",
    "ROUTES",
    "BudgetConfig",
    "BudgetOverrides",
    "ContextStrategies",
    "MaskStrategy",
    "PruneStrategy",
    "SummaryStrategy",
    "OutputBudgets",
    "load_presets",
    "register_preset",
    "resolve_config",
]

DanglingCalls = Literal["drop", "stub"]


class BudgetOverrides(TypedDict, total=False):
    """The :class:`BudgetConfig` fields that ``**overrides`` accept, with their types.

    ``compact_history``, ``Compactor``, ``preflight``, ``BudgetConfig.preset``,
    ``BudgetConfig.for_model`` and ``BudgetConfig.replace`` take these keywords, so a type
    checker rejects ``max_input_tokens="128k"`` as the run-time validation does.

    Example:
        >>> from tokensieve import BudgetOverrides, compact_history
        >>> overrides: BudgetOverrides = {"max_input_tokens": 20_000, "max_exchanges": 2}
        >>> compact_history([{"role": "user", "content": "hi"}], "cerebras", **overrides)
        [{'role': 'user', 'content': 'hi'}]
    """

    max_input_tokens: int
    compaction_threshold: float
    hard_limit_threshold: float
    target_input_tokens: int
    max_exchanges: int | None
    encoding: str
    reserved_tokens: int
    dangling_calls: DanglingCalls
    output_budgets: OutputBudgets | Mapping[str, int]
    default_max_output_tokens: int
    model_max_output_tokens: int
    tokens_per_minute: int | None
    requests_per_minute: int | None
    tokens_per_day: int | None
    context: ContextStrategies | Mapping[str, Any]


class _BudgetFields(BudgetOverrides, total=False):
    """Every field of :class:`BudgetConfig`: the overrides plus the model's name."""

    model: str | None

#: The task classes of :func:`tokensieve.classify_task`, in the order of OutputBudgets' fields.
TASKS = ("TOOL_CALL", "CODE_GENERATION", "EXPLANATION", "PLANNING", "REVIEW", "UNKNOWN")


@dataclass(frozen=True, slots=True)
class OutputBudgets:
    """Max output tokens for the next request, by task class (the reference design's table).

    Example:
        >>> from tokensieve import OutputBudgets
        >>> OutputBudgets().for_task("CODE_GENERATION")
        3000
    """

    tool_call: int = 300
    code_generation: int = 3000
    explanation: int = 1800
    planning: int = 1200
    review: int = 1500
    unknown: int = 1500

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigurationError(f"output budget {f.name} must be a positive int, got {value!r}")

    def for_task(self, task: str) -> int:
        """The budget of a task class, by its name (``"TOOL_CALL"`` ...) or enum member."""
        name = str(getattr(task, "value", task)).lower()
        try:
            return int(getattr(self, name))
        except AttributeError:
            raise ConfigurationError(f"unknown task class {task!r}; expected one of {', '.join(TASKS)}") from None


def _non_negative_int(owner: str, name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigurationError(f"{owner}.{name} must be an int, 0 or more, got {value!r}")


def _bool(owner: str, name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ConfigurationError(f"{owner}.{name} must be a bool, got {value!r}")


@dataclass(frozen=True, slots=True)
class MaskStrategy:
    """Observation masking: tool outputs older than the last exchanges become a one-line
    placeholder naming the tool, its key argument and what was omitted (the call stays).

    Batched: nothing is masked until masking every waiting output saves at least
    ``min_tokens_saved`` tokens, then all of them are, so the history's prefix (and the
    provider's prompt cache) stays unchanged between batches.

    Example:
        >>> from tokensieve import MaskStrategy
        >>> MaskStrategy(keep_exchanges=5).min_tokens_saved
        1000
    """

    enabled: bool = True
    #: Outputs in the last this many exchanges are never masked.
    keep_exchanges: int = 3
    #: A batch is masked only if it saves at least this many tokens.
    min_tokens_saved: int = 1_000

    def __post_init__(self) -> None:
        _bool("mask", "enabled", self.enabled)
        _non_negative_int("mask", "keep_exchanges", self.keep_exchanges)
        _non_negative_int("mask", "min_tokens_saved", self.min_tokens_saved)


@dataclass(frozen=True, slots=True)
class PruneStrategy:
    """Selective pruning of low-value messages, each rule switchable.

    Every rule is implemented (docs/strategies.md, "Prune"). The rules that replace an
    output (``repeated_calls``, ``superseded_reads``, ``superseded_failures``) keep the call
    and put a one-line pointer in place of the earlier result, so pairing holds for every
    provider and the model still sees the call was made.

    Example:
        >>> from tokensieve import PruneStrategy
        >>> PruneStrategy(acknowledgements=False).superseded_reads
        True
    """

    enabled: bool = True
    #: "ok", "thanks", "got it" turns (English, the classifier's language) and the reply
    #: to them when it calls no tool: removed whole, before the window.
    acknowledgements: bool = True
    #: A failed tool result (an error flag, a pydantic-ai retry prompt, an OpenAI chat or
    #: Responses output whose text says it failed: docs/strategies.md) followed later by a
    #: success of the same tool (same key argument, e.g. path or command, when the call
    #: has one): the failed result becomes a pointer to the later success; the call stays.
    superseded_failures: bool = True
    #: Earlier reads (a tool named like read/cat/view/open/show) made again later with
    #: identical arguments become a pointer to the later read.
    superseded_reads: bool = True
    #: An output the same call (same tool, identical arguments) returned again later: a
    #: pointer to the later call.
    repeated_calls: bool = True

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            _bool("prune", f.name, getattr(self, f.name))


@dataclass(frozen=True, slots=True)
class SummaryStrategy:
    """A summary of what the window drops (and of the outputs masking hid), inserted after
    the system prompt and updated in place by later compactions: the extractive summary
    by default (no model), or ``model``'s in the async entry points.

    Example:
        >>> from tokensieve import SummaryStrategy
        >>> SummaryStrategy().max_tokens
        1000
    """

    enabled: bool = True
    #: The summary's room, taken from ``target_input_tokens`` (at most a tenth of it).
    max_tokens: int = 1_000
    #: A model that writes the summary in ``compact_history_async`` / ``compact_async``
    #: (a pydantic-ai model name, e.g. ``"groq:llama-3.1-8b-instant"``); None: the
    #: extractive summary, which needs no model (the synchronous path always uses it).
    model: str | None = None

    def __post_init__(self) -> None:
        _bool("summary", "enabled", self.enabled)
        _non_negative_int("summary", "max_tokens", self.max_tokens)
        if self.model is not None and (not isinstance(self.model, str) or not self.model):
            raise ConfigurationError(f"summary.model must be a model name or None, got {self.model!r}")


_STEPS: dict[str, type] = {"mask": MaskStrategy, "prune": PruneStrategy, "summary": SummaryStrategy}


@dataclass(frozen=True, slots=True)
class ContextStrategies:
    """The compaction pipeline's steps besides the window, cheapest first: ``mask``,
    ``prune``, ``summary``. Every step is on by default; each is a strategy object, a
    mapping of its fields (as in ``presets.json``), or a bool (False: off).

    Example:
        >>> from tokensieve import BudgetConfig, ContextStrategies
        >>> config = BudgetConfig(context=ContextStrategies(mask={"keep_exchanges": 5}, prune=False))
        >>> (config.context.mask.keep_exchanges, config.context.prune.enabled)
        (5, False)
        >>> ContextStrategies.off().mask.enabled
        False
    """

    mask: MaskStrategy = field(default_factory=MaskStrategy)
    prune: PruneStrategy = field(default_factory=PruneStrategy)
    summary: SummaryStrategy = field(default_factory=SummaryStrategy)

    def __post_init__(self) -> None:
        for name, cls in _STEPS.items():
            value = getattr(self, name)
            if isinstance(value, bool):
                value = cls(enabled=value)
            elif isinstance(value, Mapping):
                try:
                    value = cls(**value)
                except TypeError as e:
                    raise ConfigurationError(f"context.{name}: {e}") from None
            if not isinstance(value, cls):
                raise ConfigurationError(
                    f"context.{name} must be a {cls.__name__}, a mapping of its fields or a bool, "
                    f"got {type(value).__name__}"
                )
            object.__setattr__(self, name, value)

    @classmethod
    def off(cls) -> ContextStrategies:
        """Every step off: the window alone, as before the pipeline."""
        return cls(mask=False, prune=False, summary=False)  # type: ignore[arg-type]

    def _core_strategies(self) -> tuple[tuple[int, int] | None, tuple[bool, bool, bool, bool] | None]:
        mask = (self.mask.keep_exchanges, self.mask.min_tokens_saved) if self.mask.enabled else None
        p = self.prune
        prune = (p.repeated_calls, p.superseded_reads, p.acknowledgements, p.superseded_failures) if p.enabled else None
        return (mask, prune)


@dataclass(frozen=True, slots=True)
class BudgetConfig:
    """How large a history may grow, and how far compaction cuts it back.

    The defaults are the reference design's values for a model with a 50K-token input
    window: compaction starts above 30% of the window, cuts the history down toward 15K
    tokens keeping as many recent exchanges as fit, and a history still above 50% of the
    window is refused. (The ``"cerebras"`` preset also keeps at most 4 exchanges, the
    reference design's setting.)

    Attributes:
        max_input_tokens: the model's input window.
        compaction_threshold: fraction of the window above which the history is compacted.
        hard_limit_threshold: fraction of the window above which a request is refused
            (``BudgetExceededError``) even after compaction.
        target_input_tokens: compaction keeps as many recent exchanges as fit at or below
            this (always at least the last one).
        max_exchanges: an upper bound on the exchanges (a model response and the request
            that led to it) a compacted history keeps; None (the default): no bound, the
            target alone decides.
        encoding: the tokenizer counts are made with: an embedded encoding (``"o200k_base"``,
            ``"cl100k_base"``, ``"o200k_harmony"``, ``"qwen3"``), ``"llama3"``, or a name
            registered with ``load_encoding``; ``for_model`` picks the model's own.
        reserved_tokens: what every request carries besides the history (tool schemas,
            the output budget); it counts against every limit.
        dangling_calls: a tool call whose result was cut away is removed (``"drop"``) or
            answered by a short synthesized result (``"stub"``).
        output_budgets: max output tokens for the next request by task class.
        default_max_output_tokens: max output tokens when nothing better is known.
        model_max_output_tokens: the model's own output ceiling: escalation after a
            response cut off by the output limit doubles the budget up to this.
        tokens_per_minute, requests_per_minute, tokens_per_day: the provider's rate
            limits, where known (None: no limit tracked).
        model: the model this budget is for, if any.
        tool_output: how tool outputs are narrowed (:func:`tokensieve.narrow_tool_output`):
            a :class:`~tokensieve.ToolOutputPolicy`, the name of one in
            ``tool_output.json``, or None for ``"default"``.
        context: the compaction pipeline's steps besides the window (masking, pruning,
            the summary): a :class:`~tokensieve.ContextStrategies` or a mapping of its
            fields; every step on by default (``ContextStrategies.off()``: the window alone).

    Relative and absolute fields: ``compaction_threshold`` and ``hard_limit_threshold``
    are fractions of ``max_input_tokens``; ``target_input_tokens`` is a number of tokens
    derived from the window, so overriding only ``max_input_tokens`` (``replace``, a
    preset's or a model's ``**overrides``) scales it by the same factor
    (``compact_history(h, "cerebras", max_input_tokens=20_000)`` targets 6,000 tokens).
    Everything else is absolute and keeps its value. A combination that still conflicts
    raises :class:`~tokensieve.ConfigurationError` naming the field to pass.

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
    max_exchanges: int | None = None
    encoding: str = "o200k_base"
    reserved_tokens: int = 0
    dangling_calls: DanglingCalls = "drop"
    output_budgets: OutputBudgets = field(default_factory=OutputBudgets)
    default_max_output_tokens: int = 1500
    model_max_output_tokens: int = 8192
    tokens_per_minute: int | None = None
    requests_per_minute: int | None = None
    tokens_per_day: int | None = None
    model: str | None = None
    tool_output: ToolOutputPolicy | str | None = None
    context: ContextStrategies = field(default_factory=ContextStrategies)

    def __post_init__(self) -> None:
        if isinstance(self.context, Mapping):
            object.__setattr__(self, "context", ContextStrategies(**self.context))
        if not isinstance(self.context, ContextStrategies):
            raise ConfigurationError(
                f"context must be a ContextStrategies or a mapping of its fields, got {type(self.context).__name__}"
            )
        if self.tool_output is not None and not isinstance(self.tool_output, str):
            from tokensieve.narrow import ToolOutputPolicy

            if not isinstance(self.tool_output, ToolOutputPolicy):
                raise ConfigurationError(
                    f"tool_output must be a ToolOutputPolicy, a policy name or None, got {type(self.tool_output).__name__}"
                )
        if isinstance(self.output_budgets, Mapping):
            object.__setattr__(self, "output_budgets", OutputBudgets(**self.output_budgets))
        if not isinstance(self.output_budgets, OutputBudgets):
            raise ConfigurationError(f"output_budgets must be OutputBudgets, got {type(self.output_budgets).__name__}")
        for name in ("default_max_output_tokens", "model_max_output_tokens"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigurationError(f"{name} must be a positive int, got {value!r}")
        for name in ("tokens_per_minute", "requests_per_minute", "tokens_per_day"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
                raise ConfigurationError(f"{name} must be a positive int or None, got {value!r}")
        for name in ("max_input_tokens", "target_input_tokens", "max_exchanges", "reserved_tokens"):
            value = getattr(self, name)
            if name == "max_exchanges" and value is None:
                continue
            if not isinstance(value, int) or isinstance(value, bool):
                kind = "an int or None" if name == "max_exchanges" else "an int"
                raise ConfigurationError(f"{name} must be {kind}, got {type(value).__name__}")
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
                f"hard_limit_threshold ({self.hard_limit_threshold}): pass compaction_threshold "
                f"at most {self.hard_limit_threshold} or a larger hard_limit_threshold"
            )
        if self.target_input_tokens > self.hard_limit_tokens:
            raise ConfigurationError(
                f"target_input_tokens ({self.target_input_tokens}) is above the hard limit "
                f"({self.hard_limit_tokens:g} tokens = hard_limit_threshold {self.hard_limit_threshold} * "
                f"max_input_tokens {self.max_input_tokens}): pass target_input_tokens at most "
                f"{math.floor(self.hard_limit_tokens)}, or a larger max_input_tokens or hard_limit_threshold"
            )
        if not isinstance(self.encoding, str) or not is_known_encoding(self.encoding):
            raise ConfigurationError(
                f"encoding must be one of {', '.join(list_encodings())} or llama3 "
                f"(or a name registered with load_encoding), got {self.encoding!r}"
            )
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

    def replace(self, **changes: Unpack[_BudgetFields]) -> BudgetConfig:
        """A copy with some fields changed (validated again).

        A new ``max_input_tokens`` moves what is defined relative to the window with it:
        the thresholds are fractions of the window already, and ``target_input_tokens``
        is scaled by the same factor unless it is given too. Every other field is
        absolute and keeps its value (``max_exchanges``, ``reserved_tokens``, the output
        budgets, the rate limits).

        Example:
            >>> from tokensieve import BudgetConfig
            >>> BudgetConfig().replace(reserved_tokens=2_000).reserved_tokens
            2000
            >>> BudgetConfig.preset("cerebras").replace(max_input_tokens=20_000).target_input_tokens
            6000
        """
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ConfigurationError(f"unknown BudgetConfig field(s): {', '.join(sorted(unknown))}")
        fields: dict[str, Any] = dict(changes)
        window = fields.get("max_input_tokens")
        if (
            "target_input_tokens" not in fields
            and type(window) is int
            and window > 0
            and window != self.max_input_tokens
        ):
            # The target is a share of the window: it follows it (rounded down, so a
            # target at the hard limit stays at or under it).
            fields["target_input_tokens"] = self.target_input_tokens * window // self.max_input_tokens
        return dataclasses.replace(self, **fields)

    @classmethod
    def preset(cls, name: str, **overrides: Unpack[BudgetOverrides]) -> BudgetConfig:
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

    @classmethod
    def for_model(cls, model: str, **overrides: Unpack[BudgetOverrides]) -> BudgetConfig:
        """The budget of a model, by name: ``"provider:model-name"`` or just the model name.

        The first preset (registered ones first, then the shipped ``presets.json`` in
        order) one of whose patterns matches the lower-cased name wins; patterns are
        shell-style (``*cerebras*``, ``openai:gpt-4o*``). No match gives the ``"default"``
        preset. The result's ``model`` is set to the name, and its ``encoding`` to the
        model's own (``encoding_name_for_model``: Llama 3, Qwen 3, gpt-oss's harmony, OpenAI's
        by their published encodings) unless ``encoding`` is among the overrides; a model
        whose tokenizer is unknown or not available keeps the preset's encoding, with an
        ``EncodingFallbackWarning``.

        Example:
            >>> from tokensieve import BudgetConfig
            >>> BudgetConfig.for_model("cerebras:llama-3.3-70b").max_input_tokens
            50000
            >>> BudgetConfig.for_model("openai:gpt-4o").max_input_tokens
            128000
            >>> BudgetConfig.for_model("cerebras:qwen-3-32b").encoding
            'qwen3'
        """
        name = model.lower()
        for preset_name, patterns in _PATTERNS:
            if any(fnmatch.fnmatchcase(name, p) for p in patterns):
                base = PRESETS[preset_name]
                break
        else:
            base = PRESETS["default"]
        if "encoding" not in overrides:
            # Warns (EncodingFallbackWarning) for an unknown or unavailable tokenizer.
            chosen = encoding_name_for_model(model)
            if chosen != FALLBACK_ENCODING or _model_encoding(model) == FALLBACK_ENCODING:
                return base.replace(**overrides, model=model).replace(encoding=chosen)
        return base.replace(**overrides, model=model)

    def max_output_for(self, task: str) -> int:
        """Max output tokens for a task class, capped by the model's own maximum."""
        return min(self.output_budgets.for_task(task), self.model_max_output_tokens)

    def _core_budget(self) -> tuple[int, float, float, int, int | None, int, bool]:
        return (
            self.max_input_tokens,
            float(self.compaction_threshold),
            float(self.hard_limit_threshold),
            self.target_input_tokens,
            self.max_exchanges,
            self.reserved_tokens,
            self.dangling_calls == "stub",
        )


#: Named budgets, from ``presets.json`` plus any registered. ``"cerebras"``: the
#: reference design's 50K-token window, with compaction at 30%, a 15K target, at most 4
#: exchanges (the reference's setting) and requests refused above 50%.
PRESETS: dict[str, BudgetConfig] = {}
#: (preset name, model-name patterns), in matching order.
_PATTERNS: list[tuple[str, tuple[str, ...]]] = []
#: Named route sets for ``UsageTracker(routes=name)``: the ``"routes"`` entry of
#: ``presets.json`` (task class, workload or ``"*"`` -> model). None is used unless asked
#: for: routing a request to another model is the user's choice.
ROUTES: dict[str, dict[str, str]] = {}
#: The key of ``presets.json`` (and of files given to :func:`load_presets`) that holds
#: route sets rather than a preset.
_ROUTES_KEY = "routes"


def _load_routes(data: Any) -> None:
    if not isinstance(data, Mapping):
        raise ConfigurationError("presets: 'routes' must map route-set names to {task or workload: model}")
    for name, entry in data.items():
        if not isinstance(entry, Mapping):
            raise ConfigurationError(f"route set {name!r}: expected a mapping of task or workload to model")
        routes = {k: v for k, v in entry.items() if k != "description"}
        if not all(isinstance(v, str) and v for v in routes.values()):
            raise ConfigurationError(f"route set {name!r}: every route must name a model")
        ROUTES[name] = routes


def _from_data(name: str, data: Mapping[str, Any]) -> tuple[BudgetConfig, tuple[str, ...]]:
    fields = dict(data)
    patterns = fields.pop("patterns", [])
    fields.pop("description", None)
    if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
        raise ConfigurationError(f"preset {name!r}: patterns must be a list of strings")
    # A preset's "summary_model": the model of its summary (context.summary.model).
    summary_model = fields.pop("summary_model", None)
    try:
        config = BudgetConfig(**fields)
        if summary_model is not None:
            summary = dataclasses.replace(config.context.summary, model=summary_model)
            config = config.replace(context=dataclasses.replace(config.context, summary=summary))
        return config, tuple(p.lower() for p in patterns)
    except TypeError as e:
        raise ConfigurationError(f"preset {name!r}: {e}") from None


def register_preset(name: str, config: BudgetConfig, patterns: Iterable[str] = ()) -> None:
    """Add (or replace) a preset; its ``patterns`` match model names before the shipped ones.

    Example:
        >>> from tokensieve import BudgetConfig, register_preset
        >>> register_preset("tiny", BudgetConfig(max_input_tokens=8_000, target_input_tokens=2_000), ["local:tiny-*"])
        >>> BudgetConfig.for_model("local:tiny-1b").max_input_tokens
        8000
    """
    if not isinstance(config, BudgetConfig):
        raise InputTypeError(f"config: expected a BudgetConfig, got {type(config).__name__}")
    PRESETS[name] = config
    patterns = tuple(p.lower() for p in patterns)
    _PATTERNS[:] = [(n, p) for n, p in _PATTERNS if n != name]
    if patterns:
        _PATTERNS.insert(0, (name, patterns))


def load_presets(source: str | os.PathLike[str] | Mapping[str, Any]) -> list[str]:
    """Register every preset of a JSON file (or an already parsed mapping) shaped like the
    shipped ``presets.json``: ``{"name": {"patterns": [...], field: value, ...}, ...}``.
    Returns the names registered. A ``"routes"`` entry adds route sets to ``ROUTES``
    (``{"set name": {"TOOL_CALL": "provider:model", ...}}``) instead."""
    if isinstance(source, Mapping):
        data = source
    else:
        with open(source, encoding="utf-8") as f:
            data = json.load(f)
    names = []
    if _ROUTES_KEY in data:
        _load_routes(data[_ROUTES_KEY])
        data = {k: v for k, v in data.items() if k != _ROUTES_KEY}
    for name, entry in reversed(list(data.items())):
        config, patterns = _from_data(name, entry)
        register_preset(name, config, patterns)
        names.append(name)
    return names[::-1]


def _load_shipped() -> None:
    # A plain path, not importlib.resources: that import alone costs more than 20 ms.
    with open(os.path.join(os.path.dirname(__file__), "presets.json"), encoding="utf-8") as f:
        data = json.load(f)
    _load_routes(data.pop(_ROUTES_KEY, {}))
    for name, entry in data.items():
        config, patterns = _from_data(name, entry)
        PRESETS[name] = config
        if patterns:
            _PATTERNS.append((name, patterns))


_load_shipped()


def resolve_config(config: BudgetConfig | str | None, overrides: BudgetOverrides | Mapping[str, Any]) -> BudgetConfig:
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
    return resolved.replace(**cast("_BudgetFields", overrides)) if overrides else resolved
