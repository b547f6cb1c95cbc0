"""Generated sessions and their replay through policies (issue 14 replay, issue 11 "Measured,
not assumed"): the simulator's sessions are valid, deterministic and carry their ground
truth; the replay's figures (tokens, blocked requests, invariants, prefix stability,
retention, cost) mean what the docs say; both engines and any number of workers agree."""

from __future__ import annotations

import json
import math
import os

import pytest

import tokensieve
from tokensieve import BudgetConfig
from tokensieve import __main__ as cli
from tokensieve.analyze import invariants
from tokensieve.analyze.replay import (
    Policy,
    ReplayOptions,
    _percentile,
    load_policy,
    replay,
    replay_paths,
    replay_session,
)
from tokensieve.analyze.simulate import (
    FORMATS,
    GroundTruth,
    Session,
    generate_session,
    generate_sessions,
    read_sessions,
    request_lengths,
    session_to_json,
    text_of,
    write_jsonl,
    write_session_files,
)
from tests.support.provider_rules import violations as provider_violations

SMALL = 40  # requests per session in most tests: enough to go over the compaction threshold

#: The reference window alone (no other compaction step), scaled to a 20K window (a 6K
#: target): these short sessions go over it.
WINDOW = "window-only:max_input_tokens=20000"
#: A budget that never compacts these sessions: what is sent is the whole history.
EVERYTHING = BudgetConfig(max_input_tokens=2_000_000, target_input_tokens=900_000, max_exchanges=100_000)


@pytest.fixture(scope="module")
def sessions() -> dict[str, Session]:
    return {fmt: generate_session(11, fmt, min_requests=SMALL) for fmt in FORMATS}


def corpus(tmp_path, n: int = 3, fmt: str = "openai", min_requests: int = 20) -> str:
    path = tmp_path / f"sessions-{fmt}.jsonl"
    write_jsonl(generate_sessions(n, seed=4, format=fmt, min_requests=min_requests), path)
    return str(path)


# ------------------------------------------------------------------ the simulator


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_generated_session_is_a_valid_history_of_at_least_the_requested_requests(sessions, fmt):
    session = sessions[fmt]
    assert len(session.request_lengths()) >= SMALL
    assert provider_violations(fmt, session.messages) == []
    assert session.request_lengths()[-1] <= len(session.messages)


def test_a_generated_session_has_over_200_requests_by_default_with_tool_loops_rereads_and_retries():
    session = generate_session(2, "openai")
    assert len(session.request_lengths()) >= 200
    names = [c["function"]["name"] for m in session.messages for c in m.get("tool_calls") or []]
    assert {"read_file", "edit_file", "write_file", "run_command", "grep"} <= set(names)
    reads = [json.loads(c["function"]["arguments"])["path"] for m in session.messages
             for c in m.get("tool_calls") or [] if c["function"]["name"] == "read_file"]
    assert len(reads) > len(set(reads)), "files are read again"
    results = [m["content"] for m in session.messages if m["role"] == "tool"]
    assert any("Fix the errors and try again." in r for r in results), "a retry"
    assert any("[exit code 1]" in r for r in results), "a failing command"
    prompts = [m["content"] for m in session.messages if m["role"] == "user"]
    assert any(p in ("ok", "thanks", "thanks!", "got it", "great", "ok, go on", "looks good") for p in prompts)


def test_a_pydantic_ai_retry_is_the_calls_return_with_outcome_retried():
    session = generate_session(2, "pydantic-ai")
    parts = [p for m in session.messages for p in m.parts if p.part_kind == "tool-return"]
    retried = [p for p in parts if p.outcome == "retried"]
    assert retried and all(p.tool_name == "edit_file" for p in retried)
    assert {text for text, _ in session.truth.errors} >= {p.content.split(". Read")[0].split(" [type")[0] for p in retried}


def test_generation_is_deterministic_and_the_same_script_in_every_format(sessions):
    again = generate_session(11, "anthropic", min_requests=SMALL)
    assert again.messages == sessions["anthropic"].messages
    tasks = {s.truth.task for s in sessions.values()}
    assert len(tasks) == 1
    assert len({len(s.request_lengths()) for s in sessions.values()}) == 1
    assert generate_session(12, "openai", min_requests=SMALL).messages != sessions["openai"].messages


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_ground_truth_fact_is_in_the_history_after_the_message_it_names(sessions, fmt):
    session = sessions[fmt]
    truth = session.truth
    assert truth.modified and truth.errors
    texts = [text_of(m) for m in session.messages]
    assert any(truth.task in t for t in texts[:2])
    for path, at in truth.modified:
        assert path in texts[at]
    for text, at in truth.errors:
        assert text in texts[at]
        assert not any(text in t for t in texts[:at])


def test_facts_at_a_request_are_the_task_the_paths_modified_before_it_and_the_last_error():
    truth = GroundTruth("the task", (("a.py", 2), ("b.py", 5), ("a.py", 7)), (("E1", 3), ("E2", 6)))
    assert truth.facts_at(3) == ["the task", "a.py"]
    assert truth.facts_at(7) == ["the task", "a.py", "b.py", "E2"]
    assert GroundTruth.from_json(truth.to_json()) == truth


def test_request_lengths_end_before_each_run_of_model_responses():
    history = [
        {"type": "message", "role": "user", "content": "go"},
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {"type": "function_call", "call_id": "c1", "name": "ls", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "a.py"},
        {"type": "message", "role": "assistant", "content": "done"},
        {"role": "user", "content": "thanks"},
    ]
    assert request_lengths("responses", history) == [1, 4, 6]


@pytest.mark.parametrize("fmt", FORMATS)
def test_jsonl_round_trip_gives_the_same_sessions(tmp_path, sessions, fmt):
    path = tmp_path / "s.jsonl"
    write_jsonl([sessions[fmt]], path)
    (back,) = read_sessions([path])
    assert back.messages == sessions[fmt].messages
    assert (back.id, back.format, back.truth, back.system) == (sessions[fmt].id, fmt, sessions[fmt].truth, sessions[fmt].system)


def test_one_session_per_file_and_one_message_per_line_are_read_too(tmp_path, sessions):
    folder = tmp_path / "per-file"
    write_session_files([sessions["openai"], sessions["anthropic"]], folder)
    assert sorted(s.id for s in read_sessions([folder])) == sorted([sessions["openai"].id, sessions["anthropic"].id])
    lines = tmp_path / "recorded.jsonl"
    lines.write_text("\n".join(json.dumps(m) for m in sessions["openai"].messages) + "\n", encoding="utf-8")
    (recorded,) = read_sessions([lines])
    assert recorded.messages == sessions["openai"].messages and recorded.truth is None
    assert recorded.format == "openai" and recorded.id == str(lines)
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps(sessions["responses"].messages), encoding="utf-8")
    (read,) = read_sessions([bare])
    assert read.format == "responses"


# ------------------------------------------------------------------ invariants


def test_invariants_catch_an_orphan_a_dangling_call_a_dropped_system_prompt_and_a_lost_task(sessions):
    history = sessions["openai"].messages[: sessions["openai"].request_lengths()[5]]
    assert invariants.violations("openai", history, history) == []
    call_at = next(i for i, m in enumerate(history) if m.get("tool_calls"))
    without_call = history[:call_at] + history[call_at + 1:]
    assert any("tool message" in v for v in invariants.violations("openai", without_call, history))
    without_result = history[: call_at + 1] + history[call_at + 2:]
    assert any("without a response" in v for v in invariants.violations("openai", without_result, history))
    assert any("system prompt" in v for v in invariants.violations("openai", history[1:], history))
    follow_up = history + [{"role": "user", "content": "now the README"}]
    assert any("current task" in v for v in invariants.violations("openai", history, follow_up))
    swapped = [history[0], history[call_at], history[call_at + 1], history[1]]
    assert invariants.violations("openai", swapped, history)


@pytest.mark.parametrize("fmt", FORMATS)
def test_invariants_agree_with_the_test_suites_validators_on_compacted_requests(sessions, fmt):
    session = sessions[fmt]
    for history in list(session.request_histories())[::5]:
        # The suite's validators trace every output message to the input object it came
        # from: a window's output (a pipeline's rewritten parts are judged by content only).
        out = tokensieve.compact_history(history, load_policy("window-only:max_exchanges=2").config, format=fmt)
        assert invariants.violations(fmt, out, history) == []
        assert provider_violations(fmt, out, history) == []
        with_results = [k for k, m in enumerate(out) if invariants._results(fmt, m)]
        if with_results:  # a message of results removed: both validators see the calls unanswered
            k = with_results[-1]
            broken = out[:k] + out[k + 1:]
            assert provider_violations(fmt, broken) and invariants.violations(fmt, broken, history)


# ------------------------------------------------------------------ replay figures


def test_a_policy_that_never_compacts_sends_every_request_whole_and_retains_every_fact(sessions):
    session = sessions["openai"]
    report = replay([session], [Policy("everything", EVERYTHING)])
    (row,) = report["policies"]
    expected = [tokensieve.count_request_tokens(h) for h in session.request_histories()]
    assert row["total_tokens"] == sum(expected)
    assert row["p95_tokens"] == sorted(expected)[math.ceil(0.95 * len(expected)) - 1]
    assert row["compacted"] == row["blocked"] == row["violating_requests"] == 0
    assert row["retention"] == row["final_retention"] == 1.0
    assert row["prefix_stability"] == 1.0


def test_the_window_loses_facts_the_whole_history_keeps_and_sends_fewer_tokens(sessions):
    report = replay([sessions["anthropic"]], [Policy("everything", EVERYTHING), WINDOW])
    everything, window = report["policies"]
    assert window["total_tokens"] < everything["total_tokens"]
    assert window["tokens_vs_first"] == window["total_tokens"] - everything["total_tokens"] < 0
    assert window["retention"] < 1.0
    assert window["compacted"] > 0 and window["violating_requests"] == 0
    assert window["prefix_stability"] < 1.0


@pytest.mark.parametrize("fmt", FORMATS)
def test_replay_keeps_every_invariant_in_every_format_and_mode(sessions, fmt):
    for mode in ("full", "carry"):
        figures = replay_session(sessions[fmt], [load_policy("cerebras:max_exchanges=2")], ReplayOptions(mode=mode))
        (row,) = figures["policies"]
        assert row["violating_requests"] == 0, row["examples"]
        assert row["requests"] == len(sessions[fmt].request_lengths())


def test_carry_mode_keeps_what_was_sent_so_the_prefix_stays_stable_longer(sessions):
    full = replay([sessions["openai"]], [WINDOW])["policies"][0]
    carry = replay([sessions["openai"]], [WINDOW], options=ReplayOptions(mode="carry"))["policies"][0]
    assert carry["compacted"] < full["compacted"]
    assert carry["prefix_stability"] > full["prefix_stability"]


def test_requests_over_the_hard_limit_are_counted_as_blocked_and_not_as_sent(sessions):
    tight = BudgetConfig(max_input_tokens=6_000, target_input_tokens=1_000, compaction_threshold=0.2, hard_limit_threshold=0.3)
    (row,) = replay([sessions["openai"]], [Policy("tight", tight)])["policies"]
    assert row["blocked"] > 0
    assert row["sent"] == row["requests"] - row["blocked"]
    assert row["max_tokens"] <= 0.3 * 6_000 + 3


def test_prefix_stability_compares_the_first_n_tokens_with_the_previous_request():
    system = {"role": "system", "content": "You are terse. " * 50}
    history = [system, {"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
               {"role": "user", "content": "c"}, {"role": "assistant", "content": "d"}, {"role": "user", "content": "e"}]
    session = Session("s", "openai", history)
    one = Policy("one exchange", BudgetConfig(max_input_tokens=1_000, target_input_tokens=10, compaction_threshold=0.01,
                                               max_exchanges=1))
    # The window moves every request, but the system prompt (over 100 tokens) stays first.
    small = replay([session], [one], options=ReplayOptions(prefix_tokens=50))["policies"][0]
    large = replay([session], [one], options=ReplayOptions(prefix_tokens=10_000))["policies"][0]
    # Request 2 starts with all of request 1; request 3 shares only the system prompt with request 2.
    assert (small["prefix_stability"], large["prefix_stability"]) == (1.0, 0.5)


def test_percentiles_are_nearest_rank():
    values = list(range(1, 21))
    assert (_percentile(values, 50), _percentile(values, 95), _percentile(values, 100)) == (10, 19, 20)
    assert _percentile([], 50) is None


def test_cost_is_priced_per_million_tokens_against_the_first_policy(sessions):
    report = replay([sessions["openai"]], [Policy("everything", EVERYTHING), WINDOW], price=2.5)
    first, second = report["policies"]
    assert first["cost"] == pytest.approx(first["total_tokens"] * 2.5 / 1e6)
    assert second["cost_vs_first"] == pytest.approx((second["total_tokens"] - first["total_tokens"]) * 2.5 / 1e6)
    assert first["tokens_vs_first"] == 0


# ------------------------------------------------------------------ policies


def test_policies_load_from_presets_overrides_builtins_toml_and_json(tmp_path):
    assert load_policy("cerebras").config == BudgetConfig.preset("cerebras")
    assert load_policy("default:max_exchanges=3,dangling_calls=stub").config.dangling_calls == "stub"
    assert load_policy("window-only").config.max_exchanges == BudgetConfig.preset("cerebras").max_exchanges
    toml = tmp_path / "wide.toml"
    toml.write_text('preset = "cerebras"\nmax_exchanges = 12\n[output_budgets]\ntool_call = 200\n', encoding="utf-8")
    policy = load_policy(str(toml))
    assert (policy.name, policy.config.max_exchanges, policy.config.output_budgets.tool_call) == ("wide", 12, 200)
    js = tmp_path / "p.json"
    js.write_text(json.dumps({"name": "tiny", "max_input_tokens": 8000, "target_input_tokens": 2000}), encoding="utf-8")
    assert load_policy(str(js)).name == "tiny" and load_policy(str(js)).config.max_input_tokens == 8000


@pytest.mark.parametrize(
    "spec, words",
    [("no-such-preset", "unknown policy 'no-such-preset'"), ("cerebras:max_exchanges", "field=value"),
     ("cerebras:max_exchanges=0", "max_exchanges"), ("cerebras:colour=3", "colour")],
)
def test_a_bad_policy_is_a_configuration_error_that_names_it(spec, words):
    with pytest.raises(tokensieve.ConfigurationError, match=words):
        load_policy(spec)


def test_a_policy_file_with_an_unknown_field_names_the_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("max_exchange = 3\n", encoding="utf-8")
    with pytest.raises(tokensieve.ConfigurationError, match="bad.toml"):
        load_policy(str(bad))


# ------------------------------------------------------------------ engines and the command


def test_the_local_engine_gives_the_same_figures_with_one_or_two_workers(tmp_path):
    path = corpus(tmp_path)
    policies = ["cerebras", "cerebras:max_exchanges=8"]
    one = replay_paths([path], policies, workers=1, price=1.0)
    two = replay_paths([path], policies, workers=2, price=1.0)
    assert one == two and one["sessions"] == 3
    in_memory = replay(read_sessions([path]), policies, price=1.0)
    assert in_memory == one


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Ray Data's own deprecated settings
def test_the_ray_engine_gives_the_same_figures_as_the_local_engine(tmp_path):
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'tokensieve[ray]')")
    pytest.importorskip("ray.data", reason="Ray Data is not installed (pip install 'tokensieve[ray]')")
    lines = corpus(tmp_path, n=3, fmt="anthropic")
    files = tmp_path / "files"
    write_session_files(generate_sessions(2, seed=9, format="pydantic-ai", min_requests=20), files)
    policies = ["cerebras", "default"]
    local = replay_paths([lines, str(files)], policies, workers=1)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        on_ray = replay_paths([lines, str(files)], policies, engine="ray")
    finally:
        ray.shutdown()
    assert on_ray == local and local["sessions"] == 5


def test_cli_simulate_writes_fixtures_and_replay_compares_policies_side_by_side(tmp_path, capsys):
    assert cli.main(["simulate", "--sessions", "2", "--min-requests", "20", "--format", "responses", "-o", str(tmp_path)]) == 0
    path = tmp_path / "sessions-responses.jsonl"
    assert len(path.read_text(encoding="utf-8").splitlines()) == 2
    capsys.readouterr()
    assert cli.main(["replay", str(path), "--policy", "window-only", "--policy", "default", "--json", "--workers", "1",
                     "--price", "0.6"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report == replay_paths([str(path)], ["window-only", "default"], workers=1, price=0.6)
    assert cli.main(["replay", str(path), "--policy", "window-only", "--policy", "default", "--workers", "1"]) == 0
    table = capsys.readouterr().out
    assert "window-only" in table and "default" in table and "retention" in table and "p95 input tokens" in table


def test_cli_replay_of_a_missing_file_or_a_bad_policy_exits_2_naming_it(tmp_path, capsys):
    assert cli.main(["replay", str(tmp_path / "nope.jsonl")]) == 2
    assert "nope.jsonl" in capsys.readouterr().err
    path = corpus(tmp_path, n=1)
    assert cli.main(["replay", path, "--policy", "no-such"]) == 2
    assert "no-such" in capsys.readouterr().err


def test_session_json_is_plain_json_in_every_format(sessions):
    for session in sessions.values():
        json.dumps(session_to_json(session))


def test_the_policy_file_in_the_docs_loads(tmp_path):
    docs = os.path.join(os.path.dirname(__file__), os.pardir, "docs", "analysis.md")
    with open(docs, encoding="utf-8") as f:
        text = f.read()
    block = text.split("```toml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "tuned.toml"
    path.write_text(block, encoding="utf-8")
    policy = load_policy(str(path))
    assert (policy.name, policy.config.max_exchanges, policy.config.output_budgets.tool_call) == ("cerebras, 8 exchanges", 8, 400)


def test_a_bad_session_is_an_error_naming_the_file_and_line_or_the_request(tmp_path, capsys):
    from tokensieve.analyze.simulate import SessionReadError

    path = tmp_path / "bad.jsonl"
    good = json.dumps({"id": "s1", "messages": [{"role": "user", "content": "hi"}]})
    path.write_text(good + "\n{not json\n", encoding="utf-8")
    with pytest.raises(SessionReadError, match=r"bad.jsonl:2: invalid JSON"):
        list(read_sessions([path]))
    assert cli.main(["replay", str(path), "--workers", "1"]) == 2
    assert "bad.jsonl:2" in capsys.readouterr().err
    broken = Session("s2", "openai", [{"role": "user", "content": "go"}, {"role": "assistant", "tool_calls": [{}]},
                                      {"role": "user", "content": "again"}])
    with pytest.raises(SessionReadError, match=r"s2, request 2 \(3 messages\): messages\[1\]: tool_calls\[0\]"):
        replay([broken], ["cerebras"])
    assert issubclass(SessionReadError, tokensieve.TokensieveError) and issubclass(SessionReadError, ValueError)


def test_sessions_are_streamed_one_line_at_a_time(tmp_path):
    from tokensieve.analyze.simulate import SessionReadError, iter_sources

    path = tmp_path / "s.jsonl"
    write_jsonl(generate_sessions(2, min_requests=5), path)
    with open(path, "a", encoding="utf-8") as f:
        f.write("{broken\n")
    sources = iter_sources([path])
    first = next(sources)  # a line is handed on as it is read, and parsed by the worker that replays it
    assert first.key[1] == 1 and first.load().id == "sim-0-0"
    second, third = next(sources), next(sources)
    assert second.key[1] == 2 and list(sources) == []
    with pytest.raises(SessionReadError, match=":3: invalid JSON"):
        third.load()


def test_the_progress_bar_does_not_change_the_figures(tmp_path):
    path = corpus(tmp_path, n=2)
    assert replay_paths([path], [WINDOW], workers=1, progress=True) == replay_paths([path], [WINDOW], workers=1)


def test_the_documented_examples_of_the_replay_modules_pass():
    import doctest

    from tokensieve.analyze import invariants as inv, replay as rep, simulate as sim

    for module in (sim, rep, inv):
        outcome = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert outcome.attempted > 0 and outcome.failed == 0, module.__name__


def test_the_ray_engine_without_ray_installed_says_which_extra_to_install(tmp_path):
    path = corpus(tmp_path, n=1)
    code = "import sys\nsys.modules['ray'] = None\nfrom tokensieve.__main__ import main\nsys.exit(main(sys.argv[1:]))"
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", code, "replay", path, "--engine", "ray"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert 'pip install "tokensieve[ray]"' in result.stderr


def test_the_rich_table_shows_every_policy_side_by_side(tmp_path):
    from rich.console import Console

    from tokensieve.analyze.replay import render, table_rows

    report = replay_paths([corpus(tmp_path, n=1)], ["window-only", "default"], workers=1, price=1.0)
    console = Console(record=True, width=160)
    render(report, console)
    text = console.export_text()
    for label, cells in table_rows(report):
        assert label in text and all(cell in text for cell in cells)
    assert "cost vs first policy" in text and "window-only" in text and "default" in text
