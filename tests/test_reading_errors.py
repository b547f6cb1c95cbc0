"""Hostile and malformed histories: every failure is a TokensieveError naming the message
and the field (the original exception chained), never a crash; mixed formats are refused;
an empty-but-valid message is kept. The Rust core and the baseline agree on each.

Inputs that crashed the interpreter (cycles, nesting a million deep) run in a child
process, so that a segfault is a failed test and not a dead test runner.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import Any

import pytest

import tokensieve
from tokensieve import baseline
from tokensieve.errors import InputTypeError, InvalidMessageError, TokensieveError

CONFIG = tokensieve.BudgetConfig(max_input_tokens=1_000_000)

# ---- In a child process: what crashed the interpreter ------------------------------------

PRELUDE = """
import sys
import tokensieve
from tokensieve import baseline
from tokensieve.errors import InvalidMessageError

CONFIG = tokensieve.BudgetConfig(max_input_tokens=100_000_000)

def outcome(f, h, **kw):
    try:
        r = f(h, **kw) if f.__name__ == "count_history_tokens" else f(h, CONFIG, **kw)
    except InvalidMessageError as e:
        return f"InvalidMessageError {e.index} {e.reason}"
    return f"ok {[int(n) for n in r] if f.__name__ == 'count_history_tokens' else len(r)}"

def report(h, **kw):
    for f in (tokensieve.count_history_tokens, tokensieve.compact_history,
              baseline.count_history_tokens, baseline.compact_history):
        print(outcome(f, h, **kw))
"""


def run_isolated(body: str, timeout: float = 300) -> list[str]:
    """Run ``body`` (after PRELUDE) in a fresh interpreter; its printed lines. A crash
    (a signal, a non-zero exit) fails the test."""
    code = PRELUDE + textwrap.dedent(body)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"the child died (exit {proc.returncode}): {proc.stderr[-2000:]}"
    return proc.stdout.splitlines()


def _all_say(lines: list[str], expected: str) -> None:
    assert len(lines) == 4, lines
    assert all(line == expected for line in lines), lines


def test_a_cyclic_dict_in_openai_tool_arguments_is_an_invalid_message_error():
    lines = run_isolated("""
        d = {"k": 1}; d["self"] = d
        report([{"role": "user", "content": "q"},
                {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function",
                 "function": {"name": "f", "arguments": d}}]}])
    """)
    _all_say(lines, "InvalidMessageError 1 tool_calls[0].function.arguments: circular reference")


def test_a_cyclic_list_in_openai_tool_arguments_is_an_invalid_message_error():
    lines = run_isolated("""
        x = [1, 2]; x.append(x)
        report([{"role": "user", "content": "q"},
                {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function",
                 "function": {"name": "f", "arguments": {"a": [x]}}}]}])
    """)
    _all_say(lines, "InvalidMessageError 1 tool_calls[0].function.arguments: circular reference")


def test_a_cycle_found_only_deep_inside_a_value_is_an_invalid_message_error():
    # The cycle closes 200 levels down: past the depth where the walker starts tracking.
    lines = run_isolated("""
        inner = {"k": 1}
        outer = inner
        for _ in range(200):
            outer = {"n": outer}
        inner["back"] = outer
        report([{"role": "user", "content": "q"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": outer}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "r"}]}])
    """)
    _all_say(lines, "InvalidMessageError 1 content[0].input: circular reference")


def test_a_cyclic_responses_argument_and_pydantic_ai_args_are_invalid_message_errors():
    lines = run_isolated("""
        from pydantic_ai.messages import ModelRequest, ModelResponse, ToolCallPart, UserPromptPart
        d = {}; d["d"] = [d]
        report([{"role": "user", "content": "q"},
                {"type": "function_call", "call_id": "c1", "name": "f", "arguments": d}])
        report([ModelRequest(parts=[UserPromptPart("q")]),
                ModelResponse(parts=[ToolCallPart("f", d, tool_call_id="c1")])])
    """)
    assert lines[:4] == ["InvalidMessageError 1 arguments: circular reference"] * 4
    assert lines[4:] == ["InvalidMessageError 1 parts[0].args: circular reference"] * 4


def test_a_cyclic_list_of_tool_result_blocks_is_an_invalid_message_error():
    lines = run_isolated("""
        blocks = [{"type": "text", "text": "r"}]
        blocks.append({"type": "tool_result", "tool_use_id": "t0", "content": blocks})
        report([{"role": "user", "content": "q"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": blocks}]}])
    """)
    _all_say(lines, "InvalidMessageError 2 content[0].content: circular reference")


def test_a_text_wrapper_holding_itself_is_an_invalid_message_error():
    lines = run_isolated("""
        class Wrapper:
            kind = "text-content"
        w = Wrapper(); w.content = w
        report([{"role": "user", "content": "q"},
                {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function",
                 "function": {"name": "f", "arguments": {"w": w}}}]}])
    """)
    _all_say(lines, "InvalidMessageError 1 tool_calls[0].function.arguments: circular reference")


def test_anthropic_input_nested_100000_deep_is_counted_like_the_baseline():
    lines = run_isolated("""
        v = {"leaf": "x"}
        for _ in range(100_000):
            v = {"k": v}
        report([{"role": "user", "content": "q"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": v}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "r"}]}])
    """)
    assert len(lines) == 4 and lines[0] == lines[2], lines
    assert lines[1] == lines[3] == "ok 3"
    assert int(lines[0].split(",")[1]) > 100_000  # the whole value was counted


def test_a_list_nested_a_million_deep_is_counted_like_the_baseline():
    lines = run_isolated("""
        x = []
        for _ in range(1_000_000):
            x = [x]
        report([{"role": "user", "content": "q"},
                {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function",
                 "function": {"name": "f", "arguments": x}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "r"}])
    """)
    assert len(lines) == 4 and lines[0] == lines[2], lines
    assert lines[1] == lines[3] == "ok 3"


def test_tool_result_blocks_nested_too_deep_are_an_invalid_message_error():
    lines = run_isolated("""
        content = "r"
        for _ in range(100_000):
            content = [{"type": "tool_result", "tool_use_id": "t0", "content": content}]
        report([{"role": "user", "content": "q"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": content}]}])
    """)
    _all_say(lines, "InvalidMessageError 2 content[0].content: content blocks nested more than 32 deep")


# ---- Errors a caller can cause ------------------------------------------------------------


def _both(call: Any) -> list[BaseException]:
    """The exceptions ``call(module)`` raises with the Rust core and with the baseline."""
    errors = []
    for module in (tokensieve, baseline):
        with pytest.raises(TokensieveError) as info:
            call(module)
        errors.append(info.value)
    return errors


def _assert_invalid(errors: list[BaseException], index: int, field: str, cause: type[BaseException] | None) -> None:
    for error in errors:
        assert isinstance(error, InvalidMessageError), repr(error)
        assert error.index == index, repr(error)
        assert error.reason.startswith(field), repr(error)
        if cause is not None:
            assert isinstance(error.__cause__, cause), repr(error.__cause__)


def _openai_call(arguments: Any) -> list[dict]:
    return [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": arguments}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "r"},
    ]


class _StrRaises:
    def __str__(self) -> str:
        raise ValueError("boom")


class _StrNotAString:
    def __str__(self) -> Any:
        return 42


@pytest.mark.parametrize("entry", ["count_history_tokens", "compact_history"])
def test_a_format_that_is_not_a_string_is_an_input_type_error(entry):
    history = [{"role": "user", "content": "q"}]
    for module in (tokensieve, baseline):
        with pytest.raises(InputTypeError, match="format") as info:
            getattr(module, entry)(history, format=5)
        assert isinstance(info.value, TypeError)
    with pytest.raises(InputTypeError):
        tokensieve.Compactor(CONFIG).compact(history, format=5)  # type: ignore[arg-type]
    with pytest.raises(InputTypeError):
        baseline.compact(history, CONFIG, format=["openai"])  # type: ignore[arg-type]


def test_a_model_response_whose_parts_is_none_is_an_invalid_message_error():
    from pydantic_ai.messages import ModelRequest, ModelResponse, UserPromptPart

    response = ModelResponse(parts=[])
    response.parts = None  # type: ignore[assignment]
    history = [ModelRequest(parts=[UserPromptPart("q")]), response]
    errors = _both(lambda m: m.count_history_tokens(history))
    _assert_invalid(errors, 1, "parts", TypeError)
    errors = _both(lambda m: m.compact_history(history))
    _assert_invalid(errors, 1, "parts", TypeError)


def test_parts_whose_getitem_raises_are_an_invalid_message_error():
    from pydantic_ai.messages import ModelRequest, ModelResponse, UserPromptPart

    class Parts:
        def __getitem__(self, i: int) -> Any:
            raise RuntimeError("no parts here")

    response = ModelResponse(parts=[])
    response.parts = Parts()  # type: ignore[assignment]
    history = [ModelRequest(parts=[UserPromptPart("q")]), response]
    _assert_invalid(_both(lambda m: m.count_history_tokens(history)), 1, "parts", RuntimeError)


def test_a_tool_argument_whose_str_raises_is_an_invalid_message_error_with_the_cause():
    history = _openai_call({"x": _StrRaises()})
    errors = _both(lambda m: m.compact_history(history))
    _assert_invalid(errors, 1, "tool_calls[0].function.arguments", ValueError)
    assert "boom" in str(errors[0])


def test_a_dict_key_whose_str_raises_is_an_invalid_message_error_with_the_cause():
    history = _openai_call({_StrRaises(): 1})
    errors = _both(lambda m: m.count_history_tokens(history))
    _assert_invalid(errors, 1, "tool_calls[0].function.arguments", ValueError)


def test_a_str_returning_a_non_string_is_an_invalid_message_error():
    history = _openai_call({"x": _StrNotAString()})
    errors = _both(lambda m: m.compact_history(history))
    _assert_invalid(errors, 1, "tool_calls[0].function.arguments", TypeError)


def test_a_tool_call_id_whose_str_raises_is_an_invalid_message_error():
    history = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": _StrRaises(), "name": "f", "input": {}}]},
    ]
    _assert_invalid(_both(lambda m: m.compact_history(history)), 1, "content[0].id", ValueError)


def test_a_pydantic_ai_part_attribute_that_raises_is_an_invalid_message_error():
    from pydantic_ai.messages import ModelRequest, ModelResponse, ToolCallPart, UserPromptPart

    history = [
        ModelRequest(parts=[UserPromptPart("q")]),
        ModelResponse(parts=[ToolCallPart("f", {"a": _StrRaises()}, tool_call_id="c1")]),
    ]
    _assert_invalid(_both(lambda m: m.compact_history(history)), 1, "parts[0].args", ValueError)


def test_a_key_whose_eq_raises_is_an_invalid_message_error():
    class Collides:
        armed = False

        def __hash__(self) -> int:
            return hash("role")

        def __eq__(self, other: object) -> bool:
            if Collides.armed:
                raise RuntimeError("no comparing")
            return self is other

    history = [{"role": "user", "content": "q"}, {Collides(): 1, "role": "assistant", "content": "a"}]
    Collides.armed = True
    errors = _both(lambda m: m.compact_history(history, format="openai"))
    _assert_invalid(errors, 1, "role", RuntimeError)
    errors = _both(lambda m: m.count_history_tokens(history))  # detection meets it first
    _assert_invalid(errors, 1, "detecting the format", RuntimeError)


def test_content_whose_len_raises_is_an_invalid_message_error():
    class Odd(str):
        def __len__(self) -> int:
            raise RuntimeError("no length")

    history = [{"role": "user", "content": "q"}, {"role": "assistant", "content": Odd("a")}]
    _assert_invalid(_both(lambda m: m.compact_history(history)), 1, "", RuntimeError)


def test_tool_calls_whose_iter_raises_is_an_invalid_message_error():
    class Calls:
        def __iter__(self) -> Any:
            raise RuntimeError("no calls")

    history = [{"role": "user", "content": "q"}, {"role": "assistant", "content": None, "tool_calls": Calls()}]
    _assert_invalid(_both(lambda m: m.compact_history(history)), 1, "tool_calls", RuntimeError)


def test_tool_calls_that_are_not_a_list_name_the_field():
    history = [{"role": "user", "content": "q"}, {"role": "assistant", "content": None, "tool_calls": 5}]
    _assert_invalid(_both(lambda m: m.compact_history(history)), 1, "tool_calls", TypeError)


def test_subclasses_overriding_item_access_are_read_in_place_alike():
    class Guarded(dict):
        def __getitem__(self, key: Any) -> Any:
            raise RuntimeError("not through here")

        def get(self, key: Any, default: Any = None) -> Any:
            raise RuntimeError("not through here")

    class Calls(list):
        def __iter__(self) -> Any:
            raise RuntimeError("not through here")

    history = [
        Guarded(role="user", content="q"),
        Guarded(role="assistant", content=None, tool_calls=Calls([
            Guarded(id="c1", type="function", function=Guarded(name="f", arguments=Guarded(a=[1, 2])))])),
        Guarded(role="tool", tool_call_id="c1", content="r"),
    ]
    assert list(tokensieve.count_history_tokens(history)) == baseline.count_history_tokens(history)
    assert tokensieve.compact_history(history) == baseline.compact_history(history)


def test_keyboard_interrupt_from_a_callers_object_is_not_wrapped():
    class Interrupts:
        def __str__(self) -> str:
            raise KeyboardInterrupt

    for module in (tokensieve, baseline):
        with pytest.raises(KeyboardInterrupt):
            module.count_history_tokens(_openai_call({"x": Interrupts()}))


# ---- Mixed formats ------------------------------------------------------------------------


def _assert_mixed(history: list, index: int, **kw: Any) -> None:
    for call in (lambda m: m.count_history_tokens(history, **kw), lambda m: m.compact_history(history, **kw)):
        errors = _both(call)
        for error in errors:
            assert isinstance(error, InvalidMessageError), repr(error)
            assert error.index == index, repr(error)


def test_an_anthropic_tool_result_in_an_openai_history_is_an_invalid_message_error():
    history = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "c1", "content": "r"}]},
    ]
    _assert_mixed(history, 2)
    _assert_mixed(history, 2, format="openai")


@pytest.mark.parametrize("block", [
    {"type": "tool_use", "id": "t", "name": "f", "input": {}},
    {"type": "thinking", "thinking": "hm", "signature": "s"},
    {"type": "output_text", "text": "a"},
])
def test_blocks_of_another_format_in_an_openai_assistant_message_are_refused(block):
    history = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "a", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "r"},
        {"role": "assistant", "content": [block]},
    ]
    _assert_mixed(history, 3)


def test_a_responses_item_in_an_openai_chat_history_is_an_invalid_message_error():
    history = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"type": "function_call_output", "call_id": "c1", "output": "r"},
    ]
    _assert_mixed(history, 2)


def test_openai_tool_calls_in_an_anthropic_history_are_an_invalid_message_error():
    history = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "r"}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
    ]
    _assert_mixed(history, 3)
    _assert_mixed(history[:1] + history[3:], 1, format="anthropic")


def test_an_openai_image_part_in_an_anthropic_history_is_an_invalid_message_error():
    history = [
        {"role": "user", "content": [{"type": "image", "source": {"type": "base64", "data": "AA=="}}]},
        {"role": "assistant", "content": "a"},
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x"}}]},
    ]
    _assert_mixed(history, 2)


def test_an_anthropic_block_in_a_responses_message_is_an_invalid_message_error():
    history = [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "q"}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]},
    ]
    _assert_mixed(history, 1)


def test_a_pydantic_ai_message_among_dicts_and_a_dict_among_them_are_refused():
    from pydantic_ai.messages import ModelRequest, ModelResponse, TextPart, UserPromptPart

    # Detected pydantic-ai (the dict does not tell): the dict is the stranger.
    _assert_mixed([{"role": "user", "content": "q"}, ModelResponse(parts=[TextPart("a")])], 0)
    _assert_mixed([ModelRequest(parts=[UserPromptPart("q")]), {"role": "assistant", "content": "a"}], 1)


def test_every_legitimate_content_type_of_each_format_is_read():
    openai = [
        {"role": "system", "content": "s", "name": "sys"},
        {"role": "user", "content": [
            {"type": "text", "text": "q"},
            {"type": "image_url", "image_url": {"url": "https://x", "detail": "high"}},
            {"type": "input_audio", "input_audio": {"data": "AA==", "format": "wav"}},
            {"type": "file", "file": {"file_id": "f1"}},
        ], "cache_control": {"type": "ephemeral"}},
        {"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "refusal", "refusal": "no"}],
         "annotations": [], "audio": None, "function_call": None, "tool_calls": None},
        {"role": "user", "content": "again"},
    ]
    anthropic = [
        {"role": "user", "content": [
            {"type": "text", "text": "q", "cache_control": {"type": "ephemeral"}},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA=="}},
            {"type": "document", "source": {"type": "text", "data": "d"}},
            {"type": "search_result", "source": "s", "title": "t", "content": [{"type": "text", "text": "x"}]},
        ]},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "hm", "signature": "sig"},
            {"type": "redacted_thinking", "data": "xx"},
            {"type": "text", "text": "a"},
            {"type": "server_tool_use", "id": "s1", "name": "web_search", "input": {"query": "q"}},
            {"type": "web_search_tool_result", "tool_use_id": "s1", "content": []},
            {"type": "tool_use", "id": "t1", "name": "f", "input": {}},
        ]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": [
            {"type": "text", "text": "r"}, {"type": "image", "source": {"type": "base64", "data": "AA=="}}]}]},
    ]
    responses = [
        {"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "q"},
            {"type": "input_image", "image_url": "https://x"},
            {"type": "input_file", "file_id": "f"},
        ]},
        {"type": "message", "role": "assistant", "content": [
            {"type": "output_text", "text": "a", "annotations": []}, {"type": "refusal", "refusal": "no"}]},
        {"role": "user", "content": "again"},
    ]
    for history, fmt in ((openai, "openai"), (anthropic, "anthropic"), (responses, "responses")):
        result = tokensieve.Compactor(CONFIG).compact(history)
        assert result.format == fmt
        assert all(a is b for a, b in zip(result.messages, history, strict=True))
        assert list(result.per_message_tokens) == baseline.count_history_tokens(history)


# ---- An empty but valid message is kept ---------------------------------------------------


def test_an_openai_assistant_message_with_empty_content_is_kept_under_the_threshold():
    history = [{"role": "user", "content": "q"}, {"role": "assistant", "content": ""}, {"role": "user", "content": "again"}]
    for module in (tokensieve, baseline):
        out = module.compact_history(history, CONFIG)
        assert len(out) == 3
        assert all(a is b for a, b in zip(out, history, strict=True))


def test_an_empty_content_beside_dropped_tool_calls_still_goes_with_them():
    # "" is no text of its own when the message carries calls: an orphan call takes it along.
    history = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "user", "content": "again"},
    ]
    for module in (tokensieve, baseline):
        out = module.compact_history(history, CONFIG)
        assert [m["role"] for m in out] == ["user", "user"]


def test_a_tool_calls_key_holding_none_neither_tells_nor_mixes_formats():
    # An SDK dump carries `tool_calls: None`: harmless, in any format.
    history = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}],
         "tool_calls": None, "function_call": None},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "r"}]},
    ]
    result = tokensieve.Compactor(CONFIG).compact(history)
    assert result.format == "anthropic"
    assert list(result.per_message_tokens) == baseline.count_history_tokens(history)


def test_texts_that_cannot_be_iterated_are_an_input_type_error_with_the_cause():
    class Texts:
        def __iter__(self) -> Any:
            raise ValueError("no iterating")

    with pytest.raises(InputTypeError, match="texts") as info:
        tokensieve.count_tokens_batch(Texts())
    assert isinstance(info.value.__cause__, ValueError)


# ---- Issue 8, items 1 and 6: what the hostile-input runner found after the merges ----------


def _pydantic_ai_call_history() -> list[Any]:
    from pydantic_ai.messages import ModelRequest, ModelResponse, ToolCallPart, ToolReturnPart, UserPromptPart

    return [
        ModelRequest(parts=[UserPromptPart("q")]),
        ModelResponse(parts=[ToolCallPart("f", {"a": 1}, tool_call_id="c1")]),
        ModelRequest(parts=[ToolReturnPart("f", "r", tool_call_id="c1")]),
    ]


@pytest.mark.parametrize("refers_to", ["message", "part"])
def test_pydantic_ai_args_that_refer_back_to_their_own_message_or_part_are_a_circular_reference(refers_to):
    # The message (or part) is rendered by str(): its dataclass repr elides the cycle
    # ("..."), so only knowing which objects the value was read from finds it.
    history = _pydantic_ai_call_history()
    response = history[1]
    part = response.parts[0]
    part.args = [response if refers_to == "message" else part]
    for call in (lambda m: m.count_history_tokens(history), lambda m: m.compact_history(history, CONFIG)):
        for error in _both(call):
            assert isinstance(error, InvalidMessageError), repr(error)
            assert (error.index, error.reason) == (1, "parts[0].args: circular reference")


def test_a_pydantic_ai_tool_return_holding_its_own_request_is_a_circular_reference():
    history = _pydantic_ai_call_history()
    history[2].parts[0].content = {"request": history[2]}
    for error in _both(lambda m: m.count_history_tokens(history)):
        assert isinstance(error, InvalidMessageError), repr(error)
        assert (error.index, error.reason) == (2, "parts[0].content: circular reference")


def test_a_value_holding_another_message_or_the_message_after_its_parts_is_not_a_cycle():
    # Only the objects a value was read from count: another message is rendered by str(),
    # and instructions may hold a part of their own request (the part does not hold them).
    from pydantic_ai.messages import ModelRequest, UserPromptPart

    history = _pydantic_ai_call_history()
    history[1].parts[0].args = [history[0]]
    prompt = UserPromptPart("next")
    history.append(ModelRequest(parts=[prompt], instructions=prompt))  # type: ignore[arg-type]
    counts = [int(n) for n in tokensieve.count_history_tokens(history)]
    assert counts == baseline.count_history_tokens(history)
    assert counts[1] > tokensieve.count_history_tokens(_pydantic_ai_call_history())[1]


@pytest.mark.parametrize("parts", [{"x"}, {"x": 1}], ids=["set", "dict"])
def test_parts_that_are_a_set_or_a_dict_are_rebuilt_from_what_was_read_in_stub_mode(parts):
    # The reader iterates any iterable of parts; the builder indexed it (KeyError: 0 for
    # a dict, TypeError for a set). It now takes each kept part the way it was read.
    from pydantic_ai.messages import ModelRequest, ModelResponse, ToolCallPart, UserPromptPart

    history = [ModelRequest(parts=[UserPromptPart("q")]), ModelResponse(parts=[ToolCallPart("f", {}, tool_call_id="c1")]),
               ModelRequest(parts=[UserPromptPart("next")])]
    object.__setattr__(history[2], "parts", parts)
    core = tokensieve.compact_history(history, CONFIG, dangling_calls="stub")
    base = baseline.compact_history(history, CONFIG, dangling_calls="stub")
    assert [list(m.parts)[1:] for m in core] == [list(m.parts)[1:] for m in base]
    assert list(core[2].parts)[1:] == ["x"]
    assert core[2].parts[0].tool_call_id == "c1"
    assert history[2].parts is parts  # the input is not modified


class _EvilStr(str):
    """A str whose comparisons and hash raise."""

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("EvilStr.__eq__")

    def __hash__(self) -> int:
        raise RuntimeError("EvilStr.__hash__")


def test_a_format_that_is_a_str_subclass_is_taken_by_its_value_everywhere():
    history = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"},
               {"role": "user", "content": "again"}]
    name = _EvilStr("openai")
    expected = [int(n) for n in tokensieve.count_history_tokens(history, format="openai")]
    assert [int(n) for n in tokensieve.count_history_tokens(history, format=name)] == expected
    assert baseline.count_history_tokens(history, format=name) == expected
    assert tokensieve.compact_history(history, CONFIG, format=name) == history
    assert baseline.compact_history(history, CONFIG, format=name) == history
    assert tokensieve.Compactor(CONFIG).compact(history, format=name).messages == history  # type: ignore[arg-type]
    assert tokensieve.count_request_tokens(history, format=name) > sum(expected)  # type: ignore[arg-type]
    tokensieve.preflight(history, CONFIG, format=name)  # type: ignore[arg-type]
    tokensieve.classify_task(history, CONFIG, format=name)
    assert tokensieve.narrow_history(history, format=name) == history


def test_an_unknown_format_named_by_a_str_subclass_is_a_configuration_error():
    history = [{"role": "user", "content": "q"}]
    for call in (lambda: tokensieve.count_history_tokens(history, format=_EvilStr("gemini")),
                 lambda: baseline.count_history_tokens(history, format=_EvilStr("gemini")),
                 lambda: tokensieve.compact_history(history, CONFIG, format=_EvilStr("gemini")),
                 lambda: tokensieve.classify_task(history, CONFIG, format=_EvilStr("gemini"))):
        with pytest.raises(tokensieve.ConfigurationError, match="gemini"):
            call()


# ---- Building the output ---------------------------------------------------------------


@pytest.mark.parametrize("function_call", [1.5, {"arguments": "{}"}, ["f"]], ids=["a-float", "no-name", "a-list"])
def test_a_stubbed_legacy_function_call_without_a_readable_name_gets_a_function_message_without_one(function_call):
    """The builder names the stub as the reader read the call (fuzzing found it indexing
    ``function_call["name"]`` of whatever was there: a bare TypeError or KeyError)."""
    history = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": None, "function_call": function_call},
        {"role": "user", "content": "and now?"},
    ]
    outs = [m.compact_history(history, dangling_calls="stub") for m in (tokensieve, baseline)]
    assert outs[0] == outs[1]
    stub = outs[0][2]
    assert stub == {"role": "function", "content": "[tool result elided by tokensieve]"}


class _ShrinkingParts:
    """A pydantic-ai-like message whose ``parts`` lose an item after the first read."""

    kind = "response"

    def __init__(self, parts: list[Any]) -> None:
        self._parts = parts
        self.reads = 0

    @property
    def parts(self) -> list[Any]:
        self.reads += 1
        return self._parts if self.reads == 1 else self._parts[:1]


def test_parts_that_change_between_reading_and_building_are_an_invalid_message_error_naming_the_message():
    from pydantic_ai.messages import ModelRequest, TextPart, ToolCallPart, UserPromptPart

    response = _ShrinkingParts([ToolCallPart("f", {}, tool_call_id="c1"), TextPart("a")])  # the call goes
    history = [ModelRequest([UserPromptPart("q")]), response, ModelRequest([UserPromptPart("next")])]
    # The Rust core reads `parts` once to read and once to rebuild; the baseline's reads
    # differ, so only the core is held to this exact sequence.
    with pytest.raises(InvalidMessageError) as caught:
        tokensieve.compact_history(history, format="pydantic-ai")
    assert caught.value.index == 1
    assert "rebuilding it" in str(caught.value)
    assert isinstance(caught.value.__cause__, IndexError)
