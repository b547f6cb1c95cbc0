"""The warm path: a history read before is taken as read then, only while unchanged.

The reader remembers the last histories it read by the identity of their messages
(``history_memo.rs``), and the pipeline the messages it rebuilt (``rebuilt_memo.rs``). An
agent passes, on every request, the history of last time plus a new exchange: these
tests change the old messages in place in every way a caller could between two such
requests and compare what comes back with a cold read of the same objects (the caches
emptied first) and, for counts, with the pure-Python baseline, which reads everything
every time.
"""

from __future__ import annotations

import gc
import random
import weakref
from collections.abc import Callable
from typing import Any

import pytest
from pydantic_ai.messages import (
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)

import tokensieve
from tokensieve import _bench, baseline
from tokensieve.config import BudgetConfig, ContextStrategies


def _counts(history: list[Any]) -> list[int]:
    return tokensieve.count_history_tokens(history).tolist()


def _cold(fn: Callable[[], Any]) -> Any:
    tokensieve.clear_cache()
    return fn()


def _exchange(n: int) -> list[Any]:
    return _bench.exchange(random.Random(n), 10_000 + 2 * n)


# ---- pydantic-ai: every way an old message can change ----------------------------------

PYDANTIC_AI_MUTATIONS: dict[str, Callable[[list[Any]], None]] = {
    "result content reassigned": lambda h: setattr(h[2].parts[0], "content", "a new and much longer result " * 9),
    "call arguments changed in place": lambda h: h[1].parts[-1].args.__setitem__("path", "src/another_file.py"),
    "call arguments reassigned": lambda h: setattr(h[1].parts[-1], "args", {"path": "x.py", "extra": "more args"}),
    "tool name reassigned": lambda h: setattr(h[1].parts[-1], "tool_name", "a_much_longer_tool_name"),
    "call id reassigned": lambda h: setattr(h[1].parts[-1], "tool_call_id", "another_call_id"),
    "part replaced in its list": lambda h: h[2].parts.__setitem__(
        0, ToolReturnPart(h[2].parts[0].tool_name, "replaced result text", tool_call_id=h[2].parts[0].tool_call_id)
    ),
    "part appended to a list": lambda h: h[0].parts.append(UserPromptPart("and one more instruction for the task")),
    "part removed from a list": lambda h: h[1].parts.insert(0, TextPart("thinking aloud before the call")),
    "parts list reassigned": lambda h: setattr(h[2], "parts", [ToolReturnPart("grep", "x", tool_call_id="zz")]),
    "message replaced in the history": lambda h: h.__setitem__(3, ModelResponse(parts=[TextPart("a different reply")])),
    "message removed from the history": lambda h: h.pop(5),
    "prompt content reassigned": lambda h: setattr(h[0].parts[1], "content", "Fix the failing tests, then the docs."),
    "instructions set": lambda h: setattr(h[2], "instructions", "Be brief. Use the tools. Run the tests."),
    "part kind reassigned": lambda h: setattr(h[0].parts[1], "part_kind", "system-prompt"),
}


@pytest.mark.parametrize("mutation", list(PYDANTIC_AI_MUTATIONS), ids=list(PYDANTIC_AI_MUTATIONS))
def test_an_old_pydantic_ai_message_changed_in_place_after_a_warm_call_is_read_anew(mutation, pristine_cache):
    history = _bench.history(40)
    _counts(history)
    _counts(history + _exchange(1))  # the warm path: history of last time plus an exchange
    PYDANTIC_AI_MUTATIONS[mutation](history)
    grown = history + _exchange(2)
    warm = _counts(grown)
    assert warm == baseline.count_history_tokens(grown)
    assert warm == _cold(lambda: _counts(grown))


def test_a_message_changed_back_and_forth_is_counted_as_it_is_each_time(pristine_cache):
    history = _bench.history(20)
    part = history[2].parts[0]
    original = part.content
    for text in ["short", original, "a longer text " * 50, original]:
        part.content = text
        assert _counts(history) == baseline.count_history_tokens(history)


# ---- the pipeline: details and rebuilt messages ------------------------------------------

PIPELINE = BudgetConfig(
    max_input_tokens=20_000,
    compaction_threshold=0.3,
    hard_limit_threshold=1.0,
    target_input_tokens=8_000,
    context=ContextStrategies(summary=False),
)


def _compact(history: list[Any]) -> tokensieve.CompactionResult:
    return tokensieve.Compactor(PIPELINE).compact(history)


def _same_result(ours: tokensieve.CompactionResult, cold: tokensieve.CompactionResult) -> None:
    assert ours.messages == cold.messages
    assert (ours.tokens_before, ours.tokens_after, ours.steps) == (cold.tokens_before, cold.tokens_after, cold.steps)
    assert list(ours.per_message_tokens) == list(cold.per_message_tokens)


PIPELINE_MUTATIONS: dict[str, Callable[[list[Any]], None]] = {
    **PYDANTIC_AI_MUTATIONS,
    "outcome of an old result reassigned": lambda h: setattr(h[4].parts[0], "outcome", "failed"),
    "old result made a retry": lambda h: setattr(h[4].parts[0], "part_kind", "retry-prompt"),
    "timestamp of a masked message reassigned": lambda h: setattr(h[4], "timestamp", h[1].timestamp),
}


@pytest.mark.parametrize("mutation", list(PIPELINE_MUTATIONS), ids=list(PIPELINE_MUTATIONS))
def test_the_pipeline_after_an_old_message_changed_in_place_gives_what_a_cold_run_gives(mutation, pristine_cache):
    history = _bench.history(300, seed=3)
    first = _compact(history + _exchange(1))
    assert any(s.step == "mask" and s.items for s in first.steps)  # masked results are rebuilt
    _compact(history + _exchange(1))
    PIPELINE_MUTATIONS[mutation](history)
    grown = history + _exchange(2)
    warm = _compact(grown)
    _same_result(warm, _cold(lambda: _compact(grown)))


def test_a_rebuilt_message_changed_by_the_caller_is_rebuilt_again(pristine_cache):
    history = _bench.history(300, seed=4)
    out = _compact(history).messages
    rebuilt = [m for m in out if m not in history]
    assert rebuilt, "the pipeline masked something"
    # What the caller was handed is the caller's: changed in place, it is not handed out again.
    rebuilt[0].parts[0].content = "changed by the caller"
    rebuilt[1].parts.append(TextPart("appended by the caller"))
    rebuilt[2].timestamp = history[0].timestamp
    again = _compact(history)
    _same_result(again, _cold(lambda: _compact(history)))
    assert all("by the caller" not in str(m) for m in again.messages)


def test_an_unchanged_message_is_rebuilt_into_the_same_object_on_the_next_request(pristine_cache):
    history = _bench.history(300, seed=5)
    first = _compact(history).messages
    second = _compact(history + _exchange(1)).messages
    rebuilt_first = {id(m) for m in first if m not in history}
    assert rebuilt_first & {id(m) for m in second}, "masked messages are reused from one request to the next"


# ---- dict formats: read every time, still as they are ------------------------------------

def _openai_history() -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "go"}]
    for k in range(6):
        messages.append({"role": "assistant", "content": None, "tool_calls": [
            {"id": f"c{k}", "type": "function", "function": {"name": "read", "arguments": '{"path": "a.py"}'}}]})
        messages.append({"role": "tool", "tool_call_id": f"c{k}", "content": f"result {k} " * 20})
    return messages


def _anthropic_history() -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [{"role": "user", "content": "go"}]
    for k in range(6):
        messages.append({"role": "assistant", "content": [
            {"type": "tool_use", "id": f"t{k}", "name": "read", "input": {"path": "a.py"}}]})
        messages.append({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": f"t{k}", "content": f"result {k} " * 20}]})
    return messages


def _responses_history() -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = [{"role": "user", "content": "go"}]
    for k in range(6):
        items.append({"type": "function_call", "call_id": f"f{k}", "name": "read", "arguments": '{"path": "a.py"}'})
        items.append({"type": "function_call_output", "call_id": f"f{k}", "output": f"result {k} " * 20})
    return items


DICT_MUTATIONS: dict[str, Callable[[list[Any]], None]] = {
    "content changed": lambda h: h[-1].__setitem__("content" if "content" in h[-1] else "output", "changed " * 30),
    "content list appended": lambda h: h[0].__setitem__("content", [{"type": "text", "text": "go"}])
    or h[0]["content"].append({"type": "text", "text": "and also the docs, all of them"}),
    "key added": lambda h: h[0].__setitem__("name", "a_user_name"),
    "message removed": lambda h: h.pop(),
}


@pytest.mark.parametrize("build", [_openai_history, _anthropic_history, _responses_history],
                         ids=["openai", "anthropic", "responses"])
@pytest.mark.parametrize("mutation", list(DICT_MUTATIONS), ids=list(DICT_MUTATIONS))
def test_a_dict_message_changed_in_place_after_a_warm_call_is_read_anew(build, mutation, pristine_cache):
    history = build()
    _counts(history)
    _counts(history + [{"role": "user", "content": "next"}])
    DICT_MUTATIONS[mutation](history)
    grown = history + [{"role": "user", "content": "and next"}]
    assert _counts(grown) == baseline.count_history_tokens(grown)
    assert _counts(grown) == _cold(lambda: _counts(grown))


# ---- bounds --------------------------------------------------------------------------------

MAX_HISTORIES = 8  # history_memo::MAX_ENTRIES


def test_the_history_memo_keeps_a_bounded_number_of_histories_and_clear_cache_releases_them(pristine_cache):
    refs = []
    for seed in range(3 * MAX_HISTORIES):
        history = _bench.history(30, seed=seed)
        _counts(history)
        refs.append([weakref.ref(m) for m in history])
        del history
    gc.collect()
    alive = sum(1 for history in refs if any(r() is not None for r in history))
    assert 0 < alive <= MAX_HISTORIES
    tokensieve.clear_cache()
    gc.collect()
    assert not any(r() is not None for history in refs for r in history)


def test_with_the_cache_disabled_no_history_is_kept(pristine_cache):
    tokensieve.configure_cache(enabled=False)
    history = _bench.history(30)
    refs = [weakref.ref(m) for m in history]
    _counts(history)
    del history
    gc.collect()
    assert not any(r() is not None for r in refs)


def test_histories_interleaved_by_several_conversations_each_stay_warm_and_exact(pristine_cache):
    conversations = [_bench.history(60, seed=s) for s in range(MAX_HISTORIES)]
    for round in range(3):
        for c, history in enumerate(conversations):
            history.extend(_exchange(100 * c + round))
            assert _counts(history) == baseline.count_history_tokens(history)


# ---- parts checked in their __dict__: only where getattr would find them there ---------------


class _ShadowedPrompt:
    """A prompt whose `content` a property serves, over a `__dict__` entry of that name."""

    def __init__(self, text: str) -> None:
        self.part_kind = "user-prompt"
        self._text = text
        self.__dict__["content"] = text  # the same object, until the property's changes

    @property
    def content(self) -> str:
        return self._text


def test_an_attribute_served_by_a_property_is_checked_through_the_property(pristine_cache):
    part = _ShadowedPrompt("the task as first written")
    history = [ModelRequest(parts=[part]), *_exchange(1)]
    _counts(history)
    _counts(history + _exchange(2))
    part._text = "the task as rewritten later, with many more words than before"
    grown = history + _exchange(3)
    assert _counts(grown) == baseline.count_history_tokens(grown)


def test_a_part_whose_dict_or_class_was_replaced_is_read_anew(pristine_cache):
    history = _bench.history(20)
    _counts(history)
    _counts(history + _exchange(1))
    result = history[2].parts[0]
    result.__dict__ = {**vars(result), "content": "a replaced __dict__ with another content " * 4}
    prompt = history[0].parts[1]
    prompt.__class__ = type("Prompt", (type(prompt),), {"content": property(lambda self: "served by a property")})
    grown = history + _exchange(2)
    assert _counts(grown) == baseline.count_history_tokens(grown)
    assert _counts(grown) == _cold(lambda: _counts(grown))


# ---- the summary: the events of the summarized prefix, kept with the history ----------

SUMMARIZED = PIPELINE.replace(context=ContextStrategies())  # the default: the summary on


def _summarized(history: list[Any]) -> tokensieve.CompactionResult:
    return tokensieve.Compactor(SUMMARIZED).compact(history)


def _summary_of(result: tokensieve.CompactionResult) -> Any:
    assert any(s.step == "summary" and s.items for s in result.steps), result.steps
    return result.messages


def test_a_session_grown_request_by_request_gets_the_summary_a_cold_run_gets(pristine_cache):
    """Pydantic-ai objects (the format the history memo covers): each request's summary,
    its events reused from the requests before, is byte for byte the cold one."""
    history = _bench.history(300, seed=5)
    sent, warm = [], []
    for n in range(1, 9):
        history = history + _exchange(n)
        sent.append(history)
        warm.append(_summarized(history))
    for history, ours in zip(sent, warm):
        _summary_of(ours)
        _same_result(ours, _cold(lambda h=history: _summarized(h)))


@pytest.mark.parametrize("mutation", list(PIPELINE_MUTATIONS), ids=list(PIPELINE_MUTATIONS))
def test_a_summarized_message_changed_in_place_changes_the_summary_as_a_cold_run_does(mutation, pristine_cache):
    history = _bench.history(300, seed=3)
    _summarized(history + _exchange(1))
    _summary_of(_summarized(history + _exchange(2)))  # its events kept
    PIPELINE_MUTATIONS[mutation](history)
    grown = history + _exchange(3)
    warm = _summarized(grown)
    _same_result(warm, _cold(lambda: _summarized(grown)))


def test_the_task_of_a_summarized_prompt_changed_in_place_is_the_summarys_new_task(pristine_cache):
    history = _bench.history(300, seed=3)
    _summarized(history + _exchange(1))
    before = str(_summary_of(_summarized(history + _exchange(2))))
    history[0].parts[1].content = "Port the scheduler to asyncio, then delete sched_v1.py"
    after = _summarized(history + _exchange(3))
    assert "Port the scheduler to asyncio" not in before
    assert "Port the scheduler to asyncio" in str(_summary_of(after))
