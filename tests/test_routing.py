"""Routing, failover and failback that act: the same scenarios through the pydantic-ai
capability (a FunctionModel per named model) and through ``preflight`` with OpenAI-style
dicts, against a simulated provider that answers 429 once a model's day limit is spent."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field

import pytest
from pydantic_ai import Agent
from pydantic_ai.exceptions import ModelHTTPError
from pydantic_ai.messages import ModelRequest, ModelResponse, TextPart, UserPromptPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.usage import RequestUsage

from tokensieve import BudgetConfig, preflight, telemetry
from tokensieve.errors import ConfigurationError
from tokensieve.integrations.pydantic_ai import TokenBudget
from tokensieve.usage import UsageTracker

KIMI = "moonshot:kimi-k2.5"  # the agent's own model: general work
GLM = "zai:glm-4.7"  # the coding model
GROQ = "groq:llama-3.3-70b-versatile"  # the failover chain's model
SMALL = "groq:llama-3.1-8b-instant"  # a small model for tool calls

CODING = "Write a Python function that parses ISO 8601 dates."
QUESTION = "Why does the parser drop empty lines?"
TOKENS_PER_REQUEST = 1_000
DAY_LIMIT = 10_000  # 80% after 8 requests


class Clock:
    def __init__(self) -> None:
        self.t = 1_700_000_000.0

    def __call__(self) -> float:
        return self.t


class RateLimited(Exception):
    """The simulated provider's HTTP 429."""


@dataclass
class Provider:
    """Answers for every model; 429 once the model's day is spent (or always, when down)."""

    tracker: UsageTracker
    down: set[str] = field(default_factory=set)
    calls: list[str] = field(default_factory=list)

    def answer(self, model: str) -> tuple[int, int]:
        self.calls.append(model)
        if model in self.down or self.tracker.usage(model)[2] >= DAY_LIMIT:
            raise RateLimited(model)
        return TOKENS_PER_REQUEST - 100, 100


class AgentClient:
    """Requests through an agent whose model is KIMI, with TokenBudget routing."""

    name = "pydantic-ai"

    def __init__(self, tracker: UsageTracker, provider: Provider, primary: str = KIMI) -> None:
        self.provider = provider
        self.max_tokens: list[int | None] = []
        self.received: list[int] = []

        def make(name: str) -> FunctionModel:
            def fn(messages, info: AgentInfo) -> ModelResponse:
                self.max_tokens.append((info.model_settings or {}).get("max_tokens"))
                self.received.append(len(messages))
                try:
                    inp, out = provider.answer(name)
                except RateLimited:
                    raise ModelHTTPError(429, name, {"error": "rate limited"}) from None
                return ModelResponse(parts=[TextPart("ok")], usage=RequestUsage(input_tokens=inp, output_tokens=out))

            return FunctionModel(fn, model_name=name)

        self.budget = TokenBudget(tracker=tracker, models={m: make(m) for m in (GLM, GROQ, SMALL)})
        self.agent = Agent(make(primary), capabilities=[self.budget])

    def request(self, prompt: str, history: list | None = None) -> str:
        try:
            self.agent.run_sync(prompt, message_history=history)
        except ModelHTTPError as error:
            assert error.status_code == 429
        return self.provider.calls[-1]


class PlainClient:
    """Requests through preflight with OpenAI chat dicts, as the README shows."""

    name = "preflight"

    def __init__(self, tracker: UsageTracker, provider: Provider) -> None:
        self.tracker = tracker
        self.provider = provider
        self.checks: list = []

    def request(self, prompt: str, history: list | None = None) -> str:
        messages = [*(history or []), {"role": "user", "content": prompt}]
        check = preflight(messages, tracker=self.tracker, model=KIMI)
        self.checks.append(check)
        try:
            inp, out = self.provider.answer(check.model)
        except RateLimited:
            self.tracker.record_rate_limit(model=check.model)
        else:
            self.tracker.record({"prompt_tokens": inp, "completion_tokens": out}, model=check.model)
        return self.provider.calls[-1]


CLIENTS = [AgentClient, PlainClient]

# The tracker's capacity warnings also reach preflight's BudgetWarning: expected here.
pytestmark = pytest.mark.filterwarnings("ignore::tokensieve.errors.BudgetWarning")


@pytest.fixture(autouse=True)
def quiet_telemetry():
    telemetry.configure(enabled=False)
    yield
    telemetry.configure()


def setup(client_cls, **tracker_args):
    clock = Clock()
    args = {"routes": {"coding": GLM}, "failover": [GROQ], "clock": clock, **tracker_args}
    tracker = UsageTracker(BudgetConfig(tokens_per_day=DAY_LIMIT), **args)
    provider = Provider(tracker)
    return client_cls(tracker, provider), tracker, provider, clock


@pytest.mark.parametrize("client_cls", CLIENTS, ids=lambda c: c.name)
def test_requests_route_by_task(client_cls):
    client, *_ = setup(client_cls, routes={"coding": GLM, "TOOL_CALL": SMALL})
    assert client.request(CODING) == GLM
    assert client.request(QUESTION) == KIMI
    assert client.request("Run the linter on src/.") == SMALL  # a TOOL_CALL route


@pytest.mark.parametrize("client_cls", CLIENTS, ids=lambda c: c.name)
def test_at_80_percent_of_the_day_limit_the_next_request_goes_to_the_next_model_before_any_429(client_cls):
    client, tracker, provider, clock = setup(client_cls, failover_after=1)
    served = []
    for _ in range(12):
        served.append(client.request(QUESTION))
        clock.t += 120
    # 8 requests bring KIMI to 80% of its day: the 9th goes to the next model of the chain.
    assert served == [KIMI] * 8 + [GROQ] * 4
    assert tracker.consecutive_429s == 0 and tracker.usage(KIMI)[2] == 8 * TOKENS_PER_REQUEST
    assert all(tracker.usage(m)[2] < DAY_LIMIT for m in (KIMI, GROQ))  # nobody ever hit the cap


@pytest.mark.parametrize("client_cls", CLIENTS, ids=lambda c: c.name)
def test_three_consecutive_429s_fail_over_immediately(client_cls):
    client, tracker, provider, clock = setup(client_cls)
    provider.down.add(KIMI)
    assert [client.request(QUESTION) for _ in range(4)] == [KIMI, KIMI, KIMI, GROQ]
    assert tracker.usage(GROQ)[3] == 1


@pytest.mark.parametrize("client_cls", CLIENTS, ids=lambda c: c.name)
def test_after_the_cool_down_traffic_returns_to_the_primary(client_cls):
    client, tracker, provider, clock = setup(client_cls, failback=600)
    provider.down.add(KIMI)
    for _ in range(3):
        client.request(QUESTION)
    provider.down.clear()
    clock.t += 599  # still cooling down
    assert client.request(QUESTION) == GROQ
    clock.t += 1
    # One request probes the way back; its success fails back for good.
    assert [client.request(QUESTION) for _ in range(3)] == [KIMI, KIMI, KIMI]


@pytest.mark.parametrize("client_cls", CLIENTS, ids=lambda c: c.name)
def test_a_failed_probe_restarts_the_cool_down(client_cls):
    client, tracker, provider, clock = setup(client_cls, failback=600)
    provider.down.add(KIMI)
    for _ in range(3):
        client.request(QUESTION)
    assert client.request(QUESTION) == GROQ
    clock.t += 600
    assert client.request(QUESTION) == KIMI  # the probe, answered 429 again
    clock.t += 300
    assert client.request(QUESTION) == GROQ
    provider.down.clear()
    clock.t += 300
    assert [client.request(QUESTION) for _ in range(2)] == [KIMI, KIMI]


@pytest.mark.parametrize("client_cls", CLIENTS, ids=lambda c: c.name)
def test_a_coding_task_never_lands_on_the_non_coding_model_while_its_route_is_healthy(client_cls):
    client, tracker, provider, clock = setup(client_cls)
    provider.down.add(KIMI)  # the general model fails over; coding is unaffected
    served = []
    for i in range(12):
        prompt = CODING if i % 2 else QUESTION
        served.append((prompt == CODING, client.request(prompt)))
        clock.t += 1
    assert {model for coding, model in served if coding} == {GLM}
    assert {model for coding, model in served if not coding} == {KIMI, GROQ}


def test_the_budget_follows_the_model_that_serves_the_request():
    # cerebras' preset compacts above 15,000 tokens, groq's only above 38,400: the same
    # history is compacted for the one and sent whole to the other.
    cerebras = "cerebras:llama-3.3-70b"
    tracker = UsageTracker(BudgetConfig(tokens_per_day=DAY_LIMIT), routes={"coding": GROQ}, clock=Clock())
    provider = Provider(tracker)
    client = AgentClient(tracker, provider, primary=cerebras)
    filler = "the parser reads each line of the input and keeps the non-empty ones " * 180
    history: list = []
    for i in range(8):
        history.append(ModelRequest(parts=[UserPromptPart(f"step {i}: {filler}")]))
        history.append(ModelResponse(parts=[TextPart(f"done {i}")]))
    client.request(QUESTION, history=history)
    assert provider.calls[-1] == cerebras
    assert client.budget.last.decision == "compact" and client.received[-1] < len(history) + 1
    client.request(CODING, history=history)
    assert provider.calls[-1] == GROQ
    assert client.budget.last.decision == "ok" and client.received[-1] == len(history) + 1
    assert client.budget.last.routing.reason == "route"


def test_preflight_returns_the_model_and_the_reason_of_the_decision():
    clock = Clock()
    tracker = UsageTracker(BudgetConfig(tokens_per_day=DAY_LIMIT), routes={"coding": GLM}, failover=[GROQ],
                           clock=clock)
    for _ in range(3):
        tracker.record_rate_limit(model=GLM)
    check = preflight([{"role": "user", "content": CODING}], tracker=tracker, model=KIMI)
    assert (check.model, check.routing.reason, check.routing.preferred, check.routing.skipped) == (
        GROQ, "failover", GLM, (GLM,))
    assert str(check.routing) == (
        f"CODE_GENERATION (coding) -> {GROQ}: {GLM} failed over now (rate_limits); next in the failover chain: {GROQ}"
    )
    assert check.model_settings() == {"max_tokens": 3000}


def test_a_tracker_without_routes_or_chain_leaves_the_model_alone():
    check = preflight([{"role": "user", "content": CODING}], tracker=UsageTracker(), model=KIMI)
    assert (check.model, check.routing) == (KIMI, None)
    assert TokenBudget(tracker=UsageTracker()).get_model() is None


def test_routes_ship_as_data_and_are_off_unless_asked_for():
    assert UsageTracker().routes == {}
    assert UsageTracker(routes="groq-small-for-tool-calls").routes == {"tool_call": SMALL}
    with pytest.raises(ConfigurationError, match="unknown route set"):
        UsageTracker(routes="no-such-routes")


# --------------------------------------------------------------------------- shared ledger


def test_two_trackers_on_one_database_fail_over_together_and_probe_back_once(tmp_path):
    clock = Clock()
    db = tmp_path / "usage.db"
    kw = {"failover": [GROQ], "failback": 600, "clock": clock}
    a = UsageTracker(BudgetConfig(tokens_per_day=DAY_LIMIT), path=db, **kw)
    b = UsageTracker(BudgetConfig(tokens_per_day=DAY_LIMIT), path=db, **kw)
    for _ in range(3):
        a.record_rate_limit(model=KIMI)
    assert a.select(default=KIMI).model == GROQ
    routing = b.select(default=KIMI)  # b saw no 429 itself
    assert (routing.model, routing.reason, routing.skipped) == (GROQ, "failover", (KIMI,))
    clock.t += 600
    assert a.select(default=KIMI).reason == "probe"
    # While a's probe is out, b (and a) keep to the fallback: no stampede back.
    assert [b.select(default=KIMI).model, a.select(default=KIMI).model] == [GROQ, GROQ]
    a.record(TOKENS_PER_REQUEST, model=KIMI)  # the probe's answer, without warnings
    assert [a.select(default=KIMI).model, b.select(default=KIMI).model] == [KIMI, KIMI]


def test_a_probe_that_never_reports_back_lets_another_process_probe(tmp_path):
    clock = Clock()
    db = tmp_path / "usage.db"
    kw = {"failover": [GROQ], "failback": 600, "clock": clock}
    a, b = (UsageTracker(BudgetConfig(), path=db, **kw) for _ in range(2))
    for _ in range(3):
        a.record_rate_limit(model=KIMI)
    a.select(default=KIMI)
    clock.t += 600
    assert a.select(default=KIMI).reason == "probe"  # and a crashes
    clock.t += 119
    assert b.select(default=KIMI).model == GROQ
    clock.t += 1
    assert b.select(default=KIMI).reason == "probe"


def test_processes_sharing_the_ledger_follow_one_failover(tmp_path):
    db = tmp_path / "usage.db"
    tracker = UsageTracker(path=db, failover=[GROQ])
    for _ in range(3):
        tracker.record_rate_limit(model=KIMI)
    assert tracker.select(default=KIMI).model == GROQ
    script = textwrap.dedent(
        f"""
        from tokensieve import telemetry
        from tokensieve.usage import UsageTracker
        telemetry.configure(enabled=False)
        routing = UsageTracker(path={str(db)!r}, failover=[{GROQ!r}]).select(default={KIMI!r})
        print(routing.model, routing.reason)
        """
    )
    env = {**os.environ, "TOKENSIEVE_TELEMETRY": "0"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == [GROQ, "failover"]


def test_a_failback_clears_the_old_warnings_so_they_do_not_fail_over_again():
    clock = Clock()
    tracker = UsageTracker(BudgetConfig(tokens_per_minute=1_000), failover=[GROQ], failback=60,
                           failover_window=300, clock=clock)
    for _ in range(3):
        tracker.record(900, model=KIMI)
    assert tracker.select(default=KIMI).model == GROQ
    clock.t += 61  # the minute is empty again, and quiet
    assert tracker.select(default=KIMI).reason == "probe"
    tracker.record(100, model=KIMI)
    # The three warnings are still within the 300 s window, but from before the failback.
    assert tracker.select(default=KIMI).reason == "default"


# --------------------------------------------------------------------------- events

try:
    import logfire  # noqa: F401 - brings the capfire fixture (logfire's pytest plugin)
except ImportError:

    @pytest.fixture
    def capfire():
        pytest.skip("the capfire fixture comes with the logfire package: pip install logfire")


def test_failover_workload_routing_and_failback_events_say_what_happened_and_why(capfire):
    telemetry.configure()
    clock = Clock()
    tracker = UsageTracker(BudgetConfig(), routes={"coding": GLM}, failover=[GROQ], failback=600, clock=clock)
    for _ in range(3):
        tracker.record_rate_limit(model=GLM)
    tracker.select("CODE_GENERATION", default=KIMI)
    clock.t += 600
    tracker.select("CODE_GENERATION", default=KIMI)
    tracker.record(100, model=GLM)
    events = [
        (s["name"], {k: v for k, v in s["attributes"].items() if not k.startswith(("logfire.", "code."))})
        for s in capfire.exporter.exported_spans_as_dict()
    ]
    assert [name for name, _ in events] == [
        *["rate_limit"] * 3, "failover", "workload_routing", "workload_routing", "failback",
    ]
    assert events[3][1] == {
        "from_model": GLM, "to_model": GROQ, "reason": "rate_limits", "recent_warnings": 0, "consecutive_429s": 3,
    }
    assert events[4][1] == {
        "task": "CODE_GENERATION", "workload": "coding", "model": GROQ, "reason": "failover", "preferred": GLM,
    }
    assert events[5][1]["reason"] == "probe" and events[5][1]["model"] == GLM
    assert events[6][1] == {"from_model": GROQ, "to_model": GLM, "down_seconds": 600.0}


@pytest.mark.parametrize("client_cls", CLIENTS, ids=lambda c: c.name)
def test_the_failover_event_comes_before_the_first_request_to_the_next_model_and_no_429_ever(client_cls, capfire):
    telemetry.configure()
    client, tracker, provider, clock = setup(client_cls)
    for i in range(14):
        client.request(QUESTION)
        clock.t += 60
    names = [s["name"] for s in capfire.exporter.exported_spans_as_dict() if s["name"] != "compaction"]
    routed = [
        s["attributes"]["model"]
        for s in capfire.exporter.exported_spans_as_dict()
        if s["name"] == "workload_routing"
    ]
    assert routed == [KIMI] * 10 + [GROQ] * 4  # three requests warned (8,000, 9,000, 10,000 tokens)
    assert "rate_limit" not in names
    first_failover = names.index("failover")
    assert names[:first_failover].count("capacity_warning") == 3
    assert names[first_failover + 1] == "workload_routing"


def test_a_version_1_ledger_is_upgraded_in_place_and_keeps_its_usage(tmp_path):
    import sqlite3

    db = tmp_path / "usage.db"
    conn = sqlite3.connect(db)
    conn.executescript(
        "CREATE TABLE usage (id INTEGER PRIMARY KEY, ts REAL NOT NULL, model TEXT NOT NULL,"
        " input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL, total_tokens INTEGER NOT NULL,"
        " requests INTEGER NOT NULL);"
        "CREATE TABLE capacity_warnings (id INTEGER PRIMARY KEY, ts REAL NOT NULL, usage_id INTEGER NOT NULL,"
        " model TEXT NOT NULL, limit_name TEXT NOT NULL, used INTEGER NOT NULL, lim INTEGER NOT NULL,"
        " fraction REAL NOT NULL);"
        "CREATE TABLE rate_limits (model TEXT PRIMARY KEY, consecutive INTEGER NOT NULL, ts REAL NOT NULL);"
        "PRAGMA user_version = 1;"
    )
    clock = Clock()
    conn.execute("INSERT INTO usage VALUES (1, ?, ?, 900, 100, 1000, 1)", (clock.t - 10, KIMI))
    conn.execute("INSERT INTO rate_limits VALUES (?, 3, ?)", (KIMI, clock.t - 5))
    conn.commit()
    conn.close()
    tracker = UsageTracker(path=db, failover=[GROQ], clock=clock)
    assert tracker.usage(KIMI)[2] == 1000
    assert tracker.select(default=KIMI).model == GROQ
