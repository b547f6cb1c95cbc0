"""Telemetry as Logfire records it: the events, the compaction span, the counters (through
logfire's ``capfire`` fixture), nothing at all when telemetry is off, and ``logfire_api``
left unimported until the first event."""

from __future__ import annotations

import doctest
import json
import os
import subprocess
import sys

import pytest

import tokensieve
from tokensieve import telemetry
from tokensieve.errors import BudgetExceededError
from tokensieve.usage import UsageTracker

try:
    import logfire  # noqa: F401 - brings the capfire fixture (logfire's pytest plugin)
except ImportError:

    @pytest.fixture
    def capfire():
        """Stands in for logfire's fixture (from its pytest plugin) when logfire is missing."""
        pytest.skip("the capfire fixture comes with the logfire package: pip install logfire")


GROQ = "groq:llama-3.1-8b-instant"
CEREBRAS = "cerebras:llama-3.3-70b"
LEVELS = {"info": 9, "warn": 13, "error": 17}


@pytest.fixture(autouse=True)
def fresh_telemetry(monkeypatch):
    monkeypatch.delenv("TOKENSIEVE_TELEMETRY", raising=False)
    telemetry.configure()
    yield
    telemetry.configure()


class Clock:
    def __init__(self) -> None:
        self.t = 1_700_000_000.0

    def __call__(self) -> float:
        return self.t


def records(capfire) -> list[dict]:
    """Every exported span and log: name, level, message and our own attributes."""
    out = []
    for span in capfire.exporter.exported_spans_as_dict():
        attributes = span["attributes"]
        out.append(
            {
                "name": span["name"],
                "level": attributes.get("logfire.level_num", LEVELS["info"]),
                "message": attributes.get("logfire.msg"),
                "attributes": {
                    k: v
                    for k, v in attributes.items()
                    if not k.startswith(("logfire.", "code.")) and k != "exception.logfire.data"
                },
                "events": span.get("events", []),
            }
        )
    return out


def metrics(capfire) -> dict[str, list[tuple[dict, int]]]:
    """Each counter's data points as (attributes, value)."""
    data = capfire.metrics_reader.get_metrics_data()
    if data is None:
        return {}
    exported = json.loads(data.to_json())
    found: dict[str, list[tuple[dict, int]]] = {}
    for resource in exported["resource_metrics"]:
        for scope in resource["scope_metrics"]:
            for metric in scope["metrics"]:
                if metric["name"].startswith("tokensieve."):
                    points = [(p["attributes"], p["value"]) for p in metric["data"]["data_points"]]
                    found.setdefault(metric["name"], []).extend(points)
    return found


def long_history(exchanges: int = 10) -> list[dict]:
    history = [{"role": "system", "content": "You are a coding agent."}]
    for i in range(exchanges):
        history.append({"role": "user", "content": f"step {i}: " + "please look at this code " * 40})
        history.append({"role": "assistant", "content": f"done {i}: " + "the code looks fine " * 40})
    return history


def compactor() -> tokensieve.Compactor:
    return tokensieve.Compactor(max_input_tokens=10_000, target_input_tokens=1_500, max_exchanges=2)


# --------------------------------------------------------------------------- events


def test_capacity_warning_is_a_warn_event_with_the_limit_and_its_use(capfire):
    tracker = UsageTracker(GROQ, clock=Clock())
    tracker.record({"prompt_tokens": 4_500, "completion_tokens": 500})
    [event] = records(capfire)
    assert event["name"] == "capacity_warning"
    assert event["level"] == LEVELS["warn"]
    assert event["attributes"] == {
        "limit_name": "tokens_per_minute",
        "used": 5_000,
        "limit": 6_000,
        "fraction": pytest.approx(5_000 / 6_000),
        "model": GROQ,
    }
    assert event["message"] == f"capacity_warning: tokens_per_minute at 83% (5,000 of 6,000) for {GROQ}"


def test_the_events_are_in_the_tokensieve_instrumentation_scope(capfire):
    telemetry.rate_limit(consecutive_429s=1, backoff_seconds=60.0)
    [span] = capfire.exporter.exported_spans
    assert span.instrumentation_scope.name == "logfire.tokensieve"


def test_rate_limit_is_a_warn_event_with_the_consecutive_429s(capfire):
    tracker = UsageTracker(GROQ, clock=Clock())
    tracker.record_rate_limit()
    tracker.record_rate_limit()
    assert [(e["name"], e["level"], e["attributes"]) for e in records(capfire)] == [
        ("rate_limit", LEVELS["warn"], {"consecutive_429s": 1, "backoff_seconds": 60.0, "model": GROQ}),
        ("rate_limit", LEVELS["warn"], {"consecutive_429s": 2, "backoff_seconds": 120.0, "model": GROQ}),
    ]


def test_capacity_warnings_then_failover_are_recorded_in_order(capfire):
    clock = Clock()
    tracker = UsageTracker(GROQ, failover=[CEREBRAS], clock=clock)
    for _ in range(3):
        tracker.record(5_400)
        clock.t += 61
    tracker.record_rate_limit()
    assert tracker.fail_over() == CEREBRAS
    assert [e["name"] for e in records(capfire)] == ["capacity_warning"] * 3 + ["rate_limit", "failover"]
    failover = records(capfire)[-1]
    assert failover["level"] == LEVELS["warn"]
    assert failover["attributes"] == {
        "from_model": GROQ,
        "to_model": CEREBRAS,
        "reason": "capacity_warnings",
        "recent_warnings": 3,
        "consecutive_429s": 1,
    }


def test_workload_routing_is_an_info_event_with_task_workload_and_model(capfire):
    tracker = UsageTracker(routes={"coding": "zai:glm-4.7", "*": "moonshot:kimi-k2.5"})
    tracker.route("CODE_GENERATION")
    tracker.route("explanation")
    assert [(e["name"], e["level"], e["attributes"]) for e in records(capfire)] == [
        ("workload_routing", LEVELS["info"], {"task": "CODE_GENERATION", "workload": "coding", "model": "zai:glm-4.7"}),
        ("workload_routing", LEVELS["info"], {"task": "EXPLANATION", "workload": "general", "model": "moonshot:kimi-k2.5"}),
    ]
    assert records(capfire)[0]["message"] == "workload_routing: CODE_GENERATION (coding) -> zai:glm-4.7"


def test_budget_blocked_is_an_error_event_and_counts_a_blocked_request(capfire):
    history = [{"role": "user", "content": "word " * 6_000}]
    with pytest.raises(BudgetExceededError) as blocked:
        compactor().compact(history)
    telemetry.budget_blocked(blocked.value, model=CEREBRAS, task="CODE_GENERATION")
    [event] = records(capfire)
    assert (event["name"], event["level"]) == ("budget_blocked", LEVELS["error"])
    assert event["attributes"] == {
        "tokens_before": blocked.value.tokens_before,
        "tokens_after": blocked.value.tokens_after,
        "limit": blocked.value.limit,
        "model": CEREBRAS,
        "task": "CODE_GENERATION",
    }
    assert metrics(capfire)["tokensieve.requests_blocked"] == [({"model": CEREBRAS}, 1)]


def test_budget_blocked_takes_plain_numbers_too(capfire):
    telemetry.budget_blocked(tokens_before=40_000, tokens_after=31_000, limit=25_000)
    [event] = records(capfire)
    assert event["attributes"] == {"tokens_before": 40_000, "tokens_after": 31_000, "limit": 25_000}
    assert metrics(capfire)["tokensieve.requests_blocked"] == [({}, 1)]


# --------------------------------------------------------------------------- compaction span


def test_a_compaction_span_carries_the_results_numbers_and_the_request_settings(capfire):
    result = compactor().compact(long_history())
    assert result.action == "compacted"
    telemetry.compaction(result, task="CODE_GENERATION", max_output_tokens=3_000, model=CEREBRAS)
    [span] = records(capfire)
    assert span["name"] == "compaction"
    assert span["level"] == LEVELS["info"]
    assert span["attributes"] == {
        "tokens_before": result.tokens_before,
        "tokens_after": result.tokens_after,
        "tokens_saved": result.tokens_saved,
        "messages_before": result.messages_before,
        "messages_after": result.messages_after,
        "messages_dropped": len(result.dropped),
        "orphans_removed": result.orphans_removed,
        "calls_repaired": result.calls_repaired,
        "input_defects_repaired": result.input_defects_repaired,
        "pairs_cut_by_window": result.pairs_cut_by_window,
        "action": "compacted",
        "task": "CODE_GENERATION",
        "max_output_tokens": 3_000,
        "model": CEREBRAS,
    }
    assert span["message"].startswith(f"compaction compacted: {result.tokens_before:,} -> {result.tokens_after:,} tokens")
    assert metrics(capfire) == {
        "tokensieve.compactions": [({"model": CEREBRAS}, 1)],
        "tokensieve.tokens_saved": [({"model": CEREBRAS}, result.tokens_saved)],
    }


def test_a_compaction_that_dropped_nothing_is_a_span_but_not_counted(capfire):
    result = compactor().compact(long_history(1))
    telemetry.compaction(result, task="TOOL_CALL", max_output_tokens=300)
    [span] = records(capfire)
    assert span["attributes"]["action"] == "none" and span["attributes"]["messages_dropped"] == 0
    assert metrics(capfire) == {}


def test_the_compaction_span_times_the_work_it_wraps(capfire):
    with telemetry.compaction_span(task="PLANNING", max_output_tokens=1_200, model=CEREBRAS) as span:
        telemetry.rate_limit(consecutive_429s=1, backoff_seconds=60.0)  # something inside the span
        span.record(compactor().compact(long_history()))
    inner, outer = [s for s in capfire.exporter.exported_spans if s.attributes["logfire.span_type"] != "pending_span"]
    assert outer.name == "compaction" and inner.parent.span_id == outer.context.span_id
    assert outer.attributes["task"] == "PLANNING" and outer.attributes["action"] == "compacted"
    assert outer.end_time > outer.start_time


def test_a_failed_compaction_span_records_the_error_and_counts_nothing(capfire):
    with pytest.raises(BudgetExceededError):
        with telemetry.compaction_span(model=CEREBRAS) as span:
            span.record(compactor().compact([{"role": "user", "content": "word " * 6_000}]))
    [record] = records(capfire)
    assert record["name"] == "compaction" and record["level"] == LEVELS["error"]
    assert any(e["name"] == "exception" for e in record["events"])
    assert metrics(capfire) == {}


def test_the_compaction_span_accepts_a_mapping_and_keyword_attributes(capfire):
    telemetry.compaction({"tokens_before": 100, "tokens_after": 40, "messages_before": 10, "messages_after": 4,
                          "action": "compacted"}, orphans_removed=2)
    [span] = records(capfire)
    assert span["attributes"]["messages_dropped"] == 6 and span["attributes"]["orphans_removed"] == 2
    assert metrics(capfire)["tokensieve.tokens_saved"] == [({}, 60)]


def test_enum_members_and_numpy_numbers_are_stored_as_plain_values(capfire):
    import enum

    import numpy as np

    class TaskType(str, enum.Enum):
        CODE_GENERATION = "CODE_GENERATION"

    telemetry.compaction(result=None, task=TaskType.CODE_GENERATION, tokens_before=np.int64(900),
                         tokens_after=np.int64(400), action="compacted", fraction=np.float64(0.5))
    [span] = capfire.exporter.exported_spans_as_dict()
    attributes = span["attributes"]
    assert attributes["task"] == "CODE_GENERATION" and type(attributes["task"]) is str
    assert attributes["tokens_before"] == 900 and type(attributes["tokens_before"]) is int
    assert type(attributes["fraction"]) is float
    assert metrics(capfire)["tokensieve.tokens_saved"] == [({}, 500)]


# --------------------------------------------------------------------------- switched off


def emit_everything() -> None:
    tracker = UsageTracker(GROQ, failover=[CEREBRAS], failover_after=1, routes={"*": CEREBRAS}, clock=Clock())
    tracker.record(5_900)
    tracker.record_rate_limit()
    tracker.fail_over()
    tracker.route("CODE_GENERATION")
    telemetry.compaction(compactor().compact(long_history()), task="TOOL_CALL", max_output_tokens=300)
    with telemetry.compaction_span() as span:
        span.record(tokens_before=10, tokens_after=5, action="compacted")
    telemetry.budget_blocked(tokens_before=1, tokens_after=2, limit=1)
    telemetry.capacity_warning("tokens_per_day", used=9, limit=10)
    telemetry.workload_routing(task="X", model="m")


def test_emit_everything_emits(capfire):
    emit_everything()
    assert len(records(capfire)) == 9
    assert set(metrics(capfire)) == {"tokensieve.compactions", "tokensieve.tokens_saved", "tokensieve.requests_blocked"}


def test_nothing_is_emitted_when_telemetry_is_disabled(capfire):
    telemetry.configure(enabled=False)
    emit_everything()
    assert records(capfire) == [] and metrics(capfire) == {}


def test_the_environment_variable_disables_telemetry(capfire, monkeypatch):
    for value in ("0", "false", "OFF", "no"):
        monkeypatch.setenv("TOKENSIEVE_TELEMETRY", value)
        assert not telemetry.is_enabled()
    emit_everything()
    assert records(capfire) == [] and metrics(capfire) == {}
    telemetry.configure(enabled=True)  # an explicit switch wins over the environment
    telemetry.rate_limit(consecutive_429s=1, backoff_seconds=60.0)
    assert len(records(capfire)) == 1


def test_events_can_go_through_a_given_logfire_instance(capfire):
    import logfire

    telemetry.configure(logfire_instance=logfire.with_settings(custom_scope_suffix="my_agent", tags=["budget"]))
    telemetry.rate_limit(consecutive_429s=3, backoff_seconds=240.0)
    [span] = capfire.exporter.exported_spans
    assert span.instrumentation_scope.name == "logfire.my_agent"
    assert span.attributes["logfire.tags"] == ("budget",)


# --------------------------------------------------------------------------- imports


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != "TOKENSIEVE_TELEMETRY"} | env
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment, timeout=120)


def test_importing_tokensieve_does_not_import_logfire_api():
    code = (
        "import sys, tokensieve, tokensieve.telemetry, tokensieve.usage\n"
        "print(sorted(m for m in ('logfire_api', 'logfire', 'unittest.mock', 'sqlite3') if m in sys.modules))\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_logfire_api_is_imported_on_the_first_event_and_never_when_disabled():
    code = (
        "import sys\n"
        "from tokensieve.usage import UsageTracker\n"
        "tracker = UsageTracker('groq:llama-3.1-8b-instant')\n"
        "tracker.record(1_000)\n"
        "print('logfire_api' in sys.modules)\n"
        "tracker.record(5_000)\n"
        "tracker.record_rate_limit()\n"
        "print('logfire_api' in sys.modules)\n"
    )
    on = run_python(code, LOGFIRE_IGNORE_NO_CONFIG="1")
    assert on.returncode == 0, on.stderr
    assert on.stdout.split() == ["False", "True"]
    off = run_python(code, TOKENSIEVE_TELEMETRY="0")
    assert off.returncode == 0, off.stderr
    assert off.stdout.split() == ["False", "False"]


# --------------------------------------------------------------------------- documentation


def test_the_documented_examples_pass(capfire):
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    failures: list[str] = []
    for test in finder.find(telemetry, "tokensieve.telemetry", globs={}):
        if test.examples:
            runner.run(test, out=failures.append)
    assert runner.tries > 10 and runner.failures == 0, "".join(failures)
    telemetry.configure()
    assert {r["name"] for r in records(capfire)} >= {"capacity_warning", "rate_limit", "compaction", "budget_blocked"}


# --------------------------------------------------------------------------- issue 9, item 9


def test_the_compaction_span_starts_with_its_message_and_the_request_attributes(capfire):
    with telemetry.compaction_span(task="PLANNING", max_output_tokens=1_200, model=CEREBRAS) as span:
        [pending] = [s for s in capfire.exporter.exported_spans if s.attributes["logfire.span_type"] == "pending_span"]
        span.record(compactor().compact(long_history()))
    # What an exporter that shows spans as they start (the console) receives:
    assert pending.name == "compaction"
    assert pending.attributes["task"] == "PLANNING"
    assert pending.attributes["max_output_tokens"] == 1_200
    assert pending.attributes["model"] == CEREBRAS
    assert pending.attributes["logfire.msg"] == "compaction (PLANNING, max_tokens 1200)"
    [done] = records(capfire)
    assert done["message"].startswith("compaction compacted: ")
    assert done["attributes"]["task"] == "PLANNING" and done["attributes"]["action"] == "compacted"


def test_braces_in_attributes_do_not_break_the_span_message(capfire):
    with telemetry.compaction_span(task="{not a field}", model="x:{y}") as span:
        span.record(tokens_before=10, tokens_after=5, action="compacted")
    [done] = records(capfire)
    assert "{not a field}" in done["message"]


UNCONFIGURED = """
import warnings
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
    import logfire  # installed, never configured
    from pydantic_ai import Agent
    from pydantic_ai.models.test import TestModel
    import tokensieve
    from tokensieve import telemetry
    from tokensieve.integrations.pydantic_ai import TokenBudget

    history = [{"role": "user", "content": "step: " + "look at this code " * 3000}]
    tokensieve.preflight(history, max_input_tokens=100_000, compaction_threshold=0.01, target_input_tokens=100)
    telemetry.rate_limit(consecutive_429s=1, backoff_seconds=60.0)
    telemetry.budget_blocked(tokens_before=1, tokens_after=1, limit=0)
    Agent(TestModel(), capabilities=[TokenBudget("cerebras")]).run_sync("Why does the parser drop empty lines?")
print([f"{w.category.__name__}: {w.message}" for w in caught if "logfire" in w.category.__name__.lower()
       or "logfire" in str(w.message).lower()])
"""


def test_installed_but_unconfigured_logfire_hears_nothing_and_warns_nothing(tmp_path):
    """Run where no pyproject.toml sets ``ignore_no_config`` (the test suite's own does)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOGFIRE_", "TOKENSIEVE_"))}
    result = subprocess.run(
        [sys.executable, "-c", UNCONFIGURED], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", result.stdout
    assert "LogfireNotConfiguredWarning" not in result.stderr


def test_configuring_logfire_after_the_first_event_takes_effect_at_once(capfire, monkeypatch):
    import logfire_api  # capfire configured the global instance: pretend it was not, then was

    monkeypatch.setattr(logfire_api.DEFAULT_LOGFIRE_INSTANCE.config, "_initialized", False)
    telemetry.rate_limit(consecutive_429s=1, backoff_seconds=60.0)
    assert records(capfire) == []
    monkeypatch.setattr(logfire_api.DEFAULT_LOGFIRE_INSTANCE.config, "_initialized", True)
    telemetry.rate_limit(consecutive_429s=2, backoff_seconds=120.0)
    assert [r["name"] for r in records(capfire)] == ["rate_limit"]
