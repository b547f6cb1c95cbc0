"""End to end, offline: a pydantic-ai Agent whose history a ``tokensieve.Compactor``
compacts before every model request, through ``capabilities=[ProcessHistory(compactor)]``.

The model is a ``FunctionModel`` that calls a ``fetch`` tool page after page (each
result a few hundred tokens), so the history grows past the compaction threshold within
a few steps. What the model received at each step is checked against what the
Compactor returned for it: the very same message objects, so pydantic-ai's own repair
before sending (``messages._clean_message_history``: dropping orphan returns,
synthesizing "interrupted" returns for dangling calls, merging requests) had nothing to
do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic_ai import Agent
from pydantic_ai.capabilities import ProcessHistory
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel

import tokensieve
from tests.support.agent_fixtures import assert_valid, brief, count_exchanges

TASK = "Read every page of the report."
FOLLOW_UP = "Now compare the first and the last page you read."
MAX_EXCHANGES = 2
BUDGET = dict(
    max_input_tokens=2_000,
    compaction_threshold=0.5,  # compact above 1000 tokens
    hard_limit_threshold=1.0,
    target_input_tokens=1_000,
    max_exchanges=MAX_EXCHANGES,
)


def page_text(page: int) -> str:
    """A tool result of about 300 tokens."""
    return f"page {page}: " + " ".join(f"finding{page}x{i}" for i in range(75))


class RecordingCompactor(tokensieve.Compactor):
    """A Compactor that keeps what each of its calls returned. It is used as is (its
    own ``__call__``); only ``compact`` is wrapped."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.results: list[tokensieve.CompactionResult] = []

    def compact(self, messages, *, format=None):  # type: ignore[override]
        result = super().compact(messages, format=format)
        self.results.append(result)
        return result


@dataclass
class Script:
    """The FunctionModel's behaviour: ``pages[run]`` fetch calls in run ``run``, then a
    text answer naming the last result it saw. Records what it received."""

    pages: list[int]
    received: list[list[ModelMessage]] = field(default_factory=list)
    run: int = 0
    step_in_run: int = 0
    next_page: int = 0

    def __call__(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        self.received.append(list(messages))
        if self.step_in_run < self.pages[self.run]:
            page = self.next_page
            self.next_page += 1
            self.step_in_run += 1
            return ModelResponse(
                parts=[TextPart(f"reading page {page}"), ToolCallPart("fetch", {"page": page}, tool_call_id=f"call_{page}")]
            )
        last = messages[-1]
        returns = [p for p in last.parts if isinstance(p, ToolReturnPart)] if isinstance(last, ModelRequest) else []
        seen = returns[-1].content.split(":")[0] if returns else "nothing"
        self.run += 1
        self.step_in_run = 0
        return ModelResponse(parts=[TextPart(f"run {self.run} done, last saw {seen}")])


def make_agent(script: Script, compactor: tokensieve.Compactor, fetched: list[int]) -> Agent:
    agent = Agent(FunctionModel(script), instructions="You read reports.", capabilities=[ProcessHistory(compactor)])

    @agent.tool_plain
    def fetch(page: int) -> str:
        """Fetch one page of the report."""
        fetched.append(page)
        return page_text(page)

    return agent


def user_prompts(messages: list[ModelMessage]) -> list[str]:
    return [p.content for m in messages if isinstance(m, ModelRequest) for p in m.parts if isinstance(p, UserPromptPart)]


def tool_returns(messages: list[ModelMessage]) -> list[ToolReturnPart]:
    return [p for m in messages if isinstance(m, ModelRequest) for p in m.parts if isinstance(p, ToolReturnPart)]


def assert_sent_as_compacted(received: list[ModelMessage], result: tokensieve.CompactionResult) -> None:
    """The model got exactly what the Compactor returned: pydantic-ai repaired nothing."""
    assert len(received) == len(result.messages), (brief(received), brief(result.messages))
    assert all(a is b for a, b in zip(received, result.messages)), (brief(received), brief(result.messages))
    for part in tool_returns(received):
        assert part.outcome != "interrupted", part
        assert not (part.metadata or {}).get("pydantic_ai_synthesized_tool_return"), part


def assert_well_formed(received: list[ModelMessage], current_task: str) -> None:
    assert_valid("pydantic-ai", received)  # no orphan return, no dangling call, user first
    assert isinstance(received[-1], ModelRequest)
    assert user_prompts(received).count(current_task) == 1, brief(received)
    assert user_prompts(received)[-1] == current_task


def test_agent_history_is_compacted_before_every_model_request():
    pages = 8
    script = Script(pages=[pages])
    compactor = RecordingCompactor(**BUDGET)
    fetched: list[int] = []
    result = make_agent(script, compactor, fetched).run_sync(TASK)

    assert result.output == f"run 1 done, last saw page {pages - 1}"
    assert fetched == list(range(pages))
    steps = script.received
    assert len(steps) == pages + 1
    # One compaction per model request, and the model got its output.
    assert len(compactor.results) == len(steps)

    compacted_steps = 0
    for step, (received, compaction) in enumerate(zip(steps, compactor.results)):
        assert_sent_as_compacted(received, compaction)
        assert_well_formed(received, TASK)
        # The first message is the task, whatever was cut after it.
        assert user_prompts(received[:1]) == [TASK]
        if step > 0:
            # The latest tool return is there, with its content.
            latest = [p for p in received[-1].parts if isinstance(p, ToolReturnPart)]
            assert [p.tool_call_id for p in latest] == [f"call_{step - 1}"]
            assert latest[0].content == page_text(step - 1)
        if compaction.action == "compacted":
            compacted_steps += 1
            assert compaction.tokens_before > BUDGET["compaction_threshold"] * BUDGET["max_input_tokens"]
            assert compaction.tokens_after < compaction.tokens_before
            assert compaction.tokens_after <= BUDGET["target_input_tokens"]
            assert len(received) < compaction.messages_before
            assert 1 <= count_exchanges("pydantic-ai", received) <= MAX_EXCHANGES
            assert compaction.exchanges_kept == count_exchanges("pydantic-ai", received)
        else:
            assert compaction.tokens_before <= BUDGET["compaction_threshold"] * BUDGET["max_input_tokens"]
        assert (compaction.orphans_removed, compaction.calls_repaired) == (0, 0) or compaction.action == "compacted"
    # The history grew past the threshold and was cut back from then on.
    assert compacted_steps >= pages - 3
    assert max(len(s) for s in steps) <= 1 + 2 * (MAX_EXCHANGES + 1)
    assert len(steps[-1]) < 2 * pages + 1
    # What the run keeps is the compacted history plus the final answer.
    history = result.all_messages()
    assert_valid("pydantic-ai", history)
    assert all(a is b for a, b in zip(history, steps[-1]))
    assert history[-1].parts[0].content == result.output


def test_a_compacted_history_stays_unchanged_when_compacted_again():
    """A history processor's result replaces the stored history: compacting what the model
    received again must return the same messages."""
    script = Script(pages=[6])
    compactor = RecordingCompactor(**BUDGET)
    make_agent(script, compactor, []).run_sync(TASK)
    plain = tokensieve.Compactor(**BUDGET)
    for received in script.received:
        again = plain.compact(received)
        assert len(again.messages) == len(received) and all(a is b for a, b in zip(again.messages, received))
        assert (again.orphans_removed, again.calls_repaired) == (0, 0)


def test_a_second_run_is_compacted_with_its_new_prompt_as_the_current_task():
    script = Script(pages=[4, 5])
    compactor = RecordingCompactor(**BUDGET)
    fetched: list[int] = []
    agent = make_agent(script, compactor, fetched)
    first = agent.run_sync(TASK)
    assert first.output == "run 1 done, last saw page 3"
    first_steps = len(script.received)

    second = agent.run_sync(FOLLOW_UP, message_history=first.all_messages())
    assert second.output == "run 2 done, last saw page 8"
    assert fetched == list(range(9))

    run2 = list(zip(script.received, compactor.results))[first_steps:]
    assert len(run2) == 6
    compacted = 0
    for step, (received, compaction) in enumerate(run2):
        assert_sent_as_compacted(received, compaction)
        assert_well_formed(received, FOLLOW_UP)  # the new prompt is the current task
        if compaction.action == "compacted":
            compacted += 1
            assert compaction.tokens_after <= BUDGET["target_input_tokens"]
            assert 1 <= count_exchanges("pydantic-ai", received) <= MAX_EXCHANGES
        if step > 0:
            assert [p.tool_call_id for p in received[-1].parts if isinstance(p, ToolReturnPart)] == [f"call_{3 + step}"]
    assert compacted >= 3
    # The first task is not special: once the window moved on, it is gone.
    last_received = run2[-1][0]
    assert TASK not in user_prompts(last_received)
    assert_valid("pydantic-ai", second.all_messages())


def test_a_history_over_the_hard_limit_stops_the_run_before_the_model_is_called():
    script = Script(pages=[3])
    compactor = tokensieve.Compactor(
        max_input_tokens=2_000, compaction_threshold=0.2, hard_limit_threshold=0.3, target_input_tokens=400,
        max_exchanges=MAX_EXCHANGES,
    )
    agent = make_agent(script, compactor, [])
    huge = "background: " + "lorem ipsum dolor sit amet " * 150  # about 750 tokens, pinned as the task
    with pytest.raises(tokensieve.BudgetExceededError) as info:
        agent.run_sync(huge)
    assert info.value.limit == 600 and info.value.tokens_after > 600
    assert script.received == []


@pytest.mark.parametrize("setting", ["system_prompt", "instructions"])
def test_the_pinned_first_request_stays_the_same_size_over_60_turns(setting):
    """Issue 9, item 1: pydantic-ai puts the system prompt and the first prompt in one
    request. Pinned whole, it was followed by the window's first request, pydantic-ai
    merged the two when the history came back, and every later turn's prompt piled into
    it (57 stale prompts after 60 turns). Only the system parts are pinned now: the first
    request holds the system prompt and at most the prompt that opens the window (all
    prompts here have the same size)."""
    from tokensieve.integrations.pydantic_ai import TokenBudget

    def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        return ModelResponse(parts=[TextPart("an answer of a few words " * 6)])

    config = tokensieve.BudgetConfig(
        max_input_tokens=2_000, compaction_threshold=0.3, hard_limit_threshold=1.0, target_input_tokens=400,
        max_exchanges=3,
    )
    agent = Agent(FunctionModel(model), capabilities=[TokenBudget(config)], **{setting: "You answer questions."})
    history: list[ModelMessage] = []
    sizes, compacted = [], 0
    for turn in range(60):
        result = agent.run_sync(f"question {turn:02d} please", message_history=history)
        history = result.all_messages()
        first = history[0]
        assert isinstance(first, ModelRequest)
        assert len(user_prompts([first])) <= 1, brief(history[:1])
        sizes.append(int(tokensieve.count_history_tokens([first]).sum()))
        compacted += len(history) < 2 * (turn + 1)
    assert compacted >= 40  # the window moved on again and again
    # Never more than on the first turn (the system prompt and one prompt): no growth.
    assert max(sizes) == sizes[0], sizes
    assert_valid("pydantic-ai", history)
