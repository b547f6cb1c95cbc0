"""The budget layer end to end: ``preflight`` and the pydantic-ai ``TokenBudget``
capability, offline, with the telemetry they emit checked through logfire's ``capfire``.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic_ai import Agent
from pydantic_ai.exceptions import ModelHTTPError
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

import tokensieve
from tests.support.agent_fixtures import assert_valid, count_exchanges
from tokensieve import BudgetConfig, TaskType, preflight, telemetry
from tokensieve.integrations.pydantic_ai import TokenBudget

try:
    import logfire  # noqa: F401 - its pytest plugin provides the capfire fixture
except ImportError:  # pragma: no cover - logfire is a test dependency

    @pytest.fixture
    def capfire():
        pytest.skip("the capfire fixture comes with the logfire package")


@pytest.fixture(autouse=True)
def telemetry_on(monkeypatch):
    monkeypatch.delenv("TOKENSIEVE_TELEMETRY", raising=False)
    telemetry.configure()
    yield
    telemetry.configure()


def spans(capfire, name: str) -> list[dict[str, Any]]:
    return [
        s["attributes"]
        for s in capfire.exporter.exported_spans_as_dict()
        if s["name"] == name and s["attributes"].get("logfire.span_type") != "pending_span"
    ]


SMALL = BudgetConfig(
    max_input_tokens=2_000,
    compaction_threshold=0.5,
    hard_limit_threshold=1.0,
    target_input_tokens=1_000,
    max_exchanges=2,
)


def chat(exchanges: int, words: int = 60) -> list[dict[str, Any]]:
    history: list[dict[str, Any]] = [{"role": "system", "content": "You are a coding agent."}]
    for i in range(exchanges):
        history.append({"role": "user", "content": f"Why does step {i} fail? " + "the log says timeout " * words})
        history.append({"role": "assistant", "content": f"Step {i} fails because " + "the pool is full " * words})
    history.append({"role": "user", "content": "Why does the retry not help?"})
    return history


# --------------------------------------------------------------------------- preflight


def test_preflight_within_budget_sends_the_history_as_is_with_the_tasks_output_budget():
    history = chat(1, words=5)
    check = preflight(history, SMALL)
    assert check.decision == "ok"
    assert all(a is b for a, b in zip(check.messages, history)) and len(check.messages) == len(history)
    assert check.task is TaskType.EXPLANATION
    assert check.max_output_tokens == SMALL.output_budgets.explanation == 1800
    assert check.model_settings() == {"max_tokens": 1800}
    assert check.input_tokens == check.compaction.tokens_after
    assert check.fraction == pytest.approx(check.input_tokens / SMALL.max_input_tokens)


def test_preflight_over_the_threshold_compacts_and_says_so():
    history = chat(12)
    check = preflight(history, SMALL)
    assert check.decision == "compact"
    assert check.input_tokens <= SMALL.target_input_tokens
    assert check.messages[0] is history[0] and check.messages[-1] is history[-1]
    assert check.compaction.dropped


def test_preflight_over_the_hard_limit_blocks_without_touching_the_history():
    history = chat(12, words=400)
    before = json.dumps(history)
    check = preflight(history, SMALL.replace(hard_limit_threshold=0.6))
    assert check.decision == "block"
    assert isinstance(check.error, tokensieve.BudgetExceededError)
    assert check.input_tokens == check.error.tokens_after > check.error.limit
    assert json.dumps(history) == before
    with pytest.raises(tokensieve.BudgetExceededError):
        check.raise_if_blocked()


def test_preflight_warns_when_the_input_approaches_the_hard_limit():
    history = chat(1, words=200)
    window = int(sum(tokensieve.count_history_tokens(history)) / 0.9)  # the history fills 90% of it
    config = BudgetConfig(max_input_tokens=window, compaction_threshold=1.0, hard_limit_threshold=1.0,
                          target_input_tokens=window)
    with pytest.warns(tokensieve.BudgetWarning, match="context window"):
        check = preflight(history, config)
    assert check.decision == "ok"
    assert any("context window" in w for w in check.warnings)


def test_preflight_uses_the_models_preset_when_no_config_is_given():
    check = preflight(chat(1, words=5), model="openai:gpt-4o")
    assert check.compaction is not None
    assert check.fraction == pytest.approx(check.input_tokens / 128_000)


def test_preflight_records_a_compaction_span_with_task_and_output_budget(capfire):
    preflight(chat(12), SMALL, model="cerebras:test")
    [span] = spans(capfire, "compaction")
    assert span["action"] == "compacted"
    assert span["task"] == "EXPLANATION"
    assert span["max_output_tokens"] == 1800
    assert span["model"] == "cerebras:test"
    assert span["tokens_before"] > span["tokens_after"]


def test_a_blocked_preflight_emits_budget_blocked(capfire):
    preflight(chat(12, words=400), SMALL.replace(hard_limit_threshold=0.6), model="cerebras:test")
    [event] = spans(capfire, "budget_blocked")
    assert event["logfire.level_num"] == 17
    assert event["tokens_after"] > event["limit"]


# --------------------------------------------------------------------------- TokenBudget


def page(n: int) -> str:
    return f"page {n}: " + " ".join(f"finding{n}x{i}" for i in range(75))


@dataclass
class Reader:
    """A FunctionModel reading `pages` pages through the `fetch` tool, then answering."""

    pages: int
    received: list[list[ModelMessage]] = field(default_factory=list)
    max_tokens: list[int | None] = field(default_factory=list)

    def __call__(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        self.received.append(list(messages))
        self.max_tokens.append((info.model_settings or {}).get("max_tokens"))
        step = len(self.received) - 1
        if step < self.pages:
            return ModelResponse(parts=[ToolCallPart("fetch", {"page": step}, tool_call_id=f"call_{step}")])
        return ModelResponse(parts=[TextPart("Summary written.")])


def agent_with(budget: TokenBudget, model: Reader) -> Agent:
    agent = Agent(FunctionModel(model), capabilities=[budget])

    @agent.tool_plain
    def fetch(page: int) -> str:
        """Fetch one page of the report."""
        return globals()["page"](page)

    return agent


def test_token_budget_compacts_every_request_sets_max_tokens_and_records_telemetry(capfire):
    reader = Reader(pages=8)
    budget = TokenBudget(SMALL.replace(hard_limit_threshold=1.0))
    result = agent_with(budget, reader).run_sync("Read every page of the report with the fetch tool.")
    assert result.output == "Summary written."

    for step, messages in enumerate(reader.received):
        assert_valid("pydantic-ai", messages)
        # The task is always there, first (after the summary of what was dropped, if any).
        first = next(p for p in messages[0].parts if p.part_kind != "compaction")
        assert getattr(first, "content", None) == "Read every page of the report with the fetch tool."
        # The latest tool return reached the model.
        if step:
            assert any(isinstance(p, ToolReturnPart) and p.tool_call_id == f"call_{step - 1}" for p in messages[-1].parts)
        assert count_exchanges("pydantic-ai", messages) <= max(SMALL.max_exchanges, 1) or sum(
            tokensieve.count_history_tokens(messages)
        ) <= SMALL.compaction_tokens
    # Once the history passed the threshold it stopped growing.
    sizes = [len(m) for m in reader.received]
    assert max(sizes) < 2 * 8 + 1
    assert sizes[-1] <= sizes[len(sizes) // 2] + 2

    # Every request got the classified budget: a read-only tool loop is TOOL_CALL, 300.
    expected = [
        tokensieve.classify_task(m, SMALL).max_output_tokens for m in reader.received
    ]
    assert reader.max_tokens[1:] == expected[1:]
    assert set(reader.max_tokens[1:-1]) == {300}

    compactions = spans(capfire, "compaction")
    assert len(compactions) == len(reader.received)
    assert any(s["action"] == "compacted" for s in compactions)
    assert all(s["max_output_tokens"] == m for s, m in zip(compactions, reader.max_tokens))


def test_token_budget_stores_the_compacted_history_as_the_runs_history():
    reader = Reader(pages=8)
    result = agent_with(TokenBudget(SMALL.replace(hard_limit_threshold=1.0)), reader).run_sync(
        "Read every page of the report with the fetch tool."
    )
    stored = result.all_messages()
    assert len(stored) < 2 * 8 + 2
    assert_valid("pydantic-ai", stored)


def test_token_budget_blocks_a_request_over_the_hard_limit_before_the_model_sees_it(capfire):
    reader = Reader(pages=0)
    budget = TokenBudget(SMALL.replace(max_input_tokens=200, target_input_tokens=50, hard_limit_threshold=0.5))
    with pytest.raises(tokensieve.BudgetExceededError):
        agent_with(budget, reader).run_sync("Summarize: " + "lorem ipsum dolor " * 200)
    assert reader.received == []
    assert spans(capfire, "budget_blocked")


def test_token_budget_counts_the_tool_schemas_against_the_budget():
    reader = Reader(pages=1)
    budget = TokenBudget(SMALL.replace(hard_limit_threshold=1.0))
    agent_with(budget, reader).run_sync("Read the first page with the fetch tool.")
    without = TokenBudget(SMALL.replace(hard_limit_threshold=1.0), count_tools=False)
    agent_with(without, Reader(pages=1)).run_sync("Read the first page with the fetch tool.")
    assert budget.last.input_tokens > without.last.input_tokens


def test_token_budget_records_usage_and_rate_limits_in_the_tracker():
    tracker = tokensieve.UsageTracker(SMALL)
    reader = Reader(pages=2)
    agent_with(TokenBudget(SMALL.replace(hard_limit_threshold=1.0), tracker=tracker), reader).run_sync(
        "Read two pages with the fetch tool."
    )
    assert tracker.minute_requests == 3
    assert tracker.minute_tokens > 0

    def failing(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        raise ModelHTTPError(status_code=429, model_name="function", body="slow down")

    agent = Agent(FunctionModel(failing), capabilities=[TokenBudget(SMALL, tracker=tracker)])
    with pytest.raises(ModelHTTPError):
        agent.run_sync("Why does this fail?")
    assert tracker.consecutive_429s == 1


def test_token_budget_with_no_config_uses_the_models_preset():
    budget = TokenBudget()
    agent_with(budget, Reader(pages=0)).run_sync("Why does the parser drop empty lines?")
    assert budget.last is not None and budget.last.decision == "ok"


def test_the_budget_layer_never_lets_a_warning_escape_as_an_error():
    with warnings.catch_warnings():
        warnings.simplefilter("error", tokensieve.BudgetWarning)
        preflight(chat(1, words=5), SMALL)
