"""The compaction pipeline's steps besides the window (docs/strategies.md): masking."""

from __future__ import annotations

import copy
import json
import warnings

import pytest

import tokensieve
from tokensieve import BudgetConfig, Compactor, ContextStrategies, baseline

BIG = "\n".join(f"line {i} of a file with some content" for i in range(200))
CONFIG = BudgetConfig(max_input_tokens=50_000, target_input_tokens=15_000, compaction_threshold=0.3)


def openai(n: int) -> list:
    h: list = [{"role": "system", "content": "sys"}, {"role": "user", "content": "fix the bug"}]
    for k in range(n):
        args = json.dumps({"path": f"src/f{k}.py"})
        call = {"id": f"c{k}", "type": "function", "function": {"name": "read_file", "arguments": args}}
        h.append({"role": "assistant", "content": None, "tool_calls": [call]})
        h.append({"role": "tool", "tool_call_id": f"c{k}", "content": BIG})
    return h


def anthropic(n: int) -> list:
    h: list = [{"role": "user", "content": "fix the bug"}]
    for k in range(n):
        h.append({"role": "assistant", "content": [{"type": "tool_use", "id": f"t{k}", "name": "bash", "input": {"command": f"cat f{k}"}}]})
        h.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"t{k}", "content": BIG}]})
    return h


def responses(n: int) -> list:
    h: list = [{"role": "user", "content": "fix the bug"}]
    for k in range(n):
        h.append({"type": "function_call", "call_id": f"f{k}", "name": "grep", "arguments": json.dumps({"pattern": f"x{k}"})})
        h.append({"type": "function_call_output", "call_id": f"f{k}", "output": BIG})
    return h


def pydantic_ai(n: int) -> list:
    from pydantic_ai.messages import ModelRequest, ModelResponse, SystemPromptPart, ToolCallPart, ToolReturnPart, UserPromptPart

    h: list = [ModelRequest(parts=[SystemPromptPart("sys"), UserPromptPart("fix the bug")])]
    for k in range(n):
        h.append(ModelResponse(parts=[ToolCallPart("read_file", {"path": f"a{k}.py"}, tool_call_id=f"c{k}")]))
        h.append(ModelRequest(parts=[ToolReturnPart("read_file", BIG, tool_call_id=f"c{k}")]))
    return h


def result_text(fmt: str, message) -> str | None:
    if fmt == "openai":
        return message["content"] if message["role"] == "tool" else None
    if fmt == "responses":
        return message.get("output")
    if fmt == "anthropic":
        blocks = message["content"]
        return blocks[0].get("content") if isinstance(blocks, list) and blocks[0]["type"] == "tool_result" else None
    part = message.parts[0]
    return part.content if part.part_kind == "tool-return" else None


HISTORIES = {"openai": openai, "anthropic": anthropic, "responses": responses, "pydantic-ai": pydantic_ai}
KEYS = {
    "openai": "read_file(path=src/f0.py)",
    "anthropic": "bash(command=cat f0)",
    "responses": "grep(pattern=x0)",
    "pydantic-ai": "read_file(path=a0.py)",
}


@pytest.mark.parametrize("fmt", list(HISTORIES))
def test_old_tool_outputs_become_a_placeholder_naming_the_tool_its_key_argument_and_what_was_omitted(fmt):
    history = HISTORIES[fmt](20)
    before = copy.deepcopy(history) if fmt != "pydantic-ai" else None
    result = Compactor(CONFIG).compact(history)
    texts = [t for t in (result_text(fmt, m) for m in result.messages) if t is not None]
    assert texts[0] == f"[tokensieve masked the output of {KEYS[fmt]}: 200 lines, 1999 tokens]"
    # The last 3 exchanges and the pending request keep their outputs (a result opens the
    # exchange after its call's); every call is still there.
    assert texts[-4:] == [BIG] * 4 and all(t != BIG for t in texts[:-4])
    assert len(result.messages) == len(history) and result.dropped == ()
    assert result.action == "compacted" and result.tokens_after < 15_000
    # Every output differs (different paths): pruning has nothing to do; nothing dropped:
    # no summary (masking alone writes none, so the prefix stays stable between batches).
    assert [(s.step, s.items) for s in result.steps] == [("mask", 16), ("prune", 0)]
    assert result.steps[0].tokens_saved == result.tokens_before - result.tokens_after
    assert result.tokens_after == tokensieve.count_history_tokens(result.messages, format=fmt).sum()
    if before is not None:
        assert history == before, "the input was modified"
    else:
        assert history[2].parts[0].content == BIG


@pytest.mark.parametrize("fmt", list(HISTORIES))
def test_masking_is_idempotent_and_equal_to_the_baseline(fmt):
    history = HISTORIES[fmt](20)
    result = Compactor(CONFIG).compact(history)
    again = Compactor(CONFIG).compact(result.messages)
    assert all(a is b for a, b in zip(result.messages, again.messages)) and len(again.messages) == len(result.messages)
    python = baseline.compact(history, CONFIG)
    assert (python.steps, python.tokens_after, python.action) == (result.steps, result.tokens_after, result.action)
    assert [repr(m) for m in python.messages] == [repr(m) for m in result.messages]


def test_the_masked_prefix_stays_unchanged_until_the_next_batch():
    """A kept output masks nothing new until a batch saves min_tokens_saved: the requests
    in between send the same prefix (the provider's prompt cache holds)."""
    config = CONFIG.replace(context=ContextStrategies(mask={"keep_exchanges": 3, "min_tokens_saved": 5_000}))
    sent = Compactor(config).compact(openai(20)).messages
    batches = []
    for k in range(20, 32):  # one more exchange per request: one more output waits (~1,980 tokens)
        sent = sent + openai(k + 1)[-2:]
        result = Compactor(config).compact(sent)
        masked = sum(s.items for s in result.steps if s.step == "mask")
        if masked == 0:
            assert result.unchanged_prefix == len(sent), f"request {k}: the prefix changed without a batch"
        else:
            batches.append(masked)
            assert result.unchanged_prefix < len(sent)
        sent = result.messages
    assert batches and all(n >= 3 for n in batches), batches  # 3 outputs make the 5,000 tokens


def test_masking_can_be_switched_off_and_then_only_the_window_works():
    history = openai(20)
    result = Compactor(CONFIG.replace(context=ContextStrategies.off())).compact(history)
    assert all(result_text("openai", m) in (None, BIG) for m in result.messages)
    assert [s.step for s in result.steps] == ["window"] and result.dropped  # no mask, no prune


def test_under_the_threshold_nothing_is_masked():
    history = openai(5)
    result = Compactor(CONFIG).compact(history)
    assert result.steps == () and all(a is b for a, b in zip(result.messages, history))


def test_after_two_ineffective_compactions_the_costly_steps_stop_and_telemetry_says_so(monkeypatch):
    from tokensieve import telemetry

    events = []
    monkeypatch.setattr(telemetry, "compaction_ineffective", lambda **kw: events.append(kw))
    # A target nothing can reach: the last exchange alone is over it.
    compactor = Compactor(CONFIG.replace(target_input_tokens=1_000))
    history = openai(20)
    first = compactor.compact(history)
    assert first.action == "compacted" and not first.effective
    assert not compactor.costly_steps_suspended and events == []
    compactor.compact(history)
    assert compactor.costly_steps_suspended
    assert [e["attempts"] for e in events] == [2] and events[0]["target_input_tokens"] == 1_000
    compactor.compact(history)
    assert len(events) == 1, "said once, not on every request"
    # A compaction that gets under the target again lifts the suspension.
    compactor.compact(openai(20), config=CONFIG)
    assert compactor.ineffective_streak == 0 and not compactor.costly_steps_suspended


def test_preflight_and_the_pydantic_ai_capability_run_the_pipeline():
    from tokensieve import preflight

    check = preflight(openai(20), CONFIG)
    assert check.decision == "compact" and [s.step for s in check.compaction.steps] == ["mask", "prune"]
    compactor = Compactor(CONFIG.replace(target_input_tokens=1_000))
    for _ in range(2):
        preflight(openai(20), CONFIG.replace(target_input_tokens=1_000), compactor=compactor)
    assert compactor.costly_steps_suspended


def reads(paths: list[str], outputs: list[str]) -> list:
    """An OpenAI session reading ``paths`` in turn (outputs as given), then a question."""
    h: list = [{"role": "system", "content": "sys"}, {"role": "user", "content": "fix the bug"}]
    for k, (path, output) in enumerate(zip(paths, outputs)):
        call = {"id": f"r{k}", "type": "function", "function": {"name": "read_file", "arguments": json.dumps({"path": path})}}
        h.append({"role": "assistant", "content": None, "tool_calls": [call]})
        h.append({"role": "tool", "tool_call_id": f"r{k}", "content": output})
    h.append({"role": "assistant", "content": "Done."})
    h.append({"role": "user", "content": "and now?"})
    return h


PRUNE_ONLY = CONFIG.replace(
    max_input_tokens=10_000, target_input_tokens=5_000, context=ContextStrategies(mask=False, summary=False)
)


@pytest.mark.parametrize("later", [BIG, BIG + "\nchanged"])
def test_an_earlier_read_of_a_file_read_again_later_points_to_the_later_read(later):
    history = reads(["a.py", "b.py", "a.py"], [BIG, "short", later])
    result = Compactor(PRUNE_ONLY).compact(history)
    reason = "the same call returned the same output later" if later == BIG else "superseded by a later identical read"
    assert result.messages[3]["content"] == f"[tokensieve pruned the output of read_file(path=a.py): {reason}]"
    assert result.messages[7]["content"] == later and result.messages[5]["content"] == "short"
    assert [(s.step, s.items) for s in result.steps] == [("prune", 1)]
    python = baseline.compact(history, PRUNE_ONLY)
    assert (python.steps, python.messages) == (result.steps, result.messages)
    again = Compactor(PRUNE_ONLY).compact(result.messages)
    assert all(a is b for a, b in zip(again.messages, result.messages))


def test_each_prune_rule_can_be_switched_off():
    history = reads(["a.py", "a.py"], [BIG, BIG + "\nchanged"])
    off = PRUNE_ONLY.replace(context=ContextStrategies(mask=False, summary=False, prune={"superseded_reads": False}))
    assert Compactor(off).compact(history).messages[3]["content"] == BIG
    same = reads(["a.py", "a.py"], [BIG, BIG])
    off = PRUNE_ONLY.replace(context=ContextStrategies(mask=False, summary=False, prune={"repeated_calls": False}))
    assert Compactor(off).compact(same).messages[3]["content"] == BIG
    assert Compactor(PRUNE_ONLY).compact(same).messages[3]["content"] != BIG


SUMMARY = CONFIG.replace(context=ContextStrategies(mask=False, prune=False, summary={"max_tokens": 200}))


@pytest.mark.parametrize("fmt", list(HISTORIES))
def test_a_summary_of_what_the_window_drops_goes_where_the_format_expects_it_and_is_counted(fmt):
    from tests.support.provider_rules import violations

    seen = []

    def summarize(dropped, format):
        seen.append((len(dropped), format))
        return f"task: fix the bug; {len(dropped)} messages"

    history = HISTORIES[fmt](20)
    result = Compactor(SUMMARY, summarizer=summarize).compact(history)
    assert seen == [(len(result.dropped), fmt)] and result.dropped
    assert result.steps[-1].step == "summary" and result.steps[-1].tokens_saved < 0
    assert result.tokens_after == tokensieve.count_history_tokens(result.messages, format=fmt).sum()
    assert result.tokens_after <= SUMMARY.target_input_tokens
    text = repr(result.messages)
    assert f"[tokensieve summary of {len(result.dropped)} earlier messages]" in text
    # Valid for the provider (the summary is new: the shared origin rules do not apply).
    assert violations(fmt, result.messages) == []


def test_no_summary_text_no_summary_and_a_summarizer_is_not_called_when_nothing_is_dropped():
    calls = []
    result = Compactor(SUMMARY, summarizer=lambda d, f: calls.append(d)).compact(openai(20))
    assert len(calls) == 1 and "summary" not in [s.step for s in result.steps]
    Compactor(SUMMARY, summarizer=lambda d, f: calls.append(d)).compact(openai(3))
    assert len(calls) == 1


@pytest.mark.parametrize("fmt", ["pydantic-ai", "anthropic"])
def test_a_call_whose_arguments_changed_since_the_last_request_is_read_again(fmt):
    # The call details are memoized by the arguments' identity (details.rs): a dict
    # changed in place between two requests must not be read from the memo.
    history = HISTORIES[fmt](20)
    first = Compactor(CONFIG).compact(history)
    texts = [t for t in (result_text(fmt, m) for m in first.messages) if t is not None]
    assert KEYS[fmt] in texts[0]
    call = history[1].parts[0].args if fmt == "pydantic-ai" else history[1]["content"][0]["input"]
    key = "path" if fmt == "pydantic-ai" else "command"
    call[key] = "renamed.py"
    again = Compactor(CONFIG).compact(history)
    texts = [t for t in (result_text(fmt, m) for m in again.messages) if t is not None]
    assert texts[0].startswith("[tokensieve masked the output of ") and f"({key}=renamed.py)" in texts[0]
    python = baseline.compact(history, CONFIG)
    assert [repr(m) for m in python.messages] == [repr(m) for m in again.messages]


def acked(fmt: str) -> list:
    """A session in ``fmt``: a task, a tool loop, an acknowledgement turn ("Thanks!" and a
    reply), a near miss ("ok, now add a test") with its reply, another tool loop and the
    pending request. Prompts and replies are built as the format writes them."""
    from pydantic_ai.messages import ModelRequest, ModelResponse, TextPart, UserPromptPart

    h = HISTORIES[fmt](4)
    if fmt == "pydantic-ai":
        user = lambda text: ModelRequest(parts=[UserPromptPart(text)])  # noqa: E731
        reply = lambda text: ModelResponse(parts=[TextPart(text)])  # noqa: E731
    elif fmt == "anthropic":
        user = lambda text: {"role": "user", "content": [{"type": "text", "text": text}]}  # noqa: E731
        reply = lambda text: {"role": "assistant", "content": text}  # noqa: E731
    elif fmt == "responses":
        user = lambda text: {"role": "user", "content": text}  # noqa: E731
        reply = lambda text: {"role": "assistant", "content": text}  # noqa: E731
    else:
        user = lambda text: {"role": "user", "content": text}  # noqa: E731
        reply = lambda text: {"role": "assistant", "content": text}  # noqa: E731
    tail = HISTORIES[fmt](8)[len(HISTORIES[fmt](4)) :]
    return [*h, reply("Read them."), user("Thanks!"), reply("You're welcome."), user("ok, now add a test"),
            reply("Adding it."), user("Got it, thanks"), *tail, reply("Done."), user("what next?")]  # fmt: skip


ACKS_ONLY = CONFIG.replace(
    compaction_threshold=0.2,
    target_input_tokens=25_000,
    context=ContextStrategies(mask=False, summary=False, prune={"repeated_calls": False, "superseded_reads": False}),
)


@pytest.mark.parametrize("fmt", list(HISTORIES))
def test_an_acknowledgement_turn_goes_with_its_reply_and_the_output_stays_valid(fmt):
    from tests.support.provider_rules import violations

    history = acked(fmt)
    start = len(HISTORIES[fmt](4))
    result = Compactor(ACKS_ONLY).compact(history)
    # "Thanks!" and its reply go; "ok, now add a test" directs the work and stays; "Got it,
    # thanks" opens a tool loop (its reply is a tool call): it stays too.
    assert result.dropped == (start + 1, start + 2)
    assert [m for i, m in enumerate(history) if i not in result.dropped] == result.messages
    assert [(s.step, s.items) for s in result.steps] == [("prune", 2)]
    assert result.steps[0].tokens_saved == result.tokens_before - result.tokens_after > 0
    assert result.tokens_after == tokensieve.count_history_tokens(result.messages, format=fmt).sum()
    assert violations(fmt, result.messages, history) == []
    python = baseline.compact(history, ACKS_ONLY)
    assert [repr(m) for m in python.messages] == [repr(m) for m in result.messages]
    assert (python.steps, python.dropped, python.tokens_after) == (result.steps, result.dropped, result.tokens_after)
    again = Compactor(ACKS_ONLY).compact(result.messages)
    assert len(again.messages) == len(result.messages) and all(a is b for a, b in zip(again.messages, result.messages))
    off = ACKS_ONLY.replace(context=ContextStrategies(mask=False, summary=False, prune=False))
    assert Compactor(off).compact(history).dropped == ()


def test_the_first_exchange_the_last_one_and_the_current_task_are_never_pruned_as_acknowledgements():
    history = [{"role": "user", "content": "ok"}, {"role": "assistant", "content": "Hello."}]
    history += [{"role": "user", "content": "fix the bug"}, {"role": "assistant", "content": "x " * 500}]
    history += [{"role": "user", "content": "thanks"}, {"role": "assistant", "content": "np"}]
    small = ACKS_ONLY.replace(max_input_tokens=2_000, compaction_threshold=0.1, hard_limit_threshold=1.0, target_input_tokens=1_500)
    result = Compactor(small).compact(history)
    assert result.tokens_before > 200 and result.dropped == () and result.messages == history
    more = [*history, {"role": "user", "content": "and now?"}, {"role": "assistant", "content": "done"}]
    result = Compactor(small).compact([*more, {"role": "user", "content": "thanks"}])  # the pending one stays
    assert result.dropped == (4, 5)  # the "thanks" in the middle goes


@pytest.mark.parametrize(
    ("text", "ack"),
    [("ok", True), ("Thanks!", True), ("got it, thanks", True), ("OK.", True), ("  thank you\n", True),
     ("ok, now fix it", False), ("yes", False), ("continue", False), ("okay 🙂", False), ("", False)],
)  # fmt: skip
def test_acknowledgements_are_whole_prompts_of_thanks_and_ok(text, ack):
    assert baseline.is_acknowledgement(text) is ack


def test_acknowledgement_turns_pruned_alone_are_not_summarized():
    calls = []
    config = ACKS_ONLY.replace(context=ContextStrategies(mask=False, summary={"max_tokens": 200}))
    result = Compactor(config, summarizer=lambda dropped, fmt: calls.append(dropped) or "s").compact(acked("openai"))
    assert len(result.dropped) == 2 and calls == [] and [s.step for s in result.steps] == ["prune"]


ERROR = "\n".join(f"error: line {i} does not match the file's content" for i in range(120))


def failed_then_fixed(
    fmt: str, later_path: str = "a.py", error: str = ERROR, tool: str = "edit_file", field: str = "path"
) -> list:
    """A session in ``fmt``: ``tool``(``field``=a.py) fails (as the format flags a failure; OpenAI
    chat and Responses have no flag, their output ``error`` says it), bash runs,
    ``tool``(``field``=``later_path``) succeeds, a final answer, a new request."""
    from pydantic_ai.messages import ModelRequest, ModelResponse, TextPart, ToolCallPart, ToolReturnPart, UserPromptPart

    calls = [(tool, field, "a.py", error, True), ("bash", "command", "pytest", BIG, False),
             (tool, field, later_path, "edited", False)]  # fmt: skip
    if fmt == "pydantic-ai":
        h: list = [ModelRequest(parts=[UserPromptPart("fix the bug")])]
        for k, (tool, field, value, output, failed) in enumerate(calls):
            h.append(ModelResponse(parts=[ToolCallPart(tool, {field: value}, tool_call_id=f"c{k}")]))
            outcome = "failed" if failed else "success"
            h.append(ModelRequest(parts=[ToolReturnPart(tool, output, tool_call_id=f"c{k}", outcome=outcome)]))
        return [*h, ModelResponse(parts=[TextPart("Done.")]), ModelRequest(parts=[UserPromptPart("and now?")])]
    h = [{"role": "user", "content": "fix the bug"}]
    for k, (tool, field, value, output, failed) in enumerate(calls):
        if fmt == "anthropic":
            h.append({"role": "assistant", "content": [{"type": "tool_use", "id": f"t{k}", "name": tool, "input": {field: value}}]})
            block = {"type": "tool_result", "tool_use_id": f"t{k}", "content": output, **({"is_error": True} if failed else {})}
            h.append({"role": "user", "content": [block]})
        elif fmt == "responses":
            h.append({"type": "function_call", "call_id": f"f{k}", "name": tool, "arguments": json.dumps({field: value})})
            h.append({"type": "function_call_output", "call_id": f"f{k}", "output": output})
        else:
            call = {"id": f"c{k}", "type": "function", "function": {"name": tool, "arguments": json.dumps({field: value})}}
            h.append({"role": "assistant", "content": None, "tool_calls": [call]})
            h.append({"role": "tool", "tool_call_id": f"c{k}", "content": output})
    return [*h, {"role": "assistant", "content": "Done."}, {"role": "user", "content": "and now?"}]


@pytest.mark.parametrize("fmt", list(HISTORIES))
def test_a_failed_attempt_a_later_success_superseded_becomes_a_pointer_and_its_call_stays(fmt):
    from tests.support.provider_rules import violations

    history = failed_then_fixed(fmt)
    result = Compactor(PRUNE_ONLY).compact(history)
    texts = [result_text(fmt, m) for m in result.messages]
    # Anthropic and pydantic-ai flag the failure; OpenAI chat and Responses outputs say it
    # ("error: ..." on the first line).
    pointer = (
        "[tokensieve pruned a failed attempt of edit_file(path=a.py): superseded by a later successful call;"
        " it said: error: line 0 does not match the file's content]"
    )
    assert texts[2] == pointer
    assert texts[4] == BIG and texts[6] == "edited"
    assert len(result.messages) == len(history) and result.dropped == ()
    assert [(s.step, s.items) for s in result.steps] == [("prune", 1)]
    assert result.tokens_after == tokensieve.count_history_tokens(result.messages, format=fmt).sum()
    assert violations(fmt, result.messages, history) == []
    python = baseline.compact(history, PRUNE_ONLY)
    assert [repr(m) for m in python.messages] == [repr(m) for m in result.messages]
    assert (python.steps, python.tokens_after) == (result.steps, result.tokens_after)
    again = Compactor(PRUNE_ONLY).compact(result.messages)
    assert len(again.messages) == len(result.messages) and all(a is b for a, b in zip(again.messages, result.messages))


@pytest.mark.parametrize("fmt", list(HISTORIES))
def test_a_failure_with_no_later_success_of_the_same_call_is_kept_and_the_rule_switches_off(fmt):
    other = Compactor(PRUNE_ONLY).compact(failed_then_fixed(fmt, later_path="b.py"))
    assert result_text(fmt, other.messages[2]) == ERROR
    assert baseline.compact(failed_then_fixed(fmt, later_path="b.py"), PRUNE_ONLY).steps == other.steps
    off = PRUNE_ONLY.replace(context=ContextStrategies(mask=False, summary=False, prune={"superseded_failures": False}))
    assert result_text(fmt, Compactor(off).compact(failed_then_fixed(fmt)).messages[2]) == ERROR
    assert result_text(fmt, baseline.compact(failed_then_fixed(fmt), off).messages[2]) == ERROR


LONG = " ".join(f"word{i}" for i in range(600))
PYTEST = "=== test session starts ===\n" + BIG + "\n=== FAILURES ===\nFAILED tests/test_a.py::test_x - ValueError: bad\n"
# case: (output, tool, key field, the line the pointer keeps: what said why it failed)
FAILED_OUTPUTS = {
    "error-colon": ("Error: old_string not found in a.py\n" + BIG, "edit_file", "path", "Error: old_string not found in a.py"),
    "traceback": ("Traceback (most recent call last):\n" + BIG + "\nValueError: bad", "edit_file", "path", "ValueError: bad"),
    "rustc": ("error[E0308]: mismatched types\n --> src/main.rs:2:5\n" + BIG, "cargo_check", "path", "error[E0308]: mismatched types"),
    "agents-sdk": (
        "An error occurred while running the tool. Please try again. Error: " + LONG, "edit_file", "path",
        ("An error occurred while running the tool. Please try again. Error: " + LONG)[:200] + "...",
    ),
    "exit-code": (PYTEST + "exit code: 1", "bash", "command", "FAILED tests/test_a.py::test_x - ValueError: bad"),
    "returncode": (json.dumps({"stdout": BIG, "returncode": 2}), "run", "cmd", json.dumps({"stdout": BIG})[:200] + "..."),
    "command-not-found": ("bash: pytst: command not found\n" + BIG, "bash", "command", "bash: pytst: command not found"),
    "no-such-file": (
        "cat: a.py: No such file or directory (looked in " + LONG + ")", "edit_file", "path",
        "cat: a.py: No such file or directory (looked in " + LONG[:152] + "...",
    ),
    "json-error": (
        json.dumps({"error": "not found: a.py", "detail": LONG}), "edit_file", "path",
        json.dumps({"error": "not found: a.py", "detail": LONG})[:200] + "...",
    ),
}  # fmt: skip


def compacted_alike(history: list, fmt: str, config=None) -> tokensieve.CompactionResult:
    """The core's compaction, checked valid, equal to the baseline's and idempotent."""
    from tests.support.provider_rules import violations

    config = config or PRUNE_ONLY
    result = Compactor(config).compact(history)
    assert violations(fmt, result.messages, history) == []
    assert len(result.messages) == len(history) and result.dropped == ()
    assert result.tokens_after == tokensieve.count_history_tokens(result.messages, format=fmt).sum()
    python = baseline.compact(history, config)
    assert [repr(m) for m in python.messages] == [repr(m) for m in result.messages]
    assert (python.steps, python.tokens_after) == (result.steps, result.tokens_after)
    again = Compactor(config).compact(result.messages)
    assert all(a is b for a, b in zip(again.messages, result.messages))
    return result


@pytest.mark.parametrize("fmt", ["openai", "responses"])
@pytest.mark.parametrize("case", list(FAILED_OUTPUTS))
def test_a_failed_openai_tool_result_superseded_by_a_later_success_becomes_a_pointer(fmt, case):
    """OpenAI chat and Responses carry no failure flag: the output's text says it failed
    (docs/strategies.md, "What counts as a failure"); a later success of the same tool and
    key argument supersedes it, and the call stays."""
    error, tool, field, reason = FAILED_OUTPUTS[case]
    history = failed_then_fixed(fmt, error=error, tool=tool, field=field)
    result = compacted_alike(history, fmt)
    texts = [result_text(fmt, m) for m in result.messages]
    assert texts[2] == (
        f"[tokensieve pruned a failed attempt of {tool}({field}=a.py): superseded by a later successful call;"
        f" it said: {reason}]"
    )
    assert texts[4] == BIG and texts[6] == "edited"
    assert result.messages[1] is history[1]  # the call
    assert [(s.step, s.items) for s in result.steps] == [("prune", 1)]
    # With another key argument later, nothing supersedes it.
    other = compacted_alike(failed_then_fixed(fmt, later_path="b.py", error=error, tool=tool, field=field), fmt)
    assert result_text(fmt, other.messages[2]) == error


MENTIONS = {
    "fixed-the-error": ("Fixed the error in a.py\n" + BIG, "edit_file", "path"),
    "error-handling": ("Error handling lives in src/errors.py\n" + BIG, "edit_file", "path"),
    "not-the-first-line": (BIG + "\nError: this is a log line", "edit_file", "path"),
    "counts": ("0 errors, 3 warnings\n" + BIG, "edit_file", "path"),
    "json-no-error": (json.dumps({"result": LONG, "error": None}), "edit_file", "path"),
    "json-error-null-first": (json.dumps({"error": None, "result": LONG}), "edit_file", "path"),
    "exit-code-in-a-file": ("The build returned exit code: 2 last week.\n" + BIG, "edit_file", "path"),
    "exit-code-zero": ("Error: a deprecation warning on stderr\n" + BIG + "\nexit code: 0", "bash", "command"),
    "missing-in-a-long-output": (BIG + "\ncat: b.py: No such file or directory", "edit_file", "path"),
}


@pytest.mark.parametrize("fmt", ["openai", "responses"])
@pytest.mark.parametrize("case", list(MENTIONS))
def test_an_output_that_merely_mentions_error_is_not_treated_as_a_failure(fmt, case):
    text, tool, field = MENTIONS[case]
    assert not baseline._says_failed(text, baseline.runs_command(tool, field))
    result = compacted_alike(failed_then_fixed(fmt, error=text, tool=tool, field=field), fmt)
    assert result_text(fmt, result.messages[2]) == text
    assert [(s.step, s.items) for s in result.steps] == [("prune", 0)]


def retried_then_fixed(content, tool_name: str | None = "edit_file", later_path: str = "a.py") -> list:
    """pydantic-ai: edit_file(path=a.py) is answered by a retry prompt (``content``), bash
    runs, edit_file(path=``later_path``) succeeds, a final answer, a new request."""
    from pydantic_ai.messages import (
        ModelRequest, ModelResponse, RetryPromptPart, TextPart, ToolCallPart, ToolReturnPart, UserPromptPart,
    )  # fmt: skip

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # RetryPromptPart is deprecated, still in stored histories
        retry = RetryPromptPart(content, tool_name=tool_name, tool_call_id="c0")
    return [
        ModelRequest(parts=[UserPromptPart("fix the bug")]),
        ModelResponse(parts=[ToolCallPart("edit_file", {"path": "a.py", "old": "x"}, tool_call_id="c0")]),
        ModelRequest(parts=[retry]),
        ModelResponse(parts=[ToolCallPart("bash", {"command": "pytest"}, tool_call_id="c1")]),
        ModelRequest(parts=[ToolReturnPart("bash", BIG, tool_call_id="c1")]),
        ModelResponse(parts=[ToolCallPart("edit_file", {"path": later_path, "old": "x", "new": "y"}, tool_call_id="c2")]),
        ModelRequest(parts=[ToolReturnPart("edit_file", "edited", tool_call_id="c2")]),
        ModelResponse(parts=[TextPart("Done.")]),
        ModelRequest(parts=[UserPromptPart("and now?")]),
    ]


VALIDATION_ERRORS = [
    {"type": "missing", "loc": ("new",), "msg": "Field required", "input": {"path": "a.py", "old": LONG}},
    {"type": "string_type", "loc": ("old",), "msg": "Input should be a valid string", "input": 3},
]
RETRY_CONTENTS = {"model-retry": "The old string was not found in a.py: " + LONG, "validation-errors": VALIDATION_ERRORS}


@pytest.mark.filterwarnings("error::UserWarning")  # rebuilding the deprecated part must not warn
@pytest.mark.parametrize("case", list(RETRY_CONTENTS))
def test_a_retry_prompt_superseded_by_a_successful_call_of_the_same_tool_is_pruned(case):
    history = retried_then_fixed(RETRY_CONTENTS[case])
    result = compacted_alike(history, "pydantic-ai")
    retry = result.messages[2].parts[0]
    assert retry.part_kind == "retry-prompt" and retry.tool_call_id == "c0" and retry.tool_name == "edit_file"
    assert retry.content.startswith(
        "[tokensieve pruned a failed attempt of edit_file(path=a.py): superseded by a later successful call; it said: "
    )
    said = "The old string was not found in a.py: word0" if case == "model-retry" else '[{"type":"missing","loc":["new"]'
    assert said in retry.content and len(retry.content) < 400
    assert result.messages[1] is history[1]  # the call stays
    assert [(s.step, s.items) for s in result.steps] == [("prune", 1)]
    # No later success of the same key argument, or the rule off: the retry prompt stays.
    kept = compacted_alike(retried_then_fixed(RETRY_CONTENTS[case], later_path="b.py"), "pydantic-ai")
    assert kept.messages[2] is history[2] or kept.messages[2].parts[0].content == RETRY_CONTENTS[case]
    off = PRUNE_ONLY.replace(context=ContextStrategies(mask=False, summary=False, prune={"superseded_failures": False}))
    assert compacted_alike(history, "pydantic-ai", off).messages[2].parts[0].content == RETRY_CONTENTS[case]


def test_a_retry_prompt_is_never_masked_and_one_without_a_tool_name_is_left_alone():
    from pydantic_ai.messages import ModelRequest, ModelResponse, RetryPromptPart, TextPart, UserPromptPart

    masking = CONFIG.replace(
        max_input_tokens=10_000, target_input_tokens=5_000,
        context=ContextStrategies(mask={"keep_exchanges": 1, "min_tokens_saved": 0}, prune=False, summary=False),
    )  # fmt: skip
    history = retried_then_fixed(RETRY_CONTENTS["model-retry"], later_path="b.py")
    result = compacted_alike(history, "pydantic-ai", masking)
    assert result.messages[2].parts[0].content == RETRY_CONTENTS["model-retry"]
    assert result.messages[4].parts[0].content != BIG  # a tool return of the same age is masked
    # An output validation retry (no tool_name) answers no call: the prune step leaves it.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # RetryPromptPart is deprecated, still in stored histories
        output_retry = RetryPromptPart("Please return valid JSON: " + LONG, tool_call_id="r0")
    free = [
        ModelRequest(parts=[UserPromptPart("fix the bug")]),
        ModelResponse(parts=[TextPart("not JSON " + LONG)]),
        ModelRequest(parts=[output_retry]),
        *retried_then_fixed(RETRY_CONTENTS["model-retry"])[1:],
    ]
    result = compacted_alike(free, "pydantic-ai")
    assert result.messages[2] is free[2]


def test_an_acknowledgement_turn_whose_reply_only_adds_a_dangling_call_is_pruned_at_once_and_compacting_again_changes_nothing():
    """Found by the property suite: an "ok" turn whose reply also made a call nothing
    answers was kept (a reply with a call), then the repair removed the call, and
    compacting the output again pruned the turn. The dangling call, which the repair drops
    anyway, no longer counts, so the first compaction prunes the turn and the second
    changes nothing; the baseline agrees."""
    args = '{"path": false}'

    def call(i: int) -> dict:
        return {"type": "function_call", "call_id": f"call_{i}", "name": "read_file", "arguments": args}

    def output(i: int) -> dict:
        return {"type": "function_call_output", "call_id": f"call_{i}", "output": ""}

    def say(i: int, text: str) -> dict:
        return {"type": "message", "id": f"msg_{i}", "role": "assistant",
                "content": [{"type": "output_text", "text": text}]}

    history = [
        {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "\n"}]},
        {"role": "user", "content": ""}, call(1), call(2), call(3), output(2), output(3),
        call(4), call(5), output(5), say(1, "\n"),
        {"role": "user", "content": "ok"}, say(2, ""), call(6),
        {"role": "user", "content": "\n"}, say(3, "\n"),
    ]
    total = int(tokensieve.count_history_tokens(history, format="responses").sum())
    config = tokensieve.BudgetConfig(max_input_tokens=total, compaction_threshold=0.05,
                                     hard_limit_threshold=1.0, target_input_tokens=total // 4)
    first = tokensieve.Compactor(config).compact(history, format="responses")
    assert history[11] not in first.messages  # the "ok" turn went at once
    second = tokensieve.Compactor(config).compact(first.messages, format="responses")
    assert second.dropped == () and [id(m) for m in second.messages] == [id(m) for m in first.messages]
    assert baseline.compact(history, config, format="responses").dropped == first.dropped


# ---- the extractive summary, on by default -------------------------------------------------


def edits(fmt: str, n: int, task: str = "Make the parser accept unary minus; keep the error messages.") -> list:
    """A coding session: the task, then ``n`` turns that each edit a file and read a big one;
    the 3rd turn's tests fail (fixed by the next run)."""
    from tests.support.coding_sessions import Call, CodingSession, Turn, render

    turns = []
    for k in range(n):
        calls = [
            Call(f"e{k}", "edit_file", {"path": f"src/mod{k}.py", "old_string": "a", "new_string": "b"}, "Applied edit."),
            Call(f"r{k}", "read_file", {"path": f"docs/page{k}.md"}, BIG),
        ]
        if k in (3, 4):
            failed = k == 3
            out = "FAILED tests/test_mod.py::test_minus - KeyError: position 7\nexit code: 1" if failed else "3 passed\nexit code: 0"
            calls.append(Call(f"t{k}", "bash", {"command": "pytest -q"}, out, is_error=failed))
        turns.append(Turn("assistant", None, calls))
    session = CodingSession("You are a careful coding agent.", task, turns, set(), set(), [])
    return render(session, fmt)


FORMATS = ["openai", "anthropic", "responses", "pydantic-ai"]


def summary_texts(fmt: str, messages: list) -> list[str]:
    """Every summary the pipeline placed in ``messages``."""
    from tokensieve.compaction import is_summary_text

    texts: list[str] = []
    for m in messages:
        if fmt == "pydantic-ai":
            texts += [p.content for p in m.parts if p.part_kind == "compaction" and is_summary_text(p.content)]
        elif fmt == "anthropic":
            content = m["content"] if isinstance(m["content"], list) else []
            texts += [b["text"] for b in content if b.get("type") == "text" and is_summary_text(b.get("text"))]
        elif is_summary_text(m.get("content")):
            texts.append(m["content"])
    return texts


@pytest.mark.parametrize("fmt", FORMATS)
def test_with_no_setting_compaction_keeps_the_task_and_every_modified_path_in_a_summary(fmt):
    from tests.support.provider_rules import violations

    history = edits(fmt, 24)
    before = copy.deepcopy(history) if fmt != "pydantic-ai" else repr(history)
    for config in ("cerebras", BudgetConfig(target_input_tokens=5_000)):
        result = Compactor(config).compact(history)
        assert result.dropped and [s.step for s in result.steps][-1] == "summary"
        (text,) = summary_texts(fmt, result.messages)
        assert "Make the parser accept unary minus; keep the error messages." in text
        # Every modified path: in the summary, or in a call the window kept.
        others = repr([m for m in result.messages if not summary_texts(fmt, [m])])
        assert all(f"src/mod{k}.py" in text or f"src/mod{k}.py" in others for k in range(24))
        assert "src/mod0.py" in text and "src/mod0.py" not in others
        # The tests failed, then passed: the last error is still named.
        assert "FAILED tests/test_mod.py::test_minus - KeyError: position 7" in text
        assert "docs/page0.md" not in text.split("## Files")[1].split("##")[0]  # only read
        assert violations(fmt, result.messages) == []
        assert result.tokens_after == tokensieve.count_history_tokens(result.messages, format=fmt).sum()
        assert tokensieve.compact_history(history, config) == result.messages
    assert (copy.deepcopy(history) if fmt != "pydantic-ai" else repr(history)) == before, "the input was modified"


@pytest.mark.parametrize("fmt", FORMATS)
def test_compacting_again_is_idempotent_and_a_later_compaction_updates_the_summary_in_place(fmt):
    # Over the threshold, the output is compacted again (the target is above the threshold).
    config = BudgetConfig(max_input_tokens=50_000, compaction_threshold=0.1, target_input_tokens=6_000)
    history = edits(fmt, 24)
    first = Compactor(config).compact(history)
    again = Compactor(config).compact(first.messages)
    assert again.messages == first.messages and again.action == "none"
    # The history goes on from what was sent (pydantic-ai's history processors): the
    # summary met again is updated, never doubled.
    more = edits(fmt, 40)
    n_new = len(more) - len(history)
    carried = list(first.messages) + more[len(more) - n_new :]
    later = Compactor(config).compact(carried)
    assert later.dropped
    (text,) = summary_texts(fmt, later.messages)
    assert "Make the parser accept unary minus" in text and "src/mod0.py" in text and "src/mod30.py" in text
    assert baseline.compact(carried, config).messages == later.messages


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_summary_takes_its_room_from_the_target_and_never_adds_tokens_or_crosses_the_hard_limit(fmt):
    # A summary as large as the target: its room is capped to a tenth of the target.
    small = BudgetConfig(
        max_input_tokens=4_000, compaction_threshold=0.25, hard_limit_threshold=1.0, target_input_tokens=1_000,
        context=ContextStrategies(summary={"max_tokens": 1_000}),
    )
    for config in (small, BudgetConfig.preset("cerebras"), BudgetConfig()):
        history = edits(fmt, 30, task="fix it")
        if fmt != "pydantic-ai" and config is small:
            history = history[:1] + history[-12:] if fmt != "openai" else history[:2] + history[-12:]
        try:
            result = Compactor(config).compact(history)
        except tokensieve.BudgetExceededError:
            continue
        window_only = Compactor(config.replace(context=ContextStrategies(summary=False))).compact(history)
        summary = [s for s in result.steps if s.step == "summary"]
        assert result.tokens_after <= result.tokens_before
        assert result.tokens_after <= config.hard_limit_tokens
        if summary:
            assert -summary[0].tokens_saved <= min(config.context.summary.max_tokens, config.target_input_tokens // 10)
        if window_only.tokens_after <= config.target_input_tokens:
            assert result.tokens_after <= config.target_input_tokens


def test_an_anthropic_summary_goes_after_the_tool_results_and_before_the_users_text():
    history = edits("anthropic", 24)
    # The window opens on a user turn that answers a call: tool results, then text.
    result = Compactor("cerebras").compact(history)
    first = result.messages[0]
    assert first["role"] == "user"
    kinds = [b["type"] for b in first["content"]]
    assert "text" in kinds
    at = next(k for k, b in enumerate(first["content"]) if b["type"] == "text" and b["text"].startswith("[Summary of "))
    assert all(kind == "tool_result" for kind in kinds[:at]) and "tool_result" not in kinds[at:]
    roles = [m["role"] for m in result.messages]
    assert all(a != b for a, b in zip(roles, roles[1:])), roles


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_message_the_summary_cannot_read_skips_the_summary_and_never_fails_the_compaction(fmt, monkeypatch):
    import tokensieve.summarize

    history = edits(fmt, 24)
    expected = Compactor("cerebras").compact(history)

    def unreadable(messages, format):
        raise tokensieve.InvalidMessageError(3, "cannot be read for the summary")

    tokensieve.summarize.ExtractiveSummarizer.cache_clear  # noqa: B018 (the shared ones are by config)
    monkeypatch.setattr(tokensieve.summarize, "_read", unreadable)
    from tokensieve import compaction

    compaction._SHARED_SUMMARIZERS.clear()
    result = Compactor("cerebras").compact(history)
    assert "summary" not in [s.step for s in result.steps] and summary_texts(fmt, result.messages) == []
    # Without its summary, the compaction is the window's over the target minus the room.
    assert len(result.messages) == len(expected.messages) - (1 if fmt in ("openai", "responses") else 0)
    assert baseline.compact(history, "cerebras").messages == result.messages


def test_the_async_entry_point_writes_the_summary_with_the_presets_summary_model():
    import asyncio

    config = BudgetConfig.preset("cerebras").replace(
        context=ContextStrategies(summary={"model": "test", "max_tokens": 1_000})
    )
    history = edits("openai", 24)
    out = asyncio.run(tokensieve.compaction.compact_history_async(history, config))
    (text,) = summary_texts("openai", out)
    assert text.startswith("[Summary of ") and "written by a model" in text.splitlines()[0]
    # Every path and the task are kept whatever the model wrote.
    assert "src/mod0.py" in text and "src/mod19.py" in text and "Make the parser accept unary minus" in text
    # The sync path stays extractive.
    (sync,) = summary_texts("openai", tokensieve.compact_history(history, config))
    assert "extracted by tokensieve" in sync.splitlines()[0]
