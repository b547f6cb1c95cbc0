"""The task classifier (:mod:`tokensieve.classify`): measured accuracy on a labelled set of
agent requests, and the rules the budget depends on.

``tests/data/classifier_cases.jsonl`` holds one labelled case per line: a small history as
OpenAI chat dicts (``messages``), the expected class (``label``), the format the case is
run in (``format``: ``openai`` as stored, or ``anthropic`` / ``pydantic-ai`` /
``responses`` converted by the loader below), a note, and a ``split`` that records how
the case relates to the rules:

- ``tuning``: written first; the rules were developed and tuned against these;
- ``holdout-1``, ``holdout-2``: each written after a round of rule changes and measured
  once before any further change (79% and 75% then); their misses were then fixed with
  general rules, so they are now tuning data too;
- ``holdout-3``: written last and measured once (81%); never tuned on. Its accuracy is
  the honest estimate of how the rules do on wording they have not seen.

``pytest -s`` prints the confusion matrix and the accuracy of each split.
"""

from __future__ import annotations

import collections
import collections.abc
import copy
import doctest
import json
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokensieve.classify import MAX_SCAN, TaskClassification, TaskType, classify_task
from tokensieve.config import BudgetConfig
from tokensieve.errors import ConfigurationError, InputTypeError

DATA = Path(__file__).parent / "data" / "classifier_cases.jsonl"
FORMATS = ("openai", "anthropic", "pydantic-ai", "responses")
CLASSES = [t.value for t in TaskType]
REFERENCE_TABLE = {
    "TOOL_CALL": 300,
    "CODE_GENERATION": 3000,
    "EXPLANATION": 1800,
    "PLANNING": 1200,
    "REVIEW": 1500,
    "UNKNOWN": 1500,
}


# ---- Converting the stored OpenAI chat histories ------------------------------------------


def _calls_of(m: dict) -> list[tuple[str, str, str]]:
    return [(c["id"], c["function"]["name"], c["function"]["arguments"]) for c in m.get("tool_calls") or []]


def to_anthropic(messages: list[dict]) -> list[dict]:
    """Anthropic Messages: no system message (it is a request parameter), tool results as
    ``tool_result`` blocks of a user message, a user's text after tool results in the
    same message (turns alternate), ``stop_reason`` on assistant messages."""
    out: list[dict] = []
    for m in messages:
        role = m["role"]
        if role == "system":
            continue
        if role == "user":
            block = {"type": "text", "text": m["content"]}
            if out and out[-1]["role"] == "user":
                out[-1]["content"].append(block)
            else:
                out.append({"role": "user", "content": [block]})
        elif role == "tool":
            block = {"type": "tool_result", "tool_use_id": m["tool_call_id"], "content": m["content"]}
            if out and out[-1]["role"] == "user":
                out[-1]["content"].append(block)
            else:
                out.append({"role": "user", "content": [block]})
        else:
            blocks: list[dict] = [{"type": "text", "text": m["content"]}] if m.get("content") else []
            for call_id, name, args in _calls_of(m):
                blocks.append({"type": "tool_use", "id": call_id, "name": name, "input": json.loads(args)})
            if m.get("finish_reason") == "length":
                stop = "max_tokens"
            else:
                stop = "tool_use" if m.get("tool_calls") else "end_turn"
            out.append({"role": "assistant", "content": blocks, "stop_reason": stop})
    return out


def to_pydantic_ai(messages: list[dict]) -> list[Any]:
    """pydantic-ai ModelRequest / ModelResponse objects; consecutive request messages
    (tool results, then a user prompt) share one ModelRequest."""
    from pydantic_ai.messages import (
        ModelRequest,
        ModelResponse,
        SystemPromptPart,
        TextPart,
        ToolCallPart,
        ToolReturnPart,
        UserPromptPart,
    )

    names: dict[str, str] = {}
    out: list[Any] = []
    parts: list[Any] = []
    for m in messages:
        role = m["role"]
        if role == "system":
            parts.append(SystemPromptPart(m["content"]))
        elif role == "user":
            parts.append(UserPromptPart(m["content"]))
        elif role == "tool":
            parts.append(ToolReturnPart(names[m["tool_call_id"]], m["content"], tool_call_id=m["tool_call_id"]))
        else:
            if parts:
                out.append(ModelRequest(parts=parts))
                parts = []
            response_parts: list[Any] = [TextPart(m["content"])] if m.get("content") else []
            for call_id, name, args in _calls_of(m):
                names[call_id] = name
                response_parts.append(ToolCallPart(name, args, tool_call_id=call_id))
            if m.get("finish_reason") == "length":
                finish = "length"
            else:
                finish = "tool_call" if m.get("tool_calls") else "stop"
            out.append(ModelResponse(parts=response_parts, finish_reason=finish))
    if parts:
        out.append(ModelRequest(parts=parts))
    return out


def to_responses(messages: list[dict]) -> list[dict]:
    """OpenAI Responses input items. A cut-off response's items are ``incomplete`` and
    carry the response's ``incomplete_details`` (as a caller keeping them would). A call
    whose only argument is ``input`` becomes a ``custom_tool_call`` (freeform tools such
    as ``apply_patch``)."""
    custom: set[str] = set()
    out: list[dict] = []
    for m in messages:
        role = m["role"]
        if role == "system":
            out.append({"role": "developer", "content": m["content"]})
        elif role == "user":
            out.append({"type": "message", "role": "user", "content": [{"type": "input_text", "text": m["content"]}]})
        elif role == "tool":
            kind = "custom_tool_call_output" if m["tool_call_id"] in custom else "function_call_output"
            out.append({"type": kind, "call_id": m["tool_call_id"], "output": m["content"]})
        else:
            cut = m.get("finish_reason") == "length"
            status = {"status": "incomplete", "incomplete_details": {"reason": "max_output_tokens"}} if cut else {
                "status": "completed"}
            if m.get("content"):
                out.append({"type": "message", "role": "assistant",
                            "content": [{"type": "output_text", "text": m["content"]}], **status})
            for call_id, name, args in _calls_of(m):
                parsed = json.loads(args)
                if list(parsed) == ["input"]:
                    custom.add(call_id)
                    out.append({"type": "custom_tool_call", "call_id": call_id, "name": name,
                                "input": parsed["input"], **status})
                else:
                    out.append({"type": "function_call", "call_id": call_id, "name": name, "arguments": args,
                                **status})
    return out


CONVERT = {
    "openai": copy.deepcopy,
    "anthropic": to_anthropic,
    "pydantic-ai": to_pydantic_ai,
    "responses": to_responses,
}


def build(messages: list[dict], fmt: str) -> list[Any]:
    return CONVERT[fmt](messages)


def load_cases() -> list[dict]:
    with DATA.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


CASES = load_cases()


def chat(*steps: Any) -> list[dict]:
    """A small OpenAI chat history: strings are user prompts; ("assistant", text[, finish]);
    ("calls", [(name, args), ...][, finish]); ("results", [text, ...])."""
    messages: list[dict] = []
    pending: list[str] = []
    for step in steps:
        if isinstance(step, str):
            messages.append({"role": "user", "content": step})
        elif step[0] == "assistant":
            m = {"role": "assistant", "content": step[1]}
            if len(step) > 2:
                m["finish_reason"] = step[2]
            messages.append(m)
        elif step[0] == "calls":
            calls = []
            for name, args in step[1]:
                call_id = f"call_{len(messages)}_{len(calls)}"
                pending.append(call_id)
                calls.append({"id": call_id, "type": "function",
                              "function": {"name": name, "arguments": json.dumps(args)}})
            m = {"role": "assistant", "content": None, "tool_calls": calls}
            if len(step) > 2:
                m["finish_reason"] = step[2]
            messages.append(m)
        elif step[0] == "results":
            for text in step[1]:
                messages.append({"role": "tool", "tool_call_id": pending.pop(0), "content": text})
    return messages


# ---- The labelled set ---------------------------------------------------------------------


def confusion_report(rows: list[tuple[dict, TaskClassification]]) -> str:
    matrix: collections.Counter[tuple[str, str]] = collections.Counter(
        (case["label"], result.task.value) for case, result in rows
    )
    short = {c: c.split("_")[0][:6] for c in CLASSES}
    width = max(len(c) for c in CLASSES)
    lines = ["confusion matrix (rows: expected, columns: predicted)",
             " " * width + "  " + " ".join(f"{short[c]:>6}" for c in CLASSES) + "   total  recall"]
    for expected in CLASSES:
        counts = [matrix[(expected, got)] for got in CLASSES]
        total = sum(counts)
        recall = matrix[(expected, expected)] / total if total else 0.0
        lines.append(f"{expected:<{width}}  " + " ".join(f"{n:>6}" for n in counts) + f"   {total:>5}  {recall:6.1%}")
    splits: dict[str, list[bool]] = collections.defaultdict(list)
    formats: dict[str, list[bool]] = collections.defaultdict(list)
    for case, result in rows:
        ok = case["label"] == result.task.value
        splits[case["split"]].append(ok)
        formats[case["format"]].append(ok)
    right = sum(ok for values in splits.values() for ok in values)
    lines.append(f"accuracy: {right}/{len(rows)} = {right / len(rows):.1%}")
    lines.append("by split: " + ", ".join(f"{s} {sum(v)}/{len(v)} = {sum(v) / len(v):.1%}" for s, v in splits.items()))
    lines.append("by format: " + ", ".join(f"{f} {sum(v)}/{len(v)}" for f, v in formats.items()))
    misses = [(case, result) for case, result in rows if case["label"] != result.task.value]
    if misses:
        lines.append("misclassified:")
        for case, result in misses:
            prompt = next((m["content"] for m in reversed(case["messages"]) if m["role"] == "user"), "")
            lines.append(f"  {case['id']} [{case['split']}] expected {case['label']}, got {result.task.value} "
                         f"({result.confidence:.2f}): {prompt[:70]!r}")
    return "\n".join(lines)


def test_the_labelled_set_is_large_and_covers_every_class():
    counts = collections.Counter(case["label"] for case in CASES)
    assert len(CASES) >= 200
    assert set(counts) == set(CLASSES)
    assert min(counts.values()) >= 25, counts
    assert {case["format"] for case in CASES} == set(FORMATS)
    assert len({case["id"] for case in CASES}) == len(CASES)
    loops = [case for case in CASES if any(m["role"] == "tool" for m in case["messages"])]
    assert len(loops) >= 25


def test_accuracy_on_the_labelled_set_is_at_least_90_percent():
    rows = [(case, classify_task(build(case["messages"], case["format"]), "cerebras")) for case in CASES]
    report = confusion_report(rows)
    print("\n" + report)
    accuracy = sum(case["label"] == result.task.value for case, result in rows) / len(rows)
    assert accuracy >= 0.90, report
    for case, result in rows:
        assert result.max_output_tokens >= REFERENCE_TABLE[result.task.value]


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_case_gets_the_same_class_in_every_format(fmt):
    differ = []
    for case in CASES:
        expected = classify_task(case["messages"], "cerebras")
        messages = build(case["messages"], fmt)
        for given_format in (None, fmt):
            got = classify_task(messages, "cerebras", format=given_format)
            if (got.task, got.max_output_tokens, got.escalated) != (
                    expected.task, expected.max_output_tokens, expected.escalated):
                differ.append(f"{case['id']} format={given_format}: {got.task.value} {got.max_output_tokens} "
                              f"vs openai {expected.task.value} {expected.max_output_tokens}")
    assert not differ, "\n".join(differ)


# ---- Named behaviours ---------------------------------------------------------------------

CONFIG_TRAP = chat(
    "Add a load_settings() that reads config/app.toml and falls back to defaults when the file is missing",
    ("calls", [("read_file", {"path": "config/app.toml"})]),
    ("results", ["Error: could not read config file: [Errno 2] No such file or directory: 'config/app.toml'"]),
)


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_config_file_trap_keeps_the_code_budget(fmt):
    """The reference implementation read the tool result, saw an error about a config file
    and gave the next request 300 tokens; the task is code generation."""
    result = classify_task(build(CONFIG_TRAP, fmt), "cerebras")
    assert result.task is TaskType.CODE_GENERATION, result
    assert result.max_output_tokens == 3000
    assert not result.escalated


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_tool_loop_writing_files_keeps_the_code_budget(fmt):
    # The prompt alone reads as a tool call; the model is writing code through its tools.
    history = chat(
        "run the tests, they're red",
        ("calls", [("run_tests", {"args": "-q"})]),
        ("results", ["FAILED tests/test_cart.py::test_total - assert 9 == 10"]),
        ("calls", [("edit_file", {"path": "cart.py", "old_str": "return sum(prices)",
                                  "new_str": "return sum(prices) + shipping(prices)"})]),
        ("results", ["edited cart.py"]),
    )
    result = classify_task(build(history, fmt), "cerebras")
    assert result.task is TaskType.CODE_GENERATION, result
    assert result.max_output_tokens == 3000
    assert any("edit_file" in r for r in result.reasons), result.reasons


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    "call",
    [
        ("write_file", {"path": "a.py", "content": "def f():\n    return 1\n"}),
        ("apply_patch", {"patch": "*** Begin Patch\n*** Update File: a.py\n-x = 1\n+x = 2\n*** End Patch"}),
        ("create_file", {"path": "b.py", "content": "import os\nprint(os.getcwd())\n"}),
        ("str_replace_based_edit_tool", {"command": "str_replace", "path": "a.py", "old_str": "x = 1", "new_str": "x = 2"}),
        ("bash", {"command": "cat > setup.cfg <<'EOF'\n[flake8]\nmax-line-length = 100\nEOF"}),
        ("shell", {"command": "sed -i 's/foo(/bar(/g' src/*.py"}),
    ],
)
def test_file_writing_tools_with_code_mark_the_loop_as_code_generation(fmt, call):
    history = chat("sort out the lint config", ("calls", [call]), ("results", ["ok"]))
    assert classify_task(build(history, fmt)).task is TaskType.CODE_GENERATION


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    "call",
    [
        ("read_file", {"path": "a.py"}),
        ("str_replace_based_edit_tool", {"command": "view", "path": "a.py"}),
        ("bash", {"command": "git diff HEAD~1 | head -50"}),
        ("edit_file", {"path": "a.py"}),  # a writing tool, but nothing to write in its arguments
        ("grep", {"pattern": "def write_file(", "path": "."}),
    ],
)
def test_read_only_calls_do_not_count_as_writing_code(fmt, call):
    history = chat("run the tests and tell me what fails", ("calls", [call]), ("results", ["..."]))
    result = classify_task(build(history, fmt), "cerebras")
    assert result.task is TaskType.TOOL_CALL, result
    assert result.max_output_tokens == 300


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_read_only_tool_loop_gets_the_tool_call_budget(fmt):
    history = chat(
        "run the tests and tell me what fails",
        ("calls", [("run_tests", {"args": "-q"})]),
        ("results", ["1 failed, 40 passed\nFAILED test_api.py::test_export - could not read config file"]),
    )
    result = classify_task(build(history, fmt), "cerebras")
    assert result.task is TaskType.TOOL_CALL, result
    assert result.max_output_tokens == 300
    assert any("tool loop" in r for r in result.reasons)


def test_a_read_only_loop_keeps_an_explanation_or_code_task():
    loop = (("calls", [("read_file", {"path": "ci.yml"})]), ("results", ["steps: ..."]))
    assert classify_task(chat("why is CI so slow?", *loop)).task is TaskType.EXPLANATION
    assert classify_task(chat("fix the slow CI", *loop)).task is TaskType.CODE_GENERATION
    assert classify_task(chat("plan how to speed up CI", *loop)).task is TaskType.PLANNING
    assert classify_task(chat("review ci.yml", *loop)).task is TaskType.REVIEW


def test_unanswered_calls_at_the_end_are_a_tool_loop():
    history = chat("list the open PRs", ("calls", [("bash", {"command": "gh pr list"})]))
    assert classify_task(history).task is TaskType.TOOL_CALL


@pytest.mark.parametrize("config", [None, "cerebras", BudgetConfig(default_max_output_tokens=999)])
def test_an_empty_history_is_unknown_with_the_default_budget(config):
    result = classify_task([], config)
    assert result.task is TaskType.UNKNOWN
    assert result.max_output_tokens == 1500
    assert result.confidence == 0.0
    assert not result.escalated
    assert result.reasons == ("empty history",)


def test_the_reference_table_with_the_cerebras_preset():
    prompts = {
        "TOOL_CALL": "run the linter",
        "CODE_GENERATION": "implement the missing retry in fetch()",
        "EXPLANATION": "why does the cache miss on every request?",
        "PLANNING": "plan the move to postgres 16",
        "REVIEW": "review my changes in api/views.py",
        "UNKNOWN": "thanks!",
    }
    config = BudgetConfig.preset("cerebras")
    for name, prompt in prompts.items():
        result = classify_task(prompt, "cerebras")
        assert result.task.value == name, (prompt, result)
        assert result.max_output_tokens == REFERENCE_TABLE[name] == config.max_output_for(name)


def test_the_budgets_come_from_the_config():
    config = BudgetConfig(output_budgets={"tool_call": 111, "code_generation": 2222, "explanation": 333,
                                          "planning": 444, "review": 555, "unknown": 666},
                          model_max_output_tokens=2000)
    assert classify_task("run the linter", config).max_output_tokens == 111
    assert classify_task("write a CSV parser", config).max_output_tokens == 2000  # capped by the model
    assert classify_task("hi", config).max_output_tokens == 666


# ---- Tool result text is never read -------------------------------------------------------

ADVERSARIAL_RESULTS = [
    "could not read config file",
    "Please fix the bug and implement a new parser class, then write unit tests.",
    "Plan the migration step by step. Roadmap: phase 1, phase 2.",
    "review this diff:\ndiff --git a/x b/x\n@@ -1 +1 @@\n-a\n+b",
    "why does this happen? explain how it works",
    "hi thanks ok",
    "",
    "x" * 50_000,
]


def _with_results(messages: list[dict], text: str) -> list[dict]:
    return [{**m, "content": text} if m["role"] == "tool" else m for m in messages]


LOOP_CASES = [case for case in CASES if any(m["role"] == "tool" for m in case["messages"])]


@pytest.mark.parametrize("fmt", FORMATS)
def test_changing_only_tool_result_text_never_changes_the_classification(fmt):
    for case in LOOP_CASES:
        expected = classify_task(build(case["messages"], fmt), "cerebras")
        for text in ADVERSARIAL_RESULTS:
            got = classify_task(build(_with_results(case["messages"], text), fmt), "cerebras")
            assert got == expected, (case["id"], text[:40], got, expected)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(max_size=300), index=st.integers(0, 10_000), fmt=st.sampled_from(FORMATS))
def test_any_tool_result_text_gives_the_same_classification(text, index, fmt):
    case = LOOP_CASES[index % len(LOOP_CASES)]
    expected = classify_task(build(case["messages"], fmt))
    assert classify_task(build(_with_results(case["messages"], text), fmt)) == expected


# ---- Escalation ---------------------------------------------------------------------------

CUT_OFF = chat(
    "write a parser for the config format in docs/config.md",
    ("assistant", "```python\nclass Parser:\n    def parse(self, text):\n        for line in", "length"),
    "continue",
)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_cut_off_response_doubles_the_next_budget(fmt):
    result = classify_task(build(CUT_OFF, fmt), "cerebras")
    assert result.task is TaskType.CODE_GENERATION
    assert result.escalated
    assert result.max_output_tokens == 6000
    note = result.reasons[-1]
    assert "cut off by the output limit" in note and "3000" in note and "6000" in note, result.reasons


@pytest.mark.parametrize("fmt", FORMATS)
def test_escalation_is_capped_at_the_models_maximum(fmt):
    config = BudgetConfig.preset("cerebras", model_max_output_tokens=4096)
    result = classify_task(build(CUT_OFF, fmt), config)
    assert result.escalated and result.max_output_tokens == 4096
    assert "capped at the model's maximum of 4096" in result.reasons[-1]


@pytest.mark.parametrize("fmt", FORMATS)
def test_consecutive_cut_offs_double_again_up_to_the_cap(fmt):
    twice = [*CUT_OFF, {"role": "assistant", "content": "    if not line: continue", "finish_reason": "length"},
             {"role": "user", "content": "keep going"}]
    result = classify_task(build(twice, fmt), "cerebras")  # 3000 * 4 = 12000 > 8192
    assert result.escalated and result.max_output_tokens == 8192
    assert classify_task(build(CUT_OFF, fmt), BudgetConfig(model_max_output_tokens=100_000)).max_output_tokens == 6000
    assert classify_task(build(twice, fmt), BudgetConfig(model_max_output_tokens=100_000)).max_output_tokens == 12000


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_tool_call_cut_off_escalates_the_tool_loop(fmt):
    history = chat("list every TODO", ("calls", [("grep", {"pattern": "TODO"})], "length"), ("results", ["a.py:1"]))
    result = classify_task(build(history, fmt), "cerebras")
    assert result.task is TaskType.TOOL_CALL
    assert result.escalated and result.max_output_tokens == 600


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_complete_response_does_not_escalate(fmt):
    history = chat("write a slugify function", ("assistant", "def slugify(s): ..."), "now add tests for it")
    result = classify_task(build(history, fmt), "cerebras")
    assert not result.escalated and result.max_output_tokens == 3000


def test_a_cut_off_before_the_latest_complete_response_does_not_escalate():
    history = chat("write X", ("assistant", "part one", "length"), "continue", ("assistant", "part two, done"),
                   "thanks, now explain it")
    assert not classify_task(history).escalated


def test_escalation_reads_each_formats_own_signal():
    openai = [{"role": "user", "content": "explain the GIL"},
              {"role": "assistant", "content": "The GIL is", "finish_reason": "length"}]
    assert classify_task(openai).escalated
    anthropic = [{"role": "user", "content": "explain the GIL"},
                 {"role": "assistant", "content": [{"type": "text", "text": "The GIL"}], "stop_reason": "max_tokens"}]
    assert "stop_reason='max_tokens'" in classify_task(anthropic).reasons[-1]
    incomplete = {"type": "message", "role": "assistant", "status": "incomplete",
                  "content": [{"type": "output_text", "text": "The GIL"}]}
    responses = [{"role": "user", "content": "explain the GIL"}, incomplete]
    assert classify_task(responses).escalated  # no details: the usual reason
    filtered = {**incomplete, "incomplete_details": {"reason": "content_filter"}}
    assert not classify_task([responses[0], filtered]).escalated
    assert not classify_task([openai[0], {**openai[1], "finish_reason": "stop"}]).escalated


# ---- Continuations ------------------------------------------------------------------------


def test_continuation_prompts_stand_for_the_task_they_continue():
    asked = chat("add pagination to /orders", ("assistant", "Should I also update the OpenAPI spec?"), "yes")
    assert classify_task(asked).task is TaskType.CODE_GENERATION
    # "ok" after a statement is an acknowledgement, not a go-ahead.
    told = chat("add pagination to /orders", ("assistant", "Done: limit and offset are supported."), "ok")
    assert classify_task(told).task is TaskType.UNKNOWN
    # "go ahead" after a plan means: make the changes.
    plan = chat("plan the split of models.py", ("assistant", "1. ... 2. ... 3. ..."), "looks good, go ahead")
    assert classify_task(plan).task is TaskType.CODE_GENERATION
    # "continue" after a plan is more plan.
    more = chat("plan the split of models.py", ("assistant", "1. ... 2. ...", "length"), "continue")
    assert classify_task(more).task is TaskType.PLANNING
    # Only continuation prompts in view.
    assert classify_task("continue").task is TaskType.UNKNOWN


def test_pydantic_ai_retry_feedback_is_not_the_task():
    from pydantic_ai.messages import ModelRequest, ModelResponse, TextPart, UserPromptPart

    history = [
        ModelRequest(parts=[UserPromptPart("why does the importer skip rows?")]),
        ModelResponse(parts=[TextPart("{bad json")]),
        ModelRequest(parts=[UserPromptPart("Your previous response failed the application's validation "
                                           "(this is automated feedback, not a message from the user): fix the JSON")]),
    ]
    assert classify_task(history).task is TaskType.EXPLANATION


# ---- Robustness, arguments, cost ----------------------------------------------------------


class Opaque:
    def __getattr__(self, name):
        raise RuntimeError("no attributes here")


ODD_MESSAGES = [
    None, 1, "a string", b"bytes", [], {}, Opaque(), {"role": None}, {"role": "user", "content": None},
    {"role": "user", "content": 42}, {"role": "user", "content": [None, 1, {"type": "text", "text": None}]},
    {"role": "assistant", "tool_calls": "nope"}, {"role": "assistant", "tool_calls": [None, {"function": 3}]},
    {"role": "assistant", "tool_calls": [{"function": {"name": None, "arguments": {"content": ["x", {"a": 1}]}}}]},
    {"type": 3}, {"type": "function_call", "call_id": "c"}, {"kind": "request", "parts": None},
    {"kind": "response", "parts": [None, {"part_kind": "tool-call", "tool_name": 5, "args": object()}]},
    {"role": "weird"}, {"role": "tool"}, {"role": "user", "content": [{"type": "tool_result"}]},
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["role", "content", "type", "tool_calls", "function", "name", "arguments", "text",
                         "finish_reason", "status", "kind", "parts", "call_id", "input"]), inner, max_size=5),
    max_leaves=20,
)


@pytest.mark.parametrize("fmt", [None, *FORMATS])
def test_odd_messages_never_crash(fmt):
    for message in ODD_MESSAGES:
        for history in ([message], [message, {"role": "user", "content": "fix it"}], [{"role": "user", "content": "fix it"}, message]):
            result = classify_task(history, format=fmt)
            assert isinstance(result, TaskClassification)
            assert 0.0 <= result.confidence <= 1.0


@settings(max_examples=150, deadline=None)
@given(st.lists(json_values, max_size=6))
def test_arbitrary_json_never_crashes(history):
    result = classify_task(history)
    assert result.task in TaskType and 0.0 <= result.confidence <= 1.0
    assert result.reasons and all(isinstance(r, str) for r in result.reasons)


def test_unknown_shapes_are_unknown_with_low_confidence():
    result = classify_task([{"something": "else"}, 7, None])
    assert result.task is TaskType.UNKNOWN and result.confidence < 0.5


def test_arguments_are_checked():
    with pytest.raises(ConfigurationError):
        classify_task([], format="gemini")
    with pytest.raises(InputTypeError):
        classify_task(None)  # type: ignore[arg-type]
    with pytest.raises(InputTypeError):
        classify_task(iter([]))  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        classify_task([], "no-such-preset")
    assert classify_task(({"role": "user", "content": "fix the bug"},)).task is TaskType.CODE_GENERATION


def test_the_result_is_deterministic_and_well_formed():
    for case in CASES[:80]:
        first = classify_task(case["messages"])
        assert classify_task(copy.deepcopy(case["messages"])) == first
        assert isinstance(first.reasons, tuple) and first.reasons
        assert 0.0 <= first.confidence <= 1.0
        assert isinstance(first.max_output_tokens, int)
    assert TaskType.CODE_GENERATION == "CODE_GENERATION" and str(TaskType.REVIEW) == "REVIEW"


class Watched(collections.abc.Sequence):
    """A history that records which positions were read."""

    def __init__(self, items: list[Any]) -> None:
        self.items = items
        self.read: set[int] = set()

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index):
        self.read.add(index)
        return self.items[index]


def test_only_the_end_of_the_history_is_read():
    loop = chat("fix the flaky test", ("calls", [("read_file", {"path": "t.py"})]), ("results", ["..."]))
    history = Watched([*chat("hello", ("assistant", "hi")) * 5_000, *loop])
    assert classify_task(history).task is TaskType.CODE_GENERATION
    assert min(history.read) == len(history) - len(loop)
    # A tool loop longer than the window: at most MAX_SCAN messages are read.
    endless = Watched([{"role": "user", "content": "fix it"}] + [
        m for i in range(3_000) for m in chat(("calls", [("grep", {"pattern": str(i)})]), ("results", ["x"]))])
    result = classify_task(endless)
    assert len(endless.read) <= MAX_SCAN + 1 and min(endless.read) >= len(endless) - MAX_SCAN - 1
    assert result.task is TaskType.TOOL_CALL and any(str(MAX_SCAN) in r for r in result.reasons)


def test_a_call_on_a_long_history_takes_well_under_a_millisecond():
    history = [m for i in range(2_500) for m in chat(
        f"step {i}: fix the failing test in tests/test_{i}.py",
        ("calls", [("read_file", {"path": f"tests/test_{i}.py"})]),
        ("results", ["def test(): assert False"]))][:10_000]
    classify_task(history)
    timings = []
    for _ in range(50):
        start = time.perf_counter()
        classify_task(history)
        timings.append(time.perf_counter() - start)
    assert sorted(timings)[len(timings) // 2] < 1e-3


def test_the_documented_examples_pass():
    import tokensieve.classify as module

    finder = doctest.DocTestFinder(exclude_empty=True)
    tests = [t for t in finder.find(module, "tokensieve.classify", globs={}) if t.examples]
    names = {t.name for t in tests}
    assert {"tokensieve.classify", "tokensieve.classify.classify_task", "tokensieve.classify.TaskType",
            "tokensieve.classify.TaskClassification"} <= names, names
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    failures: list[str] = []
    for test in tests:
        runner.run(test, out=failures.append)
    assert runner.failures == 0, "".join(failures)


def test_the_phrase_gates_never_skip_a_match():
    """Each phrase regex runs only when one of its needles is in the text: every match
    must contain a needle, or the gate would silently drop a cue."""
    from tokensieve.classify import _PHRASES, _features

    probes = ["does not work", "an explanation please", "does this look right", "is this ok", "my changes",
              "re-implement it", "differences between", "is broken", "step-by-step", "nit-pick this"]
    texts = [_features(m["content"])[0] for case in CASES for m in case["messages"]
             if m["role"] == "user" and isinstance(m["content"], str)] + probes
    for text in texts:
        for _task, _weight, needles, pattern in _PHRASES:
            for match in pattern.finditer(text):
                assert any(n in match.group() for n in needles), (pattern.pattern, needles, match.group())


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_is_read_into_prompts_results_and_calls(fmt):
    """The reader sees user prompts, tool results and tool calls where they are."""
    from tokensieve.classify import _read_any, _read_dict, _read_object

    history = build(chat("fix it", ("calls", [("read_file", {"path": "a"})]), ("results", ["text"])), fmt)
    reader = _read_object if fmt == "pydantic-ai" else _read_dict
    sides = [(reader(m)[1], reader(m)[2], [c[0] for c in reader(m)[3]]) for m in history]
    assert [_read_any(m) for m in history] == [reader(m) for m in history]
    assert sides[0] == ("fix it", False, [])
    assert sides[-1] == (None, True, [])
    assert ["read_file"] in [calls for _, _, calls in sides]
    kinds = {reader(m)[0] for m in history}
    assert len(kinds) == 2  # requests and responses


def test_importing_the_module_compiles_nothing_and_imports_nothing_heavy():
    import subprocess
    import sys

    code = (
        "import sys, tokensieve.classify as m\n"
        "compiled = [n for n, v in vars(m).items() if isinstance(v, m._Lazy) and 'search' in vars(v)]\n"
        "compiled += [p.pattern for *_, p in m._PHRASES if 'search' in vars(p)]\n"
        "heavy = [x for x in ('pydantic_ai', 'pydantic', 'numpy', 'tiktoken', 'logfire') if x in sys.modules]\n"
        "print(len(compiled), heavy)\n"
    )
    out = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "0 []", out.stdout
