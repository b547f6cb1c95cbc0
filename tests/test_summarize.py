"""The summarizers: the extractive one keeps the task verbatim and every changed path in
every generated coding session (four formats), is deterministic and incremental, and
keeps the task under any cap; the model one writes its sections, updates the previous
summary, and falls back to the extractive one whenever the model fails, never losing
anything."""

from __future__ import annotations

import asyncio
import doctest
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.models.test import TestModel

import tokensieve
from tokensieve import InputTypeError, InvalidMessageError, count_tokens, telemetry
from tokensieve import summarize as summarize_module
from tokensieve.summarize import MODEL_SECTIONS, ExtractiveSummarizer, ModelSummarizer, Summarizer, Summary
from tests.support.coding_sessions import FORMATS, coding_histories, coding_sessions, render

# 60 examples per property in `make test`; a long hunt (HYPOTHESIS_PROFILE=long) runs 500.
_EXAMPLES = 60 if settings.default.max_examples <= 100 else settings.default.max_examples // 4
SETTINGS = settings(max_examples=_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def files_section(text: str) -> list[str]:
    """The paths the files section of an extractive summary lists (both ends of a move)."""
    found: list[str] = []
    lines = text.split("\n")
    try:
        start = next(i for i, line in enumerate(lines) if line.startswith("## Files ("))
    except StopIteration:
        return found
    for line in lines[start + 1 :]:
        if line.startswith("## "):
            break
        m = re.fullmatch(r"- ([AMWD]) (.+)", line)
        if m:
            found.append(m.group(2))
            continue
        m = re.fullmatch(r"- R (.+) -> (.+)", line)
        if m:
            found += [m.group(1), m.group(2)]
    return found


def omitted_paths(text: str) -> int:
    m = re.search(r"- \((\d+) more paths omitted", text)
    return int(m.group(1)) if m else 0


# ---- The extractive summary ------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@SETTINGS
@given(data=st.data())
def test_the_extractive_summary_keeps_the_task_verbatim_and_every_changed_path(fmt, data):
    session, _, history = data.draw(coding_histories(fmt))
    summary = ExtractiveSummarizer(max_tokens=None).summarize(history)
    assert session.task in summary.text
    listed = set(files_section(summary.text))
    assert session.modified_paths <= listed, f"lost {session.modified_paths - listed}"
    assert not (listed & session.decoys), f"read-only paths listed as changed: {listed & session.decoys}"
    assert summary.summarizer == "extractive" and not summary.fell_back
    assert summary.messages == len(history)
    assert summary.tokens == count_tokens(summary.text)


@SETTINGS
@given(session=coding_sessions())
def test_the_facts_are_the_same_whatever_the_format(session):
    facts = [ExtractiveSummarizer(cache_size=0).facts(render(session, fmt)) for fmt in FORMATS]
    assert len({f.task for f in facts}) == 1
    assert len({tuple(sorted(f.paths)) for f in facts}) == 1
    assert len({tuple(f.decisions) for f in facts}) == 1
    # Each decision once, where it was last stated, the 40 most recent.
    expected: list[str] = []
    for decision in (" ".join(d.split()) for d in session.decisions):  # on one line, spaces collapsed
        if decision in expected:
            expected.remove(decision)
        expected.append(decision)
    assert facts[0].decisions == expected[-40:]


@SETTINGS
@given(drawn=coding_histories(), cap=st.sampled_from([None, 200, 1500]))
def test_the_extractive_summary_is_deterministic(drawn, cap):
    _, fmt, history = drawn
    first = ExtractiveSummarizer(max_tokens=cap, cache_size=0).summarize(history)
    again = ExtractiveSummarizer(max_tokens=cap, cache_size=0).summarize(history, format=fmt)
    assert (first.text, first.tokens, first.omitted) == (again.text, again.tokens, again.omitted)
    assert first.facts == again.facts


@SETTINGS
@given(drawn=coding_histories(), data=st.data())
def test_an_incremental_summary_equals_the_summary_of_everything_at_once(drawn, data):
    _, _, history = drawn
    split = data.draw(st.integers(0, len(history)))
    whole = ExtractiveSummarizer(cache_size=0).summarize(history)
    summarizer = ExtractiveSummarizer(cache_size=0)
    first = summarizer.summarize(history[:split])
    both = summarizer.summarize(history[split:], previous=first)
    assert both.facts == whole.facts
    assert both.text == whole.text
    assert both.messages == len(history)


@SETTINGS
@given(drawn=coding_histories(), data=st.data())
def test_a_growing_dropped_prefix_reads_only_the_new_messages_and_matches_a_fresh_summary(drawn, data):
    _, _, history = drawn
    cuts = sorted(data.draw(st.lists(st.integers(0, len(history)), min_size=1, max_size=4)))
    cached = ExtractiveSummarizer()
    for cut in cuts:
        grown = cached.summarize(history[:cut])
        fresh = ExtractiveSummarizer(cache_size=0).summarize(history[:cut])
        assert grown.text == fresh.text and grown.facts == fresh.facts


@SETTINGS
@given(drawn=coding_histories(), cap=st.integers(1, 400))
def test_the_cap_never_cuts_the_task_and_says_how_many_paths_it_left_out(drawn, cap):
    session, _, history = drawn
    full = ExtractiveSummarizer(max_tokens=None).summarize(history)
    capped = ExtractiveSummarizer(max_tokens=cap).summarize(history)
    assert session.task in capped.text
    listed = files_section(capped.text)
    assert len(listed) + 0 <= len(files_section(full.text))
    lost = set(files_section(full.text)) - set(listed)
    if lost:
        assert omitted_paths(capped.text) > 0
    if capped.tokens > cap:
        # Over the cap only when everything that can be cut was: what is left is the task,
        # the titles, the notes of what was omitted, the count of tool calls and the last
        # error (never cut, like the task: where the work stands).
        items = [line for line in capped.text.split("\n") if line.startswith("- ")]
        others = [line for line in items if not line.startswith(("- (", "- tool calls: "))]
        assert len(others) <= 1, items
        assert all(line in full.text for line in others), items
        if others:
            assert others == [line for line in full.text.split("\n") if line.startswith("- ") and line in others][-1:]
    assert capped.tokens == count_tokens(capped.text)
    assert (capped.omitted > 0) == (capped.text != full.text)


def test_the_summary_of_a_known_session_names_commands_errors_and_decisions():
    history = [
        {"role": "system", "content": "You are a coding agent."},
        {"role": "user", "content": "Make the retry test pass.\nDo not touch the public API."},
        {"role": "assistant", "content": "I'll use a fake clock instead of sleeping. Let me read the test.",
         "tool_calls": [{"id": "c1", "type": "function",
                         "function": {"name": "bash", "arguments": '{"command": "pytest -q tests/test_retry.py"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "F\nFAILED tests/test_retry.py::test_backoff\nexit code: 1"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c2", "type": "function", "function": {
            "name": "apply_patch",
            "arguments": '{"input": "*** Begin Patch\\n*** Update File: src/retry.py\\n@@\\n-a\\n+b\\n*** End Patch"}'}}]},
        {"role": "tool", "tool_call_id": "c2", "content": "Done"},
        {"role": "user", "content": "thanks"},
    ]
    summary = ExtractiveSummarizer().summarize(history)
    text = summary.text
    assert text.startswith("[Summary of 7 earlier messages, extracted by tokensieve]\n")
    assert "Make the retry test pass.\nDo not touch the public API.\n" in text
    assert "- M src/retry.py" in text
    assert "- `pytest -q tests/test_retry.py` -> exit 1: FAILED tests/test_retry.py::test_backoff" in text
    assert "## Open errors\n- bash `pytest -q tests/test_retry.py`: exit 1:" in text
    assert "- I'll use a fake clock instead of sleeping." in text
    assert "Let me read" not in text and "thanks" not in text  # routine steps and acknowledgements


def test_a_later_success_of_the_same_command_closes_its_error():
    def run(i: int, output: str) -> list[dict]:
        return [
            {"role": "assistant", "content": [{"type": "tool_use", "id": f"t{i}", "name": "bash",
                                               "input": {"command": "cargo test"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"t{i}", "content": output,
                                          "is_error": "error" in output}]},
        ]

    history = [{"role": "user", "content": "fix the build"}, *run(1, "error[E0308]: mismatched types"),
               *run(2, "test result: ok")]
    facts = ExtractiveSummarizer().facts(history)
    assert facts.open_errors == []
    assert facts.commands == [("cargo test", "ok", 2)]
    facts = ExtractiveSummarizer().facts(history[:3])
    assert facts.open_errors == [("bash `cargo test`", "error[E0308]: mismatched types")]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # RetryPromptPart: still in stored histories
@pytest.mark.parametrize("retried", ["outcome", "retry-prompt"])
def test_a_pydantic_ai_retry_is_an_error_of_its_tool(retried):
    from pydantic_ai.messages import (
        ModelRequest, ModelResponse, RetryInfo, RetryPromptPart, ToolCallPart, ToolReturnPart, UserPromptPart,
    )

    result = (
        ToolReturnPart("read_file", "file not found", tool_call_id="r1", outcome="retried", retry=RetryInfo("validation_error"))
        if retried == "outcome"
        else RetryPromptPart("file not found", tool_name="read_file", tool_call_id="r1")
    )
    history = [
        ModelRequest([UserPromptPart("go")]),
        ModelResponse([ToolCallPart("read_file", {"path": "a.py"}, tool_call_id="r1")]),
        ModelRequest([result]),
    ]
    facts = ExtractiveSummarizer().facts(history)
    assert facts.open_errors == [("read_file `a.py`", "file not found")]


def test_a_previous_summary_without_facts_is_read_back_from_its_text():
    first = ExtractiveSummarizer().summarize(
        [{"role": "user", "content": "Split utils.py"},
         {"role": "assistant", "content": [{"type": "tool_use", "id": "1", "name": "write_file",
                                            "input": {"path": "src/strings.py"}}]}],
        format="anthropic",
    )
    stripped = Summary(text=first.text, tokens=first.tokens, summarizer="extractive", messages=first.messages)
    later = ExtractiveSummarizer().summarize([{"role": "user", "content": "and tests"}], previous=stripped)
    assert "Split utils.py" in later.text and "- W src/strings.py" in later.text


def test_a_summary_met_again_in_the_history_is_not_taken_for_the_task():
    earlier = ExtractiveSummarizer().summarize([{"role": "user", "content": "Port the app to Django 5."}])
    history = [{"role": "user", "content": earlier.text}, {"role": "user", "content": "now the admin"}]
    facts = ExtractiveSummarizer().facts(history)
    assert facts.task == "Port the app to Django 5."
    assert facts.follow_ups == ["now the admin"]


@settings(max_examples=15, deadline=None)
@given(session=coding_sessions())
def test_pydantic_ai_json_dumps_are_summarized_like_the_objects(session):
    from pydantic_ai.messages import ModelMessagesTypeAdapter

    objects = render(session, "pydantic-ai")
    dumped = ModelMessagesTypeAdapter.dump_python(objects, mode="json")
    summarizer = ExtractiveSummarizer(cache_size=0)
    assert summarizer.summarize(dumped).text == summarizer.summarize(objects).text


@pytest.mark.parametrize(
    ("history", "fmt", "index", "words"),
    [
        ([{"role": "user", "content": "x"}, 42], None, 1, "expected a dict"),
        ([{"role": "user", "content": "x"}, {"role": "robot"}], "openai", 1, "unknown role"),
        ([{"role": "user", "content": "x"}, {"content": "no role"}], "anthropic", 1, "without a role"),
        ([{"role": "assistant", "content": None, "tool_calls": 5}], "openai", 0, "tool_calls"),
        ([{"type": "message", "role": "narrator", "content": "x"}], "responses", 0, "unknown role"),
    ],
)
def test_unreadable_messages_raise_an_invalid_message_error_naming_the_index(history, fmt, index, words):
    with pytest.raises(InvalidMessageError, match=words) as raised:
        ExtractiveSummarizer().summarize(history, format=fmt)
    assert raised.value.index == index


def test_an_exception_raised_by_the_callers_objects_names_the_message():
    class Exploding:
        kind = "request"

        @property
        def parts(self):
            raise RuntimeError("boom")

    with pytest.raises(InvalidMessageError, match="RuntimeError: boom") as raised:
        ExtractiveSummarizer().summarize([Exploding()], format="pydantic-ai")
    assert raised.value.index == 0
    assert isinstance(raised.value.__cause__, RuntimeError)


def test_a_cyclic_argument_is_an_invalid_message_error_not_a_crash():
    args: dict = {"path": "a.py"}
    args["self"] = args
    history = [{"role": "assistant", "content": [{"type": "tool_use", "id": "1", "name": "edit", "input": args}]}]
    with pytest.raises(InvalidMessageError, match="circular"):
        ExtractiveSummarizer().summarize(history, format="anthropic")


def test_messages_must_be_a_list():
    with pytest.raises(InputTypeError):
        ExtractiveSummarizer().summarize("not a list")  # type: ignore[arg-type]


def test_the_cache_is_bounded_and_a_repeated_request_is_served_from_it():
    summarizer = ExtractiveSummarizer(cache_size=3)
    histories = [[{"role": "user", "content": f"task {i}"}] for i in range(10)]
    for h in histories:
        summarizer.summarize(h)
    assert len(summarizer._summaries) <= 3 and len(summarizer._facts) <= 3
    assert summarizer.summarize(histories[-1]) is summarizer.summarize(histories[-1])
    summarizer.cache_clear()
    assert not summarizer._summaries and not summarizer._facts


def test_the_summarizers_satisfy_the_protocol():
    assert isinstance(ExtractiveSummarizer(), Summarizer)
    assert isinstance(ModelSummarizer(TestModel()), Summarizer)
    assert tokensieve.ExtractiveSummarizer is ExtractiveSummarizer


def test_the_module_examples_pass():
    failures, attempted = doctest.testmod(summarize_module, optionflags=doctest.ELLIPSIS)
    assert attempted > 0 and failures == 0


# ---- The model summary -----------------------------------------------------------------------

HISTORY = [
    {"role": "system", "content": "You are a coding agent."},
    {"role": "user", "content": "Add caching to fetch() in src/net.py"},
    {"role": "assistant", "content": "I'll use functools.lru_cache.", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "edit_file", "arguments": '{"path": "src/net.py"}'}}]},
    {"role": "tool", "tool_call_id": "c1", "content": "ok"},
]
MORE = [
    {"role": "user", "content": "also document it"},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c2", "type": "function", "function": {"name": "write_file", "arguments": '{"path": "docs/cache.md"}'}}]},
    {"role": "tool", "tool_call_id": "c2", "content": "ok"},
]


class Recorder:
    """A FunctionModel body that answers a summary and records what it was sent."""

    def __init__(self, answer: str = "## Intent\nAdd caching.\n## Key decisions\nlru_cache") -> None:
        self.answer = answer
        self.prompts: list[str] = []
        self.instructions: list[str | None] = []

    def __call__(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        request = messages[-1]
        self.prompts.append("\n".join(str(p.content) for p in request.parts if p.part_kind == "user-prompt"))
        self.instructions.append(getattr(request, "instructions", None))
        return ModelResponse(parts=[TextPart(self.answer)])


def test_the_model_summary_has_every_section_the_task_and_every_path():
    recorder = Recorder()
    summary = ModelSummarizer(FunctionModel(recorder), timeout=5).summarize(HISTORY)
    for section in MODEL_SECTIONS:
        assert f"## {section}" in summary.text
        assert f"## {section}" in (recorder.instructions[0] or "")
    assert "Add caching to fetch() in src/net.py" in summary.text
    assert "src/net.py" in summary.text
    assert summary.summarizer == "model:function:__call__:" or summary.summarizer.startswith("model:")
    assert not summary.fell_back and summary.error is None
    assert summary.tokens == count_tokens(summary.text)
    assert summary.facts is not None and summary.facts.paths == ["src/net.py"]
    assert "Add caching to fetch() in src/net.py" in recorder.prompts[0]  # the transcript


def test_an_incremental_model_summary_sends_the_previous_summary_and_only_the_new_messages():
    recorder = Recorder()
    summarizer = ModelSummarizer(FunctionModel(recorder), timeout=5)
    first = summarizer.summarize(HISTORY)
    second = summarizer.summarize(MORE, previous=first)
    prompt = recorder.prompts[-1]
    assert first.text.strip() in prompt
    assert "also document it" in prompt
    assert "TOOL CALL edit_file" not in prompt  # the old messages are not sent again
    assert second.messages == len(HISTORY) + len(MORE)
    assert "docs/cache.md" in second.text and "src/net.py" in second.text


async def _slow(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    await asyncio.sleep(10)
    return ModelResponse(parts=[TextPart("too late")])


def _failing(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    raise RuntimeError("the provider is down")


@pytest.mark.parametrize(
    ("body", "reason", "error"),
    [
        (_slow, "timeout", "timed out after 0.2 s"),
        (_failing, "error", "RuntimeError: the provider is down"),
        (Recorder(answer="   "), "error", "ValueError: the model answered with no summary"),
    ],
)
def test_a_failing_model_falls_back_to_the_extractive_summary_and_says_so(body, reason, error, monkeypatch):
    events: list[dict] = []
    monkeypatch.setattr(telemetry, "summary_fallback", lambda **kw: events.append(kw))
    summarizer = ModelSummarizer(FunctionModel(body), timeout=0.2)
    first = summarizer.summarize(HISTORY)
    second = asyncio.run(summarizer.summarize_async(MORE, previous=first))
    for summary in (first, second):
        assert summary.fell_back and summary.summarizer == "extractive"
        assert summary.error == error
        assert "Add caching to fetch() in src/net.py" in summary.text
        assert "src/net.py" in files_section(summary.text)
    assert "docs/cache.md" in files_section(second.text)
    assert second.text == ExtractiveSummarizer(cache_size=0).summarize(HISTORY + MORE).text
    assert [e["reason"] for e in events] == [reason, reason]
    assert events[0]["error"] == error and events[0]["messages"] == len(HISTORY)


def test_a_model_summary_from_inside_a_running_event_loop_works_synchronously_too():
    async def main() -> Summary:
        return ModelSummarizer(TestModel(custom_output_text="## Intent\nx"), timeout=5).summarize(HISTORY)

    summary = asyncio.run(main())
    assert not summary.fell_back and "## Open questions" in summary.text


def test_a_model_summarizer_without_a_model_is_a_configuration_error():
    with pytest.raises(tokensieve.ConfigurationError, match="needs a model"):
        ModelSummarizer()
    with pytest.raises(tokensieve.ConfigurationError, match="timeout"):
        ModelSummarizer(TestModel(), timeout=0)


def test_unreadable_input_is_an_error_not_a_fallback():
    with pytest.raises(InvalidMessageError):
        ModelSummarizer(TestModel(), timeout=5).summarize([{"role": "user", "content": "x"}, 7])


def test_compact_history_async_returns_what_compact_history_returns():
    from tokensieve.compaction import compact_history_async

    history = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"message {i} " * 20} for i in range(40)]
    expected = tokensieve.compact_history(history, max_input_tokens=2_000, target_input_tokens=500)
    got = asyncio.run(compact_history_async(history, max_input_tokens=2_000, target_input_tokens=500))
    assert got == expected and len(got) < len(history)


def test_a_long_transcript_is_cut_in_the_middle_and_the_facts_still_name_every_path():
    recorder = Recorder()
    history = [HISTORY[1]]
    for i in range(300):
        history += [
            {"role": "assistant", "content": None, "tool_calls": [{"id": f"w{i}", "type": "function", "function": {
                "name": "write_file", "arguments": f'{{"path": "src/gen/file_{i}.py", "content": "{"x" * 200}"}}'}}]},
            {"role": "tool", "tool_call_id": f"w{i}", "content": "ok"},
        ]
    summary = ModelSummarizer(FunctionModel(recorder), timeout=5, max_prompt_chars=20_000).summarize(history)
    prompt = recorder.prompts[0]
    assert "characters omitted" in prompt and len(prompt) < 20_000 + 300 * 40
    assert all(f"src/gen/file_{i}.py" in summary.text for i in range(300))


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_summary_placed_in_the_history_and_dropped_again_keeps_the_task_and_paths(fmt):
    from pydantic_ai.messages import CompactionPart, ModelRequest, UserPromptPart

    earlier = ExtractiveSummarizer().summarize(HISTORY)
    placed = {
        "pydantic-ai": [ModelRequest([CompactionPart(earlier.text)]), ModelRequest([UserPromptPart("next")])],
        "openai": [{"role": "system", "content": earlier.text}, {"role": "user", "content": "next"}],
        "responses": [{"type": "compaction", "summary": earlier.text}, {"role": "user", "content": "next"}],
        "anthropic": [{"role": "user", "content": earlier.text}, {"role": "user", "content": "next"}],
    }[fmt]
    facts = ExtractiveSummarizer().facts(placed, format=fmt)
    assert facts.task == "Add caching to fetch() in src/net.py"
    assert facts.paths == ["src/net.py"]


def test_hostile_histories_give_a_summary_or_a_clean_error_naming_the_message():
    """The cases of ``tests/support/hostile.py`` (cycles, objects whose dunders raise or
    lie, a wrong type at every field, mixed formats; not the slow depth and size cases,
    which the walker shared with the counting reader already survives)."""
    from tests.support.hostile import _outcome, cases

    summarizer = ExtractiveSummarizer(cache_size=0)
    problems: dict[str, list[str]] = {}
    tried = 0
    for name, case in cases().items():
        if case.baseline or name.startswith(("depth/", "size/", "huge")):
            continue
        messages, fmt, index = case.build()
        entry, _ = _outcome("summarize", lambda: summarizer.summarize(messages, format=fmt), case, index)
        tried += 1
        if entry["problems"]:
            problems[name] = entry["problems"]
    assert tried > 1000
    assert not problems, dict(list(problems.items())[:5])


@settings(max_examples=30, deadline=None)
@given(drawn=coding_histories(), data=st.data())
def test_facts_and_summaries_survive_pickling_and_an_update_in_another_process_agrees(drawn, data):
    import pickle

    _, _, history = drawn
    split = data.draw(st.integers(0, len(history)))
    summarizer = ExtractiveSummarizer(cache_size=0)
    first = summarizer.summarize(history[:split])
    shipped = pickle.loads(pickle.dumps(first))
    assert shipped == first and shipped.facts == first.facts
    assert summarizer.summarize(history[split:], previous=shipped).text == summarizer.summarize(history).text


def test_bytes_that_are_not_facts_are_refused():
    from tokensieve._core import SummaryFacts

    good = ExtractiveSummarizer().facts(HISTORY).to_bytes()
    for bad in (b"", b"\x09", good[:-1], good + b"x"):
        with pytest.raises(ValueError):
            SummaryFacts.from_bytes(bad)
