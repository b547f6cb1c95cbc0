"""The public API as a user meets it: every public name is what the docs say it is
whatever was imported before, one overridden limit carries the limits derived from it,
and the budget keywords are typed so a type checker catches what run time refuses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from typing import Any

import pytest

import tokensieve
from tokensieve import BudgetConfig, ConfigurationError

# What each public name is documented to be.
CLASSES = {
    "BudgetConfig", "BudgetExceededError", "BudgetOverrides", "BudgetWarning", "CapacityWarning", "Preflight",
    "TaskClassification", "TaskType", "UsageStatus", "UsageTracker", "CacheInfo", "CompactionResult",
    "Compactor", "ConfigurationError", "Encoding", "InputTypeError", "InvalidMessageError", "OutputBudgets",
    "TokensieveError", "UnknownEncodingError", "NarrowResult", "ToolOutputPolicy", "EncodingFallbackWarning",
    "TokensieveError", "UnknownEncodingError", "NarrowResult", "ToolOutputPolicy",
    "ExtractiveSummarizer", "ModelSummarizer", "Summarizer", "Summary",
    "ContextStrategies", "MaskStrategy", "PruneStrategy", "SummaryStrategy", "StepReport",
}
FUNCTIONS = {
    "cache_info", "classify_task", "clear_cache", "compact_history", "compact_history_async", "configure_cache",
    "count_history_tokens",
    "count_request_tokens", "count_tokens", "count_tokens_batch", "get_encoding", "load_presets", "preflight",
    "register_preset", "tiktoken_bpe_file", "narrow_history", "narrow_tool_output",
    "encoding_for_model", "encoding_name_for_model", "list_encodings", "load_encoding",
}
CONSTANTS = {"ENCODINGS": tuple, "PRESETS": dict, "__version__": str}


def test_every_public_name_is_documented_here():
    assert set(tokensieve.__all__) == CLASSES | FUNCTIONS | set(CONSTANTS)


def test_no_public_name_is_also_a_submodule():
    import pkgutil

    submodules = {m.name for m in pkgutil.iter_modules(tokensieve.__path__)}
    assert not submodules & set(tokensieve.__all__), "a public name collides with a submodule"


def test_public_names_are_what_the_docs_say_after_every_submodule_was_imported():
    """Importing ``tokensieve.x`` binds ``x`` on the package: a submodule named like a
    public name (``preflight`` was one) replaces it. A fresh interpreter imports every
    submodule first, then checks every public name."""
    code = textwrap.dedent(
        f"""
        import importlib, inspect, json, pkgutil, types
        import tokensieve
        for info in pkgutil.walk_packages(tokensieve.__path__, "tokensieve."):
            importlib.import_module(info.name)
        from tokensieve import preflight
        preflight([{{"role": "user", "content": "hi"}}])  # callable, as the README uses it
        wrong = []
        for name in tokensieve.__all__:
            value = getattr(tokensieve, name)
            if isinstance(value, types.ModuleType):
                wrong.append((name, "a module"))
            elif name in {sorted(CLASSES)!r} and not inspect.isclass(value):
                wrong.append((name, type(value).__name__))
            elif name in {sorted(FUNCTIONS)!r} and (inspect.isclass(value) or not callable(value)):
                wrong.append((name, type(value).__name__))
        print(json.dumps(wrong))
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


def test_from_tokensieve_import_preflight_is_the_function_after_the_integration_was_imported():
    import tokensieve.integrations.pydantic_ai  # noqa: F401 - imports the preflight machinery

    from tokensieve import preflight

    assert callable(preflight) and preflight.__name__ == "preflight"


# Item 7: overriding one limit.


def test_overriding_the_window_of_a_preset_scales_the_target_with_it():
    history = [{"role": "user", "content": "hi"}]
    assert tokensieve.compact_history(history, "cerebras", max_input_tokens=20_000) == history
    config = tokensieve.Compactor("cerebras", max_input_tokens=20_000).config
    cerebras = tokensieve.PRESETS["cerebras"]
    assert config.target_input_tokens == cerebras.target_input_tokens * 20_000 // cerebras.max_input_tokens == 6_000
    # The thresholds are fractions: unchanged; the absolute fields keep their values.
    assert (config.compaction_threshold, config.hard_limit_threshold) == (
        cerebras.compaction_threshold, cerebras.hard_limit_threshold
    )
    assert (config.max_exchanges, config.reserved_tokens, config.output_budgets) == (
        cerebras.max_exchanges, cerebras.reserved_tokens, cerebras.output_budgets
    )


@pytest.mark.parametrize(
    "make",
    [
        lambda: BudgetConfig.preset("cerebras", max_input_tokens=20_000),
        lambda: BudgetConfig.for_model("cerebras:llama-3.3-70b", max_input_tokens=20_000),
        lambda: tokensieve.preflight([{"role": "user", "content": "hi"}], "cerebras", max_input_tokens=20_000),
        lambda: tokensieve.preflight([{"role": "user", "content": "hi"}], model="cerebras:x", max_input_tokens=20_000),
    ],
)
def test_every_entry_point_scales_the_target_with_an_overridden_window(make):
    made = make()
    config = made if isinstance(made, BudgetConfig) else None
    if config is None:
        assert made.decision == "ok"
    else:
        assert config.target_input_tokens == 6_000


def test_a_larger_window_raises_the_target_too():
    assert BudgetConfig.preset("cerebras", max_input_tokens=100_000).target_input_tokens == 30_000


def test_an_explicit_target_with_the_window_is_kept_as_given():
    config = BudgetConfig.preset("cerebras", max_input_tokens=20_000, target_input_tokens=2_000)
    assert config.target_input_tokens == 2_000


def test_a_target_still_above_the_hard_limit_names_the_field_and_its_largest_value():
    with pytest.raises(ConfigurationError, match=r"pass target_input_tokens at most 10000"):
        BudgetConfig.preset("cerebras", max_input_tokens=20_000, target_input_tokens=15_000)


def test_a_hard_limit_below_the_compaction_threshold_names_the_field_to_pass():
    with pytest.raises(ConfigurationError, match=r"pass compaction_threshold at most 0\.2"):
        BudgetConfig.preset("cerebras", hard_limit_threshold=0.2)


# Item 12: typed overrides.

SNIPPET = """\
from tokensieve import BudgetConfig, Compactor, compact_history, preflight

history = [{"role": "user", "content": "hi"}]
compact_history(history, "cerebras", max_input_tokens=20_000, max_exchanges=2)
compact_history(history, "cerebras", max_input_tokens="128k")
Compactor("cerebras", max_exchanges=2.5)
preflight(history, "cerebras", compaction_threshold="0.3")
BudgetConfig.for_model("openai:gpt-4o", target_input_tokens=None)
BudgetConfig.preset("cerebras", max_input_token=1)
BudgetConfig().replace(dangling_calls="keep")
"""


def test_mypy_rejects_budget_overrides_of_the_wrong_type(tmp_path):
    (tmp_path / "snippet.py").write_text(SNIPPET)
    env = {**os.environ, "MYPY_CACHE_DIR": str(tmp_path / ".mypy_cache")}
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-error-summary", "--ignore-missing-imports", "snippet.py"],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600,
    )
    errors: dict[int, str] = {}
    for line in result.stdout.splitlines():
        if line.startswith("snippet.py:") and ": error:" in line:
            number = int(line.split(":")[1])
            errors[number] = errors.get(number, "") + line
    assert 4 not in errors, errors  # the well-typed call
    expected = {
        5: '"max_input_tokens"',
        6: '"max_exchanges"',
        7: '"compaction_threshold"',
        8: '"target_input_tokens"',
        9: '"max_input_token"',
        10: '"dangling_calls"',
    }
    for number, field in expected.items():
        assert number in errors, f"mypy accepted line {number}: {SNIPPET.splitlines()[number - 1]}\n{result.stdout}"
        assert field in errors[number], errors[number]


# The examples of the API added for issue 9 (the older ones run in test_package.py).


def _documented() -> dict[str, Any]:
    from tokensieve import _preflight, compaction
    from tokensieve.integrations import pydantic_ai

    return {
        "count_request_tokens": tokensieve.count_request_tokens,
        "count_tools_tokens": compaction.count_tools_tokens,
        "BudgetOverrides": tokensieve.BudgetOverrides,
        "Preflight": tokensieve.Preflight,
        "max_tokens_key": _preflight.max_tokens_key,
        "model_name": pydantic_ai.model_name,
        "TokenBudget": pydantic_ai.TokenBudget,
    }


@pytest.mark.parametrize("name", ["count_request_tokens", "count_tools_tokens", "BudgetOverrides", "Preflight",
                                  "max_tokens_key", "model_name", "TokenBudget"])
def test_the_examples_of_the_new_api_pass(name):
    import doctest

    tests = [t for t in doctest.DocTestFinder().find(_documented()[name], name, globs={}) if t.examples]
    assert tests, f"{name} has no examples"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    failures: list[str] = []
    for test in tests:
        runner.run(test, out=failures.append)
    assert runner.failures == 0, "".join(failures)


def test_a_results_counts_and_dropped_indices_made_on_first_read_read_as_plain_fields():
    """``per_message_tokens`` and ``dropped`` are made from the core's compact report when
    first read: they are then what the baseline gives (an int64 array, a tuple of ints),
    the same object on every read and in every thread, and copied, replaced and pickled
    like any field."""
    import dataclasses
    import pickle
    import threading

    import numpy as np

    from tokensieve import Compactor, _bench, baseline

    history = _bench.history(400)
    config = _bench.BENCH_CONFIG.replace(max_input_tokens=60_000, target_input_tokens=20_000)
    expected = baseline.compact(history, config)
    result = Compactor(config).compact(history)
    seen: list[Any] = []
    readers = [threading.Thread(target=lambda: seen.append(result.per_message_tokens)) for _ in range(8)]
    for t in readers:
        t.start()
    for t in readers:
        t.join()
    tokens = result.per_message_tokens
    assert all(s is tokens for s in seen)
    assert type(tokens) is np.ndarray and tokens.dtype == np.int64 and tokens.flags.writeable
    assert tokens.tolist() == expected.per_message_tokens.tolist() == tokensieve.count_history_tokens(history).tolist()
    assert len(result.dropped) > 100 and result.dropped is result.dropped
    assert type(result.dropped) is tuple and result.dropped == expected.dropped
    assert result.messages_before == len(tokens) == len(history)
    replaced = dataclasses.replace(result, action="none")
    assert replaced.dropped == result.dropped and replaced.per_message_tokens is tokens
    copied = pickle.loads(pickle.dumps(result))
    assert copied.dropped == result.dropped and copied.per_message_tokens.tolist() == tokens.tolist()
    fresh = Compactor(config).compact(history)
    assert dataclasses.astuple(fresh)[7] == expected.dropped  # read through the fields too
    assert "per_message_tokens=array(" in repr(Compactor(config).compact(history))
