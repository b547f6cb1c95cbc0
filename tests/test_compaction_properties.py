"""Property tests of ``compact_history`` on random agent histories, in every format.

Histories come from ``tests/support/histories.py`` (agent tool loops with injected
defects), budgets are drawn relative to each history's size so that most examples are
compacted. Each compacted history is checked against the providers' rules
(``tests/support/provider_rules.py``) and against the pure-Python baseline
(``tokensieve.baseline``), which implements ``docs/compaction.md`` independently: both must
return the same messages — the caller's own objects where the Rust core kept them — and
the same report.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

import tokensieve
from tests.support.histories import FORMATS, budget_plans, chance, histories, texts
from tests.support.odd_histories import ODD_HISTORIES
from tests.support.provider_rules import (
    STUB_TEXT,
    _is_placeholder,
    is_stub_message,
    holds_summary,
    is_summary_message,
    system_indices,
    task_index,
    trace,
    violations,
)
from tokensieve import baseline

SETTINGS = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FEWER = settings(SETTINGS, max_examples=50)

REPORT_FIELDS = (
    "action",
    "tokens_before",
    "tokens_after",
    "messages_before",
    "messages_after",
    "exchanges_kept",
    "dropped",
    "orphans_removed",
    "calls_repaired",
    "input_defects_repaired",
    "pairs_cut_by_window",
    "format",
    "steps",
    "target_input_tokens",
    "unchanged_prefix",
)


def draw_case(data, fmt: str, dangling_calls: str = "drop", defects: bool = True) -> tuple[list, dict]:
    """A history in ``fmt`` and BudgetConfig overrides sized to it."""
    messages = data.draw(histories(fmt, defects=defects), label="messages")
    plan = data.draw(budget_plans(dangling_calls), label="budget plan")
    total = int(tokensieve.count_history_tokens(messages, encoding=plan.encoding, format=fmt).sum())
    return messages, plan.overrides(total)


def compact_raw(messages: list, fmt: str | None, overrides: dict) -> tokensieve.CompactionResult:
    return tokensieve.Compactor(**overrides).compact(messages, format=fmt)


def compact(messages: list, fmt: str | None, overrides: dict) -> tokensieve.CompactionResult:
    """``compact_raw``; a history that ends with a request of nothing but orphan results
    (an injected defect) rightly raises "nothing is left to send" (docs/compaction.md,
    section 4) and is rejected here: the properties below are about what compaction
    returns. That error has its own tests (test_compaction_cases.py, and the adversarial
    properties, whose generator knows which histories must raise it)."""
    try:
        return compact_raw(messages, fmt, overrides)
    except tokensieve.InvalidMessageError as error:
        if error.index == len(messages) - 1 and "nothing is left to send" in str(error):
            reject()
        raise


def snapshot(fmt: str, messages: list):
    """Everything about ``messages`` that compaction must leave as it was."""
    identities = [id(m) for m in messages]
    if fmt == "pydantic-ai":
        from pydantic_ai.messages import ModelMessagesTypeAdapter

        parts = [(id(m.parts), [id(p) for p in m.parts]) for m in messages]
        return identities, parts, ModelMessagesTypeAdapter.dump_python(messages)
    return identities, copy.deepcopy(messages)


def reachable_ids(value, found: set | None = None) -> set:
    """ids of the containers and objects (not strings or numbers) inside ``value``."""
    found = set() if found is None else found
    if isinstance(value, (str, bytes, int, float, bool)) or value is None or id(value) in found:
        return found
    found.add(id(value))
    if isinstance(value, dict):
        for item in value.values():
            reachable_ids(item, found)
    elif isinstance(value, (list, tuple)):
        for item in value:
            reachable_ids(item, found)
    elif dataclasses.is_dataclass(value):
        for f in dataclasses.fields(value):
            reachable_ids(getattr(value, f.name, None), found)
    return found


def same(a, b, inputs: set) -> bool:
    """``b`` (the baseline's) stands for ``a`` (the Rust core's): the very object where
    ``a`` is one of the caller's, an equal one otherwise (synthesized results included:
    everything in them, their timestamp too, comes from the input)."""
    if a is b:
        return True
    if id(a) in inputs:
        return False
    if isinstance(a, dict):
        return type(a) is type(b) and list(a) == list(b) and all(same(a[k], b[k], inputs) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y, inputs) for x, y in zip(a, b))
    if dataclasses.is_dataclass(a) and not isinstance(a, type):
        if type(a) is not type(b):
            return False
        return all(same(getattr(a, f.name), getattr(b, f.name), inputs) for f in dataclasses.fields(a))
    return type(a) is type(b) and a == b


def outcome(fn, *args, **kwargs):
    """``("ok", value)``, or ``("error", class, details)`` for the errors both implementations
    raise: a history over the hard limit, a message that cannot be read (a history whose
    format is not named may be detected as another format than it was written in)."""
    try:
        return ("ok", fn(*args, **kwargs))
    except tokensieve.BudgetExceededError as e:
        return ("error", type(e), (e.tokens_before, e.tokens_after, e.limit))
    except tokensieve.InvalidMessageError as e:
        return ("error", type(e), e.index)


def assert_baseline_agrees(messages: list, fmt: str | None, overrides: dict) -> None:
    """The Rust core and the baseline return the same messages and report, or raise the
    same error."""
    rust = outcome(compact_raw, messages, fmt, overrides)
    python = outcome(baseline.compact, messages, format=fmt, **overrides)
    if rust[0] == "error" or python[0] == "error":
        assert python == rust
        return
    rust, python = rust[1], python[1]
    assert {f: getattr(python, f) for f in REPORT_FIELDS} == {f: getattr(rust, f) for f in REPORT_FIELDS}
    assert python.per_message_tokens.tolist() == rust.per_message_tokens.tolist()
    inputs = reachable_ids(messages)
    assert len(python.messages) == len(rust.messages)
    for k, (a, b) in enumerate(zip(rust.messages, python.messages)):
        assert same(a, b, inputs), f"message {k}: the Rust core returned {a!r}, the baseline {b!r}"


# ---- Validity ----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@SETTINGS
@given(data=st.data())
def test_a_compacted_history_satisfies_every_rule_of_its_provider(fmt, data):
    messages, overrides = draw_case(data, fmt)
    result = compact(messages, fmt, overrides)
    assert violations(fmt, result.messages, messages) == []


@pytest.mark.parametrize("fmt", FORMATS)
@FEWER
@given(data=st.data())
def test_with_stubbed_dangling_calls_a_compacted_history_satisfies_every_rule_of_its_provider(fmt, data):
    messages, overrides = draw_case(data, fmt, dangling_calls="stub")
    result = compact(messages, fmt, overrides)
    assert violations(fmt, result.messages, messages) == []


@pytest.mark.parametrize("fmt", FORMATS)
@FEWER
@given(data=st.data())
def test_the_system_prompt_and_the_current_task_are_always_kept(fmt, data):
    messages, overrides = draw_case(data, fmt)
    result = compact(messages, fmt, overrides)
    sources, _ = trace(fmt, result.messages, messages)
    for i in system_indices(fmt, messages):
        assert i in sources, f"system message {i} dropped"
    task = task_index(fmt, messages)
    if task is not None:
        assert task in sources, f"the current task (message {task}) was dropped"


# ---- Budget ------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@SETTINGS
@given(data=st.data())
def test_compaction_never_adds_tokens_and_compacting_again_changes_nothing(fmt, data):
    messages, overrides = draw_case(data, fmt)
    first = compact(messages, fmt, overrides)
    assert first.tokens_after <= first.tokens_before
    second = compact(first.messages, fmt, overrides)
    assert len(second.messages) == len(first.messages)
    changed = [k for k, (a, b) in enumerate(zip(first.messages, second.messages)) if a is not b]
    assert changed == [], f"compacting the output again changed messages {changed}"
    assert (second.dropped, second.orphans_removed, second.calls_repaired) == ((), 0, 0)


@pytest.mark.parametrize("fmt", FORMATS)
@FEWER
@given(data=st.data())
def test_in_stub_mode_compacting_again_changes_nothing_and_compacting_twice_gives_equal_results(fmt, data):
    """Stubs are derived from the input alone and do not move exchange boundaries when
    read again (issue 8, item 4)."""
    messages, overrides = draw_case(data, fmt, dangling_calls="stub")
    try:
        first = compact(messages, fmt, overrides)
    except (tokensieve.BudgetExceededError, tokensieve.InvalidMessageError):
        return
    assert compact(messages, fmt, overrides).messages == first.messages
    second = compact(first.messages, fmt, overrides)
    assert len(second.messages) == len(first.messages)
    changed = [k for k, (a, b) in enumerate(zip(first.messages, second.messages)) if a is not b]
    assert changed == [], f"compacting the output again changed messages {changed}"
    assert (second.dropped, second.orphans_removed, second.calls_repaired) == ((), 0, 0)


@pytest.mark.parametrize("dangling_calls", ["drop", "stub"])
@pytest.mark.parametrize("fmt", FORMATS)
@FEWER
@given(data=st.data())
def test_tokens_after_is_the_token_count_of_the_returned_history(fmt, dangling_calls, data):
    messages, overrides = draw_case(data, fmt, dangling_calls=dangling_calls)
    try:
        result = compact(messages, fmt, overrides)
    except tokensieve.BudgetExceededError:
        return
    recount = tokensieve.count_history_tokens(result.messages, encoding=overrides["encoding"], format=fmt)
    assert result.tokens_after == int(recount.sum()) + overrides["reserved_tokens"]


def test_a_stubbed_legacy_function_call_counts_the_name_its_stub_message_carries():
    history = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": None, "function_call": {"name": "lookup_weather_in_city", "arguments": "{}"}},
        {"role": "user", "content": "next"},
    ]
    result = tokensieve.Compactor(dangling_calls="stub").compact(history, format="openai")
    assert result.messages[2] == {"role": "function", "name": "lookup_weather_in_city", "content": STUB_TEXT}
    assert result.tokens_after == int(tokensieve.count_history_tokens(result.messages, format="openai").sum())


# ---- Objects -----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@SETTINGS
@given(data=st.data())
def test_output_messages_are_the_callers_objects_in_order_or_rebuilt_with_a_subsequence_of_their_parts(fmt, data):
    messages, overrides = draw_case(data, fmt)
    before = snapshot(fmt, messages)
    result = compact(messages, fmt, overrides)
    sources, problems = trace(fmt, result.messages, messages)
    assert problems == []
    # Drop mode synthesizes nothing but the summary: every message comes from the input.
    assert all(i is not None or is_summary_message(fmt, result.messages[k]) for k, i in enumerate(sources))
    assert [i for i in range(len(messages)) if i not in sources] == list(result.dropped)
    for k, i in enumerate(sources):
        if i is None:
            continue
        out = result.messages[k]
        if out is not messages[i]:
            assert type(out) is type(messages[i])
            assert lost_items(fmt, out, messages[i]) or masked_items(fmt, out) or holds_summary(fmt, out), (
                f"output[{k}] is a copy of input[{i}] that lost nothing and masks nothing"
            )
    assert snapshot(fmt, messages) == before, "compaction modified its input"


def masked_items(fmt: str, out) -> bool:
    """Whether ``out`` holds a tool result whose content the mask step replaced."""
    if fmt == "responses":
        return _is_placeholder(out.get("output"))
    if fmt == "openai":
        return _is_placeholder(out.get("content"))
    if fmt == "pydantic-ai":
        return any(_is_placeholder(getattr(p, "content", None)) for p in out.parts)
    return any(isinstance(b, dict) and _is_placeholder(b.get("content")) for b in out["content"])


def lost_items(fmt: str, out, original) -> bool:
    """Whether ``out`` has fewer parts, blocks or tool calls than ``original``."""
    if fmt == "pydantic-ai":
        return len(out.parts) < len(original.parts)
    if fmt == "anthropic":
        return len(out["content"]) < len(original["content"])
    calls = lambda m: len(m.get("tool_calls") or ()) + (m.get("function_call") is not None)  # noqa: E731
    return calls(out) < calls(original)


@pytest.mark.parametrize("fmt", FORMATS)
@FEWER
@given(data=st.data())
def test_stubbed_compaction_never_modifies_its_input_and_adds_only_synthesized_results(fmt, data):
    messages, overrides = draw_case(data, fmt, dangling_calls="stub")
    before = snapshot(fmt, messages)
    try:
        result = compact(messages, fmt, overrides)
    except tokensieve.BudgetExceededError:
        return
    sources, problems = trace(fmt, result.messages, messages)
    assert problems == []
    for k, i in enumerate(sources):
        if i is None:
            assert is_stub_message(fmt, result.messages[k]) or is_summary_message(fmt, result.messages[k])
    assert snapshot(fmt, messages) == before, "compaction modified its input"


# ---- The baseline ------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@SETTINGS
@given(data=st.data())
def test_the_rust_core_and_the_python_baseline_return_the_same_history_and_report(fmt, data):
    messages, overrides = draw_case(data, fmt)
    named = data.draw(st.booleans(), label="format named")
    assert_baseline_agrees(messages, fmt if named else None, overrides)


@FEWER
@given(data=st.data(), dangling_calls=st.sampled_from(["drop", "stub"]))
def test_parts_changed_in_place_after_a_compaction_are_read_anew(data, dangling_calls):
    """The reader remembers pydantic-ai parts (and their argument dicts) by identity; a
    part whose attributes were reassigned, or whose dict was changed in place, since the
    last request must count and pair as it is now."""
    messages, overrides = draw_case(data, "pydantic-ai", dangling_calls=dangling_calls)
    compact(messages, "pydantic-ai", overrides)  # the previous request: parts remembered
    parts = [part for message in messages for part in message.parts]
    ids = sorted({p.tool_call_id for p in parts if isinstance(getattr(p, "tool_call_id", None), str)}) or ["x"]
    for part in data.draw(st.lists(st.sampled_from(parts), max_size=4), label="parts changed") if parts else []:
        change = data.draw(st.sampled_from(["content", "tool_name", "tool_call_id", "args", "part_kind"]), label="change")
        if not hasattr(part, change):
            continue
        if change == "tool_call_id":
            part.tool_call_id = data.draw(st.sampled_from([*ids, "fresh-id"]), label="new id")
        elif change == "args" and isinstance(part.args, dict):
            part.args[data.draw(st.sampled_from(["path", "added"]), label="key")] = data.draw(st.text(max_size=20))
        elif change == "part_kind":
            part.part_kind = data.draw(st.sampled_from(["text", "tool-call", "tool-return"]), label="new kind")
        else:
            setattr(part, change, data.draw(st.text(max_size=40), label="new text"))
    assert_baseline_agrees(messages, "pydantic-ai", overrides)


@pytest.mark.parametrize("fmt", FORMATS)
@FEWER
@given(data=st.data())
def test_with_stubbed_dangling_calls_the_rust_core_and_the_baseline_agree(fmt, data):
    messages, overrides = draw_case(data, fmt, dangling_calls="stub")
    assert_baseline_agrees(messages, fmt, overrides)


@pytest.mark.parametrize("fmt", FORMATS)
@FEWER
@given(data=st.data())
def test_count_history_tokens_equals_the_baseline_per_message_counts(fmt, data):
    messages = data.draw(histories(fmt), label="messages")
    encoding = data.draw(st.sampled_from(["o200k_base", "cl100k_base"]), label="encoding")
    named = data.draw(st.booleans(), label="format named")
    fmt_arg = fmt if named else None
    rust = outcome(lambda: tokensieve.count_history_tokens(messages, encoding=encoding, format=fmt_arg).tolist())
    assert outcome(baseline.count_history_tokens, messages, encoding, format=fmt_arg) == rust


@pytest.mark.parametrize("fmt", FORMATS)
@FEWER
@given(data=st.data())
def test_over_the_hard_limit_the_rust_core_and_the_baseline_raise_the_same_budget_error(fmt, data):
    messages = data.draw(histories(fmt), label="messages")
    total = int(tokensieve.count_history_tokens(messages, format=fmt).sum())
    hard = data.draw(st.sampled_from([0.05, 0.2, 0.5, 0.9]), label="hard limit")
    max_input = max(1, total)
    overrides = {
        "max_input_tokens": max_input,
        "hard_limit_threshold": hard,
        "compaction_threshold": hard * data.draw(st.sampled_from([0.1, 0.5, 1.0]), label="threshold share"),
        "target_input_tokens": int(hard * max_input * data.draw(st.sampled_from([0.0, 0.5, 1.0]), label="target")),
        "max_exchanges": data.draw(st.none() | st.integers(1, 4), label="max exchanges"),
    }
    assert_baseline_agrees(messages, fmt, overrides)


@pytest.mark.parametrize("fmt", FORMATS)
@FEWER
@given(data=st.data())
def test_an_unreadable_message_is_reported_at_the_same_index_by_the_rust_core_and_the_baseline(fmt, data):
    messages = data.draw(histories(fmt), label="messages")
    index = data.draw(st.integers(0, len(messages)), label="index")
    bad = data.draw(st.sampled_from([object(), 42, "text", None]), label="bad message")
    messages = [*messages[:index], bad, *messages[index:]]
    named = data.draw(st.booleans(), label="format named")
    with pytest.raises(tokensieve.InvalidMessageError) as rust:
        compact(messages, fmt if named else None, {})
    with pytest.raises(tokensieve.InvalidMessageError) as python:
        baseline.compact(messages, format=fmt if named else None)
    assert python.value.index == rust.value.index


ODD_CASES = [
    pytest.param(fmt, make, i, id=f"{fmt}-{i}") for fmt, make in ODD_HISTORIES.items() for i in range(len(make()))
]


@pytest.mark.parametrize(("fmt", "make", "index"), ODD_CASES)
def test_the_rust_core_and_the_baseline_read_odd_values_alike(fmt, make, index):
    history = make()[index]
    for named in (fmt, None):
        rust = tokensieve.count_history_tokens(history, format=named).tolist()
        assert baseline.count_history_tokens(history, format=named) == rust
    total = sum(rust)
    for dangling_calls in ("drop", "stub"):
        for max_exchanges in (1, 2, 3, None):
            overrides = {
                "max_input_tokens": 3 * total,
                "compaction_threshold": 0.01,
                "hard_limit_threshold": 1.0,
                "target_input_tokens": 0,
                "max_exchanges": max_exchanges,
                "dangling_calls": dangling_calls,
            }
            assert_baseline_agrees(history, fmt, overrides)


def _pydantic_ai_call_without_id():
    from pydantic_ai.messages import ModelRequest, ModelResponse, ToolCallPart, UserPromptPart

    return [ModelRequest([UserPromptPart("hi")]), ModelResponse([ToolCallPart("t", {}, tool_call_id="")])]


INVALID = [
    pytest.param([{"role": "user", "content": "hi"}, {"role": "wizard", "content": "x"}], "openai", 1, id="openai-unknown-role"),
    pytest.param(
        [{"role": "user", "content": "hi"}, {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "f"}}]}],
        "openai",
        1,
        id="openai-call-without-id",
    ),
    pytest.param([{"role": "user", "content": "hi"}, {"content": "no role"}], "openai", 1, id="openai-no-role"),
    pytest.param([{"role": "user", "content": "hi"}, {"role": "tool", "content": "x"}], "openai", 1, id="openai-tool-without-id"),
    pytest.param([{"role": "user", "content": "hi"}, {"role": "system", "content": "x"}], "anthropic", 1, id="anthropic-system-role"),
    pytest.param(
        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": [{"type": "tool_use", "name": "f", "input": {}}]}],
        "anthropic",
        1,
        id="anthropic-tool-use-without-id",
    ),
    pytest.param([{"role": "user", "content": "hi"}, {"type": "function_call_output", "output": "x"}], "responses", 1, id="responses-output-without-call-id"),
    pytest.param([{"role": "user", "content": "hi"}, {"type": "message", "role": "tool"}], "responses", 1, id="responses-unknown-role"),
    pytest.param([{"role": "user", "content": "hi"}], "pydantic-ai", 0, id="pydantic-ai-given-a-dict"),
    pytest.param(_pydantic_ai_call_without_id(), "pydantic-ai", 1, id="pydantic-ai-call-with-empty-id"),
    pytest.param([{"role": "user", "content": "hi"}, ["not", "a", "message"]], None, 1, id="detected-not-a-message"),
]


@pytest.mark.parametrize(("messages", "fmt", "index"), INVALID)
def test_the_baseline_raises_invalid_message_error_at_the_index_the_rust_core_names(messages, fmt, index):
    with pytest.raises(tokensieve.InvalidMessageError) as rust:
        tokensieve.compact_history(messages, format=fmt)
    with pytest.raises(tokensieve.InvalidMessageError) as python:
        baseline.compact_history(messages, format=fmt)
    assert rust.value.index == python.value.index == index


def _ends_with_an_empty_request():
    from pydantic_ai.messages import ModelRequest

    return ModelRequest([])


def _ends_with_an_orphan_result():
    from pydantic_ai.messages import ModelRequest, ToolReturnPart

    return ModelRequest([ToolReturnPart("grep", "no match", tool_call_id="call_gone")])


@pytest.mark.parametrize("make_last", [_ends_with_an_empty_request, _ends_with_an_orphan_result], ids=["empty", "only-an-orphan-result"])
@pytest.mark.parametrize("dangling_calls", ["drop", "stub"])
def test_a_pydantic_ai_history_ending_with_a_request_still_ends_with_one(make_last, dangling_calls):
    """pydantic-ai refuses a processed history that does not end with a ModelRequest
    ("Processed history must end with a `ModelRequest`.")."""
    from pydantic_ai.messages import ModelRequest, ModelResponse, TextPart, UserPromptPart

    history = [ModelRequest([UserPromptPart("hi")]), ModelResponse([TextPart("hello")]), make_last()]
    out = tokensieve.compact_history(history, dangling_calls=dangling_calls)
    assert out and out[-1].kind == "request", [type(m).__name__ for m in out]


def test_a_stub_result_for_an_anthropic_string_message_keeps_its_text_after_the_results():
    history = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
        {"role": "user", "content": "next question"},
    ]
    result = tokensieve.Compactor(dangling_calls="stub").compact(history, format="anthropic")
    assert result.messages[2]["content"] == [
        {"type": "tool_result", "tool_use_id": "t1", "content": STUB_TEXT},
        {"type": "text", "text": "next question"},
    ]
    assert violations("anthropic", result.messages, history) == []
    recounted = tokensieve.count_history_tokens(result.messages, format="anthropic").sum()
    assert result.tokens_after == recounted


def test_the_baseline_rejects_what_the_rust_core_rejects_outside_messages():
    with pytest.raises(tokensieve.InputTypeError):
        baseline.compact_history("not a list")
    with pytest.raises(tokensieve.ConfigurationError):
        baseline.compact_history([], format="gemini")
    with pytest.raises(tokensieve.ConfigurationError):
        baseline.compact_history([], max_exchanges=0)
    with pytest.raises(tokensieve.UnknownEncodingError):
        baseline.count_history_tokens([], "p50k_base")


def test_the_baseline_builds_the_published_tiktoken_encodings(tiktoken_encodings):
    for name, published in tiktoken_encodings.items():
        built = baseline._tiktoken_encoding(name)
        assert built._pat_str == published._pat_str
        assert built._mergeable_ranks == published._mergeable_ranks


def test_importing_the_baseline_does_not_import_tiktoken_and_a_missing_tiktoken_says_how_to_install_it():
    code = """
import sys
import tokensieve, tokensieve.baseline
assert "tiktoken" not in sys.modules, "tiktoken imported eagerly"
sys.modules["tiktoken"] = None  # as if it were not installed
try:
    tokensieve.baseline.compact_history([{"role": "user", "content": "hi"}])
except ImportError as e:
    assert "pip install tiktoken" in str(e), str(e)
else:
    raise AssertionError("no ImportError")
"""
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_the_baseline_counts_with_an_encoding_object_or_a_name_alike():
    history = [{"role": "user", "content": "Hello, world! 🙂"}]
    by_object = baseline.count_history_tokens(history, tokensieve.get_encoding("cl100k_base"))
    assert by_object == baseline.count_history_tokens(history, "cl100k_base")
    assert by_object == tokensieve.count_history_tokens(history, "cl100k_base").tolist()


# ---- The validators themselves -----------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@FEWER
@given(data=st.data())
def test_the_validators_accept_the_generated_histories_without_defects(fmt, data):
    messages = data.draw(histories(fmt, defects=False), label="messages")
    assert violations(fmt, messages) == []
    assert violations(fmt, messages, messages) == []


BROKEN = [
    pytest.param(
        "openai",
        [{"role": "user", "content": "q"}, {"role": "tool", "tool_call_id": "a", "content": "r"}],
        "does not follow an assistant message with tool_calls",
        id="openai-tool-without-call",
    ),
    pytest.param(
        "openai",
        [
            {"role": "assistant", "content": None, "tool_calls": [{"id": "a", "type": "function", "function": {}}]},
            {"role": "tool", "tool_call_id": "b", "content": "r"},
        ],
        "not found in tool_calls",
        id="openai-wrong-id",
    ),
    pytest.param(
        "openai",
        [
            {"role": "assistant", "content": None, "tool_calls": [{"id": "a", "type": "function", "function": {}}]},
            {"role": "user", "content": "q"},
            {"role": "tool", "tool_call_id": "a", "content": "r"},
        ],
        "without a response",
        id="openai-unanswered",
    ),
    pytest.param(
        "openai",
        [{"role": "assistant", "content": None, "function_call": {"name": "f"}}, {"role": "user", "content": "q"}],
        "legacy function_call not answered",
        id="openai-legacy-unanswered",
    ),
    pytest.param(
        "responses",
        [{"type": "function_call_output", "call_id": "a", "output": "r"}],
        "no tool call found",
        id="responses-orphan",
    ),
    pytest.param(
        "responses",
        [{"type": "function_call", "call_id": "a", "name": "f", "arguments": "{}"}],
        "no tool output found",
        id="responses-dangling",
    ),
    pytest.param(
        "responses",
        [{"type": "reasoning", "summary": []}, {"role": "user", "content": "q"}],
        "without its required following item",
        id="responses-reasoning-alone",
    ),
    pytest.param(
        "anthropic",
        [{"role": "assistant", "content": "hi"}],
        "first message is not from the user",
        id="anthropic-assistant-first",
    ),
    pytest.param(
        "anthropic",
        [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "a", "name": "f", "input": {}}]},
            {"role": "user", "content": "r"},
        ],
        "without tool_result blocks immediately after",
        id="anthropic-unanswered",
    ),
    pytest.param(
        "anthropic",
        [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "a", "name": "f", "input": {}}]},
            {"role": "user", "content": [{"type": "text", "text": "x"}, {"type": "tool_result", "tool_use_id": "a"}]},
        ],
        "a tool_result block after other content",
        id="anthropic-result-not-first",
    ),
    pytest.param(
        "anthropic",
        [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "a", "content": "r"}]}],
        "without a tool_use in the previous message",
        id="anthropic-orphan",
    ),
    pytest.param("anthropic", [{"role": "user", "content": []}], "empty content", id="anthropic-empty"),
]


@pytest.mark.parametrize(("fmt", "messages", "expected"), BROKEN)
def test_the_validators_flag_a_history_that_breaks_a_provider_rule(fmt, messages, expected):
    found = violations(fmt, messages)
    assert any(expected in v for v in found), found


def test_the_pydantic_ai_validator_flags_pairing_and_the_trailing_request():
    from pydantic_ai.messages import ModelRequest, ModelResponse, TextPart, ToolCallPart, ToolReturnPart, UserPromptPart

    source = [
        ModelRequest([UserPromptPart("q")]),
        ModelResponse([ToolCallPart("f", {}, tool_call_id="a")]),
        ModelRequest([ToolReturnPart("f", "r", tool_call_id="b")]),
    ]
    found = violations("pydantic-ai", source)
    assert any("not answered in the next ModelRequest" in v for v in found)
    assert any("answering no call" in v for v in found)
    ends_with_response = [source[0], ModelResponse([TextPart("x")])]
    assert any("does not end with a ModelRequest" in v for v in violations("pydantic-ai", ends_with_response, source))


def test_the_shared_rules_flag_a_dropped_task_and_a_changed_order():
    source = [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    found = violations("openai", [source[2], source[0]], source)
    assert any("out of order" in v for v in found)
    assert any("current task" in v for v in found)


def test_the_validators_judge_split_results_on_the_merged_history():
    """Anthropic merges consecutive user turns and pydantic-ai consecutive requests:
    results of one response split over two messages are valid, unless (Anthropic) one
    would follow text in the merged turn. pydantic-ai's own repair_messages must have
    nothing to change."""
    from pydantic_ai.messages import ModelRequest, ModelResponse, ToolCallPart, ToolReturnPart, UserPromptPart

    def use(*ids):
        return {"role": "assistant", "content": [{"type": "tool_use", "id": i, "name": "f", "input": {}} for i in ids]}

    def res(i, text=None):
        return {"role": "user", "content": [{"type": "tool_result", "tool_use_id": i, "content": "r"}]
                + ([{"type": "text", "text": text}] if text else [])}

    q = {"role": "user", "content": "q"}
    assert violations("anthropic", [q, use("a", "b"), res("a"), res("b", "go on")]) == []
    found = violations("anthropic", [q, use("a", "b"), res("a", "go on"), res("b")])
    assert any("a tool_result block after other content" in v for v in found), found

    split = [
        ModelRequest([UserPromptPart("q")]),
        ModelResponse([ToolCallPart("f", {}, tool_call_id="a"), ToolCallPart("f", {}, tool_call_id="b")]),
        ModelRequest([ToolReturnPart("f", "A", tool_call_id="a"), UserPromptPart("go on")]),
        ModelRequest([ToolReturnPart("f", "B", tool_call_id="b")]),
    ]
    assert violations("pydantic-ai", split) == []
    dangling = [*split[:2], ModelRequest([UserPromptPart("never mind")])]
    found = violations("pydantic-ai", dangling)
    assert any("repair_messages changes the history" in v for v in found), found


# ---- The pipeline's mask step (docs/strategies.md) --------------------------------------

EAGER_MASK = {"mask": {"keep_exchanges": 1, "min_tokens_saved": 0}, "prune": True, "summary": False}


@pytest.mark.parametrize("fmt", FORMATS)
@FEWER
@given(data=st.data())
def test_with_eager_masking_and_pruning_the_output_is_valid_idempotent_and_equal_to_the_baseline(fmt, data):
    messages, overrides = draw_case(data, fmt)
    overrides = {**overrides, "context": EAGER_MASK}
    assert_baseline_agrees(messages, fmt, overrides)
    try:
        first = compact(messages, fmt, overrides)
    except (tokensieve.BudgetExceededError, tokensieve.InvalidMessageError):
        return
    assert violations(fmt, first.messages, messages) == []
    sources, problems = trace(fmt, first.messages, messages)
    assert problems == []
    for i in system_indices(fmt, messages):
        assert i in sources, f"system message {i} dropped"
    task = task_index(fmt, messages)
    if task is not None:
        assert task in sources
    assert compact(messages, fmt, overrides).messages == first.messages  # deterministic
    second = compact(first.messages, fmt, overrides)
    changed = [k for k, (a, b) in enumerate(zip(first.messages, second.messages)) if a is not b]
    assert len(second.messages) == len(first.messages) and changed == [], f"compacting again changed {changed}"


# ---- The prune step's superseded failures (docs/strategies.md) ---------------------------

# Pieces of tool outputs: failures as each format says them, texts that only mention an
# error, and the edges of the detector (first line, blanks, case, exit codes at either end
# of a long output, multi-byte characters at its 4 KiB cuts).
OUTPUT_PIECES = (
    "Error: old_string not found in a.py", "error[E0308]: mismatched types", "fatal: not a git repository",
    'Traceback (most recent call last):\n  File "a.py", line 1\nValueError: bad', "[ERROR] boom", "error",
    "An error occurred while running the tool. Please try again.", "Error executing tool edit_file: bad",
    '{"error": "not found: a.py"}', '{"error": null, "ok": 1}', '{ "error" : "" }', '{"error": false}',
    "cat: a.py: No such file or directory", "bash: pytst: command not found", "exit code: 1", "exit code: 0",
    "Process exited with code 127", '{"stdout": "", "returncode": 2}', "Exit status -1", "Fixed the error in a.py",
    "0 errors, 2 warnings", "Error handling lives in src/errors.py", "\x0c error: after a form feed",
    "\x1cError: after a separator", "\u00a0Error: after a no-break space", "Ｅrror: full width", "é" * 2050,
    "ok", "", "\n", "\r\n",
)  # fmt: skip
OUTPUT_TOOLS = (("edit_file", "path"), ("bash", "command"), ("run", "cmd"), ("read_file", "path"), ("search", None))


FAILURE_OPENINGS = OUTPUT_PIECES[:20]


@st.composite
def tool_outputs(draw) -> str:
    """A failure (one of the pieces that open like one), a success (words), or pieces of
    both in any order; with filler lines before or after (so a pointer saves tokens)."""
    shape = draw(st.sampled_from(["failure", "success", "mixed"]))
    if shape == "failure":
        pieces = [draw(st.sampled_from(FAILURE_OPENINGS))]
    elif shape == "success":
        pieces = [draw(texts)]
    else:
        pieces = draw(st.lists(st.sampled_from(OUTPUT_PIECES) | texts, min_size=1, max_size=4))
    text = draw(st.sampled_from(["\n", " ", "\r\n", ""])).join(pieces)
    filler = "\n".join(f"line {i} of the output" for i in range(draw(st.integers(0, 80))))
    return draw(st.sampled_from([text + "\n" + filler, text, filler + "\n" + text]))


@st.composite
def failed_then_succeeded(draw, fmt: str) -> list:
    """Tool calls in ``fmt`` (OpenAI chat, Responses, pydantic-ai) to a few tools on a few
    key arguments, so the same call fails and succeeds in turn: outputs that say they failed
    (or only mention an error), pydantic-ai retry prompts (a string, a list of validation
    errors, or none with no tool_name) and returns with a failed or retried outcome."""
    import warnings

    from pydantic_ai.messages import (
        ModelRequest, ModelResponse, RetryPromptPart, SystemPromptPart, TextPart, ToolCallPart, ToolReturnPart,
        UserPromptPart,
    )  # fmt: skip

    if fmt == "pydantic-ai":
        h: list = [ModelRequest(parts=[SystemPromptPart("sys"), UserPromptPart("fix the bug")])]
    else:
        h = [{"role": "system", "content": "sys"}, {"role": "user", "content": "fix the bug"}]
    tools = draw(st.lists(st.sampled_from(OUTPUT_TOOLS), min_size=1, max_size=2, unique=True))
    for k in range(draw(st.integers(2, 8))):
        tool, field = draw(st.sampled_from(tools))
        args: dict = {field: draw(st.sampled_from(["a.py", "b.py"]))} if field else {"q": draw(st.sampled_from("xy"))}
        if chance(draw, 30):
            args["attempt"] = k
        output = draw(tool_outputs())
        cid = f"c{k}"
        if fmt == "openai":
            call = {"id": cid, "type": "function", "function": {"name": tool, "arguments": json.dumps(args)}}
            h.append({"role": "assistant", "content": None, "tool_calls": [call]})
            h.append({"role": "tool", "tool_call_id": cid, "content": output})
        elif fmt == "responses":
            h.append({"type": "function_call", "call_id": cid, "name": tool, "arguments": json.dumps(args)})
            h.append({"type": "function_call_output", "call_id": cid, "output": output})
        else:
            h.append(ModelResponse(parts=[ToolCallPart(tool, args, tool_call_id=cid)]))
            kind = draw(st.sampled_from(["return", "return", "retry", "retry-errors", "retried", "failed", "output-retry"]))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # RetryPromptPart is deprecated, still in stored histories
                if kind == "retry":
                    part = RetryPromptPart(output, tool_name=tool, tool_call_id=cid)
                elif kind == "retry-errors":
                    errors = [{"type": "missing", "loc": (field or "q",), "msg": output[:80], "input": args}]
                    part = RetryPromptPart(errors, tool_name=tool, tool_call_id=cid)
                elif kind in ("retried", "failed"):
                    part = ToolReturnPart(tool, output, tool_call_id=cid, outcome=kind)
                else:
                    part = ToolReturnPart(tool, output, tool_call_id=cid)
            h.append(ModelRequest(parts=[part]))
            if kind == "output-retry":  # an output validation retry: no tool_name, answers no call
                h.append(ModelResponse(parts=[TextPart("not JSON")]))
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    h.append(ModelRequest(parts=[RetryPromptPart("Please return JSON. " + output, tool_call_id=f"o{k}")]))
    if fmt == "pydantic-ai":
        return [*h, ModelResponse(parts=[TextPart("Done.")]), ModelRequest(parts=[UserPromptPart("and now?")])]
    return [*h, {"role": "assistant", "content": "Done."}, {"role": "user", "content": "and now?"}]


FAILURE_POINTER = "[tokensieve pruned a failed attempt of "
PRUNE_CONTEXTS = (
    {"mask": False, "prune": True, "summary": False},
    {"mask": {"keep_exchanges": 1, "min_tokens_saved": 0}, "prune": True, "summary": False},
)


def result_texts(fmt: str, messages: list) -> dict[str, Any]:
    """Each result's content by its call id (and a retry prompt's part kind)."""
    out = {}
    for m in messages:
        if fmt == "openai" and m.get("role") == "tool":
            out[m["tool_call_id"]] = m["content"]
        elif fmt == "responses" and "call_id" in m and "output" in m:
            out[m["call_id"]] = m["output"]
        elif fmt == "pydantic-ai":
            for p in m.parts:
                if p.part_kind in ("tool-return", "retry-prompt"):
                    out[p.tool_call_id] = (p.part_kind, p.content, getattr(p, "outcome", None))
    return out


@pytest.mark.parametrize("fmt", ["openai", "responses", "pydantic-ai"])
@SETTINGS
@given(data=st.data())
def test_failed_then_succeeded_tool_calls_are_pruned_alike_by_the_core_and_the_baseline_and_stay_valid(fmt, data):
    messages = data.draw(failed_then_succeeded(fmt), label="messages")
    total = int(tokensieve.count_history_tokens(messages, format=fmt).sum())
    context = data.draw(st.sampled_from(PRUNE_CONTEXTS), label="context")
    overrides = {
        "max_input_tokens": 2 * total + 100,
        "compaction_threshold": 0.01,
        "hard_limit_threshold": 1.0,
        "target_input_tokens": 2 * total + 100,
        "context": context,
    }
    assert_baseline_agrees(messages, fmt, overrides)
    first = compact(messages, fmt, overrides)
    assert violations(fmt, first.messages, messages) == []
    second = compact(first.messages, fmt, overrides)
    changed = [k for k, (a, b) in enumerate(zip(first.messages, second.messages)) if a is not b]
    assert len(second.messages) == len(first.messages) and changed == [], f"compacting again changed {changed}"
    # Every failure pointer replaced a result the rule reads as failed, of a call made
    # again later with the same tool and key argument; retry prompts are never masked.
    before, after = result_texts(fmt, messages), result_texts(fmt, first.messages)
    for cid, content in after.items():
        kind, text, _ = content if fmt == "pydantic-ai" else ("", content, None)
        if kind == "retry-prompt":
            assert not (isinstance(text, str) and text.startswith("[tokensieve masked")), cid
        if isinstance(text, str) and text.startswith(FAILURE_POINTER):
            k = int(cid[1:])
            original = before[cid][1] if fmt == "pydantic-ai" else before[cid]
            assert original != text
            label = text[len(FAILURE_POINTER) :].split(": superseded")[0]
            later = [
                c for c in range(k + 1, 10) if f"c{c}" in before and label_of(fmt, messages, f"c{c}") == label
            ]
            assert later, f"{cid} pruned as {label} with no later call of it"
            if fmt == "pydantic-ai":
                assert before[cid][0] == "retry-prompt" or before[cid][2] in ("failed", "retried")
            else:
                tool, field = label.split("(")[0], (label.split("(")[1].split("=")[0] if "(" in label else None)
                assert baseline._says_failed(original, baseline.runs_command(tool, field))


def label_of(fmt: str, messages: list, cid: str) -> str | None:
    """The pointer label (``tool(key=value)``) of call ``cid`` in ``messages``."""
    for m in messages:
        if fmt == "openai" and m.get("tool_calls"):
            for c in m["tool_calls"]:
                if c["id"] == cid:
                    return _label(c["function"]["name"], json.loads(c["function"]["arguments"]))
        elif fmt == "responses" and m.get("type") == "function_call" and m["call_id"] == cid:
            return _label(m["name"], json.loads(m["arguments"]))
        elif fmt == "pydantic-ai" and m.kind == "response":
            for p in m.parts:
                if p.part_kind == "tool-call" and p.tool_call_id == cid:
                    return _label(p.tool_name, p.args)
    return None


def _label(tool: str, args: dict) -> str:
    key = next(((k, v) for k, v in args.items() if k in ("path", "command", "cmd")), None)
    return tool if key is None else f"{tool}({key[0]}={key[1]})"
