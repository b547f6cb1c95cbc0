"""The tool output budget (tokensieve.narrow, rust/src/narrow): exact limits, the modes,
the policy, spill, the history helper, the CLI and the pydantic-ai capability; the Rust
core against the pure-Python baseline on the corpus in tests/data/tool_outputs."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tokensieve
from tokensieve import BudgetConfig, ToolOutputPolicy, _core, baseline, narrow_history, narrow_tool_output
from tokensieve.narrow import read_spilled_output, tool_output_policy
from tests.data.tool_outputs.generate import CORPUS, generate

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
LINE_MODES = ("truncated", "heads_tails", "errors_only", "smart_summary")
CLOSING = re.compile(
    r"\[tokensieve (?P<label>[^:]+): omitted (?P<dropped>\d+) of (?P<lines>\d+) lines "
    r"\((?P<bytes_dropped>\d+) of (?P<bytes>\d+) bytes\)(; the full output has (?P<tokens>\d+) tokens)?"
    r"(; (?P<nofit>\d+) error lines did not fit)?"
)


@pytest.fixture(scope="module")
def corpus() -> dict[str, str]:
    return {name: generate(name) for name in CORPUS}


def count(text: str, encoding: str = "o200k_base") -> int:
    return tokensieve.count_tokens(text, encoding=encoding)


# ---- texts for the properties ------------------------------------------------------------

_LINES = st.sampled_from(
    [
        "INFO request served in 12 ms\n",
        "ERROR connection refused\n",
        "Traceback (most recent call last):\n",
        '  File "app.py", line 3, in main\n',
        "ValueError: bad value\n",
        "warning: unused variable `x`\n",
        "=== 3 failed, 10 passed in 0.5s ===\n",
        "\n",
        "   \n",
        "系统在处理请求时发生错误\n",
        "{\"key\": [1, 2, 3]}\n",
        "x" * 3000 + "\n",
        "a b c " * 400,
        "FAILED tests/test_a.py::test_b - assert 1 == 2\n",
        "\t\tindented continuation\n",
    ]
)
TEXTS = st.lists(_LINES, min_size=1, max_size=120).map("".join)
LIMITS = st.integers(min_value=16, max_value=800)


@SETTINGS
@given(text=TEXTS, mode=st.sampled_from(LINE_MODES), limit=LIMITS, encoding=st.sampled_from(["o200k_base", "cl100k_base"]))
def test_output_tokens_never_exceed_the_limit_and_are_counted_exactly(text, mode, limit, encoding):
    r = _core.narrow_text(text, mode, limit, encoding=encoding, count_all_max_bytes=1 << 20)
    out = text if r[0] is None else r[0]
    assert count(out, encoding) == r[4]
    if r[0] is not None:
        assert r[4] <= limit
    else:
        assert count(text, encoding) <= limit


@SETTINGS
@given(text=TEXTS, mode=st.sampled_from(LINE_MODES), limit=LIMITS)
def test_narrowing_is_idempotent(text, mode, limit):
    once = narrow_tool_output(text, mode=mode, max_tokens=limit)
    twice = narrow_tool_output(once.text, mode=mode, max_tokens=limit)
    assert twice.text is once.text
    assert twice.mode == "full"


@SETTINGS
@given(text=TEXTS, mode=st.sampled_from(LINE_MODES), limit=st.integers(min_value=200, max_value=800))
def test_markers_never_count_wrong(text, mode, limit):
    r = narrow_tool_output(text, mode=mode, max_tokens=limit)
    if not r.changed:
        return
    assert r.tokens_before == count(text)
    assert r.bytes == len(text.encode())
    assert r.lines == text.count("\n") + (0 if text.endswith("\n") else 1)
    m = CLOSING.search(r.text)
    if m is None:  # a structural summary says it in its own words
        assert "summarized in" in r.text
        return
    assert int(m["dropped"]) == r.lines_dropped <= r.lines
    assert int(m["lines"]) == r.lines
    assert int(m["bytes_dropped"]) == r.bytes_dropped
    assert int(m["bytes"]) == r.bytes
    assert int(m["tokens"]) == r.tokens_before
    assert int(m["nofit"] or 0) == r.errors_dropped
    # What is not a marker is input, in order.
    content = re.sub(r"\n?\[\.\.\. lines? [\d-]+ omitted \.\.\.\]\n", "\0", r.text[: m.start()])
    position = 0
    for piece in filter(None, content.split("\0")):
        piece = piece.rstrip("\n") if not text.count(piece) else piece
        found = text.find(piece, position)
        assert found >= 0, piece[:80]
        position = found + len(piece)


ERROR_LINES = ["ERROR connection refused\n", "ValueError: bad value\n", "FAILED tests/test_a.py::test_b - assert 1 == 2\n"]


@SETTINGS
@given(
    noise=st.lists(st.sampled_from(["INFO ok\n", "DEBUG step\n", "  indented detail\n", "\n"]), min_size=50, max_size=400),
    errors=st.lists(st.tuples(st.integers(0, 400), st.sampled_from(ERROR_LINES)), min_size=1, max_size=40),
    limit=st.integers(min_value=120, max_value=600),
)
def test_errors_only_keeps_every_error_line_that_fits_and_counts_the_rest(noise, errors, limit):
    lines = list(noise)
    for at, line in sorted(errors, reverse=True):
        lines.insert(min(at, len(lines)), line)
    text = "".join(lines)
    r = narrow_tool_output(text, mode="errors_only", max_tokens=limit)
    if not r.changed:
        return
    total = sum(1 for line in lines if line in ERROR_LINES)
    assert r.error_lines == total
    kept = sum(1 for line in r.text.splitlines(keepends=True) if line in ERROR_LINES)
    assert kept + r.errors_dropped == total
    if r.errors_dropped:
        assert f"; {r.errors_dropped} error lines did not fit" in r.text
    # The first error lines are kept, in order, as many as fit.
    assert [line for line in r.text.splitlines(keepends=True) if line in ERROR_LINES][: max(kept - 8, 0)] == [
        line for line in lines if line in ERROR_LINES
    ][: max(kept - 8, 0)]


@SETTINGS
@given(text=TEXTS, mode=st.sampled_from(("full", *LINE_MODES)))
def test_text_under_the_limit_comes_back_as_the_same_object(text, mode):
    limit = count(text) + 5
    r = narrow_tool_output(text, mode=mode, max_tokens=limit)
    assert r.text is text
    assert r.mode == "full" and not r.changed
    assert r.tokens_after == count(text)


@SETTINGS
@given(text=TEXTS, mode=st.sampled_from(LINE_MODES), limit=LIMITS, data=st.data())
def test_streaming_in_any_chunks_gives_the_in_memory_result(text, mode, limit, data):
    whole = _core.narrow_text(text, mode, limit, count_all_max_bytes=1 << 20)
    narrower = _core.Narrower(mode, limit, count_all_max_bytes=1 << 20)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=8)))
    start = 0
    for cut in [*cuts, len(text)]:
        narrower.feed(text[start:cut])
        start = max(start, cut)
    streamed = narrower.finish()
    assert streamed[1:] == whole[1:]
    assert streamed[0] == (text if whole[0] is None else whole[0])


# ---- the corpus: core against the baseline, and what each kind keeps ------------------------


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_core_and_baseline_narrow_the_corpus_alike(corpus, name):
    text = corpus[name]
    for mode in ("full", *LINE_MODES):
        for limit in (64, 400, 3000):
            args = (text, mode, limit)
            kwargs = {"count_all_max_bytes": 4 << 20, "note": "full output saved as /tmp/x.txt"}
            assert _core.narrow_text(*args, **kwargs) == baseline.narrow_text(*args, **kwargs), (mode, limit)


def test_cl100k_core_and_baseline_agree_on_cjk_and_minified(corpus):
    for name in ("cjk.txt", "minified.js", "binary_looking.txt"):
        for mode in LINE_MODES:
            args = (corpus[name], mode, 300)
            assert _core.narrow_text(*args, encoding="cl100k_base") == baseline.narrow_text(*args, encoding="cl100k_base")


EXPECTED_KINDS = {
    "pytest_failures.txt": "pytest", "unittest_failures.txt": "unittest", "cargo_errors.txt": "cargo",
    "tsc_errors.txt": "tsc", "go_test.txt": "go_test", "npm_install.txt": "npm", "pip_install.txt": "pip",
    "chained_traceback.txt": "traceback", "git_diff.txt": "diff", "git_log.txt": "git_log", "grep_rn.txt": "grep",
    "ls_recursive.txt": "listing", "find.txt": "listing", "large.json": "json", "minified.js": "minified",
    "binary_looking.txt": "binary", "cjk.txt": "cjk",
}


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_each_corpus_output_is_recognized(corpus, name):
    assert narrow_tool_output(corpus[name], mode="full").kind == EXPECTED_KINDS[name]


def test_errors_only_keeps_a_chained_traceback_whole(corpus):
    r = narrow_tool_output(corpus["chained_traceback.txt"], tool="run_shell_command", exit_code=1, max_tokens=600)
    assert r.mode == "errors_only"
    for line in ("sqlite3.OperationalError: database is locked", "The above exception was the direct cause",
                 "During handling of the above exception", '    order = load_order(request.order_id)', "KeyError: 'order_id'"):
        assert line in r.text
    assert "INFO:worker:shutdown step 100" not in r.text


def test_smart_summary_of_a_test_run_ends_with_its_summary_line(corpus):
    r = narrow_tool_output(corpus["pytest_failures.txt"], mode="smart_summary", max_tokens=800)
    assert "failed, 1402 passed, 14 skipped" in r.text
    assert "AssertionError: assert 500 == 200" in r.text
    cargo = narrow_tool_output(corpus["cargo_errors.txt"], mode="smart_summary", max_tokens=600)
    assert "error: could not compile `shop`" in cargo.text
    assert "error[E0308]: mismatched types" in cargo.text
    assert re.search(r"\d+ error and \d+ warning lines in all", cargo.text)


def test_smart_summary_of_json_shows_its_shape(corpus):
    r = narrow_tool_output(corpus["large.json"], mode="smart_summary", max_tokens=600)
    assert r.kind == "json"
    assert '"items": [' in r.text and "... 797 more items (800 in all)" in r.text
    assert r.tokens_after <= 600 < r.tokens_before


def test_smart_summary_groups_grep_matches_and_listings(corpus):
    grep = narrow_tool_output(corpus["grep_rn.txt"], mode="smart_summary", max_tokens=800)
    assert re.search(r"^src/\S+\.py: \d+ matches$", grep.text, re.M)
    listing = narrow_tool_output(corpus["ls_recursive.txt"], mode="smart_summary", max_tokens=800)
    assert re.search(r"^\./src/\S+/ \(\d+ entries\): ", listing.text, re.M)


def test_truncated_cuts_minified_code_at_a_token_boundary(corpus):
    text = corpus["minified.js"]
    r = narrow_tool_output(text, mode="truncated", max_tokens=100)
    head = r.text.split("\n[... line 1 omitted ...]")[0]
    assert text.startswith(head) and r.tokens_after <= 100


# ---- policy ------------------------------------------------------------------------------


def test_policy_picks_the_mode_per_tool_and_outcome():
    policy = ToolOutputPolicy.preset("default")
    assert policy.resolve("grep_search") == ("smart_summary", 3000)
    assert policy.resolve("run_shell_command", exit_code=1) == ("errors_only", 4000)
    assert policy.resolve("run_shell_command", is_error=True, mode="truncated") == ("errors_only", 4000)
    assert policy.resolve("run_shell_command", is_error=True, mode="full")[0] == "full"
    assert policy.resolve("read_file", args={"path": "x", "start_line": 10, "end_line": 900})[0] == "full"
    assert policy.resolve("read_file", args={"path": "x"})[0] == "heads_tails"
    assert policy.resolve("anything", stream="stderr") == ("errors_only", 2000)
    assert policy.resolve("anything", max_tokens=99, mode="truncated") == ("truncated", 99)


def test_the_cerebras_preset_brings_its_aggressive_tool_output_budget():
    config = BudgetConfig.preset("cerebras")
    assert config.tool_output == "cerebras"
    policy, encoding = tool_output_policy(config)
    assert policy.max_tokens == 2500 and policy.stderr_max_tokens == 1000
    assert tool_output_policy("cerebras")[0] is policy
    assert tool_output_policy(None)[0].max_tokens == 4000
    custom = ToolOutputPolicy(max_tokens=123)
    assert tool_output_policy(config.replace(tool_output=custom))[0] is custom


def test_bad_policies_and_arguments_are_clear_errors():
    with pytest.raises(tokensieve.ConfigurationError, match="mode"):
        ToolOutputPolicy(mode="middle")
    with pytest.raises(tokensieve.ConfigurationError, match="max_tokens"):
        narrow_tool_output("x", max_tokens=0)
    with pytest.raises(tokensieve.ConfigurationError, match="unknown tool output policy"):
        ToolOutputPolicy.preset("nope")
    with pytest.raises(tokensieve.InputTypeError):
        narrow_tool_output(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(tokensieve.ConfigurationError):
        BudgetConfig(tool_output=42)  # type: ignore[arg-type]
    with pytest.raises(tokensieve.ConfigurationError, match="head_ratio"):
        _core.narrow_text("x" * 10000, "heads_tails", 10, head_ratio=2.0)


# ---- spill -------------------------------------------------------------------------------


def test_spilled_outputs_are_content_addressed_and_readable_by_line_range(tmp_path):
    text = "".join(f"line {i}\n" for i in range(1, 5001))
    r = narrow_tool_output(text, max_tokens=200, spill_dir=tmp_path)
    assert r.spilled == os.path.join(tmp_path, f"{r.handle}.txt")
    assert Path(r.spilled).read_text() == text
    assert f'read_spilled_output("{r.handle}", start_line, end_line)' in r.text
    assert r.tokens_after <= 200
    again = narrow_tool_output(text, max_tokens=200, spill_dir=tmp_path)
    assert again.handle == r.handle and len(os.listdir(tmp_path)) == 1
    assert read_spilled_output(r.handle, 2500, 2502, spill_dir=tmp_path) == "line 2500\nline 2501\nline 2502\n"
    many = read_spilled_output(r.handle, 1, 4000, spill_dir=tmp_path)
    assert many.count("\n") == 2001 and "ask for lines 2001-4000 next" in many
    with pytest.raises(tokensieve.ConfigurationError):
        read_spilled_output("../../etc/passwd", 1, 2, spill_dir=tmp_path)
    small = narrow_tool_output("short\n", spill_dir=tmp_path)
    assert small.spilled is None and len(os.listdir(tmp_path)) == 1


# ---- histories -----------------------------------------------------------------------------

LOG = "".join(f"step {i} done\n" for i in range(6000)) + "ERROR: step 6000 failed\n"


def test_narrow_history_narrows_tool_results_in_every_format():
    openai = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "a", "type": "function", "function": {"name": "run_shell_command", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "a", "content": LOG},
    ]
    responses = [
        {"role": "user", "content": "go"},
        {"type": "function_call", "call_id": "a", "name": "run_shell_command", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "a", "output": LOG},
    ]
    anthropic = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "a", "name": "run_shell_command", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "a", "is_error": True, "content": [{"type": "text", "text": LOG}]}]},
    ]
    for history, get in (
        (openai, lambda m: m["content"]),
        (responses, lambda m: m["output"]),
        (anthropic, lambda m: m["content"][0]["content"][0]["text"]),
    ):
        snapshot = json.dumps(history)
        out = narrow_history(history, max_tokens=300)
        assert out is not history and out[0] is history[0] and out[1] is history[1]
        assert count(get(out[2])) <= 300 and "ERROR: step 6000 failed" in get(out[2])
        assert json.dumps(history) == snapshot  # the input is never mutated
        assert narrow_history(out, max_tokens=300)[2] is out[2]


def test_narrow_history_narrows_pydantic_ai_tool_returns():
    from pydantic_ai.messages import ModelRequest, ModelResponse, ToolCallPart, ToolReturnPart, UserPromptPart

    history = [
        ModelRequest(parts=[UserPromptPart("go")]),
        ModelResponse(parts=[ToolCallPart("grep_files", {}, tool_call_id="a")]),
        ModelRequest(parts=[ToolReturnPart("grep_files", "".join(f"src/m{i % 40}.py:{i}:x = 1\n" for i in range(5000)), tool_call_id="a")]),
    ]
    out = narrow_history(history, max_tokens=400)
    assert out[0] is history[0] and out[1] is history[1] and out[2] is not history[2]
    part = out[2].parts[0]
    assert type(part) is ToolReturnPart and part.tool_call_id == "a"
    assert "matches" in part.content and count(part.content) <= 400


# ---- CLI ------------------------------------------------------------------------------------


def test_cli_narrows_a_file_to_json(tmp_path, capsys, corpus):
    from tokensieve.__main__ import main

    path = tmp_path / "out.txt"
    path.write_text(corpus["cargo_errors.txt"])
    assert main(["narrow", str(path), "--exit-code", "101", "--max-tokens", "300", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["mode"] == "errors_only" and result["tokens_after"] <= 300
    expected = narrow_tool_output(corpus["cargo_errors.txt"], exit_code=101, max_tokens=300)
    assert result["text"] == expected.text


def test_cli_sits_in_a_shell_pipe_and_spills(tmp_path, corpus):
    text = corpus["go_test.txt"]
    proc = subprocess.run(
        [sys.executable, "-m", "tokensieve", "narrow", "--tool", "run_shell_command", "--max-tokens", "500", "--spill-dir", str(tmp_path)],
        input=text.encode(), capture_output=True, check=True,
    )
    out = proc.stdout.decode()
    assert count(out) <= 500 and "--- FAIL: " in out
    (spilled,) = [p for p in tmp_path.iterdir()]
    assert spilled.read_text() == text and spilled.stem in out


# ---- the pydantic-ai capability ------------------------------------------------------------


def test_capability_narrows_results_and_offers_the_spill_reader(tmp_path):
    from pydantic_ai import Agent
    from pydantic_ai.messages import ToolReturnPart
    from pydantic_ai.models.test import TestModel

    from tokensieve.integrations.pydantic_ai import ToolOutputBudget

    budget = ToolOutputBudget(max_tokens=300, spill_dir=tmp_path)
    agent = Agent(TestModel(call_tools=["run_tests"]), capabilities=[budget])

    @agent.tool_plain
    def run_tests() -> dict:
        return {"exit_code": 1, "stdout": LOG, "stderr": "Traceback (most recent call last):\n  File \"x.py\"\nValueError: boom\n"}

    result = agent.run_sync("run the tests")
    returns = [p for m in result.all_messages() for p in m.parts if isinstance(p, ToolReturnPart)]
    content = returns[0].content
    assert count(content["stdout"]) <= 300 and "ERROR: step 6000 failed" in content["stdout"]
    assert content["stderr"].startswith("Traceback")  # under its limit: untouched
    assert budget.results[0].mode == "errors_only" and budget.results[0].spilled
    toolset = budget.get_toolset()
    assert toolset is not None and "read_spilled_output" in toolset.tools


def test_the_documented_examples_of_the_tool_output_budget_pass(tmp_path, monkeypatch):
    import doctest

    import tokensieve.integrations.tool_output
    import tokensieve.narrow

    monkeypatch.chdir(tmp_path)
    for module in (tokensieve.narrow, tokensieve.integrations.tool_output, baseline):
        finder = doctest.DocTestFinder()
        tests = [t for t in finder.find(module) if t.examples and (module is not baseline or t.name.endswith("narrow_text"))]
        assert tests, module.__name__
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
        failures: list[str] = []
        for test in tests:
            runner.run(test, out=failures.append)
        assert runner.failures == 0, "".join(failures)
