"""The pydantic-ai capability ``TokenBudget`` as agents use it: the user's ``max_tokens`` is
a ceiling, concurrent runs keep their own state, large histories are compacted off the
event loop, tools are counted as pydantic-ai sends them, telemetry names the model."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart, UserPromptPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

import tokensieve
import tokensieve.integrations.pydantic_ai as integration
from tests.support.agent_fixtures import assert_valid
from tokensieve import BudgetConfig, telemetry
from tokensieve.compaction import REPLY_PRIMING_TOKENS, count_tools_tokens
from tokensieve.integrations.pydantic_ai import TokenBudget, model_name

try:
    import logfire  # noqa: F401 - its pytest plugin provides the capfire fixture
except ImportError:

    @pytest.fixture
    def capfire():
        pytest.skip("the capfire fixture comes with the logfire package")


SMALL = BudgetConfig(
    max_input_tokens=2_000, compaction_threshold=0.5, hard_limit_threshold=1.0, target_input_tokens=1_000, max_exchanges=2
)
QUESTION = "Why does the parser drop empty lines?"  # EXPLANATION: 1800


@pytest.fixture(autouse=True)
def fresh_telemetry(monkeypatch):
    monkeypatch.delenv("TOKENSIEVE_TELEMETRY", raising=False)
    telemetry.configure()
    yield
    telemetry.configure()


@dataclass
class Echo:
    """A FunctionModel that records what it received and answers at once."""

    received: list[list[ModelMessage]] = field(default_factory=list)
    max_tokens: list[int | None] = field(default_factory=list)
    delay: float = 0.0

    async def __call__(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        self.received.append(list(messages))
        self.max_tokens.append((info.model_settings or {}).get("max_tokens"))
        if self.delay:
            await asyncio.sleep(self.delay)
        return ModelResponse(parts=[TextPart("Because of the strip() call.")])


# ------------------------------------------------------------------ item 3: max_tokens


@pytest.mark.parametrize(
    ("agent_settings", "run_settings", "expected"),
    [
        (None, None, 1800),
        ({"max_tokens": 100}, None, 100),
        (None, {"max_tokens": 50}, 50),
        ({"max_tokens": 100}, {"max_tokens": 60}, 60),
        ({"max_tokens": 5_000}, None, 1800),  # above the task's budget: ours is smaller
    ],
)
def test_the_users_max_tokens_is_a_ceiling_never_raised(agent_settings, run_settings, expected):
    model = Echo()
    agent = Agent(FunctionModel(model), capabilities=[TokenBudget(SMALL)], model_settings=agent_settings)
    agent.run_sync(QUESTION, model_settings=run_settings)
    assert model.max_tokens == [expected]


def test_a_models_own_max_tokens_is_a_ceiling_too():
    model = Echo()
    agent = Agent(FunctionModel(model, settings={"max_tokens": 42}), capabilities=[TokenBudget(SMALL)])
    agent.run_sync(QUESTION)
    assert model.max_tokens == [42]


# ------------------------------------------------------------------ item 8: concurrency


def history_about(topic: str, exchanges: int) -> list[ModelMessage]:
    messages: list[ModelMessage] = []
    for i in range(exchanges):
        messages.append(ModelRequest(parts=[UserPromptPart(f"{topic} question {i}: " + f"{topic} " * 80)]))
        messages.append(ModelResponse(parts=[TextPart(f"{topic} answer {i}: " + f"{topic} " * 80)]))
    return messages


def test_concurrent_runs_keep_their_own_state():
    budget = TokenBudget(SMALL)
    parsers, caches = Echo(delay=0.05), Echo(delay=0.05)

    async def both():
        return await asyncio.gather(
            Agent(FunctionModel(parsers), capabilities=[budget]).run(
                "Why does the parser drop lines?", message_history=history_about("parser", 12)
            ),
            Agent(FunctionModel(caches), capabilities=[budget]).run(
                "Why does the cache miss?", message_history=history_about("cache", 3)
            ),
        )

    first, second = asyncio.run(both())
    one, two = budget.last_for(first.run_id), budget.last_for(second.run_id)
    assert one is not None and two is not None and one is not two
    assert one.decision == "compact" and two.decision == "ok"
    assert one.messages[-1].parts[-1].content == "Why does the parser drop lines?"
    assert two.messages[-1].parts[-1].content == "Why does the cache miss?"
    assert all("cache" not in str(m) for m in one.messages)
    assert all("parser" not in str(m) for m in two.messages)
    # Each model received its own run's history, compacted to its own budget.
    assert parsers.received == [list(one.messages)] and caches.received == [list(two.messages)]
    for messages in (*parsers.received, *caches.received):
        assert_valid("pydantic-ai", messages)
    assert budget.last in (one, two)


def test_each_run_gets_its_own_copy_of_the_capability():
    budget = TokenBudget(SMALL)
    copies = [asyncio.run(budget.for_run(None)) for _ in range(2)]  # type: ignore[arg-type]
    assert copies[0] is not copies[1] and all(c is not budget for c in copies)
    assert all(c.config is budget.config and c.last is None for c in copies)


def test_a_large_history_is_compacted_off_the_event_loop_and_a_small_one_inline(monkeypatch):
    threads: list[int] = []
    real = integration.preflight

    def recording(*args: Any, **kwargs: Any):
        threads.append(threading.get_ident())
        return real(*args, **kwargs)

    monkeypatch.setattr(integration, "preflight", recording)

    async def run(budget: TokenBudget, history: list[ModelMessage]) -> int:
        await Agent(FunctionModel(Echo()), capabilities=[budget]).run(QUESTION, message_history=history)
        return threading.get_ident()

    loop_thread = asyncio.run(run(TokenBudget(SMALL, offload_min_messages=20), history_about("parser", 15)))
    assert threads and all(t != loop_thread for t in threads)
    threads.clear()
    loop_thread = asyncio.run(run(TokenBudget(SMALL, offload_min_messages=20), history_about("parser", 3)))
    assert threads == [loop_thread]


# ------------------------------------------------------------------ item 6: tools


def test_the_capability_counts_tools_as_pydantic_ai_sends_them():
    def agent_with(budget: TokenBudget) -> Agent:
        agent = Agent(FunctionModel(Echo()), capabilities=[budget])

        @agent.tool_plain
        def fetch(page: int) -> str:
            """Fetch one page of the report."""
            return f"page {page}"

        return agent

    counted, uncounted = TokenBudget(SMALL), TokenBudget(SMALL, count_tools=False)
    agent_with(counted).run_sync(QUESTION)
    agent_with(uncounted).run_sync(QUESTION)
    definition = agent_with(counted)._function_toolset.tools["fetch"].tool_def
    tools = count_tools_tokens([definition], api="pydantic-ai")
    assert tools > 0
    assert counted.last.input_tokens - uncounted.last.input_tokens == tools
    history_tokens = int(tokensieve.count_history_tokens(uncounted.last.messages).sum())
    assert uncounted.last.input_tokens == history_tokens + REPLY_PRIMING_TOKENS


# ------------------------------------------------------------------ item 9: the model's name


class FakeModel:
    def __init__(self, system: str | None, name: str) -> None:
        self.system, self.model_name = system, name


@pytest.mark.parametrize(
    ("system", "name", "expected"),
    [
        ("openai", "gpt-4o", "openai:gpt-4o"),
        ("openai", "openai:gpt-4o", "openai:gpt-4o"),
        ("groq", "groq", "groq"),
        (None, "llama-3.3-70b", "llama-3.3-70b"),
        ("function", "function:model_fn:", "function:model_fn:"),
        ("test", "test", "test"),
    ],
)
def test_the_model_is_named_by_its_own_name_without_a_repeated_system(system, name, expected):
    assert model_name(FakeModel(system, name)) == expected


def test_the_compaction_span_names_the_function_models_own_name(capfire):
    def model_fn(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        return ModelResponse(parts=[TextPart("ok")])

    function_model = FunctionModel(model_fn)
    Agent(function_model, capabilities=[TokenBudget(SMALL)]).run_sync(QUESTION)
    spans = [
        s["attributes"]
        for s in capfire.exporter.exported_spans_as_dict()
        if s["name"] == "compaction" and s["attributes"].get("logfire.span_type") != "pending_span"
    ]
    assert spans and all(s["model"] == function_model.model_name for s in spans)
    assert not any(s["model"].startswith("function:function:") for s in spans)
