"""The task classifier's cost per call: a small history and 10,000-message ones.

``classify_task`` reads backwards from the end and stops at the current task, so the
history's length should not matter. "cold" clears the memo of prompt classifications
before every call (a prompt seen for the first time); "warm" is the common case inside a
tool loop, where the same prompt is classified again at every step. The worst case is a
tool loop longer than the scan window: ``MAX_SCAN`` messages are read and no prompt found.

Run with ``python -m pytest benches/test_bench_classifier.py --benchmark-enable``.
"""

from __future__ import annotations

import json

import pytest

from tokensieve.classify import _classify_prompt, classify_task

HISTORY_LENGTH = 10_000
SMALL = [
    {"role": "system", "content": "You are a coding agent. Use the tools to read and change files."},
    {"role": "user", "content": "Add a load_settings() that reads config/app.toml and falls back to defaults"},
    {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function", "function": {
        "name": "read_file", "arguments": json.dumps({"path": "config/app.toml"})}}]},
    {"role": "tool", "tool_call_id": "c1", "content": "Error: could not read config file"},
]


def _long_history() -> list[dict]:
    """A long coding session: tasks, each a tool loop of reads and a file write."""
    messages: list[dict] = [SMALL[0]]
    task = 0
    while len(messages) < HISTORY_LENGTH - 8:
        task += 1
        messages.append({"role": "user", "content": f"fix the failing test in tests/test_mod{task}.py, it broke "
                                                    "after the refactor of the settings loader"})
        for step in range(3):
            call_id = f"c{task}_{step}"
            name, args = ("read_file", {"path": f"src/mod{task}.py"}) if step < 2 else (
                "edit_file", {"path": f"src/mod{task}.py", "old_str": "return x", "new_str": "return x + 1\n"})
            messages.append({"role": "assistant", "content": None, "tool_calls": [
                {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}]})
            messages.append({"role": "tool", "tool_call_id": call_id, "content": "line\n" * 40})
        messages.append({"role": "assistant", "content": "Fixed: the loader now returns the merged settings."})
    messages.append({"role": "user", "content": "why does the settings loader read the file twice on startup?"})
    messages.append({"role": "assistant", "content": None, "tool_calls": [{"id": "last", "type": "function",
                     "function": {"name": "grep", "arguments": json.dumps({"pattern": "load_settings"})}}]})
    messages.append({"role": "tool", "tool_call_id": "last", "content": "src/app.py:3\nsrc/cli.py:9"})
    return messages


@pytest.fixture(scope="module")
def long_history() -> list[dict]:
    history = _long_history()
    assert len(history) >= HISTORY_LENGTH - 8
    return history


def _endless_loop() -> list[dict]:
    messages: list[dict] = [{"role": "user", "content": "fix the build"}]
    for i in range(HISTORY_LENGTH // 2):
        messages.append({"role": "assistant", "content": None, "tool_calls": [{"id": f"c{i}", "type": "function",
                         "function": {"name": "grep", "arguments": json.dumps({"pattern": f"p{i}", "path": "src"})}}]})
        messages.append({"role": "tool", "tool_call_id": f"c{i}", "content": "src/a.py:1"})
    return messages


def _cold(messages):
    _classify_prompt.cache_clear()
    return classify_task(messages, "cerebras")


@pytest.mark.parametrize("memo", ["warm", "cold"])
def test_classify_a_small_history(benchmark, memo):
    benchmark.group = "classify_task"
    run = _cold if memo == "cold" else (lambda m: classify_task(m, "cerebras"))
    result = benchmark(run, SMALL)
    assert result.task.value == "CODE_GENERATION" and result.max_output_tokens == 3000
    _check_fast(benchmark)


@pytest.mark.parametrize("memo", ["warm", "cold"])
def test_classify_a_10k_message_history(benchmark, long_history, memo):
    benchmark.group = "classify_task"
    run = _cold if memo == "cold" else (lambda m: classify_task(m, "cerebras"))
    result = benchmark(run, long_history)
    assert result.task.value == "EXPLANATION" and result.max_output_tokens == 1800
    _check_fast(benchmark)


def _check_fast(benchmark) -> None:
    stats = getattr(benchmark, "stats", None)
    if stats is not None and stats.stats.rounds:  # only when benchmarks are enabled
        assert stats.stats.median < 1e-3, f"median {stats.stats.median * 1e6:.0f} µs per call"


def test_classify_a_10k_message_pydantic_ai_history(benchmark, long_history):
    benchmark.group = "classify_task"
    from tests.test_classifier import to_pydantic_ai

    history = to_pydantic_ai(long_history)
    result = benchmark(classify_task, history, "cerebras")
    assert result.task.value == "EXPLANATION"
    _check_fast(benchmark)


def test_classify_worst_case_a_loop_longer_than_the_scan_window(benchmark):
    benchmark.group = "classify_task"
    history = _endless_loop()
    result = benchmark(classify_task, history, "cerebras")
    assert result.task.value == "TOOL_CALL"
    _check_fast(benchmark)
