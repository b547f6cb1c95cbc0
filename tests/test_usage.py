"""UsageTracker: reading usage in every format, the minute and day windows, capacity
warnings, 429 backoff, failover, routing, and state shared by processes and restarts.

Time is a fake clock everywhere except the multi-process test: nothing sleeps."""

from __future__ import annotations

import doctest
import multiprocessing
import os
import sqlite3
import threading
import time
from enum import Enum
from types import SimpleNamespace

import pytest

from tokensieve import BudgetConfig, telemetry
from tokensieve.errors import ConfigurationError, InputTypeError
from tokensieve import usage as usage_module
from tokensieve.usage import CapacityWarning, TokenUsage, UsageStatus, UsageTracker, read_usage

T0 = 1_700_000_000.0
GROQ = "groq:llama-3.1-8b-instant"  # preset "groq": 128K window, 6,000 tokens and 30 requests a minute
CEREBRAS = "cerebras:llama-3.3-70b"  # preset "cerebras": 50K window, 24M tokens a day


class Clock:
    """A settable clock: ``clock()`` is the time, ``clock.advance(s)`` moves it on."""

    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def events(monkeypatch):
    """The telemetry calls the tracker makes, as (event name, kwargs), in order."""
    seen: list[tuple[str, dict]] = []
    for name in ("capacity_warning", "rate_limit", "failover", "workload_routing"):

        def recorder(*args, _name=name, **kwargs):
            if args:
                kwargs["limit_name"] = args[0]
            seen.append((_name, kwargs))

        monkeypatch.setattr(telemetry, name, recorder)
    return seen


@pytest.fixture(autouse=True)
def no_telemetry():
    """Nothing reaches Logfire from these tests (tests/test_telemetry.py covers that)."""
    telemetry.configure(enabled=False)
    yield
    telemetry.configure()


def tokens_config(**limits) -> BudgetConfig:
    return BudgetConfig(model="test:model", **limits)


# --------------------------------------------------------------------------- reading usage


def test_read_usage_accepts_pydantic_ai_request_and_run_usage():
    pai_usage = pytest.importorskip("pydantic_ai.usage")
    request = pai_usage.RequestUsage(input_tokens=1_200, output_tokens=300, cache_read_tokens=1_000)
    # pydantic-ai's input_tokens already include cache reads: they are not added again.
    assert read_usage(request) == TokenUsage(1_200, 300, 1, 1_500)
    run = pai_usage.RunUsage(input_tokens=5_000, output_tokens=700, requests=4)
    assert read_usage(run) == TokenUsage(5_000, 700, 4, 5_700)


def test_read_usage_counts_a_run_usage_not_yet_committed_as_one_request():
    pai_usage = pytest.importorskip("pydantic_ai.usage")
    assert read_usage(pai_usage.RunUsage(input_tokens=51, output_tokens=6, requests=0)).requests == 1
    assert read_usage(pai_usage.RunUsage()).requests == 0


def test_read_usage_accepts_openai_chat_usage_objects_and_dicts():
    as_dict = {"prompt_tokens": 900, "completion_tokens": 100, "total_tokens": 1_000,
               "prompt_tokens_details": {"cached_tokens": 512}}
    as_object = SimpleNamespace(prompt_tokens=900, completion_tokens=100, total_tokens=1_000)
    assert read_usage(as_dict) == read_usage(as_object) == TokenUsage(900, 100, 1, 1_000)
    assert read_usage(as_dict).total_tokens == 1_000


def test_read_usage_accepts_openai_responses_usage():
    usage = SimpleNamespace(input_tokens=2_000, output_tokens=150, total_tokens=2_150,
                            input_tokens_details=SimpleNamespace(cached_tokens=1_024))
    assert read_usage(usage) == TokenUsage(2_000, 150, 1, 2_150)


def test_read_usage_counts_anthropic_cache_tokens_as_input():
    usage = SimpleNamespace(input_tokens=20, output_tokens=400,
                            cache_creation_input_tokens=3_000, cache_read_input_tokens=9_000)
    assert read_usage(usage) == TokenUsage(12_020, 400, 1, None)
    assert read_usage({"input_tokens": 20, "output_tokens": 400, "cache_creation_input_tokens": None}).input_tokens == 20


def test_read_usage_accepts_gemini_usage_metadata_with_thinking_in_the_total():
    usage = {"prompt_token_count": 800, "candidates_token_count": 200, "total_token_count": 1_250}
    assert read_usage(usage).total_tokens == 1_250


def test_read_usage_accepts_plain_numbers():
    assert read_usage(1_500) == TokenUsage(1_500, 0, 1, None)
    assert read_usage((1_200, 300)) == TokenUsage(1_200, 300, 1, None)
    assert read_usage([7, 3]).total_tokens == 10


@pytest.mark.parametrize(
    "bad",
    [None, "100", object(), {"foo": 1}, SimpleNamespace(tokens=3), (1, 2, 3), -5, {"input_tokens": -1},
     {"input_tokens": "12"}, True, float("nan")],
)
def test_read_usage_rejects_what_is_not_a_usage(bad):
    with pytest.raises(InputTypeError):
        read_usage(bad)


def test_record_takes_keyword_counts_but_not_both_forms(clock):
    tracker = UsageTracker(clock=clock)
    tracker.record(input_tokens=100, output_tokens=20)
    tracker.record(input_tokens=10, requests=2)
    assert tracker.usage() == (130, 3, 130, 3)
    with pytest.raises(InputTypeError):
        tracker.record({"input_tokens": 1}, input_tokens=1)
    with pytest.raises(InputTypeError):
        tracker.record()


# --------------------------------------------------------------------------- windows


def test_the_minute_window_is_the_last_60_seconds(clock):
    tracker = UsageTracker(clock=clock)
    tracker.record((1_000, 0))
    clock.advance(30)
    tracker.record((200, 0))
    assert (tracker.minute_tokens, tracker.minute_requests) == (1_200, 2)
    clock.advance(29.9)
    assert tracker.minute_tokens == 1_200
    clock.advance(0.1)  # the first request is now exactly 60 s old: out of the window
    assert (tracker.minute_tokens, tracker.minute_requests) == (200, 1)
    clock.advance(30)
    assert (tracker.minute_tokens, tracker.minute_requests) == (0, 0)
    assert (tracker.day_tokens, tracker.day_requests) == (1_200, 2)


def test_the_day_window_is_the_last_24_hours_not_the_calendar_day(clock):
    clock.t = 1_700_006_400.0  # 00:00 UTC
    clock.advance(-3_600)  # 23:00 UTC the day before
    tracker = UsageTracker(clock=clock)
    tracker.record((5_000, 0))
    clock.advance(7_200)  # 01:00 UTC: a new calendar day, still within 24 hours
    tracker.record((1_000, 0))
    assert tracker.day_tokens == 6_000
    clock.advance(22 * 3_600)  # 23:00: exactly 24 h after the first request
    assert (tracker.day_tokens, tracker.day_requests) == (1_000, 1)


def test_usage_is_kept_per_model_and_a_tracker_without_a_model_sees_it_all(clock):
    tracker = UsageTracker(clock=clock)
    tracker.record((100, 0), model="a")
    tracker.record((10, 0), model="b")
    assert tracker.usage("a")[0] == 100 and tracker.usage("b")[0] == 10
    assert tracker.minute_tokens == 110  # no current model: everything together
    tracker.model = "b"
    assert tracker.minute_tokens == 10


def test_the_current_model_defaults_to_the_configs_model(clock):
    tracker = UsageTracker(CEREBRAS, clock=clock)
    tracker.record(1_000)
    assert tracker.model == CEREBRAS
    assert tracker.usage(CEREBRAS)[0] == tracker.minute_tokens == 1_000


def test_concurrent_threads_lose_no_request(clock):
    tracker = UsageTracker(clock=clock)

    def work():
        for _ in range(100):
            tracker.record((3, 2))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert tracker.usage() == (4_000, 800, 4_000, 800)


# --------------------------------------------------------------------------- configuration


def test_config_is_a_budget_a_preset_name_or_a_model_name():
    assert UsageTracker().config == BudgetConfig()
    assert UsageTracker("cerebras").config == BudgetConfig.preset("cerebras")
    by_model = UsageTracker(GROQ)
    assert by_model.config == BudgetConfig.for_model(GROQ)
    assert by_model.model == GROQ and by_model.config.tokens_per_minute == 6_000
    custom = BudgetConfig(tokens_per_minute=10)
    assert UsageTracker(custom).config is custom


def test_other_models_take_their_own_presets_limits():
    tracker = UsageTracker(CEREBRAS, failover=[GROQ])
    assert tracker.config_for(GROQ).tokens_per_minute == 6_000
    assert tracker.config_for().tokens_per_day == 24_000_000
    shared = UsageTracker(BudgetConfig(tokens_per_minute=100))  # no model: one budget for all
    assert shared.config_for(GROQ).tokens_per_minute == 100


@pytest.mark.parametrize(
    "kwargs",
    [{"warn_at": 0}, {"warn_at": 1.5}, {"warn_at": True}, {"failover_after": 0}, {"failover_window": 0},
     {"failover": "groq:x"}, {"failover": [""]}, {"routes": {"coding": 3}}],
)
def test_invalid_settings_are_refused(kwargs):
    with pytest.raises((ConfigurationError, InputTypeError)):
        UsageTracker(**kwargs)


def test_an_unknown_config_string_is_a_model_name_with_the_default_budget():
    tracker = UsageTracker("local:my-model")
    assert tracker.model == "local:my-model"
    assert tracker.config.max_input_tokens == BudgetConfig.preset("default").max_input_tokens


# --------------------------------------------------------------------------- capacity warnings


def test_a_limit_at_80_percent_raises_a_capacity_warning_and_below_it_does_not(clock, events):
    tracker = UsageTracker(tokens_config(tokens_per_minute=10_000), clock=clock)
    assert tracker.record((7_999, 0)) == []
    assert events == []
    clock.advance(61)
    [warning] = tracker.record((8_000, 0))
    assert warning == CapacityWarning("tokens_per_minute", 8_000, 10_000, 0.8, "test:model", clock.t)
    assert events == [("capacity_warning", {"limit_name": "tokens_per_minute", "used": 8_000, "limit": 10_000,
                                            "fraction": 0.8, "model": "test:model"})]


def test_every_limit_is_watched(clock):
    config = tokens_config(max_input_tokens=10_000, target_input_tokens=1_000, tokens_per_minute=20_000,
                           requests_per_minute=5, tokens_per_day=50_000)
    tracker = UsageTracker(config, clock=clock)
    assert [w.limit_name for w in tracker.record((8_500, 0))] == ["context_window"]
    assert tracker.record((100, 0)) == []  # the context window is the last request's, not a sum
    assert tracker.record((10, 0)) == []  # 3 requests of 5 a minute
    assert [w.limit_name for w in tracker.record((10, 0))] == ["requests_per_minute"]  # 4 of 5
    clock.advance(120)
    assert [w.limit_name for w in tracker.record((7_000, 9_000))] == ["tokens_per_minute"]
    clock.advance(120)
    warnings = tracker.record((7_000, 9_000))
    assert [w.limit_name for w in warnings] == ["tokens_per_minute", "tokens_per_day"]
    day = warnings[1]
    assert day.used == tracker.day_tokens == 8_500 + 100 + 10 + 10 + 16_000 + 16_000
    assert day.fraction == pytest.approx(day.used / 50_000)


def test_the_context_window_is_not_checked_for_an_aggregate_of_several_requests(clock):
    tracker = UsageTracker(tokens_config(max_input_tokens=10_000, target_input_tokens=1_000), clock=clock)
    assert tracker.record(input_tokens=9_000, requests=3) == []
    assert tracker.last_input_tokens is None
    assert [w.limit_name for w in tracker.record(input_tokens=9_000)] == ["context_window"]
    assert tracker.last_input_tokens == 9_000


def test_warn_at_sets_the_warning_fraction(clock):
    tracker = UsageTracker(tokens_config(tokens_per_minute=1_000), warn_at=0.5, clock=clock)
    assert tracker.record((499, 0)) == []
    assert [w.fraction for w in tracker.record((1, 0))] == [0.5]


def test_warnings_lists_recent_capacity_warnings_of_the_current_model(clock):
    tracker = UsageTracker(GROQ, failover_window=120, clock=clock)
    tracker.record(5_000)
    clock.advance(61)
    tracker.record(5_500)
    assert [(w.used, w.model) for w in tracker.warnings] == [(5_000, GROQ), (5_500, GROQ)]
    clock.advance(60)
    assert [w.used for w in tracker.warnings] == [5_500]
    assert str(tracker.warnings[0]) == f"tokens_per_minute at 92% (5,500 of 6,000) for {GROQ}"


def test_status_is_a_snapshot_of_windows_limits_and_failover(clock):
    tracker = UsageTracker(GROQ, failover=[CEREBRAS], failover_after=1, clock=clock)
    tracker.record({"input_tokens": 4_000, "output_tokens": 900})
    tracker.record_rate_limit()
    status = tracker.status()
    assert isinstance(status, UsageStatus)
    assert (status.model, status.minute_tokens, status.minute_requests, status.day_tokens, status.day_requests) == (
        GROQ, 4_900, 1, 4_900, 1)
    assert status.last_input_tokens == 4_000
    assert status.limits == {"context_window": 128_000, "tokens_per_minute": 6_000, "requests_per_minute": 30,
                             "tokens_per_day": None}
    assert status.fractions == pytest.approx({"context_window": 4_000 / 128_000, "tokens_per_minute": 4_900 / 6_000,
                                              "requests_per_minute": 1 / 30})
    assert "tokens_per_day" not in status.fractions
    assert (status.consecutive_429s, status.recent_warnings, status.failover) == (1, 1, CEREBRAS)


# --------------------------------------------------------------------------- 429s


def test_rate_limit_backoff_doubles_from_60_seconds_up_to_600(clock, events):
    tracker = UsageTracker(GROQ, clock=clock)
    assert [tracker.record_rate_limit() for _ in range(7)] == [60.0, 120.0, 240.0, 480.0, 600.0, 600.0, 600.0]
    assert tracker.consecutive_429s == 7
    assert events[:2] == [
        ("rate_limit", {"consecutive_429s": 1, "backoff_seconds": 60.0, "model": GROQ}),
        ("rate_limit", {"consecutive_429s": 2, "backoff_seconds": 120.0, "model": GROQ}),
    ]


def test_a_success_resets_the_429_count(clock):
    tracker = UsageTracker(GROQ, clock=clock)
    tracker.record_rate_limit()
    tracker.record_rate_limit()
    tracker.record(100)
    assert tracker.consecutive_429s == 0
    assert tracker.record_rate_limit() == 60.0


def test_429s_are_counted_per_model(clock):
    tracker = UsageTracker(GROQ, clock=clock)
    tracker.record_rate_limit()
    tracker.record_rate_limit(model=CEREBRAS)
    tracker.record_rate_limit(model=CEREBRAS)
    tracker.record(100, model=CEREBRAS)  # resets cerebras only
    assert tracker.consecutive_429s == 1
    tracker.model = CEREBRAS
    assert tracker.consecutive_429s == 0


# --------------------------------------------------------------------------- failover


def test_no_failover_while_all_is_well(clock):
    tracker = UsageTracker(GROQ, failover=[CEREBRAS], clock=clock)
    tracker.record(1_000)
    tracker.record_rate_limit()
    assert tracker.should_failover() is None
    assert tracker.fail_over() is None and tracker.model == GROQ


def test_failover_when_capacity_warnings_accumulate(clock, events):
    tracker = UsageTracker(GROQ, failover=[GROQ, CEREBRAS, "openai:gpt-4o"], clock=clock)
    for _ in range(2):
        tracker.record(5_000)
        clock.advance(61)
    assert tracker.should_failover() is None  # two requests warned: not yet
    tracker.record(5_000)
    assert tracker.should_failover() == CEREBRAS
    assert tracker.model == GROQ  # should_failover changes nothing
    assert tracker.fail_over() == CEREBRAS
    assert tracker.model == CEREBRAS and tracker.should_failover() is None
    assert events[-1] == ("failover", {"from_model": GROQ, "to_model": CEREBRAS, "reason": "capacity_warnings",
                                       "recent_warnings": 3, "consecutive_429s": 0})


def test_several_warnings_of_one_request_count_once(clock):
    config = tokens_config(max_input_tokens=10_000, target_input_tokens=1_000, tokens_per_minute=10_000,
                           tokens_per_day=10_000)
    tracker = UsageTracker(config, failover=["other:model"], clock=clock)
    assert len(tracker.record((9_000, 0))) == 3
    assert tracker.status().recent_warnings == 1
    assert tracker.should_failover() is None


def test_warnings_older_than_the_failover_window_do_not_count(clock):
    tracker = UsageTracker(GROQ, failover=[CEREBRAS], failover_window=300, clock=clock)
    for _ in range(3):
        tracker.record(5_000)
        clock.advance(100)
    assert tracker.should_failover() is None  # the first is 300 s old: out of the window
    tracker.record(5_000)
    assert tracker.should_failover() == CEREBRAS


def test_failover_after_consecutive_429s(clock, events):
    tracker = UsageTracker(GROQ, failover=[CEREBRAS], failover_after=2, clock=clock)
    tracker.record_rate_limit()
    assert tracker.should_failover() is None
    tracker.record_rate_limit()
    assert tracker.fail_over() == CEREBRAS
    assert events[-1][1]["reason"] == "rate_limits" and events[-1][1]["consecutive_429s"] == 2


def test_the_failover_chain_ends(clock):
    tracker = UsageTracker(CEREBRAS, failover=[GROQ, CEREBRAS], failover_after=1, clock=clock)
    tracker.record_rate_limit()
    assert tracker.should_failover() is None  # cerebras is last in its chain
    outside = UsageTracker("local:x", failover=[GROQ, CEREBRAS], failover_after=1, clock=clock)
    outside.record_rate_limit()
    assert outside.should_failover() == GROQ  # not in the chain: its first model
    no_chain = UsageTracker(GROQ, failover=(), failover_after=1, clock=clock)
    no_chain.record_rate_limit()
    assert no_chain.should_failover() is None


# --------------------------------------------------------------------------- routing


class TaskType(str, Enum):
    """What tokensieve.classify.TaskType looks like."""

    TOOL_CALL = "TOOL_CALL"
    CODE_GENERATION = "CODE_GENERATION"
    EXPLANATION = "EXPLANATION"
    PLANNING = "PLANNING"
    REVIEW = "REVIEW"
    UNKNOWN = "UNKNOWN"


def test_route_sends_coding_to_one_model_and_the_rest_to_another(events):
    tracker = UsageTracker(routes={"coding": "zai:glm-4.7", "*": "moonshot:kimi-k2.5"})
    assert tracker.route("CODE_GENERATION") == "zai:glm-4.7"
    assert tracker.route(TaskType.CODE_GENERATION) == "zai:glm-4.7"
    assert tracker.route(SimpleNamespace(task=TaskType.CODE_GENERATION, confidence=0.9)) == "zai:glm-4.7"
    assert [tracker.route(t) for t in TaskType if t is not TaskType.CODE_GENERATION] == ["moonshot:kimi-k2.5"] * 5
    assert events[0] == ("workload_routing", {"task": "CODE_GENERATION", "workload": "coding", "model": "zai:glm-4.7"})
    assert events[3] == ("workload_routing", {"task": "TOOL_CALL", "workload": "general", "model": "moonshot:kimi-k2.5"})


def test_route_prefers_the_task_class_then_the_workload_then_the_default():
    tracker = UsageTracker(routes={TaskType.REVIEW: "a", "General": "b", "code_generation": "c", "*": "d"})
    assert tracker.route("review") == "a"
    assert tracker.route("PLANNING") == "b"
    assert tracker.route(TaskType.CODE_GENERATION) == "c"
    assert UsageTracker(routes={"coding": "x"}).route("EXPLANATION") is None
    assert UsageTracker().route("CODE_GENERATION") is None
    with pytest.raises(InputTypeError):
        tracker.route(3)


# --------------------------------------------------------------------------- persistence


def test_a_new_tracker_on_the_same_path_sees_the_old_state(tmp_path, clock):
    path = tmp_path / "usage.db"
    with UsageTracker(GROQ, path=path, clock=clock) as first:
        first.record((3_000, 2_000))
        first.record_rate_limit(model=CEREBRAS)
        first.record_rate_limit(model=CEREBRAS)
    clock.advance(10)
    second = UsageTracker(GROQ, path=str(path), clock=clock)
    assert second.usage() == (5_000, 1, 5_000, 1)
    assert [w.limit_name for w in second.warnings] == ["tokens_per_minute"]
    second.model = CEREBRAS
    assert second.consecutive_429s == 2
    second.close()


def test_the_path_may_start_with_a_tilde_and_its_directories_are_created(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    tracker = UsageTracker(path="~/cache/agent/usage.db")
    tracker.record(5)
    assert tracker.path == str(tmp_path / "cache" / "agent" / "usage.db")
    assert (tmp_path / "cache" / "agent" / "usage.db").exists()
    assert UsageTracker(path=":memory:").path is None


def test_the_database_is_in_wal_mode(tmp_path):
    path = tmp_path / "usage.db"
    UsageTracker(path=path).record(1)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_rows_older_than_a_day_are_pruned(tmp_path, clock):
    path = tmp_path / "usage.db"
    tracker = UsageTracker(GROQ, path=path, clock=clock)
    tracker.record(5_000)  # with a warning
    clock.advance(3_600)
    tracker.record(10)
    clock.advance(86_400 - 1_800)
    tracker.record(20)
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT input_tokens FROM usage ORDER BY ts").fetchall() == [(10,), (20,)]
        assert conn.execute("SELECT COUNT(*) FROM capacity_warnings").fetchone()[0] == 0
    finally:
        conn.close()
    assert tracker.day_tokens == 30


def _record_many(path: str, worker: int, n: int, barrier, done) -> None:
    telemetry.configure(enabled=False)
    tracker = UsageTracker(path=path)  # every process opens (and maybe creates) the file at once
    barrier.wait(timeout=60)
    first = time.monotonic()
    for i in range(n):
        tracker.record(input_tokens=worker * 1_000 + i, output_tokens=1, model="shared")
    for _ in range(50):
        tracker.record_rate_limit(model="limited")
    last = time.monotonic()
    tracker.close()
    done.put((worker, first, last))


def test_concurrent_processes_lose_no_request(tmp_path):
    path = str(tmp_path / "shared.db")
    workers, n = 4, 200
    ctx = multiprocessing.get_context("spawn")
    barrier, done = ctx.Barrier(workers), ctx.Queue()
    procs = [ctx.Process(target=_record_many, args=(path, w, n, barrier, done)) for w in range(workers)]
    for p in procs:
        p.start()
    reports = sorted(done.get(timeout=120) for _ in range(workers))
    for p in procs:
        p.join(timeout=60)
    assert [p.exitcode for p in procs] == [0] * workers
    assert [r[0] for r in reports] == list(range(workers))
    # The writers really ran at the same time (time.monotonic is system-wide on Linux).
    assert any(a[1] < b[2] and b[1] < a[2] for a in reports for b in reports if a is not b)
    tracker = UsageTracker(path=path)
    expected_tokens = sum(w * 1_000 + i + 1 for w in range(workers) for i in range(n))
    assert tracker.usage("shared")[2:] == (expected_tokens, workers * n)
    tracker.model = "limited"
    assert tracker.consecutive_429s == workers * 50  # every increment landed


def _record_in_child(tracker: UsageTracker) -> None:
    tracker.record((7, 0))
    tracker.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_opens_its_own_connection(tmp_path):
    tracker = UsageTracker(path=tmp_path / "fork.db")
    tracker.record((5, 0))
    child = multiprocessing.get_context("fork").Process(target=_record_in_child, args=(tracker,))
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 0
    tracker.record((1, 0))  # the parent's connection still works
    assert tracker.usage()[2:] == (13, 3)


# --------------------------------------------------------------------------- documentation


def test_the_documented_examples_pass():
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    failures: list[str] = []
    tests = [t for t in finder.find(usage_module, "tokensieve.usage", globs={}) if t.examples]
    for test in tests:
        runner.run(test, out=failures.append)
    assert runner.tries > 20 and runner.failures == 0, "".join(failures)


def test_every_public_name_has_a_docstring_with_an_example():
    for name in ("UsageTracker", "CapacityWarning", "UsageStatus", "TokenUsage", "read_usage"):
        assert ">>>" in (getattr(usage_module, name).__doc__ or ""), name
    for name in ("record", "record_rate_limit", "should_failover", "fail_over", "route", "status", "usage",
                 "config_for", "close"):
        assert ">>>" in (getattr(UsageTracker, name).__doc__ or ""), name
