"""A cold read: texts counted on another thread while the history is still being read.

In a long history (1,024 messages or more) the reader hands each chunk of 256 messages to
a counting thread and goes on reading. The tool arguments it renders (dicts and lists)
are counted there too and only then remembered by the value memo; the large strings it
meets for the first time are hashed there and only then remembered by the memo of hashes.
These tests hold that path to the serial one (``TOKENSIEVE_PARALLELISM=0``: every chunk
counted on the reading thread), to the pure-Python baseline, and to what a later read of
the same objects, changed or not, must count.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from pydantic_ai.messages import ModelRequest, ModelResponse, TextPart, ToolCallPart, ToolReturnPart, UserPromptPart

import tokensieve
from tokensieve import _bench, baseline

WORDS = "def return self value result error path line test import class for while if else é 中 😀".split()


def _text(rng: random.Random, size: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(max(1, size // 4)))[:size]


def _args(rng: random.Random, n: int) -> Any:
    kind = rng.randrange(4)
    if kind == 0:
        return {"path": f"src/m_{rng.randrange(50)}.py", "n": n}
    if kind == 1:
        return {"q": _text(rng, rng.randint(5, 60)), "opts": [1, 2.5, None, True, {"deep": ["x", n]}]}
    if kind == 2:
        return f'{{"raw": "json text {n}"}}'
    return [n, "list args", {"k": (1, 2)}]


def _history(seed: int, n_messages: int) -> list[Any]:
    """An agent history with dict, list and string arguments and tool results of 10 B to 6 KB."""
    rng = random.Random(seed)
    messages: list[Any] = [ModelRequest(parts=[UserPromptPart("Fix the tests.")])]
    while len(messages) < n_messages:
        n = len(messages)
        parts: list[Any] = [TextPart(_text(rng, rng.randint(1, 300)))] if rng.random() < 0.3 else []
        parts.append(ToolCallPart("grep", _args(rng, n), tool_call_id=f"call_{n}"))
        size = rng.choice([10, 200, 1023, 1024, 1500, 6000])
        messages.append(ModelResponse(parts=parts))
        messages.append(ModelRequest(parts=[ToolReturnPart("grep", _text(rng, size), tool_call_id=f"call_{n}")]))
    return messages


def _counts(history: list[Any]) -> list[int]:
    return tokensieve.count_history_tokens(history).tolist()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_long_history_counts_the_same_overlapped_and_serial(seed, monkeypatch):
    history = _history(seed, 1_500)
    tokensieve.clear_cache()
    overlapped = _counts(history)
    monkeypatch.setenv("TOKENSIEVE_PARALLELISM", "0")
    tokensieve.clear_cache()
    serial = _counts(history)
    assert overlapped == serial
    assert overlapped == baseline.count_history_tokens(history)


def test_a_cold_compaction_equals_the_serial_one(monkeypatch):
    history = _bench.history(2_000, seed=5)
    tokensieve.clear_cache()
    overlapped = tokensieve.compact_history(history, _bench.BENCH_CONFIG)
    monkeypatch.setenv("TOKENSIEVE_PARALLELISM", "0")
    tokensieve.clear_cache()
    assert tokensieve.compact_history(history, _bench.BENCH_CONFIG) == overlapped


def test_containers_counted_on_the_counting_thread_are_remembered_and_checked():
    history = _history(7, 1_200)
    tokensieve.clear_cache()
    first = _counts(history)
    assert _counts(history) == first  # read from the memos
    for message in history[1::40]:
        for part in message.parts:
            if isinstance(part, ToolCallPart) and isinstance(part.args, dict):
                part.args["added"] = "an argument added in place after the first read"
            elif isinstance(part, ToolCallPart) and isinstance(part.args, list):
                part.args.append("grown")
    assert _counts(history) == baseline.count_history_tokens(history)


def test_one_container_in_many_parts_of_a_long_history_counts_in_each():
    shared = {"q": "arguments shared by every call", "n": [1, 2, 3]}
    history = _history(11, 1_100)
    for message in history:
        for part in message.parts:
            if isinstance(part, ToolCallPart):
                part.args = shared
    tokensieve.clear_cache()
    assert _counts(history) == baseline.count_history_tokens(history)
    assert _counts(history) == baseline.count_history_tokens(history)
    shared["n"].append(4)
    assert _counts(history) == baseline.count_history_tokens(history)


def test_a_large_string_hashed_while_counted_is_remembered_by_its_object():
    big = "a large tool result, " * 200  # 4 KB: its hash is remembered by address
    history = _history(13, 1_100)
    for message in history[2::2]:
        message.parts[0].content = big
    tokensieve.clear_cache()
    first = _counts(history)
    assert first == baseline.count_history_tokens(history)
    # A new object with other text at some places: counted by its own content.
    for message in history[2::50]:
        message.parts[0].content = "another text " * 150
    assert _counts(history) == baseline.count_history_tokens(history)
    assert _counts(history) != first
