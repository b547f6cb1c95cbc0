"""Hand-written histories full of odd values, one list per format, for the differential
tests: every branch of the readers (``rust/src/python/read/``) that random agent
sessions do not reach — non-string keys, big integers, enums, bytes, lone surrogates,
unknown part kinds and block types, media wrappers, legacy and custom tool calls."""

from __future__ import annotations

import enum
from collections import OrderedDict
import warnings
from dataclasses import dataclass
from typing import Any

from pydantic_ai.messages import (
    BinaryImage,
    CachePoint,
    ImageUrl,
    ModelRequest,
    ModelResponse,
    NativeToolCallPart,
    NativeToolReturnPart,
    RetryPromptPart,
    SpeechPart,
    SystemPromptPart,
    TextContent,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)


class Color(enum.IntEnum):
    RED = 1


class Shown:
    def __str__(self) -> str:
        return "shown ✓ \"quoted\""


@dataclass
class MysteryPart:
    """A part kind this version of pydantic-ai does not know."""

    content: Any
    part_kind: str = "mystery"


@dataclass
class NoKindPart:
    content: Any


class SneakyDict(dict):
    """Overrides that a reader must not call: both read dicts in place."""

    def items(self):  # type: ignore[override]
        return [("sneaky", "items")]

    def __iter__(self):  # type: ignore[override]
        return iter(["sneaky"])


class SneakyList(list):
    def __iter__(self):  # type: ignore[override]
        return iter(["sneaky"])


def _deep(levels: int) -> Any:
    """A value nested deeper than the memo remembers and the walker starts tracking."""
    value: Any = {"leaf": "deep"}
    for i in range(levels):
        value = [value] if i % 2 else {"k": value}
    return value


_SHARED = {"shared": [1, 2]}  # met twice, but no cycle
_ORDERED = OrderedDict([("a", 1), ("b", 2)])
_ORDERED.move_to_end("a")  # dict order and OrderedDict order now differ

ODD_VALUES = {
    1: "int key",
    (1, 2): ["tuple key"],
    "big": 2**70,
    "neg": -(2**63),
    "edge": 2**63,
    "enum": Color.RED,
    "bools": [True, False, None],
    "floats": [0.1, 1e300, -0.0, float("inf")],
    "bytes": b"\x00\x01",
    "bytearray": bytearray(b"ab"),
    "control": "\x00\x1f\x7f\b\f\r\n\t\"\\",
    "surrogate": "lone \ud800 here",
    "pair": "\ud83d\ude00",
    "object": Shown(),
    "nested": ({"a": (1, [2, {"b": None}])},),
    "deep": _deep(300),
    "twice": [_SHARED, _SHARED, {"again": _SHARED}],
    "ordered": _ORDERED,
    "sneaky": SneakyDict(a=SneakyList([1, 2])),
}


def pydantic_ai_histories() -> list[list]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # RetryPromptPart is deprecated
        retry_bound = RetryPromptPart("try again", tool_name="grep", tool_call_id="c2")
        retry_free = RetryPromptPart("answer in JSON", tool_call_id="c9")
    return [
        [
            ModelRequest([SystemPromptPart("sys"), UserPromptPart(["look", TextContent("wrapped"), CachePoint(),
                                                                  ImageUrl("https://e.com/a.png"),
                                                                  BinaryImage(b"\x89PNG", media_type="image/png")])]),
            ModelResponse([ThinkingPart("hm"), ToolCallPart("grep", ODD_VALUES, tool_call_id="c1"),
                           ToolCallPart("grep", "{\"raw\": 1}", tool_call_id="c2"), MysteryPart({"x": Shown()}),
                           NoKindPart("no kind"), SpeechPart(speaker="assistant", transcript="said")]),
            ModelRequest([ToolReturnPart("grep", ODD_VALUES, tool_call_id="c1"), retry_bound, retry_free,
                          ThinkingPart("thinking in a request")]),
            ModelResponse([NativeToolCallPart("web_search", {"q": Color.RED}, tool_call_id="n1"),
                           NativeToolReturnPart("web_search", [b"bin", "text"], tool_call_id="n1"), TextPart("done")]),
            ModelRequest([UserPromptPart(("tuple", "prompt")), ToolReturnPart("gone", 2**70, tool_call_id=7)],
                         instructions=Shown()),
        ],
        [
            ModelRequest([UserPromptPart("a")]),
            ModelResponse([ThinkingPart("only thinking")]),
            ModelResponse([ThinkingPart("think"), ToolCallPart("f", None, tool_call_id="lost")]),
            ModelRequest([UserPromptPart("b")], instructions="last instructions"),
        ],
    ]


def openai_histories() -> list[list]:
    return [
        [
            {"role": "developer", "content": [{"type": "text", "text": "dev"}, {"type": "image_url", "image_url": {}}]},
            {"role": "user", "content": {"odd": ODD_VALUES}, "name": Color.RED},
            {"role": "assistant", "content": [{"type": "text", "text": "t"}, {"type": "refusal", "refusal": "no"}],
             "refusal": "also", "tool_calls": (
                 {"id": "a", "type": "function", "function": {"name": "f", "arguments": ODD_VALUES}},
                 {"id": "b", "type": "custom", "custom": {"name": "g", "input": "raw input"}},
                 {"id": "c", "type": "custom", "function": None, "custom": {"name": "ignored"}},
             )},
            {"role": "tool", "tool_call_id": "b", "content": [{"type": "text", "text": "r"}, {"type": "image_url"}]},
            {"role": "tool", "tool_call_id": "a", "content": ODD_VALUES},
            {"role": "assistant", "content": "", "function_call": {"name": "legacy", "arguments": "{}"}},
            {"role": "function", "name": "legacy", "content": "legacy result"},
            {"role": "function", "name": "stray", "content": "orphan"},
            {"role": "assistant", "content": None, "function_call": {"name": "lost", "arguments": {"x": 1}}},
            {"role": "user", "content": "last"},
        ],
    ]


def responses_histories() -> list[list]:
    return [
        [
            {"type": "message", "role": "system", "content": [{"type": "input_text", "text": "sys"}]},
            {"role": "user", "content": [{"type": "input_text", "text": "q"}, {"type": "input_file", "file_id": "f"}]},
            {"type": "reasoning", "summary": [{"type": "summary_text", "text": "r1"}]},
            {"type": "reasoning", "summary": "plain summary"},
            {"type": "computer_call", "call_id": "k1", "action": {"type": "click", "x": 1, "y": 2}},
            {"type": "computer_call_output", "call_id": "k1", "output": {"type": "input_image", "image_url": "data:"}},
            {"type": "web_search_call", "id": "ws", "status": "completed"},
            {"type": "web_search_call", "id": "ws2", "call_id": "w2"},
            {"type": "item_reference", "id": "msg_0"},
            {"type": None, "role": "user", "content": ODD_VALUES},
            {"type": "function_call", "call_id": 12, "name": "f", "arguments": ODD_VALUES},
            {"type": "shell_call", "call_id": "s1", "action": {"commands": ["ls"]}},
            {"type": "shell_call_output", "call_id": "s1", "output": [{"type": "output_text", "text": "ok"}, "x"]},
            {"type": "function_call_output", "call_id": "12", "output": None},
            {"type": "compaction", "summary": ODD_VALUES},
            {"type": "reasoning", "summary": []},
        ],
    ]


def anthropic_histories() -> list[list]:
    return [
        [
            {"role": "user", "content": ["a bare string block", {"text": "no type"},
                                         {"type": "document", "source": {}}, {"type": "tool_use", "id": "u", "name": "n"}]},
            {"role": "assistant", "content": [
                {"type": "redacted_thinking", "data": "xx"},
                {"type": "thinking", "thinking": "th", "signature": "s"},
                {"type": "server_tool_use", "id": "srv", "name": "web_fetch", "input": ODD_VALUES},
                {"type": "web_fetch_tool_result", "tool_use_id": "srv", "content": {"odd": ODD_VALUES}},
                {"type": "tool_result", "tool_use_id": "x", "content": "result in an assistant message"},
                {"type": "tool_use", "id": "t1", "name": "f", "input": ODD_VALUES},
                {"type": "tool_use", "id": "t2", "name": "g", "input": {}},
                "bare assistant string",
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "r"}, "not a dict"]},
                {"type": "tool_result", "tool_use_id": "t2", "content": [{"type": "image", "source": {}}]},
                {"type": "text", "text": "and then"},
            ]},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "just thinking"}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t3", "name": "f", "input": {}}]},
            {"role": "user", "content": "a string that will receive a stub"},
        ],
    ]


ODD_HISTORIES = {
    "pydantic-ai": pydantic_ai_histories,
    "openai": openai_histories,
    "responses": responses_histories,
    "anthropic": anthropic_histories,
}
