"""Named, hand-built cases for ``compact_history`` (the contract: ``docs/compaction.md``).

Each rule is checked in every format it applies to: a history is written once as
format-neutral events (``tests/support/agent_fixtures.py``), built as OpenAI chat
dicts, Responses items, Anthropic dicts and pydantic-ai messages, and read back as the
same neutral tokens (``sys:…``, ``user:…``, ``text:…``, ``call:id``, ``ret:id``,
``ret:id:stub``). Every compaction also goes through :func:`compact`, which checks what
holds for any call: the caller's list is not modified, no Rust panic, the output obeys
its provider's rules, and the reported counts are the counts of the output.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import enum
import json
from typing import Any

import numpy as np
import pytest
from pydantic_ai import RequestUsage
from pydantic_ai.messages import (
    BinaryContent,
    FilePart,
    ImageUrl,
    ModelRequest,
    ModelResponse,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)

import tokensieve
from tokensieve import baseline
from tests.support.agent_fixtures import (
    FORMATS,
    STUB_TEXT,
    TOOL,
    USER_FIRST,
    WITH_SYSTEM,
    assert_valid,
    assistant,
    build,
    calls,
    count_exchanges,
    expected,
    flatten,
    results,
    sides,
    system,
    thinking_response,
    user,
)
from tests.support.guards import call_without_panic, raises_cleanly
from tokensieve.config import resolve_config

OVERHEAD = 4  # MESSAGE_OVERHEAD
BINARY = 765  # BINARY_PART_TOKENS
DATETIME = datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.timezone.utc)


def window(k: int, **extra: Any) -> dict[str, Any]:
    """A budget that always compacts and stops at ``k`` exchanges (the target never binds)."""
    budget = dict(
        max_input_tokens=1_000_000,
        compaction_threshold=1e-6,
        hard_limit_threshold=1.0,
        target_input_tokens=1_000_000,
        max_exchanges=k,
    )
    return budget | extra


def tool_loop(n: int, *, start: int = 0, size: int = 40) -> list:
    """``n`` model responses each calling one tool, each answered by the next request."""
    events = []
    for i in range(start, start + n):
        events += [calls(f"c{i}"), results(f"c{i}", size=size)]
    return events


def compact(fmt: str, messages: list[Any], config: Any = None, **overrides: Any) -> tokensieve.CompactionResult:
    """Compact, and check what must hold for every compaction."""
    snapshot = copy.deepcopy(messages)
    identities = [id(m) for m in messages]
    length = len(messages)
    # These are the window's cases (docs/compaction.md): the summary step, on by default,
    # is off here unless a case sets the steps (its own cases: tests/test_strategies.py).
    resolved = resolve_config(config, overrides)
    if "context" not in overrides:
        resolved = resolved.replace(context=dataclasses.replace(resolved.context, summary=False))
    compactor = tokensieve.Compactor(resolved)
    result = call_without_panic(compactor.compact, messages, format=fmt)
    # The caller's list and messages are untouched.
    assert len(messages) == length and [id(m) for m in messages] == identities
    assert messages == snapshot, "the input history was modified"
    # A new list, in the format that was read, valid for the provider.
    assert result.messages is not messages
    assert result.format == fmt
    assert_valid(fmt, result.messages)
    # The report describes the output.
    reserved = compactor.config.reserved_tokens
    assert result.messages_before == length and result.messages_after == len(result.messages)
    assert result.per_message_tokens.dtype == np.int64 and len(result.per_message_tokens) == length
    assert result.tokens_before == int(result.per_message_tokens.sum()) + reserved
    recount = tokensieve.count_history_tokens(result.messages, format=fmt) if result.messages else np.zeros(0)
    assert result.tokens_after == int(recount.sum()) + reserved
    assert result.exchanges_kept == count_exchanges(fmt, result.messages)
    assert result.tokens_after <= result.tokens_before or compactor.config.dangling_calls == "stub"
    if compactor.config.dangling_calls == "drop":
        assert len(result.messages) == length - len(result.dropped)
        for i, m in enumerate(messages):
            if any(m is o for o in result.messages):
                assert i not in result.dropped
    return result


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_format_of_a_tool_using_history_is_detected(fmt):
    history = build(fmt, [system("sys"), user("the task"), *tool_loop(2), assistant("done")])
    assert tokensieve.Compactor().compact(history).format == fmt
    assert tokensieve.compact_history(history) == history


# ---- 1. what is pinned ------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 2, 3, 4])
@pytest.mark.parametrize("fmt", WITH_SYSTEM)
def test_system_prompt_is_kept_on_every_cut(fmt, k):
    history = build(fmt, [system("Be terse."), user("the task"), *tool_loop(6), assistant("done"), user("next")])
    out = flatten(fmt, compact(fmt, history, **window(k)).messages)
    assert out[0] == "sys:Be terse."
    assert out.count("sys:Be terse.") == 1


@pytest.mark.parametrize("fmt", ["openai", "responses"])
def test_a_system_message_in_the_middle_is_pinned_too(fmt):
    events = [system("Be terse."), user("the task"), *tool_loop(2), system("New rule."), *tool_loop(4, start=2)]
    out = flatten(fmt, compact(fmt, build(fmt, events), **window(1)).messages)
    assert out == ["sys:Be terse.", "user:the task", "sys:New rule.", "call:c5", "ret:c5"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_current_task_is_kept_when_older_than_the_window(fmt):
    history = build(fmt, [system("Be terse."), user("the task"), *tool_loop(6)])
    result = compact(fmt, history, **window(2))
    assert result.action == "compacted"
    assert flatten(fmt, result.messages) == expected(
        fmt, ["sys:Be terse.", "user:the task", "call:c4", "ret:c4", "call:c5", "ret:c5"]
    )
    assert result.exchanges_kept == 2


@pytest.mark.parametrize("fmt", FORMATS)
def test_only_the_latest_prompt_is_pinned_not_the_first_task(fmt):
    history = build(fmt, [user("first task"), assistant("ok"), user("second task"), *tool_loop(6)])
    out = flatten(fmt, compact(fmt, history, **window(2)).messages)
    assert "user:first task" not in out and "text:ok" not in out
    assert out == ["user:second task", "call:c4", "ret:c4", "call:c5", "ret:c5"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_prompt_sent_with_tool_results_becomes_the_current_task(fmt):
    events = [user("first task"), *tool_loop(3), calls("c3"), results("c3", then="steer: use metric units"), *tool_loop(4, start=4)]
    out = flatten(fmt, compact(fmt, build(fmt, events), **window(1)).messages)
    assert out == ["user:steer: use metric units", "call:c7", "ret:c7"]


# ---- 2. exchange boundaries ---------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_window_keeps_whole_exchanges_of_a_plain_chat(fmt):
    events = [user("u1"), assistant("a1"), user("u2"), assistant("a2"), user("u3"), assistant("a3"), user("u4")]
    result = compact(fmt, build(fmt, events), **window(2))
    assert flatten(fmt, result.messages) == ["user:u2", "text:a2", "user:u3", "text:a3", "user:u4"]
    assert result.exchanges_kept == 2
    assert result.dropped == (0, 1)


@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("fmt", FORMATS)
def test_window_never_splits_a_tool_call_from_its_result(fmt, k):
    events = [system("sys"), user("the task")]
    for i in range(6):
        events += [calls(f"c{i}a", f"c{i}b", text=f"step {i}"), results(f"c{i}a", f"c{i}b")]
    result = compact(fmt, build(fmt, events), **window(k))  # compact() checks the pairing rules
    out = flatten(fmt, result.messages)
    kept_calls = {t[5:] for t in out if t.startswith("call:")}
    kept_results = {t[4:] for t in out if t.startswith("ret:")}
    assert kept_calls == kept_results
    assert len(kept_calls) == 2 * k
    assert "call:c5a" in out and "ret:c5b" in out


@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("fmt", USER_FIRST)
def test_window_never_starts_with_a_model_response_in_user_first_formats(fmt, k):
    history = build(fmt, [user("the task"), *tool_loop(5), assistant("done"), user("follow up")])
    out = compact(fmt, history, **window(k)).messages
    assert out and sides(fmt, out)[0] == "req"


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("fmt", ["openai", "responses"])
def test_window_keeps_max_exchanges_when_a_new_prompt_follows_a_tool_loop(fmt, k):
    history = build(fmt, [user("the task"), *tool_loop(5), assistant("done"), user("follow up")])
    result = compact(fmt, history, **window(k))
    out = flatten(fmt, result.messages)
    assert result.exchanges_kept == k, out
    assert out == ["call:c3", "ret:c3", "call:c4", "ret:c4", "text:done", "user:follow up"][-2 * k :]


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("fmt", FORMATS)
def test_at_least_one_exchange_stays_when_a_new_prompt_follows_a_tool_loop(fmt, k):
    """The user asks a follow-up after a tool loop: whatever the window, the last
    exchange (the answer being followed up) stays with the new prompt."""
    history = build(fmt, [user("the task"), *tool_loop(5), assistant("done"), user("follow up")])
    result = compact(fmt, history, **window(k))
    out = flatten(fmt, result.messages)
    assert result.exchanges_kept >= 1, out
    assert out[-2:] == ["text:done", "user:follow up"], out


@pytest.mark.parametrize("fmt", FORMATS)
def test_at_least_one_exchange_stays_when_the_target_is_zero_and_a_new_prompt_follows(fmt):
    history = build(fmt, [user("the task"), *tool_loop(5), assistant("done"), user("follow up")])
    result = compact(fmt, history, **window(4, target_input_tokens=0))
    assert result.exchanges_kept >= 1, flatten(fmt, result.messages)
    assert "text:done" in flatten(fmt, result.messages)


# ---- 3. repair: every result checked, dangling calls --------------------------------


@pytest.mark.parametrize("position", [0, 1, 2])
@pytest.mark.parametrize("fmt", FORMATS)
def test_every_tool_result_of_a_request_is_checked(fmt, position):
    ids = ["c1", "c2"]
    ids.insert(position, "gone")
    history = build(fmt, [system("sys"), user("the task"), calls("c1", "c2"), results(*ids), assistant("done")])
    result = compact(fmt, history)
    assert result.action == "none"
    assert result.orphans_removed == 1 and result.calls_repaired == 0
    assert flatten(fmt, result.messages) == expected(
        fmt, ["sys:sys", "user:the task", "call:c1", "call:c2", "ret:c1", "ret:c2", "text:done"]
    )


def test_only_the_outputs_of_cut_calls_go_when_outputs_come_later():
    """Responses pairs an output with any earlier call: a window that cuts one call of
    two whose outputs both follow removes that output only."""
    items = [
        {"type": "message", "role": "user", "content": "the task"},
        {"type": "function_call", "call_id": "c1", "name": TOOL, "arguments": "{}"},
        {"type": "message", "role": "user", "content": "also check this"},
        {"type": "function_call", "call_id": "c2", "name": TOOL, "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "r1"},
        {"type": "function_call_output", "call_id": "c2", "output": "r2"},
    ]
    result = compact("responses", items, **window(1))
    assert flatten("responses", result.messages) == ["user:also check this", "call:c2", "ret:c2"]
    assert result.orphans_removed == 1
    assert result.dropped == (0, 1, 4)


@pytest.mark.parametrize("fmt", FORMATS)
def test_calls_without_results_are_removed_in_drop_mode(fmt):
    events = [system("sys"), user("the task"), calls("c1", "c2", text="two calls"), results("c1", then="steer"),
              assistant("ok"), user("next")]
    result = compact(fmt, build(fmt, events))
    assert result.action == "none" and result.calls_repaired == 1 and result.orphans_removed == 0
    assert flatten(fmt, result.messages) == expected(
        fmt, ["sys:sys", "user:the task", "text:two calls", "call:c1", "ret:c1", "user:steer", "text:ok", "user:next"]
    )


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_response_left_with_nothing_is_removed(fmt):
    history = build(fmt, [user("the task"), calls("c1"), user("never mind"), assistant("ok"), user("next")])
    result = compact(fmt, history)
    assert flatten(fmt, result.messages) == ["user:the task", "user:never mind", "text:ok", "user:next"]
    assert result.calls_repaired == 1


def test_openai_assistant_that_lost_all_calls_keeps_its_text_without_tool_calls():
    history = build("openai", [user("the task"), calls("c1", text="let me look"), user("never mind")])
    out = compact("openai", history).messages
    assert out[1] == {"role": "assistant", "content": "let me look"}
    assert "tool_calls" in history[1]


@pytest.mark.parametrize("fmt", FORMATS)
def test_dangling_call_is_answered_by_a_stub_in_stub_mode(fmt):
    events = [system("sys"), user("the task"), calls("c1", "c2", text="two calls"), results("c1", then="steer"),
              assistant("ok"), user("next")]
    history = build(fmt, events)
    result = compact(fmt, history, dangling_calls="stub")
    assert result.calls_repaired == 1 and result.action == "none"
    out = result.messages
    if fmt == "openai":
        # A tool message right after the tool block of the assistant message.
        assert [m["role"] for m in out] == ["system", "user", "assistant", "tool", "tool", "user", "assistant", "user"]
        assert out[4] == {"role": "tool", "tool_call_id": "c2", "content": STUB_TEXT}
        assert out[2] is history[2] and out[3] is history[3]
    elif fmt == "responses":
        # An output item right after the call.
        i = next(i for i, m in enumerate(out) if m.get("call_id") == "c2")
        assert out[i + 1] == {"type": "function_call_output", "call_id": "c2", "output": STUB_TEXT}
        assert flatten(fmt, out).count("ret:c2:stub") == 1
    elif fmt == "anthropic":
        # A tool_result block in the next user message, with the results, before its text.
        assert len(out) == len(history)
        assert out[2]["content"] == [
            history[2]["content"][0],
            {"type": "tool_result", "tool_use_id": "c2", "content": STUB_TEXT},
            {"type": "text", "text": "steer"},
        ]
        assert out[2] is not history[2] and len(history[2]["content"]) == 2
    else:
        # A ToolReturnPart in the next ModelRequest, after the real results.
        assert len(out) == len(history)
        request = out[2]
        assert type(request) is ModelRequest and request is not history[2]
        kinds = [type(p) for p in request.parts]
        assert kinds == [ToolReturnPart, ToolReturnPart, UserPromptPart]
        stub = request.parts[1]
        assert (stub.tool_name, stub.tool_call_id, stub.content) == (TOOL, "c2", STUB_TEXT)
        assert out[1] is history[1]


@pytest.mark.parametrize("fmt", USER_FIRST)
def test_stub_goes_first_in_a_next_message_that_has_no_results(fmt):
    history = build(fmt, [user("the task"), calls("c1"), user("never mind")])
    out = compact(fmt, history, dangling_calls="stub").messages
    assert flatten(fmt, out) == ["user:the task", "call:c1", "ret:c1:stub", "user:never mind"]
    assert len(out) == 3


def test_anthropic_stub_keeps_the_text_of_a_string_content_user_message():
    """The stub goes into the next user message; when that message's content is a plain
    string, the string must stay (as a text block after the tool_result)."""
    history = [
        {"role": "user", "content": "the task"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "c1", "name": TOOL, "input": {}}]},
        {"role": "user", "content": "never mind, do something else"},
    ]
    out = call_without_panic(tokensieve.compact_history, history, format="anthropic", dangling_calls="stub")
    assert out[2]["content"] == [
        {"type": "tool_result", "tool_use_id": "c1", "content": STUB_TEXT},
        {"type": "text", "text": "never mind, do something else"},
    ]


@pytest.mark.parametrize("fmt", FORMATS)
def test_stub_for_a_call_at_the_end_is_a_new_request(fmt):
    history = build(fmt, [user("the task"), calls("c1")])
    result = compact(fmt, history, dangling_calls="stub")
    assert flatten(fmt, result.messages) == ["user:the task", "call:c1", "ret:c1:stub"]
    assert len(result.messages) == 3 and sides(fmt, result.messages)[-1] == "req"
    assert result.messages[1] is history[1]


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_trailing_call_without_result_is_dropped_in_drop_mode(fmt):
    history = build(fmt, [user("the task"), calls("c1")])
    result = compact(fmt, history)
    assert flatten(fmt, result.messages) == ["user:the task"]
    assert result.calls_repaired == 1 and result.dropped == (1,)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_window_cut_leaves_no_call_to_stub(fmt):
    """A pinned steering prompt whose message held results loses them (their call was cut
    with its exchange): no stub is made for a call that is not in the output."""
    events = [user("the task"), *tool_loop(3), calls("c3"), results("c3", then="steer"), *tool_loop(4, start=4)]
    result = compact(fmt, build(fmt, events), **window(2), dangling_calls="stub")
    assert "ret:c3" not in flatten(fmt, result.messages)
    assert not any(t.endswith(":stub") for t in flatten(fmt, result.messages))


# ---- 4. blocking ----------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_over_the_hard_limit_raises_budget_exceeded_and_leaves_the_list_untouched(fmt):
    history = build(fmt, [system("sys"), user("the task " * 900)])
    snapshot = copy.deepcopy(history)
    items = list(history)
    with raises_cleanly(tokensieve.BudgetExceededError, "over the hard limit") as info:
        tokensieve.compact_history(
            history, max_input_tokens=1000, compaction_threshold=0.3, hard_limit_threshold=0.5, target_input_tokens=300
        )
    error = info["exception"]
    assert isinstance(error, tokensieve.TokensieveError)
    assert error.limit == 500
    assert error.tokens_after > 500 and error.tokens_before >= error.tokens_after
    assert error.tokens_before == int(tokensieve.count_history_tokens(history).sum())
    assert history == snapshot and all(a is b for a, b in zip(history, items)) and len(history) == len(items)


@pytest.mark.parametrize("fmt", FORMATS)
def test_blocking_reports_the_count_after_compaction(fmt):
    history = build(fmt, [system("sys"), user("the task"), *tool_loop(4, size=300), calls("big"), results("big", size=900)])
    with raises_cleanly(tokensieve.BudgetExceededError) as info:
        tokensieve.compact_history(
            history, max_input_tokens=1000, compaction_threshold=0.3, hard_limit_threshold=0.5, target_input_tokens=300
        )
    error = info["exception"]
    assert error.limit == 500 < error.tokens_after < error.tokens_before


@pytest.mark.parametrize("fmt", FORMATS)
def test_blocking_is_reachable_with_the_cerebras_preset(fmt):
    history = build(fmt, [system("sys"), user("the task"), calls("c1"), results("c1", size=27_000)])
    with raises_cleanly(tokensieve.BudgetExceededError) as info:
        tokensieve.compact_history(history, "cerebras")
    assert info["exception"].limit == 25_000 < info["exception"].tokens_after


# ---- 5. below the threshold ---------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_below_the_threshold_the_same_objects_come_back_in_a_new_list(fmt):
    history = build(fmt, [system("sys"), user("the task"), *tool_loop(3), assistant("done"), user("next")])
    result = compact(fmt, history)
    assert result.action == "none" and result.dropped == ()
    assert result.messages is not history
    assert len(result.messages) == len(history) and all(a is b for a, b in zip(result.messages, history))
    assert (result.orphans_removed, result.calls_repaired) == (0, 0)
    assert result.tokens_before == result.tokens_after
    assert tokensieve.compact_history(history) == history


@pytest.mark.parametrize("fmt", FORMATS)
def test_below_the_threshold_preexisting_orphans_are_repaired_and_reported(fmt):
    events = [system("sys"), user("the task"), results("stale"), calls("c1"), results("c1"), assistant("done")]
    history = build(fmt, events)
    result = compact(fmt, history)
    assert result.action == "none"
    assert result.orphans_removed == 1
    assert (result.input_defects_repaired, result.pairs_cut_by_window) == (1, 0)
    assert flatten(fmt, result.messages) == expected(fmt, ["sys:sys", "user:the task", "call:c1", "ret:c1", "text:done"])
    untouched = [m for m in result.messages if any(m is h for h in history)]
    assert len(untouched) == len(result.messages)


# ---- 6. the target --------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_oldest_exchanges_are_dropped_until_the_target_is_met(fmt):
    history = build(fmt, [system("sys"), user("the task"), *tool_loop(6, size=100)])
    tokens = {k: compact(fmt, history, **window(k)).tokens_after for k in (1, 2, 3, 4)}
    assert tokens[1] < tokens[2] < tokens[3] < tokens[4]
    budget = dict(
        max_input_tokens=10_000, compaction_threshold=0.01, hard_limit_threshold=1.0, target_input_tokens=tokens[2]
    )
    result = compact(fmt, history, **budget, max_exchanges=4)
    assert result.action == "compacted"
    assert result.exchanges_kept == 2 and result.tokens_after == tokens[2] <= budget["target_input_tokens"]
    assert flatten(fmt, result.messages) == expected(fmt, ["sys:sys", "user:the task", "call:c4", "ret:c4", "call:c5", "ret:c5"])
    # One token less and a third exchange goes too.
    budget["target_input_tokens"] = tokens[2] - 1
    assert compact(fmt, history, **budget, max_exchanges=4).exchanges_kept == 1


@pytest.mark.parametrize("fmt", FORMATS)
def test_one_exchange_and_the_trailing_request_stay_when_the_target_cannot_be_met(fmt):
    history = build(fmt, [system("sys"), user("the task"), *tool_loop(6, size=100), calls("c6"), results("c6", then="go on")])
    budget = dict(max_input_tokens=10_000, compaction_threshold=0.01, hard_limit_threshold=1.0, target_input_tokens=0)
    result = compact(fmt, history, **budget)
    out = flatten(fmt, result.messages)
    assert result.exchanges_kept == 1, out
    assert out[-3:] == ["call:c6", "ret:c6", "user:go on"], out
    if fmt in ("openai", "responses"):
        assert out == ["sys:sys", "call:c6", "ret:c6", "user:go on"]
    if fmt == "pydantic-ai":  # the first prompt shares the system prompt's (pinned) request
        assert out == ["sys:sys", "user:the task", "call:c6", "ret:c6", "user:go on"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_reserved_tokens_count_against_the_limits(fmt):
    history = build(fmt, [system("sys"), user("the task"), *tool_loop(4, size=100)])
    total = int(tokensieve.count_history_tokens(history).sum())
    budget = dict(max_input_tokens=4 * total, compaction_threshold=0.5, hard_limit_threshold=1.0, target_input_tokens=total // 2)
    plain = compact(fmt, history, **budget)
    assert plain.action == "none" and plain.tokens_before == total
    reserved = total + 1  # just over the threshold of 2 * total
    loaded = compact(fmt, history, **budget, reserved_tokens=reserved)
    assert loaded.action == "compacted"
    assert loaded.tokens_before == total + reserved
    assert loaded.tokens_after < loaded.tokens_before
    with raises_cleanly(tokensieve.BudgetExceededError):
        tokensieve.compact_history(history, **budget, reserved_tokens=4 * total)


# ---- 7. new objects, never mutation -----------------------------------------------------


def test_pydantic_ai_message_that_lost_parts_keeps_its_class_and_other_fields():
    response = ModelResponse(
        parts=[TextPart("two calls"), ToolCallPart(TOOL, {"q": 1}, tool_call_id="c1"), ToolCallPart(TOOL, {"q": 2}, tool_call_id="c2")],
        model_name="the-model",
        usage=RequestUsage(input_tokens=5, output_tokens=7),
        timestamp=DATETIME,
        provider_name="prov",
        provider_response_id="resp-1",
        finish_reason="tool_call",
    )
    request = ModelRequest(
        parts=[ToolReturnPart(TOOL, "r1", tool_call_id="c1"), ToolReturnPart(TOOL, "old", tool_call_id="stale")],
        instructions="Be exact.",
        timestamp=DATETIME,
        run_id="run-1",
        metadata={"k": 1},
    )
    history = [ModelRequest(parts=[UserPromptPart("the task")]), response, request, ModelResponse(parts=[TextPart("ok")])]
    result = compact("pydantic-ai", history)
    assert (result.orphans_removed, result.calls_repaired) == (1, 1)
    new_response, new_request = result.messages[1], result.messages[2]
    assert type(new_response) is ModelResponse and new_response is not response
    assert new_response.parts == [response.parts[0], response.parts[1]]
    assert all(a is b for a, b in zip(new_response.parts, response.parts))
    for field in ("model_name", "usage", "timestamp", "provider_name", "provider_response_id", "finish_reason"):
        assert getattr(new_response, field) == getattr(response, field), field
    assert type(new_request) is ModelRequest and new_request.parts == [request.parts[0]]
    for field in ("instructions", "timestamp", "run_id", "metadata"):
        assert getattr(new_request, field) == getattr(request, field), field
    assert len(response.parts) == 3 and len(request.parts) == 2
    assert result.messages[0] is history[0] and result.messages[3] is history[3]


def test_openai_message_that_lost_calls_is_a_shallow_copy_with_other_keys_kept():
    meta = {"trace": ["a", "b"]}
    history = build("openai", [user("the task"), calls("c1", "c2", text="two"), results("c1"), assistant("ok")])
    history[1]["name"] = "helper"
    history[1]["x_meta"] = meta
    result = compact("openai", history)
    new = result.messages[1]
    assert new is not history[1]
    assert new["name"] == "helper" and new["x_meta"] is meta and new["content"] == "two"
    assert new["tool_calls"] == [history[1]["tool_calls"][0]] and new["tool_calls"][0] is history[1]["tool_calls"][0]
    assert len(history[1]["tool_calls"]) == 2


def test_anthropic_message_that_lost_blocks_is_a_shallow_copy_with_other_keys_kept():
    history = build("anthropic", [user("the task"), calls("c1"), results("c1", "stale", then="more"), assistant("ok")])
    history[2]["x_meta"] = {"id": 7}
    history[2]["content"][0]["cache_control"] = {"type": "ephemeral"}
    result = compact("anthropic", history)
    new = result.messages[2]
    assert new is not history[2] and new["x_meta"] is history[2]["x_meta"] and new["role"] == "user"
    assert new["content"] == [history[2]["content"][0], history[2]["content"][2]]
    assert new["content"][0] is history[2]["content"][0]
    assert len(history[2]["content"]) == 3


@pytest.mark.parametrize("mode", ["drop", "stub"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_the_input_is_never_mutated(fmt, mode):
    events = [system("sys"), user("the task"), results("stale"), calls("c1", "c2"), results("c1", then="steer"),
              *tool_loop(4, start=3), calls("c9")]
    history = build(fmt, events)
    compact(fmt, history, dangling_calls=mode)  # compact() compares with a deep copy
    compact(fmt, history, **window(2), dangling_calls=mode)


# ---- 8. reasoning and thinking ------------------------------------------------------------


def _reasoning(rid: str, text: str = "thinking") -> dict:
    return {"type": "reasoning", "id": rid, "summary": [{"type": "summary_text", "text": text}]}


def _call(cid: str) -> dict:
    return {"type": "function_call", "call_id": cid, "name": TOOL, "arguments": "{}"}


def _output(cid: str) -> dict:
    return {"type": "function_call_output", "call_id": cid, "output": f"result {cid}"}


def test_responses_reasoning_is_dropped_with_the_dangling_call_it_precedes():
    items = [
        {"type": "message", "role": "user", "content": "the task"},
        _reasoning("rs1"), _call("c1"), _output("c1"),
        _reasoning("rs2"), _call("c2"),
    ]
    result = compact("responses", items)
    assert result.messages == items[:4] and result.dropped == (4, 5)
    stubbed = compact("responses", items, dangling_calls="stub").messages
    assert stubbed[4:] == [items[4], items[5], {"type": "function_call_output", "call_id": "c2", "output": STUB_TEXT}]


def test_responses_reasoning_goes_with_the_call_cut_by_the_window():
    items = [{"type": "message", "role": "user", "content": "the task"}]
    for i in range(4):
        items += [_reasoning(f"rs{i}"), _call(f"c{i}"), _output(f"c{i}")]
    result = compact("responses", items, **window(1))
    assert result.messages == [items[0], items[10], items[11], items[12]]
    assert [m.get("id") for m in result.messages if m.get("type") == "reasoning"] == ["rs3"]


def test_responses_reasoning_before_an_assistant_message_stays_with_it():
    items = [
        {"type": "message", "role": "user", "content": "the task"},
        _reasoning("rs1"),
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "answer"}]},
        {"type": "message", "role": "user", "content": "thanks"},
    ]
    result = compact("responses", items)
    assert result.messages == items and result.dropped == ()


def _anthropic_thinking_turn(signature: str, *ids: str) -> dict:
    return {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": f"thoughts {signature}", "signature": signature},
            *[{"type": "tool_use", "id": i, "name": TOOL, "input": {"q": i}} for i in ids],
        ],
    }


def _anthropic_results(*ids: str) -> dict:
    return {"role": "user", "content": [{"type": "tool_result", "tool_use_id": i, "content": f"r {i}"} for i in ids]}


def test_anthropic_thinking_blocks_stay_in_the_turn_with_their_tool_use():
    history = [
        {"role": "user", "content": "the task"},
        _anthropic_thinking_turn("s1", "c1", "c2"),
        _anthropic_results("c1"),
        _anthropic_thinking_turn("s2", "c3"),
        _anthropic_results("c3"),
    ]
    repaired = compact("anthropic", history).messages
    assert repaired[1]["content"] == history[1]["content"][:2]  # thinking first, unmodified, then c1
    assert repaired[1]["content"][0] is history[1]["content"][0]
    cut = compact("anthropic", history, **window(1)).messages
    assert cut == [history[0], history[3], history[4]]


def test_pydantic_ai_thinking_stays_in_the_response_with_its_tool_call():
    history = [
        ModelRequest(parts=[UserPromptPart("the task")]),
        thinking_response("c1", "c2"),
        ModelRequest(parts=[ToolReturnPart(TOOL, "r1", tool_call_id="c1")]),
        thinking_response("c3", thought="later"),
        ModelRequest(parts=[ToolReturnPart(TOOL, "r3", tool_call_id="c3")]),
    ]
    repaired = compact("pydantic-ai", history).messages
    assert [type(p) for p in repaired[1].parts] == [ThinkingPart, ToolCallPart]
    assert repaired[1].parts[0] is history[1].parts[0]
    assert compact("pydantic-ai", history, **window(1)).messages == [history[0], history[3], history[4]]


# ---- 9. idempotence ----------------------------------------------------------------------

IDEMPOTENCE_CASES = {
    "tool loop cut by the window": ([system("sys"), user("the task"), *tool_loop(6)], window(2)),
    "plain chat": ([system("sys"), user("u1"), assistant("a1"), user("u2"), assistant("a2"), user("u3")], window(1)),
    "dangling calls and orphans": (
        [system("sys"), user("the task"), results("stale"), calls("c1", "c2"), results("c1", then="steer"), assistant("ok")],
        {},
    ),
    "target binding": (
        [system("sys"), user("the task"), *tool_loop(6, size=100)],
        dict(max_input_tokens=10_000, compaction_threshold=0.01, hard_limit_threshold=1.0, target_input_tokens=500),
    ),
    "new prompt after a tool loop": ([user("the task"), *tool_loop(5), assistant("done"), user("follow up")], window(3)),
}


@pytest.mark.parametrize("case", list(IDEMPOTENCE_CASES))
@pytest.mark.parametrize("fmt", FORMATS)
def test_compacting_again_changes_nothing(fmt, case):
    events, budget = IDEMPOTENCE_CASES[case]
    once = compact(fmt, build(fmt, events), **budget)
    twice = compact(fmt, once.messages, **budget)
    assert len(twice.messages) == len(once.messages)
    assert all(a is b for a, b in zip(twice.messages, once.messages))
    assert (twice.orphans_removed, twice.calls_repaired, twice.dropped) == (0, 0, ())
    assert twice.tokens_after == once.tokens_after


# ---- 10. counting --------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_count_history_tokens_gives_one_count_per_message(fmt):
    history = build(fmt, [system("sys"), user("the task"), *tool_loop(3), assistant("done")])
    counts = call_without_panic(tokensieve.count_history_tokens, history)
    assert isinstance(counts, np.ndarray) and counts.dtype == np.int64 and counts.shape == (len(history),)
    assert (counts >= OVERHEAD).all()
    assert counts.tolist() == tokensieve.Compactor().compact(history).per_message_tokens.tolist()
    assert counts.tolist() == tokensieve.count_history_tokens(history, format=fmt).tolist()


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_message_costs_its_text_plus_a_fixed_overhead(fmt):
    text = "Hello, world! How are you today?"
    n = tokensieve.count_tokens(text)
    assert tokensieve.count_history_tokens(build(fmt, [user(text)]), format=fmt).tolist() == [n + OVERHEAD]
    assert tokensieve.count_history_tokens(build(fmt, [user("")]), format=fmt).tolist() == [OVERHEAD]
    two = tokensieve.count_history_tokens(build(fmt, [user(text), assistant(text)]), format=fmt).tolist()
    assert two == [n + OVERHEAD, n + OVERHEAD]


IMAGES = {
    "openai": [{"role": "user", "content": [{"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}],
    "responses": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "look"}, {"type": "input_image", "image_url": "https://e.com/a.png"}]}],
    "anthropic": [{"role": "user", "content": [{"type": "text", "text": "look"}, {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}]}],
    "pydantic-ai": [ModelRequest(parts=[UserPromptPart(["look", ImageUrl("https://e.com/a.png")])])],
}

ODD_IMAGES = {
    "openai": [{"role": "user", "content": [{"type": "image_url"}, {"type": "image_url", "image_url": None}, {"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}]}],
    "responses": [{"type": "message", "role": "user", "content": [{"type": "input_image"}, {"type": "input_image", "image_url": None}, {"type": "input_file", "file_data": 5}]}],
    "anthropic": [{"role": "user", "content": [{"type": "image", "source": None}, {"type": "image"}, {"type": "document", "source": 5}]}],
    "pydantic-ai": [ModelRequest(parts=[UserPromptPart([ImageUrl("https://e.com/a.png"), BinaryContent(b"\x89PNG", media_type="image/png"), BinaryContent(b"", media_type="audio/wav")])])],
}


@pytest.mark.parametrize("fmt", FORMATS)
def test_images_count_as_a_fixed_estimate(fmt):
    counts = call_without_panic(tokensieve.count_history_tokens, IMAGES[fmt], format=fmt)
    assert counts.tolist() == [tokensieve.count_tokens("look") + BINARY + OVERHEAD]


@pytest.mark.parametrize("fmt", FORMATS)
def test_odd_images_count_as_a_fixed_estimate_and_never_crash(fmt):
    counts = call_without_panic(tokensieve.count_history_tokens, ODD_IMAGES[fmt], format=fmt)
    assert counts.tolist() == [3 * BINARY + OVERHEAD]
    history = [*ODD_IMAGES[fmt], *build(fmt, [assistant("nice"), user("and now?")])]
    assert compact(fmt, history).messages == history


def test_pydantic_ai_file_part_in_a_response_counts_as_binary():
    response = ModelResponse(parts=[FilePart(BinaryContent(b"\x89PNG", media_type="image/png"))])
    assert tokensieve.count_history_tokens([response]).tolist() == [BINARY + OVERHEAD]


def _call_message(fmt: str, args: Any) -> Any:
    if fmt == "openai":
        return {"role": "assistant", "content": None,
                "tool_calls": [{"id": "c1", "type": "function", "function": {"name": TOOL, "arguments": args}}]}
    if fmt == "responses":
        return {"type": "function_call", "call_id": "c1", "name": TOOL, "arguments": args}
    if fmt == "anthropic":
        return {"role": "assistant", "content": [{"type": "tool_use", "id": "c1", "name": TOOL, "input": args}]}
    return ModelResponse(parts=[ToolCallPart(TOOL, args, tool_call_id="c1")])


@pytest.mark.parametrize("fmt", FORMATS)
def test_tool_call_args_given_as_dict_or_json_string_both_count(fmt):
    args = {"city": "Zürich", "days": 3, "units": ["metric"], "verbose": True, "note": None}
    as_json = json.dumps(args, separators=(",", ":"), ensure_ascii=False)
    counts = tokensieve.count_history_tokens(
        [_call_message(fmt, args), _call_message(fmt, as_json), _call_message(fmt, "")], format=fmt
    ).tolist()
    base = OVERHEAD + tokensieve.count_tokens(TOOL) + tokensieve.count_tokens("c1")
    assert counts[2] == base
    assert counts[0] == counts[1] == base + tokensieve.count_tokens(as_json)


class Level(enum.IntEnum):
    HIGH = 3


class Flag(int):
    """An int subclass that prints otherwise."""

    def __str__(self) -> str:
        return "flag"


EDGE_ARGUMENTS = [
    {"n": 0, "neg": -1, "min": -(2**63), "max": 2**63 - 1, "big": 2**64, "neg_big": -(2**70)},
    {"level": Level.HIGH, "flag": Flag(7), "ok": True, "no": False, "none": None, "x": 1.5, "y": -0.0},
    {1: "int key", None: "none key", "nested": {"a": [1, (2, 3), {"b": "c"}], "e": {}}, "l": []},
    {"quote": 'say "hi"\n', "tab": "a\tb", "ctl": "\x01\x1f", "uni": "Zürich 東京 🎉"},
    [1, -2, "three", [4.0], {"five": 5}],
    12345678901234567890,
    -42,
]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("args", EDGE_ARGUMENTS, ids=range(len(EDGE_ARGUMENTS)))
def test_tool_call_arguments_of_every_json_shape_count_as_the_baseline_renders_them(fmt, args):
    from tokensieve import baseline

    history = [_call_message(fmt, args)]
    assert tokensieve.count_history_tokens(history, format=fmt).tolist() == baseline.count_history_tokens(
        history, format=fmt
    )


@dataclasses.dataclass
class FuturePart:
    """A part kind this version of tokensieve does not know."""

    content: str
    part_kind: str = "future-thing"


@dataclasses.dataclass
class Opaque:
    """Not even a part_kind or a content."""

    payload: int = 1


def test_unknown_pydantic_ai_part_kinds_are_tolerated():
    response = ModelResponse(parts=[FuturePart("hello world"), Opaque(), TextPart("ok")])
    history = [ModelRequest(parts=[UserPromptPart("the task")]), response, ModelRequest(parts=[UserPromptPart("next")])]
    counts = call_without_panic(tokensieve.count_history_tokens, history).tolist()
    assert counts[1] == OVERHEAD + tokensieve.count_tokens("hello world") + tokensieve.count_tokens("ok")
    result = compact("pydantic-ai", history)
    assert result.messages[1] is response
    cut = compact("pydantic-ai", [*history, *build("pydantic-ai", tool_loop(3))], **window(1))
    assert all(m is not response for m in cut.messages)


# ---- 11. bad input --------------------------------------------------------------------------

NOT_A_LIST = [{"role": "user", "content": "hi"}, None, "a string", 42]
ENTRY_POINTS = {
    "compact_history": lambda m: tokensieve.compact_history(m),
    "Compactor.compact": lambda m: tokensieve.Compactor().compact(m),
    "Compactor()": lambda m: tokensieve.Compactor()(m),
    "count_history_tokens": lambda m: tokensieve.count_history_tokens(m),
}


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
@pytest.mark.parametrize("bad", NOT_A_LIST, ids=lambda v: type(v).__name__)
def test_a_history_that_is_not_a_list_is_an_input_type_error(bad, entry):
    with raises_cleanly(tokensieve.InputTypeError, type(bad).__name__) as info:
        ENTRY_POINTS[entry](bad)
    assert isinstance(info["exception"], TypeError)


BAD_MESSAGES = {
    "openai int": ("openai", 7, "int"),
    "openai role robot": ("openai", {"role": "robot", "content": "beep"}, "robot"),
    "openai no role": ("openai", {"content": "who am I"}, "role"),
    "openai role not a string": ("openai", {"role": 3, "content": "x"}, "role"),
    "responses unknown role": ("responses", {"type": "message", "role": "robot", "content": "x"}, "robot"),
    "responses output without call_id": ("responses", {"type": "function_call_output", "output": "x"}, "id"),
    "anthropic role system": ("anthropic", {"role": "system", "content": "x"}, "system"),
    "anthropic int": ("anthropic", 7, "int"),
    "pydantic-ai int": ("pydantic-ai", 7, "int"),
    "pydantic-ai dict": ("pydantic-ai", {"role": "user", "content": "x"}, "dict"),
}


@pytest.mark.parametrize("entry", ["compact_history", "count_history_tokens"])
@pytest.mark.parametrize("case", list(BAD_MESSAGES))
def test_a_message_of_unknown_shape_is_an_invalid_message_error_naming_its_index(case, entry):
    fmt, bad, word = BAD_MESSAGES[case]
    history = [*build(fmt, [user("the task"), assistant("ok")]), bad, *build(fmt, [user("next")])]
    function = getattr(tokensieve, entry)
    with raises_cleanly(tokensieve.InvalidMessageError, "messages[2]", word) as info:
        function(history, format=fmt)
    error = info["exception"]
    assert isinstance(error, ValueError) and error.index == 2


def test_format_detection_errors_name_the_index_too():
    history = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}, {"role": "robot", "content": "x"}]
    with raises_cleanly(tokensieve.InvalidMessageError, "messages[2]", "robot") as info:
        tokensieve.compact_history(history)
    assert info["exception"].index == 2
    with raises_cleanly(tokensieve.InvalidMessageError, "messages[0]") as info:
        tokensieve.compact_history([5, {"role": "user", "content": "u"}])
    assert info["exception"].index == 0


def test_a_responses_history_opening_with_an_untyped_developer_item_is_read_as_responses():
    """``{"role": ..., "content": ...}`` without ``type`` is a valid Responses input item
    (EasyInputMessage); a history opening with one must still be read as Responses."""
    items = [
        {"role": "developer", "content": "Be terse."},
        {"role": "user", "content": "the task"},
        _call("c1"),
        _output("c1"),
    ]
    result = call_without_panic(tokensieve.Compactor().compact, items)  # format detected
    assert result.format == "responses" and result.messages == items


def _call_without_id(fmt: str) -> Any:
    if fmt == "openai":
        return {"role": "assistant", "content": None,
                "tool_calls": [{"type": "function", "function": {"name": TOOL, "arguments": "{}"}}]}
    if fmt == "responses":
        return {"type": "function_call", "name": TOOL, "arguments": "{}"}
    if fmt == "anthropic":
        return {"role": "assistant", "content": [{"type": "tool_use", "name": TOOL, "input": {}}]}
    return ModelResponse(parts=[ToolCallPart(TOOL, {}, tool_call_id=None)])


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_tool_call_without_an_id_is_an_invalid_message_error_naming_its_index(fmt):
    history = [*build(fmt, [user("the task"), assistant("ok"), user("go")]), _call_without_id(fmt)]
    with raises_cleanly(tokensieve.InvalidMessageError, "messages[3]", "id") as info:
        tokensieve.compact_history(history, format=fmt)
    assert info["exception"].index == 3


@pytest.mark.parametrize("entry", ["compact_history", "count_history_tokens"])
def test_an_unknown_format_name_is_a_configuration_error(entry):
    with raises_cleanly(tokensieve.ConfigurationError, "gemini") as info:
        getattr(tokensieve, entry)([{"role": "user", "content": "hi"}], format="gemini")
    assert isinstance(info["exception"], ValueError)


INVALID_BUDGETS = {
    "compaction threshold 0": dict(compaction_threshold=0),
    "compaction threshold 1.5": dict(compaction_threshold=1.5),
    "hard limit threshold 0": dict(hard_limit_threshold=0),
    "hard limit threshold 1.5": dict(hard_limit_threshold=1.5),
    "compaction above the hard limit": dict(compaction_threshold=0.6, hard_limit_threshold=0.5),
    "target above the hard limit": dict(target_input_tokens=25_001),
    "negative max_input_tokens": dict(max_input_tokens=-1),
    "zero max_input_tokens": dict(max_input_tokens=0),
    "negative target": dict(target_input_tokens=-1),
    "negative reserved": dict(reserved_tokens=-5),
    "negative max_exchanges": dict(max_exchanges=-1),
    "max_exchanges 0": dict(max_exchanges=0),
    "max_exchanges a float": dict(max_exchanges=2.5),
    "threshold a string": dict(compaction_threshold="0.3"),
    "unknown dangling mode": dict(dangling_calls="keep"),
    "unknown encoding": dict(encoding="gpt2"),
}


@pytest.mark.parametrize("how", ["BudgetConfig", "Compactor", "compact_history", "preset"])
@pytest.mark.parametrize("case", list(INVALID_BUDGETS))
def test_invalid_budget_values_are_configuration_errors(case, how):
    overrides = INVALID_BUDGETS[case]
    history = [{"role": "user", "content": "hi"}]
    with raises_cleanly(tokensieve.ConfigurationError) as info:
        if how == "BudgetConfig":
            tokensieve.BudgetConfig(**overrides)
        elif how == "Compactor":
            tokensieve.Compactor(**overrides)
        elif how == "compact_history":
            tokensieve.compact_history(history, **overrides)
        else:
            tokensieve.BudgetConfig.preset("cerebras", **overrides)
    assert isinstance(info["exception"], ValueError)


def test_an_unknown_preset_is_a_configuration_error():
    for call in (lambda: tokensieve.Compactor("gpt-99"), lambda: tokensieve.compact_history([], "gpt-99"),
                 lambda: tokensieve.BudgetConfig.preset("gpt-99")):
        with raises_cleanly(tokensieve.ConfigurationError, "gpt-99", "cerebras"):
            call()


def test_an_unknown_override_field_is_a_configuration_error():
    for call in (lambda: tokensieve.Compactor(max_tokens=5), lambda: tokensieve.compact_history([], max_tokens=5),
                 lambda: tokensieve.BudgetConfig().replace(max_tokens=5)):
        with raises_cleanly(tokensieve.ConfigurationError, "max_tokens"):
            call()


# ---- 12. presets ------------------------------------------------------------------------------


def test_the_cerebras_preset_has_the_reference_values():
    config = tokensieve.Compactor("cerebras").config
    reference = (50_000, 0.30, 0.50, 15_000, 4)
    assert (
        config.max_input_tokens,
        config.compaction_threshold,
        config.hard_limit_threshold,
        config.target_input_tokens,
        config.max_exchanges,
    ) == reference
    assert config.compaction_tokens == 15_000 and config.hard_limit_tokens == 25_000
    assert tokensieve.PRESETS["cerebras"] == config
    assert tokensieve.compact_history([], "cerebras") == []


def test_overrides_replace_single_fields():
    config = tokensieve.Compactor("cerebras", max_exchanges=6, reserved_tokens=1_000).config
    base = tokensieve.PRESETS["cerebras"]
    assert config.max_exchanges == 6 and config.reserved_tokens == 1_000
    assert dataclasses.replace(config, max_exchanges=base.max_exchanges, reserved_tokens=0) == base
    assert base.max_exchanges == 4 and base.reserved_tokens == 0  # the preset itself is unchanged
    given = tokensieve.BudgetConfig(max_input_tokens=128_000, target_input_tokens=30_000)
    assert tokensieve.Compactor(given, dangling_calls="stub").config == dataclasses.replace(given, dangling_calls="stub")


def test_budget_config_is_frozen():
    config = tokensieve.BudgetConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.max_exchanges = 10  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        tokensieve.PRESETS["cerebras"].max_input_tokens = 1  # type: ignore[misc]
    assert tokensieve.PRESETS["cerebras"].max_input_tokens == 50_000


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_cerebras_preset_compacts_above_15k_tokens_to_the_last_exchanges(fmt):
    events = [system("sys"), user("the task"), *tool_loop(8, size=2_000)]
    history = build(fmt, events)
    result = compact(fmt, history, "cerebras")
    assert result.tokens_before > 15_000 and result.action == "compacted"
    assert result.tokens_after <= 15_000 and 1 <= result.exchanges_kept <= 4
    small = build(fmt, [system("sys"), user("the task"), *tool_loop(2, size=2_000)])
    assert compact(fmt, small, "cerebras").action == "none"


def test_pydantic_ai_instructions_count_only_on_the_last_request_sent():
    from pydantic_ai.messages import ModelRequest, ModelResponse, TextPart, ToolCallPart, UserPromptPart

    rules = "Answer tersely, cite the file and line of every claim, never guess. " * 3
    history = [
        ModelRequest(parts=[UserPromptPart("first question")], instructions=rules),
        ModelResponse(parts=[TextPart("first answer " * 60)]),
        ModelRequest(parts=[UserPromptPart("second question")], instructions=rules),
        # A call that was never answered: repair removes it, and with it this response, so
        # the output ends with (and sends the instructions of) the second request.
        ModelResponse(parts=[ToolCallPart("grep", {"pattern": "x"}, tool_call_id="never_answered")]),
    ]
    per_message = tokensieve.count_history_tokens(history)
    alone = tokensieve.count_history_tokens(history[:1])
    assert per_message[0] < alone[0]  # not the last request: its instructions are not sent
    assert per_message[2] > tokensieve.count_tokens(rules)
    for overrides in ({}, dict(max_input_tokens=1_000, compaction_threshold=0.01, target_input_tokens=0)):
        result = tokensieve.Compactor(hard_limit_threshold=1.0, **overrides).compact(history)
        recount = tokensieve.count_history_tokens(result.messages)
        assert result.tokens_after == int(recount.sum())


# ---- 11. regressions: issue 8 (items 2, 4, 5) and issue 9 (items 1, 10) ------------------


SPLIT_RESULTS = [user("q"), calls("a", "b"), results("a"), results("b"), assistant("done"), user("next")]


def test_anthropic_results_split_over_two_user_messages_are_kept_with_their_calls():
    """Issue 8, item 2: the reproducer. The API merges consecutive user turns, so the
    results of one response's calls may arrive in two messages; it came back with 5."""
    history = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "a", "name": "f", "input": {}},
                                          {"type": "tool_use", "id": "b", "name": "f", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "a", "content": "A"}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "b", "content": "B"}]},
        {"role": "assistant", "content": "done"},
        {"role": "user", "content": "next"},
    ]
    out = tokensieve.compact_history(history)
    assert len(out) == 6 and all(a is b for a, b in zip(out, history))


@pytest.mark.parametrize("mode", ["drop", "stub"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_results_of_one_response_split_over_consecutive_requests_stay_with_their_calls(fmt, mode):
    history = build(fmt, SPLIT_RESULTS)
    result = compact(fmt, history, dangling_calls=mode)
    assert len(result.messages) == len(history) and all(a is b for a, b in zip(result.messages, history))
    assert (result.orphans_removed, result.calls_repaired) == (0, 0)
    # The window cuts before the run of results (they start its exchange), never inside it.
    result = compact(fmt, history, **window(1), dangling_calls=mode)
    opener = ["user:q"] if fmt in USER_FIRST else []
    assert flatten(fmt, result.messages) == [*opener, "text:done", "user:next"]


@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("fmt", FORMATS)
def test_the_window_never_cuts_between_results_of_one_run(fmt, k):
    events = [user("the task")]
    for i in range(4):
        events += [calls(f"c{i}a", f"c{i}b"), results(f"c{i}a"), results(f"c{i}b")]
    events += [assistant("done"), user("next")]
    out = flatten(fmt, compact(fmt, build(fmt, events), **window(k)).messages)
    for i in range(4):
        assert (f"ret:c{i}a" in out) == (f"ret:c{i}b" in out) == (f"call:c{i}a" in out), (k, out)


def test_anthropic_result_after_text_in_the_merged_user_turn_is_an_orphan():
    """Merged, ``[U res a, text][U res b]`` puts the result for b after text: rejected."""
    history = build("anthropic", [user("q"), calls("a", "b"), results("a", then="hurry"), results("b")])
    result = compact("anthropic", history)
    assert flatten("anthropic", result.messages) == ["user:q", "call:a", "ret:a", "user:hurry"]
    assert (result.orphans_removed, result.calls_repaired) == (1, 1)
    # pydantic-ai hoists the results of a merged request first: the same history is valid.
    history = build("pydantic-ai", [user("q"), calls("a", "b"), results("a", then="hurry"), results("b")])
    assert len(compact("pydantic-ai", history).messages) == 4


STUB_BETWEEN_RESPONSES = [user("u0"), calls("c1"), assistant("a0"), user("u1"), assistant("a1"), user("u2")]


@pytest.mark.parametrize("fmt", FORMATS)
def test_compacting_a_stub_mode_output_again_changes_nothing(fmt):
    """Issue 8, item 4: the stub answering c1 is a new request between two responses; read
    as the start of an exchange, it made a second pass drop the first exchange."""
    budget = window(2, dangling_calls="stub")
    once = compact(fmt, build(fmt, STUB_BETWEEN_RESPONSES), **budget)
    assert "ret:c1:stub" in flatten(fmt, once.messages) and once.exchanges_kept == 2
    twice = compact(fmt, once.messages, **budget)
    assert len(twice.messages) == len(once.messages)
    assert all(a is b for a, b in zip(twice.messages, once.messages))
    assert (twice.orphans_removed, twice.calls_repaired, twice.dropped) == (0, 0, ())


@pytest.mark.parametrize("case", list(IDEMPOTENCE_CASES))
@pytest.mark.parametrize("fmt", FORMATS)
def test_compacting_again_in_stub_mode_changes_nothing(fmt, case):
    events, budget = IDEMPOTENCE_CASES[case]
    budget = {**budget, "dangling_calls": "stub"}
    once = compact(fmt, build(fmt, events), **budget)
    twice = compact(fmt, once.messages, **budget)
    assert len(twice.messages) == len(once.messages)
    assert all(a is b for a, b in zip(twice.messages, once.messages))
    assert (twice.orphans_removed, twice.calls_repaired, twice.dropped) == (0, 0, ())


@pytest.mark.parametrize("fmt", FORMATS)
def test_stub_mode_is_deterministic(fmt):
    history = build(fmt, [user("the task"), calls("c1", "c2"), results("c1"), assistant("ok"), user("next")])
    first = compact(fmt, history, dangling_calls="stub").messages
    second = compact(fmt, history, dangling_calls="stub").messages
    assert first == second


def test_a_pydantic_ai_stub_takes_the_timestamp_of_the_response_it_answers_and_is_marked():
    from pydantic_ai.messages import SYNTHESIZED_TOOL_RETURN_METADATA_KEY

    history = [
        ModelRequest(parts=[UserPromptPart("q")]),
        ModelResponse(parts=[ToolCallPart(TOOL, {}, tool_call_id="c1")], timestamp=DATETIME),
        ModelRequest(parts=[UserPromptPart("never mind")]),
    ]
    stub = compact("pydantic-ai", history, dangling_calls="stub").messages[2].parts[0]
    assert (stub.tool_call_id, stub.content, stub.timestamp) == ("c1", STUB_TEXT, DATETIME)
    assert stub.metadata == {SYNTHESIZED_TOOL_RETURN_METADATA_KEY: True}
    assert baseline.compact(history, dangling_calls="stub").messages[2].parts[0] == stub


@pytest.mark.parametrize("mode", ["drop", "stub"])
@pytest.mark.parametrize("fmt", ["openai", "responses", "anthropic"])
def test_a_pending_request_of_orphan_results_is_an_invalid_message_error(fmt, mode):
    """Issue 8, item 5: the output came back ending with the assistant message (for
    Anthropic, a prefill nobody asked for). There is nothing to send: say so."""
    history = build(fmt, [user("q"), assistant("a"), results("ghost")])
    for implementation in (tokensieve.compact_history, baseline.compact_history):
        with raises_cleanly(tokensieve.InvalidMessageError, "answer no call") as info:
            implementation(history, format=fmt, dangling_calls=mode)
        assert info["exception"].index == len(history) - 1


def test_the_openai_reproducer_of_a_pending_orphan_result_raises():
    history = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"},
               {"role": "tool", "tool_call_id": "ghost", "content": "r"}]
    with raises_cleanly(tokensieve.InvalidMessageError, "messages[2]"):
        tokensieve.compact_history(history)


@pytest.mark.parametrize("mode", ["drop", "stub"])
def test_pydantic_ai_keeps_its_pending_request_emptied_of_orphan_results(mode):
    history = build("pydantic-ai", [user("q"), assistant("a"), results("ghost")])
    out = compact("pydantic-ai", history, dangling_calls=mode).messages
    assert out[:2] == history[:2] and type(out[2]) is ModelRequest and out[2].parts == []


def test_a_pydantic_ai_system_prompt_outside_the_window_is_kept_without_the_first_prompt():
    """Issue 9, item 1: the first request holds the system prompt and the first prompt;
    pinning all of it left a stale prompt before the window, and pydantic-ai merged the
    later prompts into it turn after turn."""
    history = build("pydantic-ai", [system("sys"), user("u1"), assistant("a1"), user("u2"), assistant("a2"), user("u3")])
    result = compact("pydantic-ai", history, **window(1))
    assert flatten("pydantic-ai", result.messages) == ["sys:sys", "user:u2", "text:a2", "user:u3"]
    first = result.messages[0]
    assert first is not history[0] and type(first) is ModelRequest
    assert first.parts == [history[0].parts[0]] and first.instructions == history[0].instructions
    assert compact("pydantic-ai", result.messages, **window(1)).messages[0] is first


@pytest.mark.parametrize("fmt", FORMATS)
def test_pairs_cut_by_the_window_are_reported_apart_from_defects_of_the_input(fmt):
    """Issue 9, item 10: the window routinely separates a call from its result; that is
    not a repair of a broken input."""
    history = build(fmt, [system("sys"), user("the task"), *tool_loop(4)])
    result = compact(fmt, history, **window(2))
    assert (result.orphans_removed, result.calls_repaired) == (1, 0)
    assert (result.input_defects_repaired, result.pairs_cut_by_window) == (0, 1)
    # A defect of the input in the window is one, whether or not the window cuts.
    history = build(fmt, [system("sys"), user("the task"), *tool_loop(4), results("stale"), assistant("ok")])
    for budget in ({}, window(2)):
        result = compact(fmt, history, **budget)
        assert result.input_defects_repaired == 1
        assert result.orphans_removed + result.calls_repaired == result.input_defects_repaired + result.pairs_cut_by_window


@pytest.mark.parametrize("mode", ["drop", "stub"])
@pytest.mark.parametrize("fmt", ["openai", "responses", "anthropic"])
@pytest.mark.parametrize(
    "pending",
    [[calls("c1"), results("c1", "ghost")], [assistant("a"), user("next"), results("ghost")]],
    ids=["a-valid-result-beside-an-orphan", "a-prompt-before-an-orphan"],
)
def test_a_pending_request_with_something_besides_orphan_results_is_sent_without_them(fmt, mode, pending):
    """The other side of the nothing-to-send error: when the final request run holds a
    result that answers a call, or a prompt, only the orphan goes and the rest is sent."""
    history = build(fmt, [user("q"), *pending])
    result = compact(fmt, history, dangling_calls=mode)
    assert result.orphans_removed == 1 and result.calls_repaired == 0
    assert not any("ghost" in token for token in flatten(fmt, result.messages))
    assert flatten(fmt, result.messages) == [t for t in flatten(fmt, history) if "ghost" not in t]
    window_only = tokensieve.ContextStrategies(summary=False)  # as compact() runs the window's cases
    assert baseline.compact(history, dangling_calls=mode, context=window_only).messages == result.messages


def test_a_responses_item_with_type_none_is_read_as_a_message_and_its_prompt_is_the_current_task():
    """``"type": None`` (what a dump that keeps None values writes) is no type, as an
    absent key is: the item is a message, and the latest user one is the current task,
    kept however tight the budget."""
    filler = "lorem ipsum dolor sit amet " * 60
    items: list[dict[str, Any]] = [{"type": None, "role": "developer", "content": "Be terse."}]
    for i in range(8):
        items += [{"type": None, "role": "user", "content": f"step {i}: {filler}"},
                  {"type": None, "role": "assistant", "content": f"done {i}: {filler}"}]
    task = {"type": None, "role": "user", "content": "the current task"}
    items.append(task)
    config = tokensieve.BudgetConfig(max_input_tokens=2_000, target_input_tokens=600)
    result = tokensieve.Compactor(config).compact(items)
    assert result.action == "compacted"
    assert result.messages[0] is items[0] and result.messages[-1] is task
    expected = baseline.compact(items, config)
    assert [id(m) for m in result.messages] == [id(m) for m in expected.messages]
