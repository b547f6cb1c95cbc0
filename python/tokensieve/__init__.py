"""tokensieve: keep an LLM agent's conversation history inside a token budget.

``compact_history(messages)`` before each model request keeps the system prompt, the
current task and the last exchanges, and never separates a tool call from its result.
Counting is exact tiktoken counting in Rust (OpenAI's o200k_base, cl100k_base and gpt-oss's
o200k_harmony, Qwen 2.5/3, Llama 3 from its own file, any byte-level BPE ``tokenizer.json``
through ``load_encoding``), with vocabularies embedded in the binary and a content cache,
so re-counting a growing history only tokenizes what is new.

Example:
    >>> import tokensieve
    >>> tokensieve.count_tokens("How many tokens is this?")
    6
"""

from __future__ import annotations

# `import tokensieve` loads the compiled core and the exceptions only (about 2 ms): the
# first count of a fresh process pays for nothing else. Everything written in Python
# (compaction, budgets and presets, usage tracking, narrowing, summaries) loads on first
# use through the module ``__getattr__`` below, so typing, dataclasses, json, re, sqlite3
# and the telemetry shim are not imported by counting. tests/test_package.py checks that.
from tokensieve import _core
from tokensieve._core import (
    ENCODINGS,
    Encoding,
    clear_cache,
    configure_cache,
    count_tokens,
    count_tokens_batch,
    get_encoding,
    tiktoken_bpe_file,
)
from tokensieve.errors import (
    BudgetExceededError,
    BudgetWarning,
    ConfigurationError,
    InputTypeError,
    InvalidMessageError,
    TokensieveError,
    UnknownEncodingError,
)

# ``typing`` costs a few milliseconds to import: type checkers read this name as True.
TYPE_CHECKING = False

__version__: str = _core.__version__

__all__ = [
    "ENCODINGS",
    "PRESETS",
    "BudgetConfig",
    "BudgetExceededError",
    "BudgetOverrides",
    "BudgetWarning",
    "CapacityWarning",
    "Preflight",
    "TaskClassification",
    "TaskType",
    "UsageStatus",
    "UsageTracker",
    "CacheInfo",
    "CompactionResult",
    "Compactor",
    "ConfigurationError",
    "Encoding",
    "InputTypeError",
    "InvalidMessageError",
    "NarrowResult",
    "ToolOutputPolicy",
    "OutputBudgets",
    "TokensieveError",
    "UnknownEncodingError",
    "__version__",
    "cache_info",
    "classify_task",
    "clear_cache",
    "compact_history",
    "compact_history_async",
    "configure_cache",
    "count_history_tokens",
    "count_request_tokens",
    "count_tokens",
    "count_tokens_batch",
    "get_encoding",
    "load_presets",
    "narrow_history",
    "narrow_tool_output",
    "preflight",
    "register_preset",
    "tiktoken_bpe_file",
    "EncodingFallbackWarning",
    "encoding_for_model",
    "encoding_name_for_model",
    "list_encodings",
    "load_encoding",
    "ExtractiveSummarizer",
    "ModelSummarizer",
    "Summarizer",
    "Summary",
    "ContextStrategies",
    "MaskStrategy",
    "PruneStrategy",
    "SummaryStrategy",
    "StepReport",
]


def cache_info() -> CacheInfo:
    """Hits, misses and size of the content cache that every count goes through.

    Texts shorter than ``tokensieve._core.MIN_CACHED_BYTES`` are counted directly and
    do not appear here.

    Example:
        >>> import tokensieve
        >>> tokensieve.clear_cache()
        >>> text = "a message long enough to be worth caching, " * 3
        >>> tokensieve.count_tokens(text) == tokensieve.count_tokens(text)
        True
        >>> info = tokensieve.cache_info()
        >>> (info.hits, info.misses, info.size)
        (1, 1, 1)
    """
    from tokensieve._cache_info import CacheInfo

    return CacheInfo(*_core.cache_info())


# Public names defined in Python modules, each imported when first asked for.
_LAZY = {
    "CacheInfo": "tokensieve._cache_info",
    "CompactionResult": "tokensieve.compaction",
    "Compactor": "tokensieve.compaction",
    "StepReport": "tokensieve.compaction",
    "compact_history": "tokensieve.compaction",
    "compact_history_async": "tokensieve.compaction",
    "count_history_tokens": "tokensieve.compaction",
    "count_request_tokens": "tokensieve.compaction",
    "PRESETS": "tokensieve.config",
    "BudgetConfig": "tokensieve.config",
    "BudgetOverrides": "tokensieve.config",
    "OutputBudgets": "tokensieve.config",
    "load_presets": "tokensieve.config",
    "register_preset": "tokensieve.config",
    "ContextStrategies": "tokensieve.config",
    "MaskStrategy": "tokensieve.config",
    "PruneStrategy": "tokensieve.config",
    "SummaryStrategy": "tokensieve.config",
    "CapacityWarning": "tokensieve.usage",
    "UsageStatus": "tokensieve.usage",
    "UsageTracker": "tokensieve.usage",
    "TaskClassification": "tokensieve.classify",
    "TaskType": "tokensieve.classify",
    "classify_task": "tokensieve.classify",
    "Preflight": "tokensieve._preflight",
    "preflight": "tokensieve._preflight",
    "NarrowResult": "tokensieve.narrow",
    "ToolOutputPolicy": "tokensieve.narrow",
    "narrow_history": "tokensieve.narrow",
    "narrow_tool_output": "tokensieve.narrow",
    "EncodingFallbackWarning": "tokensieve.errors",
    "encoding_for_model": "tokensieve.encodings",
    "encoding_name_for_model": "tokensieve.encodings",
    "list_encodings": "tokensieve.encodings",
    "load_encoding": "tokensieve.encodings",
    "Summary": "tokensieve.summarize",
    "Summarizer": "tokensieve.summarize",
    "ExtractiveSummarizer": "tokensieve.summarize",
    "ModelSummarizer": "tokensieve.summarize",
}

if TYPE_CHECKING:
    from typing import Any

    from tokensieve._cache_info import CacheInfo
    from tokensieve.compaction import (
        CompactionResult,
        Compactor,
        StepReport,
        compact_history,
        compact_history_async,
        count_history_tokens,
        count_request_tokens,
    )
    from tokensieve.config import PRESETS, BudgetConfig, BudgetOverrides, OutputBudgets, load_presets, register_preset
    from tokensieve.config import ContextStrategies, MaskStrategy, PruneStrategy, SummaryStrategy
    from tokensieve.classify import TaskClassification, TaskType, classify_task
    from tokensieve._preflight import Preflight, preflight
    from tokensieve.narrow import NarrowResult, ToolOutputPolicy, narrow_history, narrow_tool_output
    from tokensieve.summarize import ExtractiveSummarizer, ModelSummarizer, Summarizer, Summary
    from tokensieve.usage import CapacityWarning, UsageStatus, UsageTracker
    from tokensieve.encodings import encoding_for_model, encoding_name_for_model, list_encodings, load_encoding
    from tokensieve.errors import EncodingFallbackWarning


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tokensieve' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
